"""Blackouts and crop as plain index ranges, applied to blocks of decoded frames.

:class:`FrameEdits` is what :func:`tftt.pixels.redact.apply_edits` hands to
:func:`tftt.pixels.codecs.transform_frames`, which may run it in worker processes: this module
imports only numpy, so a worker that unpickles it loads nothing more. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tftt.pixels.codecs import FrameFormat
    from tftt.redaction_spec import ImageEdits


def black_for(photometric_interpretation: str, bits_stored: int, signed: bool, samples: int) -> int:
    """The stored value that displays as black: 0 for RGB and unsigned MONOCHROME2,
    ``-2**(BitsStored-1)`` for signed MONOCHROME2, the top of the stored range for MONOCHROME1."""
    if photometric_interpretation == "MONOCHROME1":
        return (1 << (bits_stored - 1)) - 1 if signed else (1 << bits_stored) - 1
    if signed and samples == 1:
        return -(1 << (bits_stored - 1))
    return 0


@dataclass(frozen=True)
class FrameEdits:
    """Blackouts and crop as index ranges, applied to blocks of frames.

    ``boxes`` are ``(first frame, stop frame, top, bottom, left, right)`` with 0-based frame
    indices and exclusive stops; ``crop`` is ``(top, bottom, left, right)``. Called as a
    :class:`~tftt.pixels.codecs.FrameTransform` (it pickles, for worker processes).
    """

    boxes: tuple[tuple[int, int, int, int, int, int], ...]
    crop: tuple[int, int, int, int] | None

    @classmethod
    def of(cls, edits: ImageEdits) -> FrameEdits:
        boxes = []
        for rect in edits.blackouts:
            first, stop = (rect.frames.first - 1, rect.frames.last) if rect.frames else (0, 2**62)
            boxes.append(
                (first, stop, rect.y, rect.y + rect.height, rect.x, rect.x + rect.width)
            )
        c = edits.crop
        crop = (c.y, c.y + c.height, c.x, c.x + c.width) if c is not None else None
        return cls(boxes=tuple(boxes), crop=crop)

    def black_out(
        self, frames: np.ndarray, first: int, black: int, origin: tuple[int, int] = (0, 0)
    ) -> None:
        """Fill the boxes in ``frames`` (frame ``first`` onwards; pixel ``origin`` = (top,
        left) of the block in image coordinates, for an already cropped block)."""
        count, height, width = frames.shape[:3]
        top, left = origin
        for f0, f1, y0, y1, x0, x1 in self.boxes:
            a, b = max(f0 - first, 0), min(f1 - first, count)
            ya, yb = max(y0 - top, 0), min(y1 - top, height)
            xa, xb = max(x0 - left, 0), min(x1 - left, width)
            if a < b and ya < yb and xa < xb:
                frames[a:b, ya:yb, xa:xb] = black

    def __call__(self, frames: np.ndarray, first: int, fmt: FrameFormat) -> np.ndarray:
        self.black_out(
            frames,
            first,
            black_for(fmt.photometric_interpretation, fmt.bits_stored,
                      fmt.pixel_representation == 1, fmt.samples_per_pixel),
        )
        if self.crop is None:
            return frames
        top, bottom, left, right = self.crop
        return frames[:, top:bottom, left:right]
