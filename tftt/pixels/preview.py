"""Reviewer previews: one JPEG per frame (or per sampled frame of a long cine) plus thumbnails.

Pure: returns bytes; the caller writes them (``tftt.store.files.atomic_write_bytes``).

Greyscale goes through the modality LUT (RescaleSlope/Intercept, or a Modality LUT) and a VOI
window: an explicit ``window`` if given, else the header's first WindowCenter/Width (top level,
or the frame's FrameVOILUTSequence in an enhanced multi-frame object), else a VOI LUT, else a
1st-99th percentile window over the frames shown. MONOCHROME1 is inverted so that it looks
like MONOCHROME2. Colour (RGB, and YBR/PALETTE decoded to RGB) passes through; colour stored
with more than 8 bits is shifted down to 8.

Previews are at full resolution unless ``max_size`` is given, so coordinates a reviewer reads
off a preview are image pixel coordinates. Frame numbers start at 1, as in the redaction spec.

:func:`render_frame` renders ONE of those frames on demand (the review page's "after" view and
CT window presets, :data:`CT_WINDOW_PRESETS`), byte-identical to what :func:`render_previews`
gives for that frame with the same arguments; it decodes only that frame unless the window
has to come from the percentiles of the sampled frames.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_voi

from tftt.pixels.codecs import DecodedPixels, decode_frames, frame_count
from tftt.redaction_spec import Annotation

DEFAULT_MAX_FRAMES = 16
DEFAULT_THUMBNAIL_SIZE = 128
DEFAULT_QUALITY = 90
PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units (e.g. HU): centre and width."""

    center: float
    width: float


#: Named VOI windows for CT, in HU, offered by the review page (name -> window).
CT_WINDOW_PRESETS: dict[str, Window] = {
    "soft-tissue": Window(center=40.0, width=400.0),
    "lung": Window(center=-600.0, width=1500.0),
    "bone": Window(center=300.0, width=2000.0),
    "brain": Window(center=40.0, width=80.0),
}


@dataclass(frozen=True)
class FramePreview:
    """The preview of one frame: a full JPEG and a thumbnail JPEG."""

    frame_number: int
    jpeg: bytes
    thumbnail: bytes
    width: int
    height: int


def sample_frame_numbers(n_frames: int, max_frames: int) -> list[int]:
    """At most ``max_frames`` evenly spaced frame numbers (from 1), first and last included."""
    if n_frames <= 0 or max_frames <= 0:
        return []
    if n_frames <= max_frames:
        return list(range(1, n_frames + 1))
    if max_frames == 1:
        return [1]
    picks = np.linspace(1, n_frames, num=max_frames)
    return sorted({round(float(p)) for p in picks})


def render_previews(
    ds: Dataset,
    *,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_size: int | None = None,
    thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE,
    quality: int = DEFAULT_QUALITY,
    window: Window | None = None,
    annotations: Sequence[Annotation] = (),
) -> list[FramePreview]:
    """JPEG previews of the (sampled) frames of ``ds``, with ``annotations`` drawn on them.

    Only the sampled frames are decoded. ``annotations`` use the image's own pixel
    coordinates (shift them after a crop with :func:`tftt.redaction_spec.shift_annotations`).

    Raises:
        UnsupportedInputError: the pixel data cannot be decoded (see
            :func:`tftt.pixels.codecs.decode_frames`).
    """
    numbers = sample_frame_numbers(frame_count(ds), max_frames)
    pixels = _decode_sampled(ds, numbers)
    display = display_frames(pixels, ds, frame_numbers=numbers, window=window)
    if annotations:
        from tftt.pixels.annotate import burn_annotations

        rgb = _as_rgb(display)
        display = burn_annotations(
            rgb, annotations, frame_numbers=numbers, in_place=rgb is not pixels.frames
        )
    previews: list[FramePreview] = []
    for number, frame in zip(numbers, display, strict=True):
        image = Image.fromarray(frame)
        if max_size is not None and max(image.size) > max_size:
            image.thumbnail((max_size, max_size), Image.Resampling.BILINEAR)
        thumb = image.copy()
        thumb.thumbnail((thumbnail_size, thumbnail_size), Image.Resampling.BILINEAR)
        previews.append(
            FramePreview(
                frame_number=number,
                jpeg=encode_jpeg(image, quality),
                thumbnail=encode_jpeg(thumb, quality),
                width=image.width,
                height=image.height,
            )
        )
    return previews


