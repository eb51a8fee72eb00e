"""`genwire doctor`: checks that results reach clients live through whatever sits
between them and the server (SPEC §3, §4, §6).

Each check is a small function answering a `Check` with a verdict (`ok`, `warn`,
`fail`), what was seen, and, when not ok, what to fix. `run_checks` runs them in
order against one server: health; a `demo.synthetic` job end to end over SSE (and
the time to its first event); whether a proxy buffers the stream; long-poll; the
artifact's download; the keepalive spacing on an idle stream. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
import orjson

from genwire.client import Client, GenwireError
from genwire.client._protocol import auth_headers, segment, server_url
from genwire.client._transports import TERMINAL_EVENT_TYPES
from genwire.client.types import Artifact, Job, parse_time

Verdict = Literal["ok", "warn", "fail"]

#: The end-to-end job: 20 steps 50 ms apart, then a small file.
E2E_INPUT: dict[str, Any] = {"steps": 20, "step_ms": 50, "output_bytes": 4096}
E2E_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
LONG_POLL_WAIT_S = 1.0
RANGE_BYTES = 100
#: A step gap that reaches the client in less than this share of its append gap
#: arrived bunched with the previous one.
BUNCHED_SHARE = 0.25

BUFFERING_FIX = (
    "Disable response buffering for the event streams in the proxy in front of the "
    "server (nginx: `proxy_buffering off;`, or let it honour `X-Accel-Buffering: no`; "
    "other proxies and CDNs: stream text/event-stream unbuffered), or use long-poll."
)


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
class Frame:
    """One SSE frame as it reached the client (`at`: monotonic seconds)."""

    at: float
    event: dict[str, Any] | None = None
    comment: str | None = None


@dataclass
class StreamRead:
    """What reading one SSE stream saw."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    opened_at: float = 0.0
    frames: list[Frame] = field(default_factory=list)
    closed_at: float | None = None  # when the server ended it
    error: str | None = None
    timed_out: bool = False  # the deadline passed while waiting for data

    @property
    def events(self) -> list[Frame]:
        return [frame for frame in self.frames if frame.event is not None]

    def terminal(self) -> dict[str, Any] | None:
        for frame in self.events:
            assert frame.event is not None
            if frame.event.get("type") in TERMINAL_EVENT_TYPES:
                return frame.event
        return None


@dataclass
class Doctor:
    """The state the checks share: the server, its clients, the job they follow."""

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
        self.server = server_url(self.server)
        self.http = httpx.Client(
            base_url=self.server,
            headers=auth_headers(self.api_key),
            timeout=httpx.Timeout(10.0, connect=CONNECT_TIMEOUT_S),
        )
        self.client = Client(self.server, self.api_key, timeout=10.0, create_retry_delays=(0.5,))

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

    def job_path(self, job_id: str) -> str:
        return f"/api/jobs/{segment(job_id)}"


