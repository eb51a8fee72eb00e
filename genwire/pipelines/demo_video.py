"""`demo.video`, the Quick Demo: a narrated, subtitled H.264/AAC MP4 from a prompt (SPEC §7).

It needs no provider: scenes are planned from the prompt, spoken by eSpeak NG,
painted procedurally, moved with a Ken Burns camera and encoded by ffmpeg.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from genwire.models import JsonObject
from genwire.pipelines.base import PipelineContext, pipeline
from genwire.pipelines.media.art import Painter, seed_from
from genwire.pipelines.media.audio import compose_track, write_wav
from genwire.pipelines.media.captions import Caption
from genwire.pipelines.media.ffmpeg import FfmpegProcess, mp4_arguments
from genwire.pipelines.media.inputs import MAX_SEED, Prompt, seed_or_random
from genwire.pipelines.media.motion import CameraMove, Reel, Shot, keyframe_size
from genwire.pipelines.media.scenes import (
    MAX_SCENES,
    MIN_SCENE_S,
    Scene,
    default_scene_count,
    plan_scenes,
)
from genwire.pipelines.media.speech import Speech, speak_to_fit
from genwire.pipelines.media.subtitles import Cue, format_srt

NARRATION_LEAD_S = 0.15  #: silence before each scene's narration
NARRATION_TAIL_S = 0.15  #: silence kept after it, before the next scene
FRAMES_PER_BATCH = 8
REPORT_INTERVAL_S = 0.1  #: at most ~10 progress events a second while rendering
FRAMES_SHARE = 95.0  #: render progress once every frame is piped; ffmpeg's flush is the rest


class VideoInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: Prompt
    duration_s: float = Field(
        8.0, ge=1, le=300, title="Duration (seconds)", description="Length of the clip, seconds."
    )
    width: int = Field(
        640,
        ge=160,
        le=1920,
        multiple_of=2,
        title="Width (pixels)",
        description="Frame width, pixels.",
    )
    height: int = Field(
        360,
        ge=90,
        le=1080,
        multiple_of=2,
        title="Height (pixels)",
        description="Frame height, pixels.",
    )
    fps: int = Field(24, ge=1, le=60, title="Frames per second", description="Frames per second.")
    scenes: int | None = Field(
        None,
        ge=1,
        le=MAX_SCENES,
        title="Scenes",
        description="Number of scenes; by default one per 3 seconds.",
    )
    voice: str = Field(
        "en",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_+-]{0,39}$",
        title="Voice",
        description="An eSpeak NG voice: en, en-us, fr, de, es, …",
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        title="Seed",
        description="Same prompt and seed, same pictures; none for random.",
    )

    @model_validator(mode="after")
    def _scenes_fit_duration(self) -> VideoInput:
        if self.scenes is not None and self.scenes * MIN_SCENE_S > self.duration_s:
            raise ValueError(f"each scene needs at least {MIN_SCENE_S:g} s of the duration")
        return self

    @property
    def scene_count(self) -> int:
        return self.scenes if self.scenes is not None else default_scene_count(self.duration_s)


@pipeline(
    "demo.video",
    input=VideoInput,
    phases={
        "plan": (0, 15),
        "tts": (15, 35),
        "visuals": (35, 65),
        "compose": (65, 85),
        "render": (85, 100),
    },
)
async def demo_video(ctx: PipelineContext, params: VideoInput) -> JsonObject:
    """A narrated, subtitled H.264/AAC MP4 from a prompt, with no provider needed."""
    size = (params.width, params.height)

    await ctx.phase("plan")
    seed = seed_or_random(params.seed)
    scenes = plan_scenes(params.prompt, count=params.scene_count, duration_s=params.duration_s)
    await ctx.report(100, f"{len(scenes)} scenes, seed {seed}")

    await ctx.phase("tts")
    narrations = await _narrate(ctx, scenes, params.voice)

    await ctx.phase("visuals")
    shots = await _paint_shots(ctx, scenes, seed_from(params.prompt, seed), size)
    reel = Reel(shots, size=size, fps=params.fps, duration_s=params.duration_s)
    poster_path = ctx.workdir / "poster.png"
    await asyncio.to_thread(lambda: reel.frame(0).save(poster_path))
    poster = await ctx.artifact(poster_path, media_type="image/png")

    await ctx.phase("compose")
    audio_path = ctx.workdir / "narration.wav"
    sample_rate = narrations[0].sample_rate
    clips = [
        (scene.start_s + NARRATION_LEAD_S, speech)
        for scene, speech in zip(scenes, narrations, strict=True)
    ]
    track = await asyncio.to_thread(
        compose_track, clips, duration_s=params.duration_s, sample_rate=sample_rate
    )
    await asyncio.to_thread(write_wav, audio_path, track, sample_rate)
    await ctx.report(60, "narration track mixed")
    subtitles_path = ctx.workdir / "subtitles.srt"
    cues = [
        Cue(start_s, start_s + speech.duration_s, scene.narration)
        for (start_s, speech), scene in zip(clips, scenes, strict=True)
    ]
    await asyncio.to_thread(subtitles_path.write_text, format_srt(cues), encoding="utf-8")
    subtitles = await ctx.artifact(subtitles_path, media_type="application/x-subrip")

    await ctx.phase("render")
    video_path = ctx.workdir / "video.mp4"
    await _render(ctx, reel, video_path, audio_path, params)
    video = await ctx.artifact(video_path, media_type="video/mp4")

    return {
        "duration_s": params.duration_s,
        "width": params.width,
        "height": params.height,
        "fps": params.fps,
        "seed": seed,
        "scenes": [
            {
                "index": scene.index,
                "caption": scene.caption,
                "start_s": round(scene.start_s, 3),
                "end_s": round(scene.end_s, 3),
            }
            for scene in scenes
        ],
        "video": video.id,
        "subtitles": subtitles.id,
        "poster": poster.id,
    }


async def _narrate(ctx: PipelineContext, scenes: list[Scene], voice: str) -> list[Speech]:
    """Speak each scene's narration to fit its scene, cutting (with a warning) what cannot."""
    narrations = []
    for scene in scenes:
        ctx.raise_if_cancelled()
        room = scene.duration_s - NARRATION_LEAD_S - NARRATION_TAIL_S
        speech = await asyncio.to_thread(speak_to_fit, scene.narration, voice=voice, max_s=room)
        if speech.duration_s > room:
            await ctx.warn(
                f"scene {scene.index + 1}'s narration ran {speech.duration_s:.1f} s "
                f"and was cut to {room:.1f} s; try fewer scenes or a longer duration",
                code="narration_cut",
            )
            speech = speech.trimmed(room)
        narrations.append(speech)
        await ctx.report(
            100 * (scene.index + 1) / len(scenes), f"narrated scene {scene.index + 1}/{len(scenes)}"
        )
    return narrations


