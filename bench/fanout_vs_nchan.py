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
docs/PERFORMANCE.md has the method and the latest figures. This file is the command
line; bench/nchan/ holds the parts (load client, nginx, scenarios, tables).
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
from collections.abc import Callable, Sequence

from bench._report import describe_machine
from bench.nchan.c_client import build_client
from bench.nchan.nginx import ensure_nchan
from bench.nchan.report import print_report
from bench.nchan.scenarios import (
    TARGETS,
    Flow,
    Idle,
    Settings,
    measure_flow,
    measure_idle,
    measure_transports,
)

SCENARIOS = ("rate", "saturation", "idle", "transports")
SERVERS = tuple(TARGETS)


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
    print_report(flows, idles, settings)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # every server and client was stopped on the way out
        sys.exit(130)
