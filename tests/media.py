"""Reading a media file as the tests check it: streams, size, duration and frames,
with the ffmpeg that imageio-ffmpeg ships (it has no ffprobe)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from genwire.pipelines.media.ffmpeg import ffmpeg_executable


@dataclass(frozen=True)
class MediaInfo:
    video_codecs: list[str]
    audio_codecs: list[str]
    size: tuple[int, int]
    duration_s: float
    frames: int


def inspect_media(path: Path) -> MediaInfo:
    """Streams and duration from `ffmpeg -i`; the frame count from decoding every frame."""
    header = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        check=False,
    ).stderr
    decoded = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-i", str(path), "-map", "0:v", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    duration = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", header)
    size = re.search(r"Stream #\S+: Video: .*?, (\d+)x(\d+)", header)
    assert duration is not None, header
    assert size is not None, header
    hours, minutes, seconds = duration.groups()
    return MediaInfo(
        video_codecs=re.findall(r"Stream #\S+: Video: (\w+)", header),
        audio_codecs=re.findall(r"Stream #\S+: Audio: (\w+)", header),
        size=(int(size.group(1)), int(size.group(2))),
        duration_s=int(hours) * 3600 + int(minutes) * 60 + float(seconds),
        frames=int(re.findall(r"frame=\s*(\d+)", decoded)[-1]),
    )
