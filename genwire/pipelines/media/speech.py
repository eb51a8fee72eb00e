"""Text to speech with eSpeak NG, through ctypes on the library espeakng-loader ships.

eSpeak NG keeps global state and is not thread-safe, so every call holds one
module lock; the library is initialised once, on first use. Calls block: run
them with `asyncio.to_thread`.
"""

from __future__ import annotations

import ctypes
import functools
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import espeakng_loader
import numpy as np
import numpy.typing as npt

from genwire.pipelines.base import PipelineError

RATE_NORMAL_WPM = 175  #: espeakRATE_NORMAL
RATE_MAX_WPM = 450  #: espeakRATE_MAXIMUM
FADE_OUT_S = 0.02

# Values from espeak-ng's speak_lib.h (API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return -1 instead of calling exit() when data is missing
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAMETER_RATE = 1
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
_lock = threading.Lock()


@dataclass(frozen=True)
class Speech:
    """Mono 16-bit PCM."""

    samples: npt.NDArray[np.int16]
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def trimmed(self, max_s: float) -> Speech:
        """At most `max_s` long, with a short fade-out so the cut does not click."""
        keep = max(0, int(max_s * self.sample_rate))
        if keep >= len(self.samples):
            return self
        fade = min(keep, int(FADE_OUT_S * self.sample_rate))
        cut = self.samples[:keep].astype(np.float32)
        cut[keep - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return Speech(cut.astype(np.int16), self.sample_rate)


def synthesize(text: str, *, voice: str = "en", rate_wpm: int = RATE_NORMAL_WPM) -> Speech:
    """Speak `text` with the eSpeak NG voice `voice` (e.g. "en", "en-us", "fr").

    Raises `PipelineError` with code `unknown_voice` or `tts_failed`.
    """
    with _lock:
        return _engine().speak(text, voice, rate_wpm)


def speak_to_fit(text: str, *, voice: str, max_s: float) -> Speech:
    """Speak at the normal rate, or faster, up to the maximum rate, to last at most `max_s`.

    The result can still run past `max_s` when even the maximum rate is too slow.
    """
    speech = synthesize(text, voice=voice)
    if speech.duration_s <= max_s or max_s <= 0:
        return speech
    # Pauses do not shrink with the rate, so ask for a little more speed than the ratio.
    rate = math.ceil(RATE_NORMAL_WPM * speech.duration_s / max_s * 1.1)
    return synthesize(text, voice=voice, rate_wpm=min(rate, RATE_MAX_WPM))


class _Engine:
    """The initialised library. Only ever used under `_lock`."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        # The path names the folder that holds espeak-ng-data, not that folder itself.
        data_root = str(Path(espeakng_loader.get_data_path()).parent).encode()
        sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_root, _INITIALIZE_DONT_EXIT
        )
        if sample_rate <= 0:
            raise PipelineError("eSpeak NG could not be initialised", code="tts_failed")
        self._lib = lib
        self._sample_rate: int = sample_rate
        self._chunks: list[bytes] = []
        # Kept on self: the library holds only a raw pointer to the callback.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def speak(self, text: str, voice: str, rate_wpm: int) -> Speech:
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise PipelineError(f"eSpeak NG has no voice {voice!r}", code="unknown_voice")
        self._lib.espeak_SetParameter(_PARAMETER_RATE, rate_wpm, 0)
        self._chunks = []
        encoded = text.encode()
        status = self._lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != _EE_OK:
            raise PipelineError(f"eSpeak NG failed with status {status}", code="tts_failed")
        samples = np.frombuffer(b"".join(self._chunks), dtype=np.int16)
        self._chunks = []
        return Speech(samples, self._sample_rate)

    def _collect(
        self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int | None
    ) -> int:
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * ctypes.sizeof(ctypes.c_short)))
        return 0  # 0: go on synthesising


@functools.cache
def _engine() -> _Engine:
    return _Engine()
