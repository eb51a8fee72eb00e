"""What `GET /metrics` shows, in Prometheus's text format (version 0.0.4).

The parts of genwire that measure something keep plain counters and `Histogram`s
(no locks: each is updated by one thread), and the endpoint renders them as
`Metric`s. Nothing here is per tenant: these are the server's own numbers.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: Seconds, from a loopback fan-out or commit (about a millisecond) to a stalled one.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Counts of observed values by upper bound, as Prometheus histograms keep them."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value


@dataclass
class Metric:
    """One metric family: its samples are (labels, value), or a histogram."""

    name: str
    kind: str  #: "counter", "gauge" or "histogram"
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)
    histogram: Histogram | None = None


def render(metrics: Iterable[Metric]) -> str:
    lines: list[str] = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {_escape(metric.help, quotes=False)}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        if metric.histogram is not None:
            lines.extend(_histogram_lines(metric.name, metric.histogram))
        for labels, value in metric.samples:
            lines.append(f"{metric.name}{_labels(labels)} {_number(value)}")
    return "\n".join(lines) + "\n"


def _histogram_lines(name: str, histogram: Histogram) -> Iterable[str]:
    cumulative = 0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
        cumulative += count
        # Bounds as floats ("1.0"), as Prometheus's own clients write them.
        yield f'{name}_bucket{{le="{float(bound)!r}"}} {cumulative}'
    yield f'{name}_bucket{{le="+Inf"}} {histogram.count}'
    yield f"{name}_sum {_number(histogram.sum)}"
    yield f"{name}_count {histogram.count}"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value, quotes=True)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _escape(text: str, *, quotes: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quotes else text


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))