async def _paint_shots(
    ctx: PipelineContext, scenes: list[Scene], seed: int, size: tuple[int, int]
) -> list[Shot]:
    """Each scene's keyframe and camera move, drawn from `seed` (the prompt's and the job's)."""
    shots = []
    for scene in scenes:
        ctx.raise_if_cancelled()
        painter = Painter(keyframe_size(size), seed_from(seed, scene.index))
        keyframe = await asyncio.to_thread(painter.paint)
        caption = await asyncio.to_thread(Caption.build, scene.caption, size)
        move = CameraMove.random(seed_from(seed, scene.index, "camera"))
        shots.append(Shot(keyframe, caption, move, scene.start_s, scene.end_s))
        await ctx.report(
            100 * (scene.index + 1) / len(scenes), f"painted scene {scene.index + 1}/{len(scenes)}"
        )
    return shots


async def _render(
    ctx: PipelineContext, reel: Reel, video_path: Path, audio_path: Path, params: VideoInput
) -> None:
    """Pipe every frame into ffmpeg, reporting progress with an ETA a few times a second."""
    arguments = mp4_arguments(
        video_path,
        width=params.width,
        height=params.height,
        fps=params.fps,
        audio=audio_path,
        duration_s=params.duration_s,
    )
    loop = asyncio.get_running_loop()
    total = reel.frame_count
    async with FfmpegProcess(arguments) as ffmpeg:
        started = last_report = loop.time()
        for first in range(0, total, FRAMES_PER_BATCH):
            ctx.raise_if_cancelled()
            done = min(first + FRAMES_PER_BATCH, total)
            await ffmpeg.write(*await asyncio.to_thread(reel.rgb_frames, first, done))
            now = loop.time()
            if now - last_report >= REPORT_INTERVAL_S or done == total:
                last_report = now
                eta_s = (now - started) / done * (total - done)
                await ctx.report(
                    FRAMES_SHARE * done / total, f"frame {done}/{total}", eta_s=round(eta_s, 1)
                )
        await ffmpeg.finish()
    await ctx.report(100, "encoded")
