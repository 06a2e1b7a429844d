"""Blackout and crop on every frame, with the header kept consistent.

:func:`apply_edits` is pure: it returns a NEW dataset and never changes its input. The pixel work
is numpy slicing over blocks of frames (one assignment per rectangle, one slice for the crop, see
:mod:`tftt.pixels.frame_edits`); the time goes to decoding and encoding, see
``benchmarks/pixels.py``.

What an edit changes besides the pixels:

* **Blackout** fills with the value that displays as black: 0 (RGB and unsigned MONOCHROME2),
  ``-2**(BitsStored-1)`` for signed MONOCHROME2, and the *maximum* of the stored range for
  MONOCHROME1. Colour data decoded from YBR is written as RGB (PhotometricInterpretation RGB,
  PlanarConfiguration 0); PALETTE COLOR is expanded to RGB.
* **Crop** sets Rows/Columns, moves ImagePositionPatient along the row and column direction
  cosines by PixelSpacing (top level, shared and per-frame functional groups), shifts and clips
  the ultrasound regions (dropping those left outside), and shifts display shutters and
  collimators (dropping a rectangular one that no longer shows anything).
* **Clean-up** drops overlays (60xx) and curves (50xx), which can carry burned-in text, and the
  IconImageSequence; Smallest/LargestImagePixelValue are recomputed for greyscale and removed
  for colour; the per-series extremes are removed.
* **Lossy history**: when the source was lossy, LossyImageCompression stays "01" and its method
  and ratio are kept or added (:func:`tftt.pixels.codecs.lossy_compression_attributes`).

Images without blackouts or crop keep their Pixel Data bytes (no re-encode); whether to pass
them through (and strip JPEG text segments) is the caller's choice.

Speed and memory (``benchmarks/pixels.py``): uncompressed little-endian input is cropped,
cleared of bits above BitsStored and blacked out while it is copied, a few MiB at a time, straight
into the output ``bytes`` (:class:`tftt.pixels.buffers.NewBytes`): one pass, one output buffer.
Anything else goes frame by frame through :func:`tftt.pixels.codecs.transform_frames`: decode one
frame, black it out, crop it, encode it into the output, so the decoded frames are never all held
(with workers, a few chunks of encoded frames are in flight at a time).
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
from pydicom import uid as dcm_uid
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.valuerep import format_number_as_ds

from tftt.errors import RedactionError, UnsupportedInputError
from tftt.pixels.buffers import NewBytes
from tftt.pixels.codecs import (
    PIXEL_DATA,
    DecodedPixels,
    OutputSyntax,
    PixelLayout,
    attach_payload,
    copy_dataset,
    frame_count,
    pixel_header,
    set_native_pixel_data,
    transfer_syntax_of,
    transform_frames,
)
from tftt.pixels.frame_edits import FrameEdits, black_for
from tftt.redaction_spec import CropBox, ImageEdits, Rectangle

ICON_IMAGE_SEQUENCE = Tag(0x0088, 0x0200)
SMALLEST_IMAGE_PIXEL_VALUE = Tag(0x0028, 0x0106)
LARGEST_IMAGE_PIXEL_VALUE = Tag(0x0028, 0x0107)
SERIES_EXTREMES = (Tag(0x0028, 0x0108), Tag(0x0028, 0x0109))


def apply_edits(
    ds: Dataset,
    edits: ImageEdits,
    *,
    syntax: OutputSyntax = OutputSyntax.EXPLICIT_VR_LITTLE_ENDIAN,
    workers: int = 1,
    executor: Executor | None = None,
) -> Dataset:
    """A new dataset with ``edits``' blackouts and crop applied to every frame of ``ds``.

    Annotations in ``edits`` are ignored here (see :mod:`tftt.pixels.annotate`); so is
    ``exclude``, which the caller handles. Without blackouts and crop the result is a copy
    whose Pixel Data bytes are unchanged. ``syntax`` is the output transfer syntax (lossless);
    ``workers``/``executor`` parallelise decoding and encoding of compressed frames.

    Raises:
        RedactionError: code ``edit-outside-image`` when a rectangle, the crop or a frame range
            does not fit the image.
        UnsupportedInputError: the pixel data cannot be decoded (``unsupported-transfer-syntax``,
            ``unsupported-pixel-data``, ``no-pixel-data``) or encoded in ``syntax``
            (``unsupported-output-syntax``).
    """
    if not edits.changes_pixels:
        return copy_dataset(ds)
    rows, columns, frames = int(ds.Rows), int(ds.Columns), frame_count(ds)
    check_edits_fit(edits, rows, columns, frames)
    plan = FrameEdits.of(edits)
    want_extremes = _has_extremes(ds)

    native = _native_source(ds) if syntax is OutputSyntax.EXPLICIT_VR_LITTLE_ENDIAN else None
    if native is not None:
        layout, data, low_high = _edit_native(native, plan, want_extremes)
        new = pixel_header(ds, layout, source=ds)
        set_native_pixel_data(new, data, layout.dtype.itemsize * 8)
    else:
        done = transform_frames(
            ds, plan, syntax, extremes=want_extremes, workers=workers, executor=executor
        )
        layout, low_high = done.layout, done.extremes
        new = pixel_header(ds, layout, source=ds)
        attach_payload(new, done.payload, bits_allocated=layout.dtype.itemsize * 8)
    extremes = None
    if low_high is not None and layout.samples_per_pixel == 1:
        extremes = _extremes_entry(*low_high, signed=layout.pixel_representation == 1)
    if edits.crop is not None:
        update_geometry_after_crop(new, edits.crop)
    clean_up_after_edit(new, extremes)
    return new


_NATIVE_LITTLE_ENDIAN = frozenset(
    {
        dcm_uid.ExplicitVRLittleEndian,
        dcm_uid.ImplicitVRLittleEndian,
        dcm_uid.DeflatedExplicitVRLittleEndian,
    }
)


@dataclass(frozen=True)
class _NativeSource:
    """A read-only view of uncompressed little-endian frames and what they hold."""

    view: np.ndarray
    photometric_interpretation: str
    bits_stored: int
    signed: bool

    @property
    def samples(self) -> int:
        return 3 if self.view.ndim == 4 else 1


def _native_source(ds: Dataset) -> _NativeSource | None:
    """The frames of uncompressed little-endian greyscale/RGB data as a read-only view.

    None when the data need the general decoder (big endian, compressed, YBR, palette, planar
    RGB, 1-bit, short pixel data).
    """
    try:
        ts = transfer_syntax_of(ds)
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1))
        bits_allocated, bits_stored = int(ds.BitsAllocated), int(ds.BitsStored)
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        pi = str(ds.PhotometricInterpretation).strip()
    except (AttributeError, TypeError, ValueError, UnsupportedInputError):
        return None
    planar = int(ds.get("PlanarConfiguration", 0) or 0)
    eligible = (
        ts in _NATIVE_LITTLE_ENDIAN
        and bits_allocated in (8, 16, 32)
        and 0 < bits_stored <= bits_allocated
        and (
            (samples == 1 and pi in ("MONOCHROME1", "MONOCHROME2"))
            or (samples == 3 and pi == "RGB" and planar == 0)
        )
        and PIXEL_DATA in ds
    )
    if not eligible:
        return None
    itemsize = bits_allocated // 8
    shape: tuple[int, ...] = (frame_count(ds), rows, columns) + ((3,) if samples == 3 else ())
    data = ds.PixelData
    needed = int(np.prod(shape)) * itemsize
    if not isinstance(data, bytes) or len(data) < needed:
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{itemsize}")
    view = np.frombuffer(memoryview(data)[:needed], dtype=dtype).reshape(shape)
    return _NativeSource(view, pi, bits_stored, signed)


def _copy_stored_bits(source: _NativeSource, view: np.ndarray, out: np.ndarray) -> None:
    """Copy ``view`` into ``out``, clearing the bits above BitsStored (sign-extending signed
    data), as pydicom's decoder would."""
    unused = view.dtype.itemsize * 8 - source.bits_stored
    if unused == 0:
        np.copyto(out, view)
    elif source.signed:
        np.left_shift(view, unused, out=out)
        np.right_shift(out, unused, out=out)  # arithmetic: sign-extends
    else:
        np.bitwise_and(view, (1 << source.bits_stored) - 1, out=out)


