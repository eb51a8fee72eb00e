"""Artifact files on local disk, under one root that no name can escape (SPEC §8)."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StoredFile:
    path: str  #: relative to the storage root
    size_bytes: int
    sha256: str
    media_type: str


def safe_name(name: str) -> str:
    """A file name with no directory part and no character a shell or URL trips on."""
    cleaned = _UNSAFE.sub("_", Path(name).name).strip("._") or "file"
    return cleaned[:200]


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def put(
        self, source: Path, job_id: str, artifact_id: str, name: str, media_type: str | None
    ) -> StoredFile:
        """Move `source` into storage (copying across file systems); hash it on the way."""
        if source.is_symlink() or not source.is_file():
            raise ValueError(f"an artifact must be a regular file: {source}")
        relative = Path(safe_name(job_id)) / f"{safe_name(artifact_id)}-{safe_name(name)}"
        target = self.resolve(str(relative))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), target)
        digest = hashlib.sha256()
        with target.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        guessed = mimetypes.guess_type(name)[0]
        return StoredFile(
            path=str(relative),
            size_bytes=target.stat().st_size,
            sha256=digest.hexdigest(),
            media_type=media_type or guessed or "application/octet-stream",
        )

    def remove(self, relative: str) -> None:
        self.resolve(relative).unlink(missing_ok=True)

    def resolve(self, relative: str) -> Path:
        """The absolute path of a stored file; refuses anything outside the root."""
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root):
            raise ValueError(f"path {relative!r} escapes the storage root")
        return candidate

    def scratch_dir(self, job_id: str, attempt: int) -> Path:
        """A fresh working folder for one attempt of a job."""
        path = self.root.parent / "work" / safe_name(job_id) / str(attempt)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def discard_scratch(self, job_id: str, attempt: int) -> None:
        shutil.rmtree(
            self.root.parent / "work" / safe_name(job_id) / str(attempt), ignore_errors=True
        )