def render_frame(
    ds: Dataset,
    frame_number: int,
    *,
    max_frames: int = DEFAULT_MAX_FRAMES,
    quality: int = DEFAULT_QUALITY,
    window: Window | None = None,
    annotations: Sequence[Annotation] = (),
) -> bytes:
    """The JPEG of frame ``frame_number`` (from 1), as :func:`render_previews` renders it.

    The bytes equal ``render_previews(ds, max_frames=..., quality=..., window=...,
    annotations=...)``'s JPEG of that frame (at full size; ``frame_number`` need not be one of
    the sampled frames). Only that frame is decoded, unless its window has to be the
    percentile window of the sampled frames (greyscale, no ``window``, no header window,
    no VOI LUT): then the sampled frames are decoded, as :func:`render_previews` does.

    Raises:
        UnsupportedInputError: the pixel data cannot be decoded (see
            :func:`tftt.pixels.codecs.decode_frames`), or ``frame_number`` is not a frame of
            ``ds`` (code ``frame-out-of-range``).
    """
    pixels = decode_frames(ds, index=frame_number - 1)
    chosen = window
    if pixels.samples_per_pixel == 1 and window is None and _needs_auto_window(ds, frame_number):
        numbers = sample_frame_numbers(frame_count(ds), max_frames)
        sampled = _decode_sampled(ds, numbers)
        first = next(n for n in numbers if _needs_auto_window(ds, n))
        chosen = percentile_window(sampled.frames, ds, *_rescale(ds, first))
    display = display_frames(pixels, ds, frame_numbers=[frame_number], window=chosen)
    if annotations:
        from tftt.pixels.annotate import burn_annotations

        rgb = _as_rgb(display)
        display = burn_annotations(
            rgb, annotations, frame_numbers=[frame_number], in_place=rgb is not pixels.frames
        )
    return encode_jpeg(Image.fromarray(display[0]), quality)


def _decode_sampled(ds: Dataset, numbers: Sequence[int]) -> DecodedPixels:
    """The frames ``numbers`` (from 1) of ``ds`` (all of them in one decode when they are all)."""
    if len(numbers) == frame_count(ds):
        return decode_frames(ds)
    parts = [decode_frames(ds, index=n - 1) for n in numbers]
    return DecodedPixels(
        frames=np.concatenate([p.frames for p in parts]),
        photometric_interpretation=parts[0].photometric_interpretation,
        bits_stored=parts[0].bits_stored,
        pixel_representation=parts[0].pixel_representation,
    )


def _needs_auto_window(ds: Dataset, frame_number: int) -> bool:
    """True when :func:`display_frames` would window this greyscale frame by percentiles."""
    return _header_window(ds, frame_number) is None and not _has_voi_lut(ds)


