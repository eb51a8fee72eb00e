"""SSE fan-out, genwire against Nchan: the same C epoll load client, one channel (one
job), N subscribers, side by side with ratios.

    python -m bench.fanout_vs_nchan                 # 1000 and 5000 subscribers; 10 000 idle
    python -m bench.fanout_vs_nchan --subscribers 1000 --idle 0 --only genwire
    python -m bench.fanout_vs_nchan --scenarios idle --idle 2000 --hold 6

Each measurement gets a fresh server: one `genwire serve` process (SQLite, one
in-process worker), or nginx with one Nchan worker (bench/nchan/nginx.conf.template).
The load client is bench/nchan/sseload.c, compiled with gcc on first use. Scenarios:

- `rate`: N subscribers, events at --rate a second: p50/p99 from append (the event's
  `ts`) to receipt, deliveries/s, server CPU per delivery.
- `saturation`: N subscribers, events as fast as the source appends (genwire:
  `step_ms` 0) or publishes (Nchan: on two connections, each POST once nginx
  answered the last).
- `idle`: --idle connections and nothing to send: server RSS per connection, and
  whether keepalives (every --keepalive s) came on time.
- `transports` (genwire only): the tenant stream (`/api/events`) and long-poll
  (`/poll?after=&wait=30`) against the job stream, at --rate, for each of
  --transport-subscribers.

The measured window (--duration s) starts once events reach the subscribers (at
least a second after the first). Server CPU is utime + stime of the server process
(nginx: its worker) over it, from /proc; deliveries are counted by the client.
docs/PERFORMANCE.md has the method and the latest figures.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import queue
import re
import resource
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench._report import describe_machine, print_table
from bench._server import rss_kib, start_server

FOLDER = Path(__file__).resolve().parent / "nchan"
CLIENT_SOURCE = FOLDER / "sseload.c"
NGINX_TEMPLATE = FOLDER / "nginx.conf.template"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
NCHAN_PACKAGES = ("nginx-light", "libnginx-mod-nchan")
WARMUP_S = 1.0  #: from the first event to the measured window
WARMUP_MAX_S = 30.0  #: the longest wait for the first deliveries
WARMUP_STEP_S = 0.5  #: how often the warm-up looks whether events flow
STEPS = 1_000_000  #: the measured job outlasts every run; its server is stopped instead
SATURATION_PUBLISHERS = 2  #: POST connections to Nchan at saturation
HOLD_MS = 600_000  #: the step of a job that only waits
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
SCENARIOS = ("rate", "saturation", "idle", "transports")
SERVERS = ("nchan", "genwire")


# ---- the load client ---------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One report of the load client: what it saw since its previous report."""

    seconds: float
    failed: int  #: connections that never were established
    deliveries: int
    events_per_connection: tuple[int, int]  #: min, max
    keepalives_per_connection: tuple[int, int]  #: min, max
    silence_max_ms: float  #: the longest time a connection heard nothing
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu_s: float

    @classmethod
    def parse(cls, report: dict[str, Any]) -> Window:
        latency = report["latency_ms"]
        return cls(
            seconds=report["window_s"],
            failed=report["failed"],
            deliveries=report["deliveries"],
            events_per_connection=(report["events_per_conn_min"], report["events_per_conn_max"]),
            keepalives_per_connection=(
                report["keepalives_per_conn_min"],
                report["keepalives_per_conn_max"],
            ),
            silence_max_ms=report["silence_max_ms"],
            p50_ms=latency["p50"],
            p99_ms=latency["p99"],
            errors=report["errors"] + report["bad_status"],
            client_cpu_s=report["client_cpu_s"],
        )


