"""Redis for the bus tests: the machine's own server (CI runs one), each test on a
channel of its own, and a private `redis-server` a test may stop and start again."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from tests.waiting import wait_until

REDIS_URL = os.environ.get("GENWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_listens(url: str = REDIS_URL) -> bool:
    address = urlsplit(url)
    try:
        with socket.create_connection((address.hostname or "127.0.0.1", address.port or 6379), 1):
            return True
    except OSError:
        return False


def channel_url(url: str = REDIS_URL) -> str:
    """`url` on a channel no other test uses (tests share one Redis)."""
    return f"{url}?channel=genwire-test-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A `redis-server` of this test alone, on a fixed port, that can be stopped (an
    outage) and started again on the same port (the outage ends)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        options = {"port": str(self.port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
        arguments = [item for name, value in options.items() for item in (f"--{name}", value)]
        with (self.folder / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, *arguments, "--dir", str(self.folder)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: redis_listens(self.url), "the private redis-server to listen")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
