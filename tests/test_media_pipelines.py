"""The media demo pipelines, run directly on a real PipelineContext through the
test double genwire ships for pipeline authors (`genwire.pipelines.testing`).

The reporter records; the MP4 is checked with the ffmpeg binary that
imageio-ffmpeg ships (it has no ffprobe), by reading `ffmpeg -i` and by decoding
every frame.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image
from pydantic import ValidationError

from genwire.models import StepState
from genwire.pipelines.base import JobCancelled, PipelineError
from genwire.pipelines.demo_image import ImageInput, demo_image
from genwire.pipelines.demo_video import VideoInput, demo_video
from genwire.pipelines.media.ffmpeg import FfmpegProcess
from genwire.pipelines.media.speech import synthesize
from genwire.pipelines.testing import PipelineRun, run_pipeline
from tests.media import inspect_media

VIDEO_INPUT = {"prompt": "A lighthouse at dawn, waves on the rocks. Gulls circle overhead."}
VIDEO_PHASES = ["plan", "tts", "visuals", "compose", "render"]


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """Cues as (start, end, text); asserts the numbering and the timestamp format."""

    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.split(":")
        secs, millis = rest.split(",")
        return int(hours) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000

    cues = []
    for number, block in enumerate(text.strip().split("\n\n"), start=1):
        index_line, span, *lines = block.split("\n")
        assert index_line == str(number)
        match = re.fullmatch(r"(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})", span)
        assert match is not None, span
        cues.append((seconds(match.group(1)), seconds(match.group(2)), " ".join(lines)))
    return cues


def child_ffmpeg_pids() -> set[int]:
    """Live or unreaped ffmpeg children of this process, from /proc."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        parent = int(text[text.rindex(")") + 2 :].split()[1])
        if parent == os.getpid() and "ffmpeg" in name:
            pids.add(int(stat.parent.name))
    return pids


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def video_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    return await run_pipeline(demo_video, VIDEO_INPUT, tmp_path_factory.mktemp("video"))


@pytest.mark.slow
def test_video_is_one_h264_and_one_aac_stream_at_the_requested_size(video_run: PipelineRun) -> None:
    info = inspect_media(video_run.reporter.file("video.mp4"))
    assert info.video_codecs == ["h264"]
    assert info.audio_codecs == ["aac"]
    assert info.size == (640, 360)


@pytest.mark.slow
def test_video_lasts_the_requested_duration_at_the_requested_fps(video_run: PipelineRun) -> None:
    info = inspect_media(video_run.reporter.file("video.mp4"))
    assert info.duration_s == pytest.approx(8.0, abs=0.1)
    assert info.frames == 8 * 24


@pytest.mark.slow
def test_video_subtitles_have_one_cue_per_scene_in_time_order(video_run: PipelineRun) -> None:
    cues = parse_srt(video_run.reporter.file("subtitles.srt").read_text(encoding="utf-8"))
    assert len(cues) == len(video_run.output["scenes"])
    previous_end = 0.0
    for start, end, text in cues:
        assert previous_end <= start < end <= 8.0
        assert text.strip()
        previous_end = end


@pytest.mark.slow
def test_video_output_names_its_artifacts_and_scene_timings(video_run: PipelineRun) -> None:
    output, artifacts = video_run.output, video_run.reporter.artifacts
    assert output["video"] == artifacts["video.mp4"].id
    assert output["subtitles"] == artifacts["subtitles.srt"].id
    assert output["poster"] == artifacts["poster.png"].id
    assert artifacts["video.mp4"].type == "video/mp4"
    assert artifacts["subtitles.srt"].type == "application/x-subrip"
    assert artifacts["poster.png"].type == "image/png"
    assert (output["duration_s"], output["width"], output["height"], output["fps"]) == (
        8.0,
        640,
        360,
        24,
    )
    scenes = output["scenes"]
    assert [scene["index"] for scene in scenes] == list(range(len(scenes)))
    assert scenes[0]["start_s"] == 0.0
    assert scenes[-1]["end_s"] == 8.0
    assert all(scene["caption"] for scene in scenes)
    with Image.open(video_run.reporter.file("poster.png")) as poster:
        assert poster.size == (640, 360)


@pytest.mark.slow
def test_video_progress_never_decreases_and_visits_every_phase_in_order(
    video_run: PipelineRun,
) -> None:
    reports = video_run.reporter.reports
    progress = [report.progress for report in reports]
    assert progress == sorted(progress)
    assert progress[-1] == 100.0
    assert video_run.reporter.started_phases() == VIDEO_PHASES
    completed = [report.phase for report in reports if report.state is StepState.COMPLETED]
    assert completed == VIDEO_PHASES
    render_reports = [r for r in reports if r.phase == "render" and r.state is None]
    assert any(report.eta_s is not None for report in render_reports)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds child processes in /proc")