class LoadClient:
    """sseload as a child process: a `ready` report, then one window per mark()."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self._reports: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._reports.put(json.loads(line))
        self._reports.put(None)

    def report(self, kind: str, timeout: float) -> Window:
        try:
            found = self._reports.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(
                f"the load client sent no {kind!r} report in {timeout:g} s"
            ) from None
        if found is None:
            raise RuntimeError(f"the load client exited ({self._process.wait()})")
        if found["kind"] != kind:
            raise RuntimeError(f"the load client sent {found['kind']!r}, not {kind!r}")
        return Window.parse(found)

    def mark(self) -> Window:
        """Ends the current window (and starts the next): what it saw in it."""
        self._process.send_signal(signal.SIGUSR1)
        return self.report("mark", timeout=30)


def build_client() -> Path:
    """Compiles sseload.c once per version of its source, into a cache folder."""
    digest = hashlib.sha256(CLIENT_SOURCE.read_bytes()).hexdigest()[:12]
    binary = Path(tempfile.gettempdir()) / "genwire-bench" / f"sseload-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        command = ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(partial), str(CLIENT_SOURCE)]
        subprocess.run(command, check=True)
        partial.rename(binary)
    return binary


@contextlib.contextmanager
def load_client(binary: Path, port: int, source: Source, connections: int) -> Iterator[LoadClient]:
    command = [str(binary), "--port", str(port), "--path", source.path]
    command += ["--connections", str(connections), "--mode", source.mode]
    if source.after:
        command += ["--after", source.after]
    # Besides ending with this process (PR_SET_PDEATHSIG), it gives up after 15 min.
    command += ["--duration", "900"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        yield LoadClient(process)
    finally:
        stop_process(process)


# ---- servers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    port: int
    pid: int  #: the process whose CPU and memory are the server's


@dataclass(frozen=True)
class Source:
    """Where the subscribers connect, and what starts the measured events."""

    path: str
    start: Callable[[], None]
    mode: str = "sse"  #: or "poll" (genwire's long-poll)
    after: str | None = None  #: the cursor a long-poll starts from


def stop_process(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def surface_errors(server: str, log: Path, pattern: str) -> None:
    """A server's errors go to stderr (the first in full, with the count): a figure
    from a run that had them is suspect."""
    if not log.exists():
        return
    lines = log.read_text().splitlines()
    found = [index for index, line in enumerate(lines) if re.search(pattern, line)]
    if not found:
        return
    # The first error, to where its traceback names the exception.
    end = found[0] + 1
    while end < len(lines) and (lines[end].startswith(" ") or lines[end].startswith("Traceback")):
        end += 1
    print(f"{server}: its log has errors ({len(found)} lines); the first ends:", file=sys.stderr)
    for line in [lines[found[0]], *lines[max(found[0] + 1, end - 8) : end + 1]]:
        print(f"  {line}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ensure_nchan() -> None:
    """Installs nginx-light and Debian's Nchan module with apt-get when missing."""
    missing = [
        name
        for name in NCHAN_PACKAGES
        if subprocess.run(["dpkg", "-s", name], capture_output=True).returncode != 0
    ]
    if not missing:
        return
    print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
    install = ("install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *missing)
    # A fresh machine's package lists may be missing or stale: update once, then retry.
    if _apt_get(*install) and (_apt_get("update", "-q") or _apt_get(*install)):
        sys.exit(f"could not install {' '.join(missing)} with apt-get")


def _apt_get(*arguments: str) -> int:
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", *arguments]
    return subprocess.run(command, stdout=subprocess.DEVNULL, env=environment).returncode


@contextlib.contextmanager
def nchan_server(keepalive: int, connections: int) -> Iterator[Running]:
    """nginx with one Nchan worker on a free port, its files in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="nchan-bench-") as folder:
        prefix = Path(folder)
        port = free_port()
        config = string.Template(NGINX_TEMPLATE.read_text()).substitute(
            module=NCHAN_MODULE,
            prefix=prefix,
            port=port,
            keepalive=keepalive,
            max_files=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
            max_connections=connections + 1024,
        )
        (prefix / "nginx.conf").write_text(config)
        log = prefix / "error.log"
        master = subprocess.Popen(
            ["nginx", "-c", str(prefix / "nginx.conf"), "-p", str(prefix), "-e", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            yield Running(port, _nginx_worker(master, port, log))
        finally:
            stop_process(master)
            surface_errors("nchan", log, r"\[(emerg|alert|crit|error)\]")


def _nginx_worker(master: subprocess.Popen[bytes], port: int, log: Path) -> int:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and master.poll() is None:
        workers = children.read_text().split()
        if workers and _accepts(port):
            return int(workers[0])
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not start: {log.read_text() if log.exists() else ''}")


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


@contextlib.contextmanager
def genwire_server(keepalive: int, connections: int) -> Iterator[Running]:
    """`genwire serve` (SQLite, one worker slot) on a free port, in a temporary folder."""
    del connections  # one process takes what the file limit allows
    with tempfile.TemporaryDirectory(prefix="genwire-bench-") as folder:
        options = ["--workers", "1", "--shutdown-grace", "0"]
        process, url = start_server(Path(folder), keepalive, options)
        try:
            yield Running(int(url.rsplit(":", 1)[1]), process.pid)
        finally:
            stop_process(process)
            surface_errors("genwire", Path(folder) / "serve.log", r" (ERROR|CRITICAL) |^Traceback")


# ---- event sources -----------------------------------------------------------------


def step_progress(seq: int) -> bytes:
    """An event shaped like genwire's `step-progress` (SPEC §4), stamped now."""
    progress = round(100.0 * seq / STEPS, 2)
    event = {
        "id": f"{seq:016d}",
        "type": "step-progress",
        "job_id": "job_01m7ynh26me831v91emv0nhw69",
        "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "phase": "work",
        "phase_progress": progress,
        "message": f"step {seq}/{STEPS}",
        "eta_s": 0.0,
        "progress": round(progress * 0.9, 2),
    }
    return json.dumps(event, separators=(",", ":")).encode()


class NchanPublisher:
    """POSTs events to /pub from threads, each on its own keep-alive connection:
    `rate` a second on a steady clock, or with rate 0 each thread its next as soon
    as nginx answered its last."""

    def __init__(self, port: int, rate: float, connections: int = 1) -> None:
        self._port = port
        self._rate = rate / connections
        self._stopping = threading.Event()
        self._failures: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(connections)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)
        if self._failures:
            raise RuntimeError("the Nchan publisher failed") from self._failures[0]

    def _run(self) -> None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
            started = time.monotonic()
            seq = 0
            while not self._stopping.is_set():
                seq += 1
                if self._rate and (delay := started + seq / self._rate - time.monotonic()) > 0:
                    self._stopping.wait(delay)
                connection.request("POST", "/pub", body=step_progress(seq))
                response = connection.getresponse()
                response.read()
                if response.status not in (201, 202):
                    raise RuntimeError(f"POST /pub answered {response.status}")
            connection.close()
        except BaseException as error:  # reported by stop(), in the main thread
            self._failures.append(error)


