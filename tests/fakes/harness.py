"""What every provider fake shares: a uvicorn thread on a free loopback port, scripted
failures of the next requests, a log of what it was asked, files it serves as the
provider's CDN would, and webhook calls sent from its own event loop."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.waiting import wait_until


@dataclass
class ScriptedFailure:
    status: int
    retry_after: float | None = None
    body: Any = None


@dataclass
class WebhookCall:
    url: str
    status_code: int | None  #: None: the call failed before an answer
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeBase:
    """State every fake keeps; a fake subclasses it and builds its Starlette app."""

    #: every request, as "METHOD /path?query", in order
    requests: list[str] = field(default_factory=list)
    #: answer the next requests with these, one each (429s, 503s…), before anything else
    failures: list[ScriptedFailure] = field(default_factory=list)
    #: file name → bytes, served at `{files_url}/{name}`; a name in `missing_files` 404s
    files: dict[str, bytes] = field(default_factory=dict)
    missing_files: set[str] = field(default_factory=set)
    #: every file 404s (gone from the CDN, as Replicate's are after an hour)
    all_files_missing: bool = False
    #: False: webhooks are "lost" (never sent), as happens in production
    send_webhooks: bool = True
    #: answers to hold back: requests whose "METHOD /path" starts with the prefix are
    #: done at once, but their answer leaves this many seconds later (a slow network)
    slow_answers: dict[str, float] = field(default_factory=dict)
    webhook_calls: list[WebhookCall] = field(default_factory=list)
    #: the root URL the fake serves at, once started (no trailing slash)
    root_url: str = ""
    loop: asyncio.AbstractEventLoop | None = None

    def fail_next(self, count: int, status: int, retry_after: float | None = None) -> None:
        """The next `count` API requests get `status` (with `Retry-After` when given)."""
        self.failures.extend(ScriptedFailure(status, retry_after) for _ in range(count))

    def take_failure(self) -> Response | None:
        if not self.failures:
            return None
        failure = self.failures.pop(0)
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = f"{failure.retry_after:g}"
        return self.failure_response(failure, headers)

    def failure_response(self, failure: ScriptedFailure, headers: dict[str, str]) -> Response:
        """A scripted failure's answer; a fake overrides it for its provider's shapes."""
        return JSONResponse(
            failure.body or {"detail": f"scripted failure {failure.status}"},
            status_code=failure.status,
            headers=headers,
        )

    def count(self, prefix: str) -> int:
        """How many requests started with `prefix` (e.g. "POST /v1/predictions")."""
        return sum(1 for line in self.requests if line.startswith(prefix))

    @property
    def files_url(self) -> str:
        return f"{self.root_url}/files"

    async def serve_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.all_files_missing or name in self.missing_files or name not in self.files:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return Response(self.files[name], media_type=_media_type(name))

    def post_webhook(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Send a webhook from the fake's loop without blocking the caller."""
        if not self.send_webhooks:
            return
        assert self.loop is not None
        self.loop.call_soon_threadsafe(
            lambda: self.loop.create_task(self._deliver(url, body, headers))  # type: ignore[union-attr]
        )

    async def _deliver(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        status: int | None = None
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(
                    url, content=body, headers={"content-type": "application/json", **headers}
                )
                status = answer.status_code
        except httpx.HTTPError:
            status = None
        self.webhook_calls.append(WebhookCall(url, status, body, headers))

    def schedule(self, delay_s: float, action: Callable[[], Awaitable[None] | None]) -> None:
        """Run `action` on the fake's loop after `delay_s` (thread-safe)."""
        assert self.loop is not None

        async def later() -> None:
            await asyncio.sleep(delay_s)
            result = action()
            if result is not None:
                await result

        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(later()))  # type: ignore[union-attr]


def _media_type(name: str) -> str:
    for suffix, media_type in ((".mp4", "video/mp4"), (".png", "image/png"), (".wav", "audio/wav")):
        if name.endswith(suffix):
            return media_type
    return "application/octet-stream"


class _Capture:
    """ASGI middleware: note each request in `fake.requests` before the app sees it."""

    def __init__(self, app: Any, fake: FakeBase) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").decode()
            self.fake.requests.append(
                f"{scope['method']} {scope['path']}" + (f"?{query}" if query else "")
            )
            if self.fake.loop is None:
                self.fake.loop = asyncio.get_running_loop()
            line = f"{scope['method']} {scope['path']}"
            delay = next((s for p, s in self.fake.slow_answers.items() if line.startswith(p)), 0)
            if delay:
                send = _delayed(send, delay)
        await self.app(scope, receive, send)


def _delayed(send: Any, delay_s: float) -> Any:
    async def later(message: Any) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(delay_s)
        await send(message)

    return later


@contextmanager
def serving(fake: FakeBase, app: Any) -> Iterator[str]:
    """Serve `app` (the fake's Starlette app) on a free loopback port; yields its root URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    fake.root_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(_Capture(app, fake), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), "the fake to start", timeout=30)
    if not server.started:
        raise RuntimeError("the fake provider did not start")
    # Learn the server's loop now, so webhooks and timers can be scheduled on it.
    httpx.get(f"{fake.root_url}/files/-", timeout=10)
    try:
        yield fake.root_url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@cache
def sample_mp4() -> bytes:
    """A real one-second H.264 MP4 (64×64, 10 fps), made once per test session."""
    import imageio_ffmpeg

    target = Path(tempfile.mkdtemp(prefix="genwire-fake-")) / "sample.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x64:rate=10:duration=1",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(target),
        ],
        check=True,
        timeout=60,
    )
    data = target.read_bytes()
    target.unlink()
    return data
