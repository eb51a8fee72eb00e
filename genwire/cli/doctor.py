"""`genwire doctor`: the client-side checks of a deployment, as a table or JSON."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from genwire.cli import terminal
from genwire.cli.main import main
from genwire.cli.terminal import server_option


@main.command()
@click.argument("url", required=False)
@click.option(
    "--keepalive-wait",
    type=click.FloatRange(min=0.5, max=600),
    default=25.0,
    show_default=True,
    help="Seconds to wait for a keepalive comment on an idle stream.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@server_option
def doctor(url: str | None, keepalive_wait: float, as_json: bool, server: str) -> None:
    """Check that results reach clients live, and say what to fix.

    The checks: health, a job end to end over SSE, a buffering proxy, long-poll, file
    download, keepalive spacing, each configured provider's key. URL is the server to
    check (default: --server). Exits 1 when a check fails, 0 otherwise (warnings
    allowed)."""
    from genwire.client.doctor import Check, run_checks

    target = url or server
    marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]"}

    def progress(check: Check) -> None:
        if not as_json:
            terminal.console.print(f"{marks[check.verdict]}  {check.name}")

    terminal.console.print(f"genwire doctor: {target}")
    checks = run_checks(
        target, keepalive_wait_s=keepalive_wait, on_check=progress, running=terminal.spinner()
    )
    failed = any(check.verdict == "fail" for check in checks)
    if as_json:
        terminal.out.print_json(
            data={
                "server": target,
                "ok": not failed,
                "checks": [check.as_json() for check in checks],
            }
        )
    else:
        table = Table("check", "verdict", "detail", "fix", show_lines=True)
        for check in checks:
            table.add_row(check.name, marks[check.verdict], check.detail, check.fix)
        terminal.out.print(table)
    sys.exit(1 if failed else 0)
