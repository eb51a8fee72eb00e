"""ffmpeg, the binary the imageio-ffmpeg wheel ships, run as an async subprocess.

`FfmpegProcess` never blocks the event loop, and a caller that fails or is
cancelled before `finish()` leaves no process behind: leaving the `async with`
block kills and reaps it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg

from genwire.pipelines.base import PipelineError

STDERR_TAIL_LINES = 20


def ffmpeg_executable() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def mp4_arguments(
    output: Path, *, width: int, height: int, fps: int, audio: Path, duration_s: float
) -> list[str]:
    """Encode rgb24 frames from stdin plus a WAV file into an H.264/AAC MP4."""
    return [
        *("-hide_banner", "-nostats", "-loglevel", "error", "-y"),
        *("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"),
        *("-framerate", str(fps), "-i", "pipe:0"),
        *("-i", str(audio)),
        *("-map", "0:v:0", "-map", "1:a:0"),
        *("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-b:a", "128k", "-ar", "48000"),
        *("-t", f"{duration_s:.3f}", "-movflags", "+faststart"),
        str(output),
    ]


class FfmpegProcess:
    """An ffmpeg run that reads its input from stdin.

    Use as `async with FfmpegProcess(args) as ffmpeg: await ffmpeg.write(...); await
    ffmpeg.finish()`. A non-zero exit raises `PipelineError(code="encode_failed")`
    with the tail of ffmpeg's stderr.
    """

    def __init__(self, arguments: Sequence[str]) -> None:
        self._arguments = list(arguments)
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._process: asyncio.subprocess.Process | None = None
        self._stderr_reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FfmpegProcess:
        self._process = await asyncio.create_subprocess_exec(
            ffmpeg_executable(),
            *self._arguments,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        # Read stderr all along: a full pipe would stall ffmpeg and then our writes.
        self._stderr_reader = asyncio.create_task(self._read_stderr())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            process.kill()
            await process.wait()
        if self._stderr_reader is not None:
            await self._stderr_reader

    async def write(self, *chunks: bytes) -> None:
        """Feed `chunks` to ffmpeg's stdin, waiting while its pipe is full."""
        stdin = self._running().stdin
        assert stdin is not None
        try:
            stdin.writelines(chunks)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            await self.finish()
            raise PipelineError("ffmpeg stopped reading its input", code="encode_failed") from None

    async def finish(self) -> None:
        """Close stdin, wait for ffmpeg to exit and check how it exited."""
        process = self._running()
        assert process.stdin is not None
        process.stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await process.stdin.wait_closed()
        returncode = await process.wait()
        if self._stderr_reader is not None:
            await self._stderr_reader
        if returncode != 0:
            tail = "\n".join(self._stderr_tail) or "(no output)"
            raise PipelineError(f"ffmpeg exited with {returncode}: {tail}", code="encode_failed")

    def _running(self) -> asyncio.subprocess.Process:
        if self._process is None:
            raise RuntimeError("use FfmpegProcess as `async with` before writing to it")
        return self._process

    async def _read_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        async for line in self._process.stderr:
            self._stderr_tail.append(line.decode(errors="replace").rstrip())
