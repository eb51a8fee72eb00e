"""What every client command shares: the two terminals (messages on stderr, results
on stdout), the `--server` option, exit codes, and one clear line for a failed call."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

import click
from rich.console import Console

from genwire.client import ApiError, Client, GenwireError, TransportFailed
from genwire.client.sync import DEFAULT_URL

T = TypeVar("T")
console = Console(stderr=True)
out = Console()

#: Exit codes of `submit --wait` and `watch`: one per terminal status.
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}

server_option = click.option(
    "--server",
    envvar="GENWIRE_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The genwire server (env GENWIRE_URL).",
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
def api_errors() -> Iterator[None]:
    """Turn a client call's failures into one clear line and exit code 3."""
    try:
        yield
    except ApiError as error:
        console.print(f"[red]error[/] ({error.status} {error.code}): {error}")
        sys.exit(3)
    except TransportFailed as error:
        console.print(f"[red]error[/]: cannot reach the server: {error}")
        sys.exit(3)
    except GenwireError as error:
        console.print(f"[red]error[/]: {error}")
        sys.exit(3)


def api(call: Callable[[], T]) -> T:
    with api_errors():
        return call()
    raise AssertionError("unreachable: _api_errors exits on failure")
