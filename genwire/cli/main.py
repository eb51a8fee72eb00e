"""The `genwire` command group; each command lives in the module of its kind."""

from __future__ import annotations

import click

from genwire import __version__


@click.group()
@click.version_option(__version__, prog_name="genwire")
def main() -> None:
    """genwire: long generative-media jobs whose every update reaches you."""