@contextlib.contextmanager
def nchan_flow(server: Running, rate: float, transport: str) -> Iterator[Source]:
    if transport != "job":
        raise ValueError(f"Nchan has no {transport!r} transport here")
    # Nchan answers a POST once it has handed the message to its subscribers: at
    # saturation a second connection keeps the next message waiting meanwhile.
    publisher = NchanPublisher(server.port, rate, connections=1 if rate else SATURATION_PUBLISHERS)
    try:
        yield Source("/sub", publisher.start)
    finally:
        publisher.stop()


@contextlib.contextmanager
def nchan_idle(server: Running) -> Iterator[Source]:
    yield Source("/sub", lambda: None)


@contextlib.contextmanager
def genwire_flow(server: Running, rate: float, transport: str) -> Iterator[Source]:
    """The measured job waits, queued, behind a gate job that holds the server's one
    worker slot; starting the source cancels the gate. So every subscriber is
    connected before the first measured event is appended."""
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
        gate = _running_job(http, steps=1, step_ms=HOLD_MS)
        job = _create_job(http, steps=STEPS, step_ms=1000.0 / rate if rate else 0.0)
        paths = {
            "job": f"/api/jobs/{job['id']}/events",
            "tenant": "/api/events",
            "poll": f"/api/jobs/{job['id']}/poll",
        }

        def start() -> None:
            http.post(f"/api/jobs/{gate['id']}/cancel").raise_for_status()

        if transport == "poll":
            yield Source(paths["poll"], start, mode="poll", after=job["last_event_id"])
        else:
            yield Source(paths[transport], start)


@contextlib.contextmanager
def genwire_idle(server: Running) -> Iterator[Source]:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
        job = _running_job(http, steps=1, step_ms=HOLD_MS)
        yield Source(f"/api/jobs/{job['id']}/events", lambda: None)


def _create_job(http: httpx.Client, steps: int, step_ms: float) -> dict[str, Any]:
    body = {"pipeline": "demo.synthetic", "input": {"steps": steps, "step_ms": step_ms}}
    response = http.post("/api/jobs", json=body)
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


def _running_job(http: httpx.Client, steps: int, step_ms: float) -> dict[str, Any]:
    job = _create_job(http, steps, step_ms)
    deadline = time.monotonic() + 30
    while job["status"] != "running":
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job['id']} did not start: {job['status']}")
        time.sleep(0.02)
        job = http.get(f"/api/jobs/{job['id']}").raise_for_status().json()
    return job


