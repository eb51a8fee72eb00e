"""What every client command shares: the two terminals (messages on stderr, results
on stdout), the `--server` option, exit codes, and one clear line for a failed call
(`failures.py` words it)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from genwire.cli.failures import failure_lines
from genwire.client import Client, GenwireError
from genwire.client.sync import DEFAULT_URL

T = TypeVar("T")
console = Console(stderr=True)
out = Console()

#: Exit codes of `submit --wait` and `watch`: one per terminal status.
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}
#: Exit code of a call that failed: the server unreachable, or its answer a refusal.
EXIT_CALL_FAILED = 3

server_option = click.option(
    "--server",
    envvar="GENWIRE_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The genwire server's URL (env GENWIRE_URL); its API key comes from GENWIRE_API_KEY.",
)


def spinner() -> Callable[[str], contextlib.AbstractContextManager[object]] | None:
    """A spinner on stderr saying what runs now (a doctor check can take tens of
    seconds), for a person at a terminal only: pipes, files and tests get plain lines."""
    if out.is_terminal and console.is_terminal:
        return console.status
    return None


def client_of(server: str) -> Client:
    return Client(server)


@contextlib.contextmanager
def api_errors(server: str) -> Iterator[None]:
    """Turn a failed call to `server` into one clear line and exit code 3."""
    try:
        yield
    except GenwireError as error:
        fail(*failure_lines(error, server))


def api(client: Client, call: Callable[[], T]) -> T:
    """`call()`'s answer; its failure ends the command with a line naming the server."""
    with api_errors(client.server):
        return call()
    raise AssertionError("unreachable: api_errors exits on failure")


def fail(line: str, *more: str) -> NoReturn:
    """End the command on an error line (plain text) and exit code 3."""
    console.print(f"[red]error[/]: {escape(line)}")
    for extra in more:
        console.print(f"  {escape(extra)}")
    sys.exit(EXIT_CALL_FAILED)
