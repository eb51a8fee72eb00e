"""File locks that say which genwire processes are alive on an embedded database.

`flock` locks die with their process (SIGKILL included), so holding one proves a
process alive and failing to get one proves another alive; no stale lock survives.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


class DataDirInUse(RuntimeError):
    pass


class ProcessLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def try_acquire(self, *, shared: bool = False) -> bool:
        """Take the lock; False when another process holds it.

        An exclusive lock never waits. A shared one waits out an exclusive holder,
        which only ever holds it while it recovers jobs (see `lock_out_workers`).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        if not shared:
            handle.seek(0)
            handle.truncate()
            handle.write(f"genwire pid {os.getpid()}\n")
            handle.flush()
        self._handle = handle
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def server_lock(data_dir: Path) -> ProcessLock:
    """Held by the one `genwire serve` of a data dir."""
    return ProcessLock(data_dir / "genwire.lock")


def workers_lock(database_path: Path) -> ProcessLock:
    """Shared by every `genwire worker` of an SQLite database."""
    return ProcessLock(database_path.with_name(database_path.name + ".workers.lock"))


def acquire_server_lock(data_dir: Path) -> ProcessLock:
    lock = server_lock(data_dir)
    if not lock.try_acquire():
        raise DataDirInUse(
            f"the data dir {data_dir} is in use by {lock.holder()}; "
            "stop it or choose another --data-dir"
        )
    return lock


def lock_out_workers(database_path: Path) -> ProcessLock | None:
    """The workers lock of an SQLite database, held exclusively: proof that no
    `genwire worker` process runs jobs from it, and none starts until released.
    None when one runs."""
    probe = workers_lock(database_path)
    return probe if probe.try_acquire() else None


def worker_processes_alive(database_path: Path) -> bool:
    """Whether some `genwire worker` process runs jobs from this SQLite database now."""
    probe = lock_out_workers(database_path)
    if probe is None:
        return True
    probe.release()
    return False