#: Frames are copied, blacked out and measured a few MiB at a time, while they are in cache.
_BLOCK_BYTES = 4 * 1024 * 1024


def _edit_native(
    source: _NativeSource, plan: FrameEdits, want_extremes: bool
) -> tuple[PixelLayout, bytes, tuple[int, int] | None]:
    """Crop, clear unused bits and black out, writing straight into the output ``bytes``.

    One pass over the kept pixels, block by block; the input is only read.
    """
    view = source.view
    origin = (0, 0)
    if plan.crop is not None:
        top, bottom, left, right = plan.crop
        view = view[:, top:bottom, left:right]
        origin = (top, left)
    black = black_for(source.photometric_interpretation, source.bits_stored, source.signed,
                   source.samples)
    n = view.shape[0]
    frame_bytes = int(np.prod(view.shape[1:])) * view.dtype.itemsize
    step = max(1, _BLOCK_BYTES // max(frame_bytes, 1))
    size = n * frame_bytes
    out = NewBytes(size + size % 2)
    target = out.view[:size].view(view.dtype).reshape(view.shape)
    low: int | None = None
    high: int | None = None
    for a in range(0, n, step):
        _copy_stored_bits(source, view[a : a + step], target[a : a + step])
        plan.black_out(target[a : a + step], a, black, origin)
        if want_extremes and target.ndim == 3 and target.size:
            b_low, b_high = int(target[a : a + step].min()), int(target[a : a + step].max())
            low = b_low if low is None else min(low, b_low)
            high = b_high if high is None else max(high, b_high)
    out.view[size:] = 0  # the pad byte of odd-length data
    del target
    layout = PixelLayout(
        shape=tuple(view.shape),
        dtype=view.dtype,
        photometric_interpretation=source.photometric_interpretation,
        bits_stored=source.bits_stored,
        pixel_representation=int(source.signed),
    )
    extremes = (low, high) if low is not None and high is not None else None
    return layout, out.done(), extremes


def native_pixels(ds: Dataset, crop: CropBox | None = None) -> DecodedPixels | None:
    """The (cropped) frames of uncompressed little-endian greyscale/RGB data, in one pass.

    Reads the input bytes through a read-only view and copies only the kept area into a new
    array, clearing the bits above BitsStored (sign-extending signed data) in the same pass,
    as pydicom's decoder would. Returns None when the data need the general decoder
    (big endian, compressed, YBR, palette, planar RGB, 1-bit, short pixel data).
    """
    source = _native_source(ds)
    if source is None:
        return None
    view = source.view
    if crop is not None:
        view = view[:, crop.y : crop.y + crop.height, crop.x : crop.x + crop.width]
    out = np.empty(view.shape, dtype=view.dtype)
    _copy_stored_bits(source, view, out)
    return DecodedPixels(
        frames=out,
        photometric_interpretation=source.photometric_interpretation,
        bits_stored=source.bits_stored,
        pixel_representation=int(source.signed),
    )


def check_edits_fit(edits: ImageEdits, rows: int, columns: int, frames: int) -> None:
    """Raise unless every rectangle, the crop and every frame range fit the image.

    Raises:
        RedactionError: code ``edit-outside-image``; the message gives positions and sizes.
    """
    problems: list[str] = []
    boxes: list[tuple[str, Rectangle | CropBox]] = [
        (f"blackout {i + 1}", r) for i, r in enumerate(edits.blackouts)
    ]
    if edits.crop is not None:
        boxes.append(("crop", edits.crop))
    for name, box in boxes:
        if box.x + box.width > columns or box.y + box.height > rows:
            problems.append(
                f"{name} ({box.x},{box.y} {box.width}x{box.height}) exceeds the "
                f"{columns}x{rows} image"
            )
    for i, rect in enumerate(edits.blackouts):
        if rect.frames is not None and rect.frames.last > frames:
            problems.append(
                f"blackout {i + 1} asks for frames {rect.frames.first}..{rect.frames.last} "
                f"of {frames}"
            )
    if problems:
        raise RedactionError("; ".join(problems), code="edit-outside-image")


def black_value(pixels: DecodedPixels) -> int:
    """The stored value that displays as black for these pixels."""
    return black_for(pixels.photometric_interpretation, pixels.bits_stored,
                  pixels.pixel_representation == 1, pixels.samples_per_pixel)



# --- geometry after a crop -------------------------------------------------------------------


def update_geometry_after_crop(ds: Dataset, crop: CropBox) -> None:
    """Fix, in place on a dataset this module created, the attributes a crop moves.

    ImagePositionPatient (top level, shared and per-frame functional groups), ultrasound regions,
    display shutters (top level and Frame Display Shutter in the functional groups) and
    collimators. PixelSpacing and orientation do not change.
    """
    _shift_top_level_position(ds, crop)
    _shift_functional_groups(ds, crop)
    _crop_ultrasound_regions(ds, crop)
    for prefix in ("Shutter", "Collimator"):
        _shift_shutter(ds, crop, prefix)
    for group in _functional_groups(ds):  # enhanced objects: Frame Display Shutter per frame
        for shutter in group.get("FrameDisplayShutterSequence") or ():
            _shift_shutter(shutter, crop, "Shutter")


def _functional_groups(ds: Dataset) -> list[Dataset]:
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    groups = [shared] if shared is not None else []
    groups.extend(ds.get("PerFrameFunctionalGroupsSequence") or ())
    return groups


def shifted_position(
    position: list[float], orientation: list[float], spacing: list[float], dx: int, dy: int
) -> list[float]:
    """ImagePositionPatient of pixel ``(dx, dy)``: the new origin after a crop there.

    ``orientation`` is ImageOrientationPatient (row direction cosines first: the direction in
    which the column index grows), ``spacing`` is PixelSpacing ``[row spacing, column spacing]``.
    """
    ipp = np.asarray(position, dtype=float)
    row_dir = np.asarray(orientation[:3], dtype=float)
    col_dir = np.asarray(orientation[3:6], dtype=float)
    moved = ipp + row_dir * float(spacing[1]) * dx + col_dir * float(spacing[0]) * dy
    return [float(v) for v in moved]


def _ds_values(values: list[float]) -> list[str]:
    return [format_number_as_ds(v) for v in values]


def _shift_top_level_position(ds: Dataset, crop: CropBox) -> None:
    needed = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
    if all(k in ds and ds[k].VM >= 2 for k in needed):
        ds.ImagePositionPatient = _ds_values(
            shifted_position(
                list(ds.ImagePositionPatient),
                list(ds.ImageOrientationPatient),
                list(ds.PixelSpacing),
                crop.x,
                crop.y,
            )
        )


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    if ds is None or keyword not in ds or not ds[keyword].value:
        return None
    item: Dataset = ds[keyword].value[0]
    return item


def _shift_functional_groups(ds: Dataset, crop: CropBox) -> None:
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    for group in _functional_groups(ds):
        position = _first_item(group, "PlanePositionSequence")
        if position is None or "ImagePositionPatient" not in position:
            continue
        orientation = _first_item(group, "PlaneOrientationSequence") or _first_item(
            shared, "PlaneOrientationSequence"
        )
        measures = _first_item(group, "PixelMeasuresSequence") or _first_item(
            shared, "PixelMeasuresSequence"
        )
        if (
            orientation is None
            or measures is None
            or "ImageOrientationPatient" not in orientation
            or "PixelSpacing" not in measures
        ):
            continue
        position.ImagePositionPatient = _ds_values(
            shifted_position(
                list(position.ImagePositionPatient),
                list(orientation.ImageOrientationPatient),
                list(measures.PixelSpacing),
                crop.x,
                crop.y,
            )
        )


def _crop_ultrasound_regions(ds: Dataset, crop: CropBox) -> None:
    if "SequenceOfUltrasoundRegions" not in ds:
        return
    kept: list[Dataset] = []
    right, bottom = crop.width - 1, crop.height - 1
    for region in ds.SequenceOfUltrasoundRegions:
        try:
            x0 = int(region.RegionLocationMinX0) - crop.x
            y0 = int(region.RegionLocationMinY0) - crop.y
            x1 = int(region.RegionLocationMaxX1) - crop.x
            y1 = int(region.RegionLocationMaxY1) - crop.y
        except AttributeError:
            continue  # a region without its location cannot be placed: drop it
        if x1 < 0 or y1 < 0 or x0 > right or y0 > bottom:
            continue
        nx0, ny0 = max(x0, 0), max(y0, 0)
        region.RegionLocationMinX0, region.RegionLocationMinY0 = nx0, ny0
        region.RegionLocationMaxX1, region.RegionLocationMaxY1 = min(x1, right), min(y1, bottom)
        if "ReferencePixelX0" in region:
            region.ReferencePixelX0 = int(region.ReferencePixelX0) - (nx0 - x0)
        if "ReferencePixelY0" in region:
            region.ReferencePixelY0 = int(region.ReferencePixelY0) - (ny0 - y0)
        kept.append(region)
    if kept:
        ds.SequenceOfUltrasoundRegions = Sequence(kept)
    else:
        del ds.SequenceOfUltrasoundRegions


def _shift_shutter(ds: Dataset, crop: CropBox, prefix: str) -> None:
    """Shift a display shutter (``prefix`` "Shutter") or collimator ("Collimator")."""
    shape_kw = f"{prefix}Shape"
    shapes = [str(s) for s in _values(ds.get(shape_kw))]
    edges = {
        "left": f"{prefix}LeftVerticalEdge",
        "right": f"{prefix}RightVerticalEdge",
        "upper": f"{prefix}UpperHorizontalEdge",
        "lower": f"{prefix}LowerHorizontalEdge",
    }
    if all(k in ds for k in edges.values()):
        left = max(int(ds[edges["left"]].value) - crop.x, 1)
        right = min(int(ds[edges["right"]].value) - crop.x, crop.width)
        upper = max(int(ds[edges["upper"]].value) - crop.y, 1)
        lower = min(int(ds[edges["lower"]].value) - crop.y, crop.height)
        if left <= right and upper <= lower:
            for name, value in zip(edges.values(), (left, right, upper, lower), strict=True):
                setattr(ds, name, value)
        else:  # nothing of the cropped image would show: drop this shutter
            for name in edges.values():
                delattr(ds, name)
            shapes = [s for s in shapes if s != "RECTANGULAR"]
    center_kw = f"CenterOfCircular{prefix}"
    if center_kw in ds and ds[center_kw].VM == 2:
        row, col = (int(v) for v in ds[center_kw].value)
        setattr(ds, center_kw, [row - crop.y, col - crop.x])
    vertices_kw = f"VerticesOfThePolygonal{prefix}"
    if vertices_kw in ds and ds[vertices_kw].VM >= 2:
        values = [int(v) for v in ds[vertices_kw].value]
        setattr(
            ds,
            vertices_kw,
            [v - (crop.y if i % 2 == 0 else crop.x) for i, v in enumerate(values)],
        )
    if shape_kw in ds:
        if shapes:
            setattr(ds, shape_kw, shapes if len(shapes) > 1 else shapes[0])
        else:
            delattr(ds, shape_kw)


def _values(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        return [value]


# --- clean-up --------------------------------------------------------------------------------


def drop_overlays_and_icons(ds: Dataset) -> None:
    """Remove, in place, overlays (60xx), curves (50xx) and the IconImageSequence."""
    for tag in list(ds.keys()):
        group = tag >> 16
        if 0x6000 <= group <= 0x60FF or 0x5000 <= group <= 0x50FF:
            del ds[tag]
    if ICON_IMAGE_SEQUENCE in ds:
        del ds[ICON_IMAGE_SEQUENCE]


def _has_extremes(ds: Dataset) -> bool:
    return SMALLEST_IMAGE_PIXEL_VALUE in ds or LARGEST_IMAGE_PIXEL_VALUE in ds


def pixel_extremes(pixels: DecodedPixels) -> tuple[int, int, str] | None:
    """``(smallest, largest, VR)`` of greyscale pixels when they fit US/SS, else None."""
    if pixels.samples_per_pixel != 1 or pixels.frames.size == 0:
        return None
    return _extremes_entry(
        int(pixels.frames.min()), int(pixels.frames.max()),
        signed=pixels.pixel_representation == 1,
    )


def _extremes_entry(low: int, high: int, *, signed: bool) -> tuple[int, int, str] | None:
    vr = "SS" if signed else "US"
    limits = (-(1 << 15), (1 << 15) - 1) if signed else (0, (1 << 16) - 1)
    if limits[0] <= low and high <= limits[1]:
        return low, high, vr
    return None


def clean_up_after_edit(ds: Dataset, extremes: tuple[int, int, str] | None) -> None:
    """In place on a new dataset: drop overlays/icons; replace or drop the pixel extremes.

    ``extremes`` comes from :func:`pixel_extremes` of the new pixels (None: drop them).
    """
    drop_overlays_and_icons(ds)
    for tag in (*SERIES_EXTREMES, SMALLEST_IMAGE_PIXEL_VALUE, LARGEST_IMAGE_PIXEL_VALUE):
        if tag in ds:
            del ds[tag]
    if extremes is not None:
        low, high, vr = extremes
        ds[SMALLEST_IMAGE_PIXEL_VALUE] = DataElement(SMALLEST_IMAGE_PIXEL_VALUE, vr, low)
        ds[LARGEST_IMAGE_PIXEL_VALUE] = DataElement(LARGEST_IMAGE_PIXEL_VALUE, vr, high)
