"""Provider completion → the user's terminal event, by webhook and by polling alone,
and the requests genwire makes per job, against each provider's fake (tests/fakes).

    python -m bench.provider_latency                 # 5 jobs each, 3 s at the provider
    python -m bench.provider_latency --jobs 10 --run-s 8

The fakes are real HTTP servers on loopback: what is measured is genwire's own part
(webhook handling, poll schedule, copying the output), not a provider's network.
Polling uses the shipped defaults (1 s up to 10 s alone; 10 s up to 60 s beside
webhooks), so polling latency depends on `--run-s`: the longer a job, the longer
the pause between polls when it ends.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench._report import describe_machine, print_table
from genwire.providers.settings import ProviderSettings
from tests.providers_world import CASES, ProviderCase, world


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def run_case(case: ProviderCase, webhooks: bool, jobs: int, run_s: float) -> list[str]:
    with (
        tempfile.TemporaryDirectory() as folder,
        world(
            case,
            Path(folder),
            webhooks=webhooks,
            providers=ProviderSettings(allow_private_outputs=True),
        ) as w,
    ):
        w.fake.plan(case.model, run_s=run_s)  # type: ignore[attr-defined]
        started = [w.submit(case.body())["id"] for _ in range(jobs)]
        delays: list[float] = []
        for job_id in started:
            job = w.wait_until_ended(job_id, timeout=run_s + 120)
            assert job["status"] == "succeeded", job["error"]
            terminal = w.events(job_id)[-1]
            provider_id = job["output"]["provider_job_id"]
            delays.append(_ts(terminal) - w.fake.completed_at[provider_id])  # type: ignore[attr-defined]
        api_requests = [
            line for line in w.fake.requests if not line.startswith(("GET /files", "GET /.well"))
        ]
        webhook_calls = len(w.fake.webhook_calls)
    return [
        case.name,
        "webhook + polling" if webhooks else "polling alone",
        f"{statistics.median(delays):.3f}",
        f"{max(delays):.3f}",
        f"{len(api_requests) / jobs:.1f}",
        f"{webhook_calls / jobs:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--run-s", type=float, default=3.0)
    args = parser.parse_args()
    print(describe_machine())
    rows = []
    started = time.monotonic()
    for case in CASES:
        for webhooks in (True, False):
            rows.append(run_case(case, webhooks, args.jobs, args.run_s))
    print_table(
        [
            "provider",
            "followed by",
            "p50 s",
            "max s",
            "requests/job",
            "webhooks/job",
        ],
        rows,
    )
    print(
        f"{args.jobs} jobs of {args.run_s:g} s per row; {time.monotonic() - started:.0f} s in all"
    )


if __name__ == "__main__":
    main()
