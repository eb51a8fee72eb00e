"""The README's own pipelines, as written: loaded with `--pipelines` into a real
`genwire serve`, and `my.story` calling Runware's fake through `ctx.run_remote`."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import pytest

from genwire.pipelines import default_registry
from genwire.pipelines.loading import PipelineLoadError, registry_with
from tests.conftest import ServerProcess
from tests.http_calls import wait_for_status
from tests.providers_world import BY_NAME, TERMINAL, world

README = Path(__file__).parent.parent / "README.md"


def _example_module(folder: Path) -> str:
    """Write the README's `my_pipelines.py` into `folder`; returns its module name."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (example,) = [block for block in blocks if '@pipeline(\n    "my.story"' in block]
    (folder / "my_pipelines.py").write_text(example)
    return "my_pipelines"


@pytest.mark.slow
def test_serve_loads_the_readme_pipelines_and_my_upscale_runs_as_written(
    serve_process: Callable[..., ServerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    module = _example_module(tmp_path)
    server = serve_process("--pipelines", module)
    with server.client() as http:
        names = [item["name"] for item in http.get("/api/pipelines").json()["items"]]
        assert {"my.upscale", "my.story"} <= set(names)
        image = http.post("/api/jobs", json={"pipeline": "demo.image", "input": {"prompt": "x"}})
        source = wait_for_status(http, image.json()["id"], TERMINAL, 60)
        source_url = server.url + source["artifacts"][0]["url"]  # type: ignore[index]
        job = http.post(
            "/api/jobs", json={"pipeline": "my.upscale", "input": {"image_url": source_url}}
        ).json()
        upscaled = wait_for_status(http, job["id"], TERMINAL, 60)
        assert upscaled["status"] == "succeeded", upscaled["error"]
        artifact = upscaled["artifacts"][0]  # type: ignore[index]
        assert artifact["type"] == "image/png"
        story = http.post("/api/jobs", json={"pipeline": "my.story", "input": {"scenes": ["a"]}})
        assert story.status_code == 422
        assert story.json()["code"] == "provider-not-configured"


def test_my_story_makes_its_clips_at_runware_and_joins_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _example_module(tmp_path)
    case = BY_NAME["runware"]
    registry = registry_with(default_registry(), ["my_pipelines"])
    with world(case, tmp_path, registry=registry) as w:
        job = w.submit({"pipeline": "my.story", "input": {"scenes": ["dawn", "noon", "dusk"]}})
        ended = w.wait_until_ended(job["id"], timeout=60)
        assert ended["status"] == "succeeded", ended["error"]
        assert ended["output"]["scenes"] == 3
        prompts = [task["positivePrompt"] for task in w.fake.submissions]  # type: ignore[attr-defined]
        assert prompts == ["dawn", "noon", "dusk"]
        story = next(a for a in ended["artifacts"] if a["name"] == "story.mp4")
        joined = tmp_path / "story.mp4"
        joined.write_bytes(w.http.get(story["url"]).content)
        probe = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(joined)],
            capture_output=True,
            text=True,
        )
        duration = re.search(r"Duration: 00:00:(\d+\.\d+)", probe.stderr)
        assert duration, probe.stderr
        assert float(duration.group(1)) == pytest.approx(3.0, abs=0.5)  # three 1 s clips


def test_a_pipeline_module_that_does_not_import_is_a_clear_error() -> None:
    with pytest.raises(PipelineLoadError, match="cannot import pipeline module 'no_such_mod'"):
        registry_with(default_registry(), ["no_such_mod"])


def test_a_module_with_no_pipeline_is_refused() -> None:
    with pytest.raises(PipelineLoadError, match="defines no pipeline"):
        registry_with(default_registry(), ["json"])


def test_genwire_serve_says_which_pipeline_module_failed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "genwire", "serve", "--port", "0", "--pipelines", "no_such_mod"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "cannot import pipeline module 'no_such_mod'" in done.stderr


def test_an_installed_packages_entry_point_brings_its_pipelines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distribution on the path that declares `genwire.pipelines` entry points, as
    `pip install` leaves one (a dist-info folder), is loaded without being named."""
    _example_module(tmp_path)
    dist_info = tmp_path / "my_pipelines-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-pipelines\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[genwire.pipelines]\nupscale = my_pipelines:upscale\nall = my_pipelines\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = registry_with(default_registry(), [])
    names = {item.name for item in registry}
    assert {"my.upscale", "my.story"} <= names
