"""The measured runs: events flowing to N subscribers, and idle connections held."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._server import TICKS_PER_S, cpu_seconds, rss_kib
from bench.nchan.c_client import LoadClient, Window, load_client
from bench.nchan.genwire_target import GENWIRE
from bench.nchan.nchan_target import NCHAN
from bench.nchan.servers import Target

TARGETS = {target.name: target for target in (NCHAN, GENWIRE)}
WARMUP_S = 1.0  #: from the first event to the measured window
WARMUP_MAX_S = 30.0  #: the longest wait for the first deliveries
WARMUP_STEP_S = 0.5  #: how often the warm-up looks whether events flow


@dataclass(frozen=True)
class Meters:
    server_cpu_s: float  #: utime + stime of the server process, all its threads
    steal_s: float  #: time this VM's CPUs wanted to run but the hypervisor ran others

    @classmethod
    def read(cls, pid: int) -> Meters:
        machine = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return cls(cpu_seconds(pid), int(machine[8]) / TICKS_PER_S)

    def __sub__(self, other: Meters) -> Meters:
        return Meters(self.server_cpu_s - other.server_cpu_s, self.steal_s - other.steal_s)


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


def open_timeout(connections: int) -> float:
    return 30.0 + connections / 100


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
    flows = []
    for count in counts:
        if not any(
            f.server == "genwire" and f.run == "rate" and f.subscribers == count for f in done
        ):
            flows.append(measure_flow(GENWIRE, settings, "job", count))
        flows += [measure_flow(GENWIRE, settings, name, count, name) for name in ("tenant", "poll")]
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