def encode_jpeg(image: Image.Image | np.ndarray, quality: int = DEFAULT_QUALITY) -> bytes:
    """Baseline JPEG bytes of an 8-bit greyscale or RGB image."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    if frames.ndim == 4:
        return frames
    return np.repeat(frames[..., np.newaxis], 3, axis=-1)


# --- windowing -------------------------------------------------------------------------------


def display_frames(
    pixels: DecodedPixels,
    ds: Dataset,
    *,
    frame_numbers: Sequence[int] | None = None,
    window: Window | None = None,
) -> np.ndarray:
    """8-bit display values of ``pixels.frames``: ``(n, rows, cols)`` or ``(n, rows, cols, 3)``.

    ``frame_numbers`` (from 1) name the source frames of ``pixels.frames`` for per-frame
    functional groups; default 1..n.
    """
    frames = pixels.frames
    if pixels.samples_per_pixel == 3:
        if frames.dtype == np.uint8:
            return frames
        shift = max(pixels.bits_stored - 8, 0)
        return np.asarray(np.right_shift(frames, shift), dtype=np.uint8)
    numbers = list(frame_numbers) if frame_numbers is not None else list(range(1, len(frames) + 1))
    out = np.empty(frames.shape, dtype=np.uint8)
    auto: Window | None = None
    for i, number in enumerate(numbers):
        slope, intercept = _rescale(ds, number)
        chosen = window or _header_window(ds, number)
        if chosen is None and _has_voi_lut(ds):
            out[i] = _voi_lut_to_8bit(frames[i], ds)
            continue
        if chosen is None:
            if auto is None:
                auto = percentile_window(frames, ds, slope, intercept)
            chosen = auto
        frame = frames[i]
        if _has_modality_lut(ds):
            frame, slope, intercept = np.asarray(apply_modality_lut(frame, ds)), 1.0, 0.0
        out[i] = _window_to_8bit(frame, slope, intercept, chosen, _voi_function(ds))
    if pixels.photometric_interpretation == "MONOCHROME1":
        np.subtract(255, out, out=out)
    return out


def percentile_window(
    frames: np.ndarray, ds: Dataset, slope: float = 1.0, intercept: float = 0.0
) -> Window:
    """A window from the 1st to the 99th percentile of the (subsampled) modality values."""
    step = max(1, int(np.sqrt(frames[0].size / 65536)))
    sample = frames[:, ::step, ::step].astype(np.float32)
    if _has_modality_lut(ds):
        sample = np.asarray(apply_modality_lut(sample.astype(frames.dtype), ds), dtype=np.float32)
    else:
        sample = sample * slope + intercept
    low, high = np.percentile(sample, PERCENTILES)
    if high <= low:
        high = low + 1.0
    return Window(center=float((low + high) / 2 + 0.5), width=float(high - low + 1))


def _window_to_8bit(
    frame: np.ndarray, slope: float, intercept: float, window: Window, function: str
) -> np.ndarray:
    c, w = window.center, window.width
    if function == "SIGMOID":
        values = frame.astype(np.float32) * slope + intercept
        y = 255.0 / (1.0 + np.exp(-4.0 * (values - c) / max(w, 1e-6)))
        return np.asarray(np.clip(y + 0.5, 0, 255), dtype=np.uint8)
    if function == "LINEAR_EXACT":
        scale, offset = 1.0 / max(w, 1e-6), -c / max(w, 1e-6) + 0.5
    elif w <= 1:
        # LINEAR with width 1: a threshold at c - 0.5
        values = frame.astype(np.float32) * slope + intercept
        return np.where(values > c - 0.5, 255, 0).astype(np.uint8)
    else:
        scale, offset = 1.0 / (w - 1), -(c - 0.5) / (w - 1) + 0.5
    # one affine map from stored value to 0..255 (modality LUT folded in), then clip
    a = np.float32(255.0 * scale * slope)
    b = np.float32(255.0 * (scale * intercept + offset) + 0.5)
    y = frame.astype(np.float32)
    y *= a
    y += b
    np.clip(y, 0, 255, out=y)
    return y.astype(np.uint8)


def _rescale(ds: Dataset, frame_number: int) -> tuple[float, float]:
    item = _group_item(ds, frame_number, "PixelValueTransformationSequence")
    source = item if item is not None and "RescaleSlope" in item else ds
    try:
        slope = float(source.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(source.get("RescaleIntercept", 0.0) or 0.0)
    except (TypeError, ValueError):
        return 1.0, 0.0
    return slope, intercept


def _header_window(ds: Dataset, frame_number: int) -> Window | None:
    item = _group_item(ds, frame_number, "FrameVOILUTSequence")
    for source in (item, ds):
        if source is None or "WindowCenter" not in source or "WindowWidth" not in source:
            continue
        try:
            center = float(_first(source.WindowCenter))
            width = float(_first(source.WindowWidth))
        except (TypeError, ValueError):
            continue
        if width > 0:
            return Window(center=center, width=width)
    return None


def _first(value: Any) -> Any:
    if isinstance(value, str | bytes | int | float):
        return value
    try:
        return next(iter(value))  # type: ignore[call-overload]
    except (TypeError, StopIteration):
        return value


def _voi_function(ds: Dataset) -> str:
    return str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()


def _has_voi_lut(ds: Dataset) -> bool:
    return bool(ds.get("VOILUTSequence"))


def _has_modality_lut(ds: Dataset) -> bool:
    return bool(ds.get("ModalityLUTSequence"))


def _voi_lut_to_8bit(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    values = apply_voi(apply_modality_lut(frame, ds), ds)
    bits = int(ds.VOILUTSequence[0].LUTDescriptor[2]) or 16
    return np.asarray(np.clip(values / ((1 << bits) - 1) * 255.0 + 0.5, 0, 255), dtype=np.uint8)


def _group_item(ds: Dataset, frame_number: int, keyword: str) -> Dataset | None:
    """The first item of ``keyword`` in the frame's functional group, else the shared one."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and 0 < frame_number <= len(per_frame):
        group = per_frame[frame_number - 1]
        if keyword in group and group[keyword].value:
            found: Dataset = group[keyword].value[0]
            return found
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        group = shared[0]
        if keyword in group and group[keyword].value:
            found = group[keyword].value[0]
            return found
    return None
