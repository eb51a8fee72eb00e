"""The checks of how a job's events reach the client: a job followed over SSE to its
end, whether a proxy buffers that stream, the same job by long-poll, and the
keepalives on an idle stream."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx

from genwire.client import TERMINAL_EVENT_TYPES, GenwireError
from genwire.client.doctor.session import CONNECT_TIMEOUT_S, Check, Doctor
from genwire.client.doctor.sse import Frame, appended_at, read_stream

#: The end-to-end job: 20 steps 50 ms apart, then a small file.
E2E_INPUT: dict[str, Any] = {"steps": 20, "step_ms": 50, "output_bytes": 4096}
E2E_TIMEOUT_S = 30.0
LONG_POLL_WAIT_S = 1.0
#: A step gap that reaches the client in less than this share of its append gap
#: arrived bunched with the previous one.
BUNCHED_SHARE = 0.25

BUFFERING_FIX = (
    "Disable response buffering for the event streams in the proxy in front of the "
    "server (nginx: `proxy_buffering off;`, or let it honour `X-Accel-Buffering: no`; "
    "other proxies and CDNs: stream text/event-stream unbuffered), or use long-poll."
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
        f"{doctor.client.job_path(job.id)}/events",
        doctor.submitted_at + E2E_TIMEOUT_S,
        lambda frame: (frame.event or {}).get("type") in TERMINAL_EVENT_TYPES,
    )
    doctor.stream = seen
    path = f"GET {doctor.client.job_path(job.id)}/events"
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
        and (ts := appended_at(frame.event)) is not None
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
    path = f"{doctor.client.job_path(doctor.job_id)}/poll"
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
            f"{doctor.client.job_path(job.id)}/events",
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
