"""A Ken Burns camera over keyframes: each scene slowly pans and zooms, scenes cross-fade.

Keyframes are painted `ZOOM` times larger than the frame, which leaves room to
move. Each frame is a sub-pixel crop of its keyframe resized to the frame size
(Pillow's `resize(box=...)`): integer slicing would make slow pans judder.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from genwire.pipelines.media.captions import Caption

ZOOM = 1.15  #: keyframe size over frame size
FADE_S = 0.4  #: cross-fade between scenes, centred on the cut


def keyframe_size(frame_size: tuple[int, int]) -> tuple[int, int]:
    width, height = frame_size
    return math.ceil(width * ZOOM), math.ceil(height * ZOOM)


@dataclass(frozen=True)
class CameraMove:
    """Zoom (1 = the whole keyframe, `ZOOM` = frame-size crop) and pan (0 to 1 of the free room)."""

    zoom_from: float
    zoom_to: float
    pan_from: tuple[float, float]
    pan_to: tuple[float, float]

    @classmethod
    def random(cls, seed: int) -> CameraMove:
        rng = random.Random(seed)
        zooms = (1.0, ZOOM)
        zoom_from, zoom_to = zooms if rng.random() < 0.5 else zooms[::-1]
        return cls(
            zoom_from=zoom_from,
            zoom_to=zoom_to,
            pan_from=(rng.random(), rng.random()),
            pan_to=(rng.random(), rng.random()),
        )


@dataclass(frozen=True)
class Shot:
    """One scene on screen: a keyframe, its caption and its camera move over a time span."""

    keyframe: Image.Image
    caption: Caption
    move: CameraMove
    start_s: float
    end_s: float

    def render(self, time_s: float, size: tuple[int, int]) -> Image.Image:
        """The camera's view at `time_s`, without the caption."""
        span = max(self.end_s - self.start_s, 1e-6)
        linear = min(max((time_s - self.start_s) / span, 0.0), 1.0)
        eased = linear * linear * (3 - 2 * linear)
        move = self.move
        zoom = move.zoom_from + (move.zoom_to - move.zoom_from) * eased
        pan_x = move.pan_from[0] + (move.pan_to[0] - move.pan_from[0]) * eased
        pan_y = move.pan_from[1] + (move.pan_to[1] - move.pan_from[1]) * eased
        key_width, key_height = self.keyframe.size
        box_width, box_height = key_width / zoom, key_height / zoom
        left = (key_width - box_width) * pan_x
        top = (key_height - box_height) * pan_y
        return self.keyframe.resize(
            size, Image.Resampling.BILINEAR, box=(left, top, left + box_width, top + box_height)
        )


class Reel:
    """The frames of a clip of `duration_s` at `fps`, drawn from shots on demand."""

    def __init__(
        self, shots: Sequence[Shot], *, size: tuple[int, int], fps: int, duration_s: float
    ) -> None:
        if not shots:
            raise ValueError("a reel needs at least one shot")
        self._shots = list(shots)
        self._starts = [shot.start_s for shot in shots]
        self.size = size
        self.fps = fps
        self.frame_count = max(1, round(duration_s * fps))

    def frame(self, index: int) -> Image.Image:
        """Frame `index`: its shot's view, cross-faded near a cut, under the shot's caption.

        Captions switch at the cut rather than fade: two blended captions are unreadable.
        """
        time_s = index / self.fps
        position = max(0, bisect.bisect_right(self._starts, time_s) - 1)
        shot = self._shots[position]
        picture = shot.render(time_s, self.size)
        half = FADE_S / 2
        if position + 1 < len(self._shots) and time_s > shot.end_s - half:
            following = self._shots[position + 1].render(time_s, self.size)
            picture = Image.blend(picture, following, (time_s - shot.end_s + half) / FADE_S)
        elif position > 0 and time_s < shot.start_s + half:
            previous = self._shots[position - 1].render(time_s, self.size)
            picture = Image.blend(previous, picture, (time_s - shot.start_s + half) / FADE_S)
        shot.caption.draw_on(picture)
        return picture

    def rgb_frames(self, start: int, stop: int) -> list[bytes]:
        """Frames `start` up to `stop`, each as packed 8-bit RGB (ffmpeg's `rgb24`)."""
        return [self.frame(index).tobytes() for index in range(start, stop)]