@dataclass(frozen=True)
class Target:
    name: str
    serve: Callable[[int, int], AbstractContextManager[Running]]
    flow: Callable[[Running, float, str], AbstractContextManager[Source]]
    idle: Callable[[Running], AbstractContextManager[Source]]


TARGETS = {
    "nchan": Target("nchan", nchan_server, nchan_flow, nchan_idle),
    "genwire": Target("genwire", genwire_server, genwire_flow, genwire_idle),
}


# ---- measurements ------------------------------------------------------------------


@dataclass(frozen=True)
class Meters:
    server_cpu_s: float  #: utime + stime of the server process, all its threads
    steal_s: float  #: time this VM's CPUs wanted to run but the hypervisor ran others

    @classmethod
    def read(cls, pid: int) -> Meters:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        machine = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return cls((int(fields[11]) + int(fields[12])) / TICKS_PER_S, int(machine[8]) / TICKS_PER_S)

    def __sub__(self, other: Meters) -> Meters:
        return Meters(self.server_cpu_s - other.server_cpu_s, self.steal_s - other.steal_s)


def open_timeout(connections: int) -> float:
    return 30.0 + connections / 100


@dataclass(frozen=True)
class Flow:
    """Events flowing to `subscribers` connections, over one measured window."""

    server: str
    run: str  #: "rate", "saturation"; transports: "job", "tenant", "poll"
    subscribers: int
    opened: Window  #: the connecting phase
    window: Window
    used: Meters  #: over the window
    load: float  #: the one-minute load average at its end

    @property
    def deliveries_per_s(self) -> float:
        return self.window.deliveries / self.window.seconds

    @property
    def cpu_us_per_delivery(self) -> float | None:
        if not self.window.deliveries:
            return None
        return self.used.server_cpu_s / self.window.deliveries * 1e6


@dataclass(frozen=True)
class Idle:
    server: str
    connections: int
    opened: Window
    rss_before_kib: int
    rss_after_kib: int
    window: Window  #: the hold

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.connections


@dataclass(frozen=True)
class Settings:
    client: Path
    rate: float
    duration_s: float
    keepalive_s: int
    hold_s: float


def measure_flow(
    target: Target, settings: Settings, run: str, subscribers: int, transport: str = "job"
) -> Flow:
    rate = 0.0 if run == "saturation" else settings.rate
    progress(f"{target.name}: {run}, {subscribers:,} subscribers")
    with (
        target.serve(settings.keepalive_s, subscribers) as server,
        target.flow(server, rate, transport) as source,
        load_client(settings.client, server.port, source, subscribers) as client,
    ):
        opened = client.report("ready", open_timeout(subscribers))
        source.start()
        before = warm_up(client, server.pid)
        time.sleep(settings.duration_s)
        used = Meters.read(server.pid) - before
        window = client.mark()
    return Flow(target.name, run, subscribers, opened, window, used, os.getloadavg()[0])


def progress(step: str) -> None:
    """What runs now, on stderr (a default run takes minutes; the tables go to stdout)."""
    print(f"… {step}", file=sys.stderr, flush=True)


def warm_up(client: LoadClient, pid: int) -> Meters:
    """Waits until events reach the subscribers (at least WARMUP_S, at most
    WARMUP_MAX_S: a saturated server may take seconds to answer its first long-polls),
    then starts the measured window; answers the meters at its start."""
    started = time.monotonic()
    while True:
        time.sleep(WARMUP_STEP_S)
        meters = Meters.read(pid)
        flowing = client.mark().deliveries > 0
        waited = time.monotonic() - started
        if (flowing and waited >= WARMUP_S) or waited >= WARMUP_MAX_S:
            return meters


def measure_transports(
    settings: Settings, counts: Sequence[int], done: Sequence[Flow]
) -> list[Flow]:
    """genwire's job stream (unless the rate scenario ran it), tenant stream and
    long-poll at each count."""
    genwire = TARGETS["genwire"]
    flows = []
    for count in counts:
        if not any(
            f.server == "genwire" and f.run == "rate" and f.subscribers == count for f in done
        ):
            flows.append(measure_flow(genwire, settings, "job", count))
        flows += [measure_flow(genwire, settings, name, count, name) for name in ("tenant", "poll")]
    return flows


