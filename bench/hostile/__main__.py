"""Issue 17's hostile clients against a real `genwire serve`, one scenario per row of
its table, with the figures printed as that table at the end.

    python -m bench.hostile                           # every row at the audit's sizes (~4 min)
    python -m bench.hostile --only half-open --half-open 2000 --hold 20 --healthz 20
    python -m bench.hostile --only streams-one-client creation-flood --streams 500

Each scenario starts its own servers (SQLite in a temporary folder, default
settings unless its row says otherwise; `--shutdown-grace 0` only so that a running
job does not hold up the stop) and stops them, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence

from bench._report import describe_machine
from bench.hostile import (
    client_pool,
    coerced_input,
    creation_flood,
    dropped_upload,
    half_open,
    streams_one_client,
    token_in_log,
    token_oracle,
    zero_cursor,
)
from bench.hostile.report import Row, failure, print_rows, progress

Scenario = Callable[[argparse.Namespace], Awaitable[list[Row]]]

SLOW_SUBSCRIBERS = Row(
    "slow-subscribers",
    "1 000 subscribers that never read, on a job at ~1 000 events/s",
    "measured by `python -m bench.slow_subscribers`, not here",
)
SCENARIOS: dict[str, Scenario] = {
    half_open.NAME: half_open.run,
    streams_one_client.NAME: streams_one_client.run,
    creation_flood.NAME: creation_flood.run,
    zero_cursor.NAME: zero_cursor.run,
    token_in_log.NAME: token_in_log.run,
    token_oracle.NAME: token_oracle.run,
    client_pool.NAME: client_pool.run,
    dropped_upload.NAME: dropped_upload.run,
    coerced_input.NAME: coerced_input.run,
}
#: The issue's order; slow-subscribers (row 2) is printed in its place.
ORDER = (half_open.NAME, SLOW_SUBSCRIBERS.row, *list(SCENARIOS)[1:])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", nargs="+", choices=ORDER, default=list(ORDER), metavar="NAME")
    for module in (
        half_open,
        streams_one_client,
        creation_flood,
        zero_cursor,
        token_oracle,
        client_pool,
        dropped_upload,
    ):
        module.add_arguments(parser)
    return parser.parse_args(argv)


def raise_fd_limit() -> None:
    """Soft descriptor limit to the hard one, for this process and the servers and
    children it starts (20 000 on the audit's machine)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(options: argparse.Namespace) -> int:
    rows: list[Row] = []
    failed = 0
    for name in ORDER:
        if name not in options.only:
            continue
        if name == SLOW_SUBSCRIBERS.row:
            rows.append(SLOW_SUBSCRIBERS)
            continue
        progress(name, "starting")
        try:
            rows += await SCENARIOS[name](options)
        except Exception as error:
            # One broken scenario still leaves the others' figures.
            failed += 1
            traceback.print_exc()
            rows.append(Row(name, "-", failure(error)))
    print()
    print(describe_machine())
    print_rows(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    raise_fd_limit()
    sys.exit(asyncio.run(main(parse_args(None))))
