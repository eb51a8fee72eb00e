"""The narration track: speech clips placed on a silent timeline, written as WAV."""

from __future__ import annotations

import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from genwire.pipelines.media.speech import Speech

Samples = npt.NDArray[np.int16]


def compose_track(
    clips: Sequence[tuple[float, Speech]], *, duration_s: float, sample_rate: int
) -> Samples:
    """A mono track of exactly `duration_s`: each clip mixed in at its start time.

    Clips that run past the end are cut there; overlapping clips are summed.
    """
    mix = np.zeros(round(duration_s * sample_rate), dtype=np.int32)
    for start_s, speech in clips:
        if speech.sample_rate != sample_rate:
            raise ValueError(f"clip at {start_s} s is {speech.sample_rate} Hz, not {sample_rate}")
        start = min(round(start_s * sample_rate), len(mix))
        piece = speech.samples[: len(mix) - start]
        mix[start : start + len(piece)] += piece
    return np.clip(mix, -32768, 32767).astype(np.int16)


def write_wav(path: Path, samples: Samples, sample_rate: int) -> None:
    """Write mono 16-bit little-endian PCM."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(samples.astype("<i2").tobytes())