def measure_idle(target: Target, settings: Settings, connections: int) -> Idle:
    progress(f"{target.name}: {connections:,} idle streams, held {settings.hold_s:g} s")
    with (
        target.serve(settings.keepalive_s, connections) as server,
        target.idle(server) as source,
    ):
        before = rss_kib(server.pid)
        with load_client(settings.client, server.port, source, connections) as client:
            opened = client.report("ready", open_timeout(connections))
            time.sleep(settings.hold_s)
            after = rss_kib(server.pid)
            window = client.mark()
    return Idle(target.name, connections, opened, before, after, window)


# ---- the tables --------------------------------------------------------------------


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base <= 0 or value < 0:
        return "–"
    return f"{value / base:.2f}"


def _number(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or value < 0 else f"{value:,.{digits}f}"


def comparison_rows(
    flows: Sequence[Flow], idles: Sequence[Idle], settings: Settings
) -> list[list[str]]:
    """One row per figure: nchan, genwire and genwire/nchan side by side."""
    rows: list[list[str]] = []

    def add(label: str, count: int, values: dict[str, float | None], digits: int = 1) -> None:
        nchan, genwire = values.get("nchan"), values.get("genwire")
        if nchan is None and genwire is None:
            return  # a scenario that did not run
        rows.append(
            [
                label,
                f"{count:,}",
                _number(nchan, digits),
                _number(genwire, digits),
                _ratio(genwire, nchan),
            ]
        )

    def of(run: str, count: int, figure: Callable[[Flow], float | None]) -> dict[str, float | None]:
        return {f.server: figure(f) for f in flows if f.run == run and f.subscribers == count}

    rate = f"{settings.rate:g} ev/s"
    for count in sorted({flow.subscribers for flow in flows if flow.run in ("rate", "saturation")}):
        add(f"p50 ms, {rate}", count, of("rate", count, lambda f: f.window.p50_ms))
        add(f"p99 ms, {rate}", count, of("rate", count, lambda f: f.window.p99_ms))
        add(f"deliveries/s, {rate}", count, of("rate", count, lambda f: f.deliveries_per_s), 0)
        add(
            f"server µs/delivery, {rate}", count, of("rate", count, lambda f: f.cpu_us_per_delivery)
        )
        add(
            "deliveries/s, saturation",
            count,
            of("saturation", count, lambda f: f.deliveries_per_s),
            0,
        )
        add(
            "server µs/delivery, saturation",
            count,
            of("saturation", count, lambda f: f.cpu_us_per_delivery),
        )
        add("p99 ms, saturation", count, of("saturation", count, lambda f: f.window.p99_ms))
    for count in sorted({idle.connections for idle in idles}):
        same = [idle for idle in idles if idle.connections == count]
        add("KiB per idle connection", count, {i.server: i.kib_per_connection for i in same})
        add("s to open them", count, {i.server: i.opened.seconds for i in same})
        silence = f"longest silence s (keepalive {settings.keepalive_s} s)"
        add(silence, count, {i.server: i.window.silence_max_ms / 1000 for i in same}, 2)
    return rows


def run_rows(flows: Sequence[Flow]) -> list[list[str]]:
    """What each run saw, to judge the comparison: did every subscriber get the same
    events, how busy were the server and the client, how much CPU the hypervisor
    gave to others (steal, in % of one core), were there errors."""
    rows = []
    for flow in flows:
        window = flow.window
        low, high = window.events_per_connection
        rows.append(
            [
                flow.server,
                flow.run,
                f"{flow.subscribers:,}",
                f"{window.seconds:.1f}",
                f"{low:,}–{high:,}",
                f"{flow.deliveries_per_s:,.0f}",
                f"{100 * flow.used.server_cpu_s / window.seconds:.0f}",
                f"{100 * window.client_cpu_s / window.seconds:.0f}",
                f"{100 * flow.used.steal_s / window.seconds:.0f}",
                f"{flow.opened.failed + window.errors}",
                f"{flow.load:.1f}",
            ]
        )
    return rows


def idle_rows(idles: Sequence[Idle], hold_s: float) -> list[list[str]]:
    rows = []
    for idle in idles:
        low, high = idle.window.keepalives_per_connection
        rows.append(
            [
                idle.server,
                f"{idle.connections:,}",
                f"{idle.opened.failed}",
                f"{idle.rss_before_kib / 1024:.1f}",
                f"{idle.rss_after_kib / 1024:.1f}",
                f"{idle.kib_per_connection:.1f}",
                f"{low}–{high} in {hold_s:g} s",
                f"{idle.window.silence_max_ms / 1000:.2f}",
            ]
        )
    return rows


def transport_rows(flows: Sequence[Flow]) -> list[list[str]]:
    """genwire's other transports against its job stream, per delivery."""
    names = {"job": "job stream", "tenant": "/api/events", "poll": "long-poll"}
    rows = []
    for count in sorted({f.subscribers for f in flows if f.run in ("tenant", "poll")}):
        same = [f for f in flows if f.server == "genwire" and f.subscribers == count]
        runs = {"job" if f.run == "rate" else f.run: f for f in same if f.run != "saturation"}
        job = runs.get("job")
        for name, flow in sorted(runs.items(), key=lambda item: list(names).index(item[0])):
            cost = flow.cpu_us_per_delivery
            base = job.cpu_us_per_delivery if job else None
            rows.append(
                [
                    names[name],
                    f"{count:,}",
                    f"{flow.deliveries_per_s:,.0f}",
                    _number(flow.window.p50_ms),
                    _number(flow.window.p99_ms),
                    _number(cost),
                    _ratio(cost, base),
                ]
            )
    return rows


# ---- main --------------------------------------------------------------------------


def _counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _names(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        for name in names:
            if name not in allowed:
                raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(allowed)}")
        return names

    return parse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=_counts, default=[1000, 5000], help="1000,5000")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second (rate)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument(
        "--transport-subscribers", type=_counts, default=[100, 1000], help="transports: 100,1000"
    )
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections (0: none)")
    parser.add_argument("--keepalive", type=int, default=5, help="seconds, both servers")
    parser.add_argument("--hold", type=float, default=12.0, help="seconds to hold idle ones")
    parser.add_argument("--only", choices=SERVERS, help="one server instead of both")
    parser.add_argument(
        "--scenarios", type=_names(SCENARIOS), default=list(SCENARIOS), help=",".join(SCENARIOS)
    )
    args = parser.parse_args()
    if args.rate <= 0:
        parser.error("--rate must be above 0")
    return args


