"""Caption bands: text on a translucent strip near the bottom of a picture.

A band is built once and pasted onto every frame, which is much cheaper than
drawing text per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
ELLIPSIS = "…"
TEXT_WIDTH_SHARE = 0.9  #: the share of the picture's width that text may use
BAND_ALPHA = 140


@dataclass(frozen=True)
class Caption:
    band: Image.Image  #: RGBA, as wide as the picture
    top: int  #: where the band starts, in picture pixels

    @classmethod
    def build(cls, text: str, size: tuple[int, int], *, max_lines: int = 2) -> Caption:
        """A band for a picture of `size`, `text` wrapped to at most `max_lines` lines."""
        width, height = size
        font_size = max(10, round(height / 14))
        font = ImageFont.load_default(size=font_size)
        lines = wrap_to_width(text, font, width * TEXT_WIDTH_SHARE, max_lines)
        line_height = round(font_size * 1.3)
        padding = round(font_size * 0.5)
        band = Image.new("RGBA", (width, len(lines) * line_height + 2 * padding), (0, 0, 0, 0))
        if lines:
            band.paste((0, 0, 0, BAND_ALPHA), (0, 0, *band.size))
            # Text is drawn on its own layer and composited, so its anti-aliased
            # edges blend with the band rather than replace it.
            text_layer = Image.new("RGBA", band.size, (0, 0, 0, 0))
            draw = ImageDraw.Draw(text_layer)
            for number, line in enumerate(lines):
                draw.text(
                    (width / 2, padding + number * line_height),
                    line,
                    font=font,
                    fill=(255, 255, 255, 255),
                    anchor="ma",
                    stroke_width=max(1, font_size // 14),
                    stroke_fill=(0, 0, 0, 255),
                )
            band = Image.alpha_composite(band, text_layer)
        return cls(band=band, top=height - band.height - round(height * 0.06))

    def draw_on(self, picture: Image.Image) -> None:
        """Paste the band onto an RGB `picture`, in place."""
        picture.paste(self.band, (0, self.top), self.band)


def wrap_to_width(text: str, font: Font, max_width: float, max_lines: int) -> list[str]:
    """Greedy word wrap; words wider than a line are split; overflow ends in '…'."""
    lines: list[str] = []
    for word in text.split():
        joined = f"{lines[-1]} {word}" if lines else ""
        if lines and font.getlength(joined) <= max_width:
            lines[-1] = joined
        else:
            lines.extend(_split_word(word, font, max_width))
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    while last and font.getlength(last + ELLIPSIS) > max_width:
        last = last[:-1]
    return [*lines[: max_lines - 1], last.rstrip() + ELLIPSIS]


def _split_word(word: str, font: Font, max_width: float) -> list[str]:
    pieces = [""]
    for char in word:
        if pieces[-1] and font.getlength(pieces[-1] + char) > max_width:
            pieces.append("")
        pieces[-1] += char
    return pieces
