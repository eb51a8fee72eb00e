"""What every artifact storage shares: the record of a stored file, the path it is
stored under, and what is computed from its bytes on the way in."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: How much of a stored file one read hands out: what a download holds in memory.
READ_CHUNK_BYTES = 256 * 1024

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StoredFile:
    path: str  #: relative to the storage root, `/`-separated
    size_bytes: int
    sha256: str
    media_type: str


def safe_name(name: str) -> str:
    """A file name with no directory part and no character a shell or URL trips on."""
    cleaned = _UNSAFE.sub("_", Path(name).name).strip("._") or "file"
    return cleaned[:200]


def artifact_path(job_id: str, artifact_id: str, name: str) -> str:
    """Where an artifact is stored under the root, the same in every storage: the path
    the database keeps means one file whichever storage holds it."""
    return f"{safe_name(job_id)}/{safe_name(artifact_id)}-{safe_name(name)}"


def check_inside(path: str) -> PurePosixPath:
    """`path` as a relative path that stays under the root (SPEC §8), or ValueError."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ValueError(f"path {path!r} escapes the storage root")
    return relative


def check_source(source: Path) -> None:
    if source.is_symlink() or not source.is_file():
        raise ValueError(f"an artifact must be a regular file: {source}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def media_type_of(name: str, declared: str | None) -> str:
    return declared or mimetypes.guess_type(name)[0] or "application/octet-stream"
