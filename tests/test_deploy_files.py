"""The deployment files are true (docs/DEPLOY.md): the systemd units run commands
and flags genwire has, with values it takes; genwire.env.example names the
variables genwire reads and no other; the settings table of DEPLOY.md lists every
option of `serve` and `worker`; and deploy/nginx.conf, run for real in front of a
live genwire, streams events as they come, resumes from Last-Event-ID, answers an
idle long-poll and passes byte ranges through."""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
from click.testing import CliRunner
from httpx_sse import aconnect_sse
from starlette.routing import Route

from genwire.api import streams
from genwire.api.streams import MAX_POLL_WAIT_S
from genwire.cli import main
from genwire.config import Settings
from genwire.providers.settings import ProviderSettings
from genwire.worker import WorkerSettings
from tests.conftest import REQUIRE_SERVICES
from tests.nginx_proxy import NGINX, NginxProxy
from tests.wire import (
    TERMINAL_STATUSES,
    TERMINAL_TYPES,
    Event,
    LiveServer,
    all_events,
    cancel,
    finished_job,
    idle_running_job,
    job_snapshot,
    read_events,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DEPLOY_DOC = ROOT / "docs" / "DEPLOY.md"
ENV_EXAMPLE = DEPLOY / "genwire.env.example"
#: Each unit file and the command it runs.
UNITS = {"genwire-api.service": "serve", "genwire-worker@.service": "worker"}
#: Where the unit files expect genwire installed.
INSTALLED_GENWIRE = "/opt/genwire/venv/bin/genwire"


def unit_settings(name: str) -> dict[str, str]:
    """The `Key=value` lines of a unit file (continuations joined; comments out)."""
    text = re.sub(r"\\\n", " ", (DEPLOY / name).read_text())
    settings: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, separator, value = line.partition("=")
        assert separator, f"{name}: not a setting: {line!r}"
        assert key not in settings, f"{name}: {key} twice"
        settings[key] = value
    return settings


def exec_start(name: str) -> list[str]:
    return shlex.split(unit_settings(name)["ExecStart"])


def flags_of(arguments: list[str]) -> set[str]:
    return {word.partition("=")[0] for word in arguments if word.startswith("--")}


def help_flags(command: str) -> set[str]:
    """The flags `genwire COMMAND --help` shows."""
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", result.output))


def command_of(name: str) -> click.Command:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    return command


def option_flags(command: str) -> set[str]:
    """The long flags of every option of `genwire COMMAND`, --help aside."""
    flags = {flag for param in command_of(command).params for flag in param.opts}
    return {flag for flag in flags if flag.startswith("--")}


def example_environment() -> dict[str, str | None]:
    """Every variable genwire.env.example names: its value, or None where the line
    is commented out."""
    names: dict[str, str | None] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"(#?)([A-Z][A-Z0-9_]*)=(.*)", line)
        if match is None:
            continue
        commented, name, value = match.groups()
        assert name not in names, f"{name} twice in {ENV_EXAMPLE.name}"
        names[name] = None if commented else value
    return names


def genwire_sources() -> str:
    return "\n".join(path.read_text() for path in (ROOT / "genwire").rglob("*.py"))