def _raise_file_limit(needed: int) -> None:
    """Each connection is a descriptor, in the server and in the client."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed > hard:
        sys.exit(f"{needed} connections need more descriptors than the hard limit ({hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, so every server and client started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    _raise_file_limit(max([*args.subscribers, *args.transport_subscribers, args.idle]) + 1024)
    servers = [args.only] if args.only else list(SERVERS)
    if "nchan" in servers:
        ensure_nchan()
    settings = Settings(build_client(), args.rate, args.duration, args.keepalive, args.hold)
    print(f"fanout_vs_nchan; {describe_machine()}", flush=True)
    flows: list[Flow] = []
    idles: list[Idle] = []
    for count in args.subscribers:
        for run in ("rate", "saturation"):
            if run in args.scenarios:
                flows += [measure_flow(TARGETS[name], settings, run, count) for name in servers]
    if "transports" in args.scenarios and "genwire" in servers:
        flows += measure_transports(settings, args.transport_subscribers, flows)
    if "idle" in args.scenarios and args.idle:
        idles += [measure_idle(TARGETS[name], settings, args.idle) for name in servers]
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    comparison = comparison_rows(flows, idles, settings)
    if comparison:
        print()
        print_table(["figure", "subscribers", "nchan", "genwire", "genwire/nchan"], comparison)
    if flows:
        print()
        print_table(
            [
                "server",
                "run",
                "subs",
                "window s",
                "events/sub",
                "deliveries/s",
                "server CPU %",
                "client CPU %",
                "steal %",
                "errors",
                "load",
            ],
            run_rows(flows),
        )
    if any(flow.run in ("tenant", "poll") for flow in flows):
        print()
        print_table(
            [
                "genwire transport",
                "subs",
                "deliveries/s",
                "p50 ms",
                "p99 ms",
                "server µs/delivery",
                "× job stream",
            ],
            transport_rows(flows),
        )
    if idles:
        print()
        print_table(
            [
                "server",
                "idle",
                "failed",
                "RSS before MiB",
                "RSS after MiB",
                "KiB/conn",
                "keepalives/conn",
                "longest silence s",
            ],
            idle_rows(idles, args.hold),
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # every server and client was stopped on the way out
        sys.exit(130)
