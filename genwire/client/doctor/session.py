"""What the checks share: the `Check` each answers, and the `Doctor` they run on."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx

from genwire.client import Client, GenwireError, Job
from genwire.client.doctor.sse import StreamRead

Verdict = Literal["ok", "warn", "fail"]

CONNECT_TIMEOUT_S = 5.0


@dataclass
class Check:
    """One check's outcome: `fix` says what to change when the verdict is not ok."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Doctor:
    """The state the checks share: the server, its clients, the job they follow.

    `client` makes the calls a user's code would; `http`, a bare `httpx` client with
    the same server and key, makes the requests whose raw answers a check inspects."""

    server: str
    keepalive_wait_s: float = 25.0
    api_key: str | None = None
    http: httpx.Client = field(init=False)
    client: Client = field(init=False)
    reachable: bool = True
    job_id: str | None = None
    submitted_at: float = 0.0
    stream: StreamRead | None = None

    def __post_init__(self) -> None:
        self.client = Client(self.server, self.api_key, timeout=10.0, create_retry_delays=(0.5,))
        self.server = self.client.server
        self.http = httpx.Client(
            base_url=self.server,
            headers=self.client.auth_headers,
            timeout=httpx.Timeout(10.0, connect=CONNECT_TIMEOUT_S),
        )

    def close(self) -> None:
        self.http.close()
        self.client.close()

    def submit(self, input: dict[str, Any]) -> Job:
        """Create a `demo.synthetic` job (a seam: tests send it past a proxy that
        forwards no request bodies)."""
        return self.client.submit("demo.synthetic", input)

    def cancel(self, job_id: str) -> None:
        with contextlib.suppress(GenwireError):
            self.client.cancel(job_id)
