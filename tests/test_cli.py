"""The `genwire` command against a real `genwire serve` process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from genwire.cli import coerce_to_schema, parse_input
from tests.cli_runs import run_genwire
from tests.conftest import ServerProcess
from tests.http_calls import wait_for_status
from tests.media import inspect_media

pytestmark = pytest.mark.slow


def genwire(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_genwire(server.url, *args, columns=200)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    from tests.conftest import start_server_process

    process = start_server_process(tmp_path_factory.mktemp("cli") / "data", "--workers", "2")
    yield process
    process.process.terminate()
    process.process.wait(timeout=20)


def test_key_value_pairs_are_strings_and_colon_equals_pairs_are_json() -> None:
    values, plain = parse_input(("prompt=A lighthouse", "duration_s:=8", "tags:=[1,2]"), None)
    assert values == {"prompt": "A lighthouse", "duration_s": 8, "tags": [1, 2]}
    assert plain == {"prompt"}
    assert parse_input(("steps:=3",), '{"steps": 1, "step_ms": 0}')[0] == {"steps": 3, "step_ms": 0}


def test_plain_values_become_numbers_where_the_schema_wants_numbers() -> None:
    schema = {
        "properties": {
            "prompt": {"type": "string"},
            "duration_s": {"type": "number"},
            "scenes": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        }
    }
    values = {"prompt": "8", "duration_s": "8", "scenes": "3", "other": "1"}
    assert coerce_to_schema(values, {"prompt", "duration_s", "scenes", "other"}, schema) == {
        "prompt": "8",
        "duration_s": 8,
        "scenes": 3,
        "other": "1",
    }


def test_submit_reads_plain_numbers_by_the_pipeline_schema(server: ServerProcess) -> None:
    result = genwire(server, "submit", "demo.synthetic", "steps=3", "step_ms=1", "--wait")
    assert result.returncode == 0, result.stderr


def test_submit_wait_follows_the_job_and_prints_its_artifacts(server: ServerProcess) -> None:
    result = genwire(
        server,
        "submit",
        "demo.synthetic",
        "steps:=5",
        "step_ms:=20",
        "output_bytes:=2048",
        "--wait",
    )
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    assert "output.bin" in result.stdout
    assert f"{server.url}/api/files/art_" in result.stdout


def test_submit_wait_exits_1_when_the_job_fails_and_shows_the_error(server: ServerProcess) -> None:
    result = genwire(
        server, "submit", "demo.synthetic", "steps:=5", "step_ms:=1", "fail_at:=3", "--wait"
    )
    assert result.returncode == 1
    assert "synthetic_failure" in result.stdout


def test_submit_with_bad_input_names_the_field_and_exits_3(server: ServerProcess) -> None:
    result = genwire(server, "submit", "demo.video", "prompt=", "duration_s:=10000")
    assert result.returncode == 3
    assert "input.prompt" in result.stderr
    assert "input.duration_s" in result.stderr


def test_status_jobs_and_cancel_speak_about_the_same_job(server: ServerProcess) -> None:
    submitted = genwire(server, "submit", "demo.synthetic", "steps:=400", "step_ms:=50", "--json")
    job_id = json.loads(submitted.stdout)["id"]

    listed = genwire(server, "jobs", "--json")
    assert job_id in [job["id"] for job in json.loads(listed.stdout)["items"]]

    cancelled = genwire(server, "cancel", job_id)
    assert cancelled.returncode == 0
    assert job_id in cancelled.stdout

    shown = genwire(server, "status", job_id, "--json")
    assert json.loads(shown.stdout)["cancel_requested"] is True


def test_an_unknown_job_is_a_clear_error(server: ServerProcess) -> None:
    result = genwire(server, "status", "job_doesnotexist")
    assert result.returncode == 3
    assert "404" in result.stderr
    assert "job_doesnotexist" in result.stderr


def test_a_worker_on_a_sqlite_database_stores_artifacts_where_the_api_serves_them(
    serve_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Bug: without --data-dir, `genwire worker` kept artifacts in ./genwire-data, so
    the API node on the same SQLite database answered 404 for every file."""
    api = serve_process("--workers", "0")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "genwire",
            "worker",
            "--database",
            f"sqlite:///{api.data_dir / 'genwire.db'}",
        ],
        cwd=elsewhere,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "GENWIRE_DATA_DIR"},
    )
    try:
        with api.client() as client:
            body = {"pipeline": "demo.synthetic", "input": {"steps": 1, "output_bytes": 100}}
            created = client.post("/api/jobs", json=body).json()
            job = wait_for_status(client, created["id"], {"succeeded", "failed", "cancelled"})
            assert job["status"] == "succeeded", job

            download = client.get(job["artifacts"][0]["url"])
    finally:
        worker.terminate()
        worker.wait(timeout=20)

    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == job["artifacts"][0]["sha256"]
    assert not (elsewhere / "genwire-data").exists()