async def test_cancel_during_render_raises_and_leaves_no_ffmpeg_running(tmp_path: Path) -> None:
    cancel = asyncio.Event()
    running_at_cancel: set[int] = set()

    def cancel_once_rendering(phase: str) -> None:
        if phase == "render" and not cancel.is_set():
            running_at_cancel.update(child_ffmpeg_pids())
            cancel.set()

    with pytest.raises(JobCancelled):
        await run_pipeline(
            demo_video, VIDEO_INPUT, tmp_path, cancel=cancel, on_progress=cancel_once_rendering
        )
    assert running_at_cancel, "ffmpeg should have been running when cancel was asked"
    assert child_ffmpeg_pids() == set()


async def test_ffmpeg_failure_raises_encode_failed_with_its_stderr(tmp_path: Path) -> None:
    arguments = [
        *("-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"),
        *("-s", "2x2", "-i", "pipe:0", "-c:v", "no_such_encoder", str(tmp_path / "out.mp4")),
    ]

    async def encode_one_frame() -> None:
        async with FfmpegProcess(arguments) as ffmpeg:
            await ffmpeg.write(bytes(12))
            await ffmpeg.finish()

    with pytest.raises(PipelineError) as failure:
        await encode_one_frame()
    assert failure.value.code == "encode_failed"
    assert "no_such_encoder" in failure.value.message


async def test_image_is_a_png_of_the_requested_size(tmp_path: Path) -> None:
    run = await run_pipeline(
        demo_image, {"prompt": "A red fox in fresh snow", "width": 320, "height": 200}, tmp_path
    )
    image = run.reporter.artifacts["image.png"]
    assert run.output["image"] == image.id
    assert image.type == "image/png"
    assert (run.output["width"], run.output["height"]) == (320, 200)
    assert isinstance(run.output["seed"], int)
    with Image.open(run.reporter.file("image.png")) as png:
        assert png.format == "PNG"
        assert png.size == (320, 200)
    assert run.reporter.started_phases() == ["plan", "render", "encode"]
    assert run.reporter.reports[-1].progress == 100.0


async def test_image_with_the_same_prompt_and_seed_is_the_same_picture(tmp_path: Path) -> None:
    raw_input = {"prompt": "Tide pools", "width": 96, "height": 64, "seed": 7}
    first = await run_pipeline(demo_image, raw_input, tmp_path / "first")
    second = await run_pipeline(demo_image, raw_input, tmp_path / "second")
    assert first.output["seed"] == 7
    first_png = first.reporter.artifacts["image.png"]
    assert first_png.sha256 == second.reporter.artifacts["image.png"].sha256


@pytest.mark.slow
async def test_video_frames_follow_the_seed_so_a_batch_can_differ(tmp_path: Path) -> None:
    """Regression: demo.video had no seed, so a batch of one prompt made identical clips."""
    smallest = {"prompt": "Tide pools", "duration_s": 1, "width": 160, "height": 90, "fps": 1}
    runs = {
        name: await run_pipeline(demo_video, {**smallest, "seed": seed}, tmp_path / name)
        for name, seed in (("first", 7), ("again", 7), ("other", 8))
    }
    posters = {name: run.reporter.artifacts["poster.png"].sha256 for name, run in runs.items()}
    assert posters["first"] == posters["again"]
    assert posters["first"] != posters["other"]
    assert runs["first"].output["seed"] == 7


async def test_speech_is_16_bit_mono_and_unknown_voices_fail() -> None:
    speech = await asyncio.to_thread(synthesize, "Hello there.", voice="en")
    assert speech.sample_rate > 0
    assert 0.3 < speech.duration_s < 3.0
    assert speech.samples.dtype.itemsize == 2
    with pytest.raises(PipelineError) as failure:
        await asyncio.to_thread(synthesize, "Hello.", voice="no-such-voice")
    assert failure.value.code == "unknown_voice"


@pytest.mark.parametrize(
    "raw_input",
    [
        {"prompt": ""},
        {"prompt": "   \n\t"},
        {"prompt": "x" * 1001},
        {"prompt": "ok", "duration_s": 10_000},
        {"prompt": "ok", "width": "640"},
        {"prompt": "ok", "width": 641},
        {"prompt": "ok", "fps": 0},
        {"prompt": "ok", "duration_s": 2, "scenes": 5},
        {"prompt": "ok", "voice": "en; rm -rf"},
        {"prompt": "ok", "colour": "blue"},
    ],
)
def test_video_input_rejects(raw_input: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VideoInput.model_validate(raw_input)


@pytest.mark.parametrize(
    "raw_input",
    [
        {"prompt": " "},
        {"prompt": "ok", "width": "768"},
        {"prompt": "ok", "height": 4096},
        {"prompt": "ok", "seed": -1},
    ],
)
def test_image_input_rejects(raw_input: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ImageInput.model_validate(raw_input)


def test_video_input_defaults_to_one_scene_per_three_seconds() -> None:
    params = VideoInput.model_validate({"prompt": "A quiet harbour"})
    assert (params.duration_s, params.width, params.height, params.fps) == (8.0, 640, 360, 24)
    assert params.scene_count == 3
