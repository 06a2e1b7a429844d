"""Burned-in text: identifying text drawn into pixels, with its ground-truth box.

The text is drawn in a filled box (background = darkest display value, text = brightest) with
Pillow's scalable default font, large enough for Tesseract to read at 256 pixels wide or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel, ConfigDict

from tftt.synth.canaries import Identity

_Pixel = TypeVar("_Pixel", bound=np.generic)

_PAD = 8
_LINE_GAP = 3


class BurnedBox(BaseModel):
    """A rectangle of burned-in text, in pixel coordinates (x = column, y = row, 0-based).

    ``frames`` are the 0-based frame indices that carry the text; ``text`` is what was drawn,
    one line per ``\\n``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    x: int
    y: int
    width: int
    height: int
    frames: tuple[int, ...]
    text: str


@dataclass(frozen=True)
class TextStamp:
    """A rendered text box: where it goes and which pixels of it are text."""

    x: int
    y: int
    width: int
    height: int
    text: str
    ink: NDArray[np.float64]  # shape (height, width): text coverage 0..1 (anti-aliased)


def burned_lines(identity: Identity) -> tuple[str, ...]:
    """The lines a modality would burn in: name, patient ID and birth date."""
    return (
        f"{identity.family_name}^{identity.given_name}",
        f"ID {identity.patient_id}",
        f"DOB {identity.birth_date}",
    )


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_text(
    lines: tuple[str, ...], *, image_width: int, image_height: int, x: int = 6, y: int = 6
) -> TextStamp:
    """Render ``lines`` at (``x``, ``y``), each line in the largest font that fits the width.

    The font aims at 1/12 of the image width (12 to 48 px); a line that is too long for it gets
    a smaller font, and all fonts shrink together until the box fits the image height.

    Raises:
        ValueError: the text cannot fit the image even at the smallest font size.
    """
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    target = max(12, min(48, image_width // 12))
    while target >= 12:
        placed: list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont, int]] = []
        top = _PAD
        width = 0
        for line in lines:
            size = target
            while size >= 12:
                font = _font(size)
                _, _, right_f, bottom_f = probe.textbbox((_PAD, top), line, font=font)
                right, bottom = int(right_f), int(bottom_f)
                if x + right + _PAD <= image_width:
                    break
                size -= 1
            else:
                raise ValueError("burned-in text does not fit the image width")
            placed.append((line, font, top))
            width = max(width, right + _PAD)
            top = bottom + _LINE_GAP
        height = top - _LINE_GAP + _PAD
        if y + height <= image_height:
            canvas = Image.new("L", (width, height), 0)
            draw = ImageDraw.Draw(canvas)
            for line, font, line_top in placed:
                draw.text((_PAD, line_top), line, font=font, fill=255)
            ink = np.asarray(canvas).astype(np.float64) / 255.0
            return TextStamp(x=x, y=y, width=width, height=height, text="\n".join(lines), ink=ink)
        target -= 2
    raise ValueError("burned-in text does not fit the image height")


def stamp(
    frames: NDArray[_Pixel],
    text: TextStamp,
    *,
    frame_indices: tuple[int, ...] | None = None,
    background: int | tuple[int, ...] = 0,
    foreground: int | tuple[int, ...] = 255,
) -> tuple[NDArray[_Pixel], BurnedBox]:
    """A copy of ``frames`` (shape ``(F, rows, cols[, samples])``) with ``text`` burned in.

    Raises:
        ValueError: ``frames`` is not 3- or 4-dimensional, or a frame index is out of range.
    """
    if frames.ndim not in (3, 4):
        raise ValueError("frames must be (F, rows, cols) or (F, rows, cols, samples)")
    indices = tuple(range(frames.shape[0])) if frame_indices is None else frame_indices
    if any(i < 0 or i >= frames.shape[0] for i in indices):
        raise ValueError("frame index out of range")
    out = frames.copy()
    ys = slice(text.y, text.y + text.height)
    xs = slice(text.x, text.x + text.width)
    bg = np.asarray(background, dtype=np.float64)
    fg = np.asarray(foreground, dtype=np.float64)
    alpha = text.ink[..., None] if frames.ndim == 4 else text.ink
    blended = np.rint(bg + (fg - bg) * alpha).astype(frames.dtype)
    for i in indices:
        out[i, ys, xs] = blended
    box = BurnedBox(
        x=text.x, y=text.y, width=text.width, height=text.height, frames=indices, text=text.text
    )
    return out, box