def variables_genwire_reads() -> set[str]:
    """The names genwire looks up in the environment: the env vars of its commands'
    options, as click has them, and each `.get("NAME")` of the environment in its code."""
    reads = r'(?:envvar=|environ\.get\(|env\.get\(|getenv\()"([A-Z][A-Z0-9_]*)"'
    options = {
        name
        for command in main.commands.values()
        for param in command.params
        for name in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
    return options | set(re.findall(reads, genwire_sources()))


def settings_table() -> list[dict[str, str]]:
    """The rows of DEPLOY.md's table of flags, by column name."""
    lines = DEPLOY_DOC.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| flag |"))
    columns = [cell.strip() for cell in lines[header].strip("|").split("|")]
    rows = []
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows


def test_every_flag_of_a_unit_file_is_one_its_command_shows_in_its_help() -> None:
    for name, command in UNITS.items():
        arguments = exec_start(name)
        assert arguments[:2] == [INSTALLED_GENWIRE, command], arguments
        unknown = flags_of(arguments[2:]) - help_flags(command)
        assert not unknown, f"{name} passes flags `genwire {command}` does not have: {unknown}"


def test_the_unit_files_and_the_example_environment_make_command_lines_genwire_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in example_environment().items():
        if value is not None:
            monkeypatch.setenv(name, value)
    for name, command in UNITS.items():
        # Parsing checks every value's type and range, and that the required
        # options (the worker's --database) come from the flags or the environment.
        command_of(command).make_context(command, exec_start(name)[2:])
    settings = Settings.from_env()
    assert settings.bus_url is not None
    assert settings.bus_url.startswith("redis://")
    assert settings.storage_url is not None
    assert settings.storage_url.startswith("s3://")
    assert settings.database_url is not None
    assert settings.database_url.startswith("postgresql://")
    ProviderSettings.from_env()


def test_both_units_run_as_their_own_user_restart_on_failure_and_read_the_environment_file() -> (
    None
):
    for name in UNITS:
        unit = unit_settings(name)
        assert unit["User"] == unit["Group"] == "genwire", name
        assert unit["Restart"] == "on-failure", name
        assert unit["KillSignal"] == "SIGTERM", name
        assert unit["EnvironmentFile"] == "/etc/genwire/genwire.env", name


def test_a_stopped_worker_unit_is_killed_only_after_its_running_jobs_had_their_grace() -> None:
    unit = unit_settings("genwire-worker@.service")
    arguments = exec_start("genwire-worker@.service")
    grace = float(arguments[arguments.index("--shutdown-grace") + 1])
    # WorkerPool.stop: the grace, then the cancel grace and 5 s more for the
    # cancelled pipelines to stop and their jobs to be released.
    longest_stop = grace + WorkerSettings().cancel_grace_s + 5
    assert float(unit["TimeoutStopSec"].removesuffix("s")) > longest_stop
    # A pipeline's FFmpeg gets no SIGTERM of its own during the grace.
    assert unit["KillMode"] == "mixed"


def test_systemd_finds_nothing_wrong_with_the_unit_files(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    genwire = Path(sys.executable).parent / "genwire"
    for name in UNITS:
        text = (DEPLOY / name).read_text().replace(INSTALLED_GENWIRE, str(genwire))
        (tmp_path / name).write_text(text)
    checked = subprocess.run(
        [analyze, "verify", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_every_genwire_variable_of_the_example_environment_is_one_genwire_reads() -> None:
    named = {name for name in example_environment() if name.startswith("GENWIRE_")}
    unread = named - variables_genwire_reads()
    assert not unread, f"{ENV_EXAMPLE.name} names variables genwire never reads: {unread}"


def test_the_example_environment_names_every_variable_genwire_reads() -> None:
    missing = variables_genwire_reads() - example_environment().keys()
    assert not missing, f"{ENV_EXAMPLE.name} does not name: {missing}"


def test_the_example_environment_holds_no_secret() -> None:
    environment = example_environment()
    for name, value in environment.items():
        if value and re.search(r"KEY|TOKEN|SECRET", name):
            assert value == "CHANGE-ME", name
    database = environment["GENWIRE_DATABASE_URL"]
    assert database is not None
    assert urlsplit(database).password == "CHANGE-ME"


def test_every_stream_and_long_poll_route_has_an_unbuffered_nginx_location() -> None:
    site = (DEPLOY / "nginx.conf").read_text()
    locations = re.findall(r"location ~ (\S+) \{(.*?)\}", site, flags=re.DOTALL)
    for route in streams.routes:
        assert isinstance(route, Route)
        path = "/api" + re.sub(r"\{\w+\}", "id_123", route.path)
        (block,) = [block for pattern, block in locations if re.search(pattern, path)]
        assert "proxy_buffering off;" in block, path
        assert "gzip off;" in block, path
        read_timeout = re.search(r"proxy_read_timeout (\d+)s;", block)
        assert read_timeout is not None, path
        # A stream's read time-out must outlast the pause between keepalives; a
        # long-poll's, its longest wait.
        longest_silence = MAX_POLL_WAIT_S if path.endswith("/poll") else Settings.keepalive_s
        assert float(read_timeout.group(1)) > longest_silence, path


def test_the_settings_table_lists_every_option_of_serve_and_worker_and_only_those() -> None:
    rows = settings_table()
    listed: dict[str, set[str]] = {command: set() for command in UNITS.values()}
    for row in rows:
        flag = row["flag"].strip("`")
        processes = set(re.findall(r"serve|worker", row["process"]))
        assert processes, row
        for command in processes:
            listed[command].add(flag)
    for command, flags in listed.items():
        assert flags == option_flags(command), command


def test_the_settings_table_names_each_option_s_variable_and_numeric_default() -> None:
    read = variables_genwire_reads()
    for row in settings_table():
        flag = row["flag"].strip("`")
        named = set(re.findall(r"GENWIRE_[A-Z0-9_]+", row["env var"]))
        assert named <= read, row
        default = row["default"].strip("`")
        for command in set(re.findall(r"serve|worker", row["process"])):
            option = next(param for param in command_of(command).params if flag in param.opts)
            if isinstance(option.envvar, str):
                assert option.envvar in named, (command, row)
            if re.fullmatch(r"[0-9]+(\.[0-9]+)?", default):
                assert float(default) == option.default, (command, row)


# --- nginx, for real ------------------------------------------------------------------


@pytest.fixture
def proxy(live_server: LiveServer, tmp_path: Path) -> Iterator[NginxProxy]:
    """deploy/nginx.conf in front of a live genwire (a job still running when the
    test ends gets half a second)."""
    if not NGINX.exists():
        if REQUIRE_SERVICES:
            pytest.fail(f"nginx is required (GENWIRE_REQUIRE_SERVICES=1) but {NGINX} is missing")
        pytest.skip(f"nginx is not installed at {NGINX}")
    server = live_server(shutdown_grace_s=0.5)
    nginx = NginxProxy(tmp_path / "nginx", urlsplit(server.url).netloc)
    nginx.start()
    yield nginx
    nginx.stop()


async def test_a_stream_through_nginx_delivers_a_running_job_s_events_before_it_ends(
    proxy: NginxProxy,
) -> None:
    async with asyncio.timeout(60), proxy.client() as client:
        job_id, _ = await idle_running_job(client)
        path = f"/api/jobs/{job_id}/events"
        async with aconnect_sse(client, "GET", path) as source:
            assert source.response.status_code == 200
            assert "content-encoding" not in source.response.headers
            received = source.aiter_sse()
            events: list[Event] = []
            async for sse in received:
                if sse.data:
                    events.append(Event.of(sse.json()))
                if events and events[-1].type == "job-status":
                    break
            # A job that sleeps 30 s unless cancelled: its events came through while
            # it ran, not when nginx had its whole response.
            running = await job_snapshot(client, job_id)
            assert running["status"] not in TERMINAL_STATUSES
            await cancel(client, job_id)
            async for sse in received:
                if sse.data:
                    events.append(Event.of(sse.json()))
    assert events[-1].type == "job-cancelled"
    assert [event.type for event in events].count("job-cancelled") == 1


async def test_a_stream_through_nginx_resumes_after_its_last_event_id(proxy: NginxProxy) -> None:
    async with asyncio.timeout(60), proxy.client() as client:
        job_id = await finished_job(client, "demo.synthetic", steps=5, step_ms=1)
        events = await all_events(client, job_id)
        assert events[-1].type in TERMINAL_TYPES

        resumed = await read_events(
            client, f"/api/jobs/{job_id}/events", last_event_id=events[1].id
        )

    assert resumed == events[2:]


async def test_an_idle_long_poll_through_nginx_answers_with_no_events(proxy: NginxProxy) -> None:
    async with asyncio.timeout(60), proxy.client() as client:
        job_id, cursor = await idle_running_job(client)

        answer = await client.get(f"/api/jobs/{job_id}/poll", params={"after": cursor, "wait": "5"})

        assert answer.status_code == 200, answer.text
        assert answer.json()["events"] == []
        await cancel(client, job_id)


async def test_a_file_through_nginx_answers_a_range_with_206_and_those_bytes(
    proxy: NginxProxy,
) -> None:
    async with asyncio.timeout(60), proxy.client() as client:
        job_id = await finished_job(client, "demo.synthetic", steps=1, step_ms=1, output_bytes=5000)
        (artifact,) = (await job_snapshot(client, job_id))["artifacts"]
        path = f"/api/files/{artifact['id']}"

        part = await client.get(path, headers={"Range": "bytes=100-199"})
        unchanged = await client.get(path, headers={"If-None-Match": part.headers["etag"]})

    assert part.status_code == 206, part.text
    assert part.headers["content-range"] == "bytes 100-199/5000"
    assert part.content == bytes(range(256))[100:200]
    assert unchanged.status_code == 304


async def test_plain_http_to_nginx_is_sent_to_https(proxy: NginxProxy) -> None:
    async with asyncio.timeout(60), proxy.client() as client:
        answer = await client.get(f"{proxy.plain_url}/api/jobs")

    assert answer.status_code == 301
    assert answer.headers["location"].startswith("https://")
