"""What a newcomer meets in the `genwire` command at 80 columns (issue 18, item 8):
a job list that reads, errors that name the server and the next step, help for
every option, and endings said in words. Each runs the command as a user does: a
subprocess with COLUMNS=80 against a real `genwire serve`, or click's runner at 80
columns for the help."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Callable, Iterator

import click
import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from genwire.cli import main
from tests.cli_runs import run_genwire
from tests.conftest import ServerProcess, ThreadedServer, start_server_process
from tests.http_calls import wait_for_job, wait_for_status
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"  # a tenant with no jobs
#: The characters that tell a cut cell: rich's ellipsis, click's three dots.
CUT_MARKS = ("…", "...")


def genwire(
    url: str, *args: str, key: str | None = ALICE, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_genwire(url, *args, key=key, timeout=timeout)


def one_line(text: str) -> str:
    """The text with its wrapping undone, for phrases the terminal's width may break."""
    return " ".join(text.split())


def assert_fits_80_columns(text: str) -> None:
    too_wide = [line for line in text.splitlines() if len(line.rstrip()) > 80]
    assert not too_wide, too_wide


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENWIRE_API_KEYS", f"{ALICE}:alice,{BOB}:bob")
        process = start_server_process(tmp_path_factory.mktemp("cli80") / "data", "--workers", "2")
    yield process
    process.process.terminate()
    process.process.wait(timeout=20)


def http_of(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {ALICE}"}
    )


def submit_long_job(server: ServerProcess) -> str:
    """A job that runs for about 20 s unless cancelled; its id once it runs."""
    with http_of(server) as http:
        answer = http.post(
            "/api/jobs",
            json={"pipeline": "demo.synthetic", "input": {"steps": 400, "step_ms": 50}},
        )
        assert answer.status_code == 201, answer.text
        job_id: str = answer.json()["id"]
        wait_for_job(http, job_id, lambda job: job["status"] == "running" and job["progress"] > 0)
    return job_id


def listed_rows(listing: str) -> list[str]:
    """The rows of `genwire jobs`'s table: the lines after its header's rule."""
    lines = listing.splitlines()
    rule = next(
        i for i, line in enumerate(lines) if line.strip() and set(line.strip()) <= set("─━┡╇┩")
    )
    return [line for line in lines[rule + 1 :] if line.strip() and not line.startswith("└")]


def shown_id(rows: list[str], job_id: str) -> tuple[str, str]:
    """The row of `job_id` and the id it shows: the row's token that starts the id."""
    for row in rows:
        for token in row.split():
            if token.startswith("job_") and job_id.startswith(token):
                return row, token
    raise AssertionError(f"{job_id} is not in the listing:\n" + "\n".join(rows))


# --- genwire jobs ---------------------------------------------------------------------


def test_jobs_at_80_columns_shows_short_ids_and_whole_pipelines_statuses_and_times(
    server: ServerProcess,
) -> None:
    """Bug: in 80 columns the 30-character id took the width and every other column
    was cut to `pipel…`, `succe…`, `2026-1…`."""
    done = genwire(server.url, "submit", "demo.synthetic", "steps:=2", "step_ms:=1", "--wait")
    assert done.returncode == 0, done.stderr
    cancelled_id = submit_long_job(server)
    assert genwire(server.url, "cancel", cancelled_id).returncode == 0
    with http_of(server) as http:
        wait_for_status(http, cancelled_id, {"cancelled"})
        clip = {"pipeline": "demo.synthetic", "input": {"steps": 1, "step_ms": 1}}
        project = http.post("/api/projects", json={"clips": [clip, clip, clip]})
        assert project.status_code == 201, project.text
        wait_until(
            lambda: http.get(f"/api/projects/{project.json()['id']}").json()["all_complete"],
            "the project's clips to end",
            timeout=30,
        )
    listed = genwire(server.url, "jobs", "--json")
    jobs = {job["id"]: job for job in json.loads(listed.stdout)["items"]}

    listing = genwire(server.url, "jobs")

    assert listing.returncode == 0, listing.stderr
    assert_fits_80_columns(listing.stdout)
    assert not any(mark in listing.stdout for mark in CUT_MARKS), listing.stdout
    rows = listed_rows(listing.stdout)
    shown = {}
    for job_id, job in jobs.items():
        row, short = shown_id(rows, job_id)
        shown[job_id] = short
        assert len(short) < len(job_id), row
        assert re.search(rf"\b{re.escape(job['pipeline'])}\b", row), row
        if job["status"] in ("succeeded", "failed", "cancelled"):  # never to change
            assert re.search(rf"\b{job['status']}\b", row), row
        assert re.search(r"just now|\d+ (s|min) ago", row), row
    assert len(set(shown.values())) == len(shown), shown  # the project's clips too


