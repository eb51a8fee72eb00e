"""Artifact files on local disk, under one root that no name can escape (SPEC §8)."""

from __future__ import annotations

import shutil
from collections.abc import Generator
from pathlib import Path

from genwire.storage.base import (
    READ_CHUNK_BYTES,
    StoredFile,
    artifact_path,
    check_inside,
    check_source,
    media_type_of,
    sha256_of,
)
from genwire.storage.scratch import ScratchDirs


class LocalStorage:
    """`root` holds the artifacts; attempts work in `work_dir` (default: `work/`
    beside the root, so both stay in the data dir)."""

    def __init__(self, root: Path, work_dir: Path | None = None) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._scratch = ScratchDirs(work_dir or self.root.parent / "work")

    def put(
        self, source: Path, job_id: str, artifact_id: str, name: str, media_type: str | None
    ) -> StoredFile:
        """Move `source` into storage (copying across file systems); hash it on the way."""
        check_source(source)
        relative = artifact_path(job_id, artifact_id, name)
        target = self._resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), target)
        return StoredFile(
            path=relative,
            size_bytes=target.stat().st_size,
            sha256=sha256_of(target),
            media_type=media_type_of(name, media_type),
        )

    def remove(self, path: str) -> None:
        self._resolve(path).unlink(missing_ok=True)

    def size_of(self, path: str) -> int | None:
        target = self._resolve(path)
        return target.stat().st_size if target.is_file() else None

    def read(self, path: str, start: int, end: int) -> Generator[bytes, None, None]:
        with self._resolve(path).open("rb") as handle:
            handle.seek(start)
            while start < end:
                chunk = handle.read(min(READ_CHUNK_BYTES, end - start))
                if not chunk:
                    raise OSError(f"{path} ended at byte {start}, before {end}")
                start += len(chunk)
                yield chunk

    def scratch_dir(self, job_id: str, attempt: int) -> Path:
        return self._scratch.create(job_id, attempt)

    def discard_scratch(self, job_id: str, attempt: int) -> None:
        self._scratch.discard(job_id, attempt)

    def _resolve(self, path: str) -> Path:
        """The absolute path of a stored file; refuses anything outside the root, links
        included."""
        candidate = (self.root / check_inside(path)).resolve()
        if not candidate.is_relative_to(self.root):
            raise ValueError(f"path {path!r} escapes the storage root")
        return candidate
