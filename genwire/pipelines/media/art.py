"""Procedural pictures: a lit gradient sky, soft lights, a sun, hills and stars.

Everything follows from one seed, so a prompt (hashed with `seed_from`) always
paints the same picture. Painting is CPU work: run it in a thread.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Size = tuple[int, int]
Color = tuple[int, int, int, int]


def seed_from(*parts: object) -> int:
    """A stable 64-bit seed from any parts; unlike `hash()`, the same in every process."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


class Painter:
    """Paints one picture of `size` from `seed`, in two steps: `background`, then `scenery`.

    The steps share one random stream: call them once each, in that order (or `paint`).
    """

    def __init__(self, size: Size, seed: int) -> None:
        self.size = size
        self._rng = random.Random(seed)
        self._hue = self._rng.random()
        self._light = (self._rng.uniform(0.15, 0.85), self._rng.uniform(0.15, 0.45))

    def paint(self) -> Image.Image:
        return self.scenery(self.background())

    def background(self) -> Image.Image:
        """A two-colour gradient at a random angle, brightened around the light."""
        width, height = self.size
        angle = self._rng.uniform(-0.6, 0.6) + math.pi / 2
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        xs /= max(width, height)
        ys /= max(width, height)
        along = xs * math.cos(angle) + ys * math.sin(angle)
        along = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
        top = np.array(self._color(0.0, 0.65, 0.22)[:3], dtype=np.float32)
        bottom = np.array(self._color(self._rng.uniform(0.08, 0.3), 0.55, 0.9)[:3], np.float32)
        pixels = top + (bottom - top) * along[..., None]
        light_x, light_y = self._light
        distance = (xs - light_x * width / max(width, height)) ** 2 + (
            ys - light_y * height / max(width, height)
        ) ** 2
        glow = np.exp(-distance / 0.05)[..., None]
        pixels += (255.0 - pixels) * 0.45 * glow
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")

    def scenery(self, canvas: Image.Image) -> Image.Image:
        """Soft lights, a sun at the light, layered hills and a scatter of stars."""
        width, height = self.size
        unit = min(width, height)
        lights = Image.new("RGBA", self.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(lights)
        for _ in range(self._rng.randint(8, 14)):
            radius = unit * self._rng.uniform(0.03, 0.14)
            x, y = self._rng.uniform(0, width), self._rng.uniform(0, height * 0.8)
            hue_shift, alpha = self._rng.uniform(-0.15, 0.15), self._rng.randint(30, 90)
            draw.ellipse(
                (x - radius, y - radius, x + radius, y + radius),
                fill=self._color(hue_shift, 0.45, 1.0, alpha),
            )
        lights = lights.filter(ImageFilter.GaussianBlur(max(1, unit // 60)))

        shapes = Image.new("RGBA", self.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(shapes)
        for _ in range(self._rng.randint(20, 60)):
            x, y = self._rng.uniform(0, width), self._rng.uniform(0, height * 0.4)
            dot = unit * self._rng.uniform(0.002, 0.006)
            draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=(255, 255, 240, 200))
        sun = unit * self._rng.uniform(0.06, 0.11)
        sun_x, sun_y = self._light[0] * width, self._light[1] * height
        draw.ellipse(
            (sun_x - sun, sun_y - sun, sun_x + sun, sun_y + sun),
            fill=self._color(0.1, 0.25, 1.0, 230),
        )
        layers = self._rng.randint(2, 3)
        for layer in range(layers):
            draw.polygon(
                self._ridge(height * (0.55 + 0.13 * layer)),
                fill=self._color(0.02 * layer, 0.5, 0.32 - 0.09 * layer, 235),
            )
        painted = Image.alpha_composite(canvas.convert("RGBA"), lights)
        return Image.alpha_composite(painted, shapes).convert("RGB")

    def _ridge(self, base_y: float) -> list[tuple[float, float]]:
        width, height = self.size
        waves = [
            (self._rng.uniform(1, 4), self._rng.uniform(0, math.tau), self._rng.uniform(0.02, 0.07))
            for _ in range(3)
        ]
        points = [(0.0, float(height))]
        for step in range(65):
            x = width * step / 64
            offset = sum(
                amplitude * math.sin(frequency * math.tau * x / width + phase)
                for frequency, phase, amplitude in waves
            )
            points.append((x, base_y + offset * height))
        points.append((float(width), float(height)))
        return points

    def _color(self, hue_shift: float, saturation: float, value: float, alpha: int = 255) -> Color:
        red, green, blue = colorsys.hsv_to_rgb((self._hue + hue_shift) % 1.0, saturation, value)
        return (round(red * 255), round(green * 255), round(blue * 255), alpha)