def test_short_ids_are_cut_after_the_millisecond_unless_two_listed_jobs_share_it() -> None:
    from genwire.cli.short_ids import short_ids

    alone = "job_01m95keegjdqaf3sqrpm1xee9t"
    same_ms = ["job_01m95ks56k0cdp3sqrpm1xee9t", "job_01m95ks56k0cd7gndmqc1xfzgn"]
    assert short_ids([alone, *same_ms]) == {
        alone: "job_01m95keegj",
        same_ms[0]: "job_01m95ks56k0cdp",
        same_ms[1]: "job_01m95ks56k0cd7",
    }


def test_status_watch_and_cancel_take_the_short_id_that_jobs_shows(
    server: ServerProcess,
) -> None:
    job_id = submit_long_job(server)
    _, short = shown_id(listed_rows(genwire(server.url, "jobs").stdout), job_id)
    assert len(short) < len(job_id)

    shown = genwire(server.url, "status", short)
    cancelled = genwire(server.url, "cancel", short)
    watched = genwire(server.url, "watch", short.removeprefix("job_"))
    ambiguous = genwire(server.url, "status", "job_0")

    assert shown.returncode == 0, shown.stderr
    assert job_id in shown.stdout
    assert cancelled.returncode == 0, cancelled.stderr
    assert job_id in cancelled.stdout
    assert watched.returncode == 2, watched.stderr
    assert job_id in watched.stdout
    assert ambiguous.returncode == 3
    assert "give more of it" in one_line(ambiguous.stderr)


def test_jobs_with_no_jobs_says_so_and_how_to_start_one(server: ServerProcess) -> None:
    """Bug: a user with no jobs got an empty table."""
    listing = genwire(server.url, "jobs", key=BOB)

    assert listing.returncode == 0, listing.stderr
    assert "No jobs yet" in listing.stdout
    assert "genwire submit demo.video" in listing.stdout
    assert not set("─━┏┡│") & set(listing.stdout), listing.stdout


# --- errors ---------------------------------------------------------------------------


