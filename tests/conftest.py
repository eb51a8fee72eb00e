"""Fixtures: real servers (a `genwire serve` process, or uvicorn in a thread with test
pipelines), the service on a real SQLite file, and a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from genwire.api import create_app
from genwire.api.app import GenwireApp
from genwire.api.fastpath import listening_socket
from genwire.api.serving import server_config
from genwire.bus import LocalBus
from genwire.config import Settings
from genwire.pipelines import PipelineRegistry
from genwire.service import JobService
from genwire.storage import LocalStorage
from genwire.store import SqlStore, Store
from tests.pipelines import test_registry
from tests.redis_servers import REDIS_URL, PrivateRedis, channel_url, redis_listens
from tests.waiting import wait_until

POSTGRES_URL = os.environ.get(
    "GENWIRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
#: The secret every node of a shared-database test deployment signs webhooks with.
SHARED_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"genwire-test-secret-32-bytes-ok!").decode()
#: CI sets this so that a missing PostgreSQL fails the run instead of skipping.
REQUIRE_SERVICES = os.environ.get("GENWIRE_REQUIRE_SERVICES") == "1"


@dataclass
class ServerProcess:
    """A `genwire serve` child process on an ephemeral port."""

    process: subprocess.Popen[str]
    url: str
    data_dir: Path
    log_path: Path
    #: The options it was started with (`ServerStarter.again` starts it so again).
    args: tuple[str, ...] = ()

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def start_server_process(data_dir: Path, *args: str, timeout: float = 30) -> ServerProcess:
    log_path = data_dir.parent / f"serve-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("w") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "genwire",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                *args,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        )

    def healthy() -> ServerProcess | None:
        if process.poll() is not None:
            raise RuntimeError(
                f"genwire serve exited {process.returncode}:\n{log_path.read_text()}"
            )
        match = re.search(r"serving on (http://\S+)", log_path.read_text())
        if match is None:
            return None
        url = match.group(1)
        try:
            answer = httpx.get(f"{url}/healthz", timeout=2)
        except httpx.TransportError:
            return None
        if answer.status_code != 200:
            return None
        return ServerProcess(process, url, data_dir, log_path, args)

    try:
        server = wait_until(healthy, "genwire serve to become healthy", timeout=timeout)
    except AssertionError:
        process.kill()
        raise RuntimeError(
            f"genwire serve did not become healthy:\n{log_path.read_text()}"
        ) from None
    assert server is not None  # wait_until returns only a truthy value
    return server


class ServerStarter:
    """Starts `genwire serve` processes for one test (`start(*options, data_dir=…)`)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.started: list[ServerProcess] = []

    def __call__(self, *args: str, data_dir: Path | None = None) -> ServerProcess:
        server = start_server_process(data_dir or self.data_dir, *args)
        self.started.append(server)
        return server

    def again(self, server: ServerProcess) -> ServerProcess:
        """A killed server started again as it was: its options, port and data dir (a
        restart after a crash, as a person or a supervisor would do it)."""
        port = str(urlsplit(server.url).port)
        return self(*server.args, "--port", port, data_dir=server.data_dir)

    def stop_all(self) -> None:
        for server in self.started:
            if server.process.poll() is None:
                server.process.terminate()
                try:
                    server.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.kill()


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[ServerStarter]:
    """Start `genwire serve` processes; each is killed at the end of the test."""
    starter = ServerStarter(tmp_path / "data")
    yield starter
    starter.stop_all()


class ThreadedServer:
    """uvicorn serving an app on a free port, in a thread with its own event loop."""

    def __init__(self, app: Any, peer_timeout_s: float = Settings.peer_timeout_s) -> None:
        self.sock = listening_socket("127.0.0.1", 0, peer_timeout_s)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.app = app
        # genwire's app is served as `genwire serve` serves it: through the guard.
        if isinstance(app, GenwireApp):
            config = server_config(app, log_level="warning")
        else:
            config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_until(
            lambda: self.server.started or not self.thread.is_alive(),
            "uvicorn to start",
            timeout=30,
        )
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., ThreadedServer]]:
    """A real uvicorn on a free port serving genwire with the test pipelines."""
    servers: list[ThreadedServer] = []

    def start(registry: PipelineRegistry | None = None, **overrides: Any) -> ThreadedServer:
        if overrides.get("database_url"):
            # A shared database needs one webhook secret for every node.
            overrides.setdefault("webhook_secret", SHARED_WEBHOOK_SECRET)
        settings = Settings(data_dir=tmp_path / f"data{len(servers)}", **overrides)
        app = create_app(settings, registry or test_registry())
        server = ThreadedServer(app, settings.peer_timeout_s).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def http(live_server: Callable[..., ThreadedServer]) -> Iterator[httpx.Client]:
    """A client of a default live server (2 workers, test pipelines)."""
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _postgres_available() -> bool:
    """Whether the server GENWIRE_TEST_POSTGRES_URL names listens (its host and port)."""
    address = urlsplit(POSTGRES_URL)
    try:
        with socket.create_connection((address.hostname or "127.0.0.1", address.port or 5432), 1):
            return True
    except OSError:
        return False


async def _create_database(name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def _drop_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    if not _postgres_available():
        if REQUIRE_SERVICES:
            pytest.fail("PostgreSQL is required (GENWIRE_REQUIRE_SERVICES=1) but unreachable")
        pytest.skip(f"PostgreSQL is not running at {POSTGRES_URL}")
    name = f"genwire_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_database(name))
    yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_drop_database(name))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A real SQLite file, and a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'genwire.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    instance = SqlStore(database_url)
    await instance.migrate()
    yield instance
    await instance.close()


@pytest.fixture
async def service(store: Store, tmp_path: Path) -> JobService:
    return JobService(store, LocalBus(), test_registry(), LocalStorage(tmp_path / "files"))


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis, on a channel of this test's own."""
    if not redis_listens():
        if REQUIRE_SERVICES:
            pytest.fail("Redis is required (GENWIRE_REQUIRE_SERVICES=1) but unreachable")
        pytest.skip(f"Redis is not running at {REDIS_URL}")
    return channel_url()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A `redis-server` of this test's own, which the test may stop and start."""
    try:
        server = PrivateRedis(tmp_path)
    except FileNotFoundError:
        if REQUIRE_SERVICES:
            pytest.fail("redis-server is required (GENWIRE_REQUIRE_SERVICES=1) but missing")
        pytest.skip("redis-server is not installed")
    server.start()
    yield server
    server.stop()