# -- reading a stream --------------------------------------------------------------------
def parse_frame(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """An SSE frame's event (its `data:` JSON) or its comment text."""
    data: list[str] = []
    comment = None
    for line in raw.decode("utf-8", "replace").split("\n"):
        if line.startswith(":"):
            comment = line[1:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        try:
            event = orjson.loads("\n".join(data))
        except orjson.JSONDecodeError:
            return None, None
        return (event if isinstance(event, dict) else None), None
    return None, comment


def read_stream(
    http: httpx.Client,
    path: str,
    deadline: float,
    until: Callable[[Frame], bool],
) -> StreamRead:
    """Read an SSE stream's raw bytes frame by frame, noting when each arrived, until
    `until(frame)`, the server's close, or `deadline` (monotonic) — whichever first."""
    seen = StreamRead()
    remaining = max(0.1, deadline - time.monotonic())
    timeout = httpx.Timeout(CONNECT_TIMEOUT_S, read=remaining)
    try:
        with http.stream("GET", path, timeout=timeout) as response:
            seen.status = response.status_code
            seen.headers = {key.lower(): value for key, value in response.headers.items()}
            seen.opened_at = time.monotonic()
            if response.status_code != 200:
                response.read()
                seen.closed_at = time.monotonic()
                return seen
            for frame in _frames(response.iter_raw()):
                seen.frames.append(frame)
                if until(frame) or time.monotonic() >= deadline:
                    return seen
            seen.closed_at = time.monotonic()
    except httpx.TimeoutException:
        seen.error = "no data before the deadline"
        seen.timed_out = True
    except httpx.HTTPError as error:
        seen.error = f"{type(error).__name__}: {error}"
    return seen


def _frames(chunks: Iterator[bytes]) -> Iterator[Frame]:
    pending = b""
    for chunk in chunks:
        pending += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in pending:
            raw, pending = pending.split(b"\n\n", 1)
            event, comment = parse_frame(raw)
            if event is not None or comment is not None:
                yield Frame(time.monotonic(), event, comment)


def _ts(event: dict[str, Any]) -> float | None:
    try:
        moment = parse_time(str(event["ts"]))
    except (KeyError, ValueError):
        return None
    return moment.timestamp() if moment else None


# -- the checks --------------------------------------------------------------------------
def check_health(doctor: Doctor) -> Check:
    try:
        response = doctor.http.get("/healthz", timeout=CONNECT_TIMEOUT_S)
    except httpx.HTTPError as error:
        doctor.reachable = False
        return Check(
            "health",
            "fail",
            f"cannot reach {doctor.server}/healthz: {type(error).__name__}: {error}",
            "Start the server (`genwire serve`) or pass its URL (argument, --server or "
            "GENWIRE_URL); check firewalls and proxies in between.",
        )
    try:
        body = response.json()
    except ValueError:
        body = {}
    status = body.get("status") if isinstance(body, dict) else None
    if response.status_code == 200 and status == "ok":
        version = body.get("version")
        return Check("health", "ok", f"200 status ok{f' (v{version})' if version else ''}")
    return Check(
        "health",
        "fail",
        f"/healthz answered {response.status_code} with status {status!r}",
        "The server is up but unhealthy (usually its database): see its log.",
    )


def check_end_to_end(doctor: Doctor) -> Check:
    """Submit a `demo.synthetic` job and follow its SSE stream to its terminal event."""
    name = "job over SSE"
    try:
        job = doctor.submit(E2E_INPUT)
    except GenwireError as error:
        return Check(
            name,
            "fail",
            f"submitting a demo.synthetic job failed: {error}",
            "Check that the server runs the built-in pipelines and accepts POST /api/jobs.",
        )
    doctor.job_id = job.id
    doctor.submitted_at = time.monotonic()
    seen = read_stream(
        doctor.http,
        f"{doctor.job_path(job.id)}/events",
        doctor.submitted_at + E2E_TIMEOUT_S,
        lambda frame: (frame.event or {}).get("type") in TERMINAL_EVENT_TYPES,
    )
    doctor.stream = seen
    path = f"GET {doctor.job_path(job.id)}/events"
    if seen.status and seen.status != 200:
        return Check(
            name,
            "fail",
            f"job {job.id} submitted, but {path} answered {seen.status}"
            f"{' (from a proxy or gateway)' if seen.status in (502, 503, 504) else ''}",
            "Let the proxy pass SSE requests (/api/jobs/*/events, /api/events) through to "
            "the server; until then clients fall back to long-poll.",
        )
    events = seen.events
    if not events:
        return Check(
            name,
            "fail",
            f"job {job.id} submitted, but no event arrived on its stream "
            f"({seen.error or 'closed empty'})",
            "Check that the proxy forwards the stream; see the server's log.",
        )
    first = events[0].at - doctor.submitted_at
    terminal = seen.terminal()
    if terminal is None:
        return Check(
            name,
            "fail",
            f"{len(events)} events arrived, but no terminal event within "
            f"{E2E_TIMEOUT_S:.0f} s ({seen.error or 'stream closed'})",
            "Is a worker running (`genwire serve` runs them; else `genwire worker`)? "
            "A proxy may also cut long streams: raise its read timeout.",
        )
    if terminal.get("type") != "job-completed":
        return Check(
            name,
            "fail",
            f"the job ended with {terminal.get('type')}: {terminal.get('error') or ''}",
            "See the server's log for why demo.synthetic did not complete.",
        )
    detail = f"{len(events)} events, job-completed; first event {first * 1000:.0f} ms after submit"
    if first > 5.0:
        return Check(
            name,
            "warn",
            detail,
            "The first event came late: the stream is slow to open (proxy, DNS, TLS?).",
        )
    return Check(name, "ok", detail)


def check_buffering(doctor: Doctor) -> Check:
    """Compare the step events' append times (`ts`) with their arrival times."""
    name = "no buffering proxy"
    seen = doctor.stream
    if seen is None or seen.status != 200 or not seen.events:
        return Check(
            name,
            "fail",
            "not measured: the job's SSE stream did not work (see above)",
            "Fix the SSE stream first.",
        )
    problems = _header_problems(seen.headers)
    steps = [
        (frame.at, ts)
        for frame in seen.events
        if frame.event is not None
        and frame.event.get("type") == "step-progress"
        and (ts := _ts(frame.event)) is not None
    ]
    if len(steps) < 3:
        return Check(name, "warn", f"too few step events to judge ({len(steps)})", "")
    pairs = [
        (later[0] - earlier[0], later[1] - earlier[1])
        for earlier, later in itertools.pairwise(steps)
        if later[1] - earlier[1] >= 0.02
    ]
    bunched = sum(1 for arrived, appended in pairs if arrived < BUNCHED_SHARE * appended)
    appended_span = steps[-1][1] - steps[0][1]
    arrived_span = steps[-1][0] - steps[0][0]
    first_at_close = (
        seen.closed_at is not None
        and seen.closed_at - seen.events[0].at < 0.05
        and appended_span >= 0.3
    )
    terminal_at = seen.events[-1].at
    if first_at_close or (pairs and bunched >= len(pairs) / 2):
        how = (
            "every event arrived only when the stream closed"
            if first_at_close
            else f"{bunched} of {len(pairs)} step gaps arrived bunched"
        )
        return Check(
            name,
            "fail",
            f"a proxy is buffering the stream: {how} — events appended over "
            f"{appended_span:.2f} s arrived within {arrived_span:.2f} s "
            f"(terminal {max(0.0, terminal_at - doctor.submitted_at):.2f} s after submit)",
            BUFFERING_FIX,
        )
    detail = (
        f"events arrive as sent: {len(pairs) - bunched} of {len(pairs)} step gaps kept; "
        f"appended over {appended_span:.2f} s, arrived over {arrived_span:.2f} s"
    )
    if problems:
        return Check(name, "warn", f"{detail}; but {'; '.join(problems)}", BUFFERING_FIX)
    return Check(name, "ok", detail)


def _header_problems(headers: dict[str, str]) -> list[str]:
    problems = []
    content_type = headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        problems.append(f"Content-Type is {content_type!r}, not text/event-stream")
    if "no-cache" not in headers.get("cache-control", ""):
        problems.append(f"Cache-Control is {headers.get('cache-control')!r}, not no-cache")
    return problems


def check_long_poll(doctor: Doctor) -> Check:
    """Follow the job by long-poll from the start to `done`, then poll once past its
    end; each answer must come within the wait (plus slack)."""
    name = "long-poll"
    if doctor.job_id is None:
        return Check(name, "fail", "not measured: no job was submitted", "")
    path = f"{doctor.job_path(doctor.job_id)}/poll"
    deadline = time.monotonic() + E2E_TIMEOUT_S
    after: str | None = None
    count = 0
    slowest = 0.0
    while True:
        params = {"wait": f"{LONG_POLL_WAIT_S:g}", **({"after": after} if after else {})}
        started = time.monotonic()
        try:
            response = doctor.http.get(
                path, params=params, timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=10.0)
            )
        except httpx.HTTPError as error:
            return Check(
                name,
                "fail",
                f"GET {path}: {type(error).__name__}: {error}",
                "Let the proxy pass /api/jobs/*/poll with a read timeout above 60 s.",
            )
        elapsed = time.monotonic() - started
        slowest = max(slowest, elapsed)
        if response.status_code != 200:
            return Check(
                name,
                "fail",
                f"GET {path} answered {response.status_code}",
                "Let the proxy pass /api/jobs/*/poll through to the server.",
            )
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            return Check(name, "fail", f"unexpected answer: {response.text[:120]}", "")
        count += len(body["events"])
        after = body.get("last_event_id") or after
        if body.get("done"):
            break
        if time.monotonic() >= deadline:
            return Check(name, "fail", f"not done after {E2E_TIMEOUT_S:.0f} s ({count} events)", "")
    detail = f"{count} events, done; slowest answer {slowest:.2f} s (wait={LONG_POLL_WAIT_S:g})"
    if slowest > LONG_POLL_WAIT_S + 3.0:
        return Check(
            name,
            "warn",
            detail,
            "Long-poll answers came late: something in between holds them back.",
        )
    return Check(name, "ok", detail)


def check_download(doctor: Doctor) -> Check:
    name = "file download"
    if doctor.job_id is None:
        return Check(name, "fail", "not measured: no job was submitted", "")
    try:
        job = doctor.client.get(doctor.job_id)
    except GenwireError as error:
        return Check(name, "fail", f"GET job: {error}", "")
    if not job.artifacts:
        return Check(name, "fail", f"the job ({job.status}) has no artifact to download", "")
    artifact: Artifact = job.artifacts[0]
    fix = "Let the proxy pass /api/files/* with its Range and Content-Range headers intact."
    try:
        # download() checks the size and sha256 itself (DownloadFailed otherwise).
        with tempfile.TemporaryDirectory(prefix="genwire-doctor-") as folder:
            path = doctor.client.download(artifact, folder)
            with path.open("rb") as file:
                want = file.read(RANGE_BYTES)
    except GenwireError as error:
        return Check(name, "fail", f"downloading {artifact.url}: {error}", fix)
    try:
        ranged = doctor.http.get(
            doctor.client.absolute(artifact.url),
            headers={"Range": f"bytes=0-{RANGE_BYTES - 1}"},
        )
    except httpx.HTTPError as error:
        return Check(name, "fail", f"Range request: {type(error).__name__}: {error}", fix)
    detail = f"{artifact.size_bytes} bytes, sha256 matches"
    if ranged.status_code != 206 or ranged.content != want:
        return Check(
            name,
            "warn",
            f"{detail}; but a Range request answered {ranged.status_code} with "
            f"{len(ranged.content)} bytes (206 and {len(want)} expected): "
            "video seeking and resumed downloads will not work",
            fix,
        )
    return Check(name, "ok", f"{detail}; Range answers 206")


def check_keepalive(doctor: Doctor) -> Check:
    """Open a stream on an idle job and time the first `: keepalive` comment after
    its last event; proxies drop streams that stay silent too long."""
    name = "keepalive"
    wait = doctor.keepalive_wait_s
    try:
        job = doctor.submit({"steps": 1, "step_ms": (wait + 10.0) * 1000.0})
    except GenwireError as error:
        return Check(name, "fail", f"submitting the idle job failed: {error}", "")
    last_event = [time.monotonic()]

    def until(frame: Frame) -> bool:
        if frame.event is not None:
            last_event[0] = frame.at
            return False
        return frame.comment is not None and frame.comment.startswith("keepalive")

    try:
        seen = read_stream(
            doctor.http,
            f"{doctor.job_path(job.id)}/events",
            time.monotonic() + wait,
            until,
        )
    finally:
        doctor.cancel(job.id)
    if seen.status != 200 and not seen.timed_out:
        return Check(
            name,
            "fail",
            f"the idle job's stream answered {seen.status or seen.error}",
            "Let the proxy pass SSE requests through to the server.",
        )
    keepalives = [frame for frame in seen.frames if frame.comment is not None]
    if not keepalives:
        return Check(
            name,
            "warn",
            f"no keepalive reached the client within {wait:g} s of an idle stream"
            f"{' (and no event either: the stream is held back)' if not seen.events else ''}",
            "Proxies drop streams silent for long (often 60 s): make sure the server's "
            "--keepalive is well below the proxy's read timeout and that the proxy does "
            "not buffer; or raise --keepalive-wait if the server's keepalive is longer.",
        )
    spacing = keepalives[0].at - last_event[0]
    return Check(name, "ok", f"a keepalive came {spacing:.2f} s after the stream went idle")


#: Each check, in order, with what it does, for a spinner to show while it runs
#: (`{wait}`: the keepalive wait).
def check_providers(doctor: Doctor) -> Check:
    """Each configured provider's key, tried by the server with one cheap call."""
    try:
        answer = doctor.http.get("/api/providers", params={"check": "1"}, timeout=60)
        items = answer.json()["items"] if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        items = None
    if not isinstance(items, list):
        return Check("providers", "warn", "the server does not list its providers (older genwire?)")
    checks = {item["name"]: item.get("check", {}) for item in items if item.get("configured")}
    if not checks:
        return Check("providers", "ok", "none configured (the demo pipelines need none)")
    said = "; ".join(
        f"{name}: {'works' if check.get('ok') else 'FAILS'} ({check.get('detail', 'not checked')})"
        for name, check in checks.items()
    )
    failing = [name for name, check in checks.items() if not check.get("ok")]
    if failing:
        return Check(
            "providers",
            "fail",
            said,
            f"Check the key of {', '.join(failing)} on the server (REPLICATE_API_TOKEN, "
            "FAL_KEY, RUNWARE_API_KEY) and that the server reaches the provider.",
        )
    return Check("providers", "ok", said)


CHECKS: tuple[tuple[str, Callable[[Doctor], Check]], ...] = (
    ("health: GET /healthz", check_health),
    (
        f"job over SSE: following a demo.synthetic job to its end (up to {E2E_TIMEOUT_S:g} s)",
        check_end_to_end,
    ),
    ("no buffering proxy: comparing when events were appended and arrived", check_buffering),
    ("long-poll: following the same job by long-poll", check_long_poll),
    ("file download: downloading the job's file, then a Range of it", check_download),
    ("keepalive: waiting for a keepalive on an idle stream (up to {wait:g} s)", check_keepalive),
    ("providers: each configured provider's key, tried by the server", check_providers),
)


def run_checks(
    server: str | None,
    keepalive_wait_s: float = 25.0,
    api_key: str | None = None,
    on_check: Callable[[Check], None] | None = None,
    running: Callable[[str], contextlib.AbstractContextManager[object]] | None = None,
) -> list[Check]:
    """Every check, in order; after an unreachable server, only the health check.

    `running(activity)` wraps each check (a spinner that says what it does);
    `on_check(result)` hears each result as it comes."""
    doctor = Doctor(server or "", keepalive_wait_s, api_key)
    results: list[Check] = []
    try:
        for activity, check in CHECKS:
            shown = running(activity.format(wait=keepalive_wait_s)) if running else None
            with shown or contextlib.nullcontext():
                result = check(doctor)
            results.append(result)
            if on_check is not None:
                on_check(result)
            if not doctor.reachable:
                break
    finally:
        doctor.close()
    return results
