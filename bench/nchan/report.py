"""The tables: the comparison side by side with ratios, then what each run saw."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from bench._report import print_table
from bench.nchan.scenarios import Flow, Idle, Settings


def print_report(flows: Sequence[Flow], idles: Sequence[Idle], settings: Settings) -> None:
    """Each table only when its runs happened."""
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
            idle_rows(idles, settings.hold_s),
        )


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
