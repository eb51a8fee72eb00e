"""`genwire keys hash TENANT`: a keys file's line for a key read on stdin
(`genwire.apikeys`), so that the key itself never shows in a command line."""

from __future__ import annotations

import sys

import click

from genwire.apikeys import keys_file_line
from genwire.cli.main import main


@main.group()
def keys() -> None:
    """API keys for `serve --keys-file`."""


@keys.command("hash")
@click.argument("tenant")
def hash_key(tenant: str) -> None:
    """Print the keys file's line for the key on stdin (its first line) and TENANT."""
    key = sys.stdin.readline().strip()
    if not key:
        raise click.UsageError("no key on stdin")
    try:
        line = keys_file_line(key, tenant)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    click.echo(line)