def test_an_unreachable_server_is_named_with_how_to_start_it_or_point_at_it() -> None:
    """Bug: "cannot reach the server: GET /api/pipelines: [Errno 111]" named no URL
    and suggested nothing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # closed once the block ends

    result = genwire(url, "jobs")

    said = one_line(result.stderr)
    assert result.returncode == 3
    assert f"cannot reach genwire at {url}" in said
    assert "genwire serve" in said
    assert "--server" in said
    assert "GENWIRE_URL" in said
    assert "[Errno" not in said


def test_a_missing_or_refused_api_key_says_to_set_genwire_api_key(server: ServerProcess) -> None:
    """Bug: a 401 said "Authorization: Bearer …", which a CLI user never writes."""
    missing = genwire(server.url, "jobs", key=None)
    refused = genwire(server.url, "jobs", key="not-a-key-of-this-server")

    assert missing.returncode == 3
    assert f"{server.url} wants an API key" in one_line(missing.stderr)
    assert "set GENWIRE_API_KEY" in one_line(missing.stderr)
    assert refused.returncode == 3
    assert f"{server.url} refused the API key in GENWIRE_API_KEY" in one_line(refused.stderr)
    assert "Bearer" not in missing.stderr + refused.stderr


def test_an_unknown_job_names_the_server_and_the_command_that_lists_jobs(
    server: ServerProcess,
) -> None:
    unknown = "job_" + "0" * 26

    result = genwire(server.url, "status", unknown)

    said = one_line(result.stderr)
    assert result.returncode == 3
    assert f"no job '{unknown}' at {server.url} (404 not-found)" in said
    assert "`genwire jobs` lists the jobs you can see" in said


def test_a_rate_limit_says_when_to_try_again(live_server: Callable[..., ThreadedServer]) -> None:
    limited = live_server(workers=0, create_rate_per_s=0.001, create_burst=1)
    first = genwire(limited.url, "submit", "demo.synthetic", "steps:=1", key=None)
    assert first.returncode == 0, first.stderr

    second = genwire(limited.url, "submit", "demo.synthetic", "steps:=1", key=None)

    said = one_line(second.stderr)
    assert second.returncode == 3
    assert f"genwire at {limited.url} holds this key back (429 rate-limited)" in said
    assert re.search(r"try again in \d+ s", said), said


def test_a_server_error_names_the_server_and_where_to_look() -> None:
    async def broken(request: Request) -> JSONResponse:
        problem = {"code": "internal-error", "detail": "the database is on fire"}
        return JSONResponse(problem, status_code=500, media_type="application/problem+json")

    app = Starlette(routes=[Route("/api/jobs", broken)])
    with ThreadedServer(app) as stub:
        result = genwire(stub.url, "jobs")

    said = one_line(result.stderr)
    assert result.returncode == 3
    assert f"genwire at {stub.url} failed (500 internal-error): the database is on fire" in said
    assert "try again" in said
    assert f"genwire doctor {stub.url}" in said


# --- help -----------------------------------------------------------------------------


def commands(group: click.Group, path: str = "genwire") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{path} {name}")


def help_at_80_columns(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_option_of_every_command_has_help() -> None:
    silent = [
        f"{path} {option.opts[0]}"
        for path, command in commands(main)
        for option in command.params
        if isinstance(option, click.Option) and not option.help
    ]
    assert not silent, silent


def test_submit_help_shows_the_input_syntax_with_examples() -> None:
    shown = help_at_80_columns("submit")

    assert_fits_80_columns(shown)
    assert re.search(r"KEY=VALUE +text", shown), shown
    assert re.search(r"KEY:=JSON +any JSON value", shown), shown
    assert 'genwire submit demo.video prompt="A lighthouse at dawn"' in shown
    assert re.search(r"genwire submit \S+ .*\w+:=\S", shown), shown


def test_the_top_level_help_shows_each_command_s_description_whole_at_80_columns() -> None:
    """Bug: `doctor`, `submit` and `watch` were cut to "…end to end..."."""
    shown = help_at_80_columns()

    assert_fits_80_columns(shown)
    listed = shown[shown.index("Commands:") :]
    assert not any(mark in listed for mark in CUT_MARKS), listed
    for name, command in main.commands.items():
        whole = command.get_short_help_str(limit=10_000)
        assert re.search(rf"^  {name} +{re.escape(whole)}$", shown, re.MULTILINE), (name, shown)


def test_worker_help_gives_one_default_for_data_dir() -> None:
    """Bug: `worker --help` showed `[default: genwire-data]` under --data-dir while
    saying that a worker on SQLite keeps its files beside the database."""
    shown = help_at_80_columns("worker")
    entry = one_line(shown[shown.index("--data-dir") : shown.index("--bus")])

    assert "[default: genwire-data]" not in entry
    assert "Default ./genwire-data; a worker on sqlite:///PATH: that file's folder" in entry


# --- endings --------------------------------------------------------------------------


def test_watch_of_a_job_cancelled_mid_run_ends_on_how_long_it_ran_with_no_eta(
    server: ServerProcess,
) -> None:
    """Bug: the last line of `watch` on a cancelled job was "ETA 9s cancelling"."""
    job_id = submit_long_job(server)  # running, with an ETA in its step-progress events
    assert genwire(server.url, "cancel", job_id).returncode == 0
    with http_of(server) as http:
        wait_for_status(http, job_id, {"cancelled"})

    watched = genwire(server.url, "watch", job_id)

    assert watched.returncode == 2, watched.stderr
    last_bar = watched.stderr.strip().splitlines()[-1]
    assert "ETA" not in last_bar, last_bar
    assert "cancelling" not in last_bar, last_bar
    assert last_bar.startswith("cancelled"), last_bar
    ending = watched.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"cancelled after \d+(\.\d)? (s|min)  {job_id}", ending), ending


def test_cancelling_a_job_that_had_ended_says_how_it_ended(server: ServerProcess) -> None:
    """Bug: it said "error (409 conflict): job … already ended cancelled"."""
    succeeded = genwire(
        server.url, "submit", "demo.synthetic", "steps:=1", "step_ms:=1", "--wait", "--json"
    )
    succeeded_id = json.loads(succeeded.stdout)["id"]
    cancelled_id = submit_long_job(server)
    assert genwire(server.url, "cancel", cancelled_id).returncode == 0
    with http_of(server) as http:
        wait_for_status(http, cancelled_id, {"cancelled"})

    again = genwire(server.url, "cancel", cancelled_id)
    too_late = genwire(server.url, "cancel", succeeded_id)

    assert again.returncode == 0, again.stderr
    assert re.match(rf"job {cancelled_id} had already ended: cancelled after ", again.stdout)
    assert too_late.returncode == 1, too_late.stderr
    assert re.match(rf"job {succeeded_id} had already ended: succeeded in ", too_late.stdout)
    assert "409" not in again.stderr + too_late.stderr