def test_serve_refuses_a_public_address_without_an_api_key(
    serve_process: Callable[..., ServerProcess],
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "genwire", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "GENWIRE_API_KEYS"},
    )
    assert result.returncode != 0
    assert "--insecure" in result.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_node_on_a_shared_database_refuses_to_start_without_the_shared_secret(
    command: str, tmp_path: Path
) -> None:
    """Bug: the refusal came as a start-up traceback, after a secret of the node's
    own had been written to its data dir and announced in the log."""
    data_dir = tmp_path / "node"
    database = "postgresql://postgres@127.0.0.1:9/never-reached"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "genwire",
            command,
            "--database",
            database,
            "--data-dir",
            str(data_dir),
            *(["--port", "0"] if command == "serve" else []),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "GENWIRE_WEBHOOK_SECRET"},
    )
    assert result.returncode == 2  # a usage error, before anything started
    assert "GENWIRE_WEBHOOK_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (data_dir / "webhook-secret").exists()


def test_the_quick_demo_makes_a_playable_mp4_through_the_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    result = genwire(
        server,
        "submit",
        "demo.video",
        "prompt=A lighthouse at dawn",
        "duration_s=4",
        "--wait",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    artifacts = {artifact["name"]: artifact for artifact in job["artifacts"]}
    assert {"video.mp4", "subtitles.srt", "poster.png"} <= set(artifacts)
    assert artifacts["video.mp4"]["type"] == "video/mp4"

    video = tmp_path / "video.mp4"
    with server.client() as client:
        video.write_bytes(client.get(artifacts["video.mp4"]["url"]).content)
    assert hashlib.sha256(video.read_bytes()).hexdigest() == artifacts["video.mp4"]["sha256"]
    info = inspect_media(video)
    assert info.video_codecs == ["h264"]
    assert info.audio_codecs == ["aac"]
    assert info.size == (640, 360)
    assert abs(info.duration_s - 4.0) < 0.1


def test_watch_follows_a_job_live_and_exits_by_its_outcome(server: ServerProcess) -> None:
    submitted = genwire(
        server, "submit", "demo.synthetic", "steps:=20", "step_ms:=20", "warn_at:=2", "--json"
    )
    job_id = json.loads(submitted.stdout)["id"]

    watched = genwire(server, "watch", job_id)

    assert watched.returncode == 0, watched.stderr
    assert "warning synthetic warning at step 2" in watched.stderr
    assert "work completed" in watched.stderr
    assert re.search(rf"^succeeded in \S+ s  {job_id}$", watched.stdout, re.MULTILINE)


def test_watch_exits_2_for_a_cancelled_job(server: ServerProcess) -> None:
    submitted = genwire(server, "submit", "demo.synthetic", "steps:=400", "step_ms:=50", "--json")
    job_id = json.loads(submitted.stdout)["id"]
    assert genwire(server, "cancel", job_id).returncode == 0

    watched = genwire(server, "watch", job_id)

    assert watched.returncode == 2
    assert "cancelled" in watched.stdout
