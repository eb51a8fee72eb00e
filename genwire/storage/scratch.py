"""Working folders of running attempts: on local disk whatever holds the artifacts,
since a pipeline works on files and only its finished ones go to storage."""

from __future__ import annotations

import shutil
from pathlib import Path

from genwire.storage.base import safe_name


class ScratchDirs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def create(self, job_id: str, attempt: int) -> Path:
        """A fresh, empty folder for one attempt of a job."""
        path = self._path(job_id, attempt)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def discard(self, job_id: str, attempt: int) -> None:
        shutil.rmtree(self._path(job_id, attempt), ignore_errors=True)

    def _path(self, job_id: str, attempt: int) -> Path:
        return self.root / safe_name(job_id) / str(attempt)
