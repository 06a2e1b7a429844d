"""Teaching annotations (arrows, ellipses, text labels): drawn on previews, or burned into a
derived Secondary Capture series.

The original-format DICOM never receives annotations; they exist only in previews and, when the
reviewer asks for it (``RedactionSpec.burn_in_annotations``), in a *derived* series of Secondary
Capture objects made by :func:`derive_annotated_series`, with new Series and SOP Instance UIDs
from an injected function.

Drawing is done once per annotation group with Pillow on a transparent layer, then blended into
every frame it applies to with one numpy operation, so a 500-frame cine costs little more than
one frame.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom import uid as dcm_uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from tftt.pixels.codecs import DecodedPixels, decode_frames, set_native_pixel_data
from tftt.pixels.preview import Window, display_frames
from tftt.redaction_spec import (
    Annotation,
    ArrowAnnotation,
    EllipseAnnotation,
    FrameRange,
)

SECONDARY_CAPTURE = dcm_uid.SecondaryCaptureImageStorage
MULTIFRAME_TRUE_COLOR_SC = dcm_uid.MultiFrameTrueColorSecondaryCaptureImageStorage
ANNOTATED_PREFIX = "ANNOTATED"
DERIVATION = "Teaching annotations burned in by TFTT; pixels otherwise as reviewed"

# Attributes carried from the source image into the derived object (besides group 0010).
_STUDY_SERIES_EQUIPMENT = (
    "SpecificCharacterSet",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
    "Modality",
    "SeriesDate",
    "SeriesTime",
    "Laterality",
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
    "InstanceNumber",
    "ContentDate",
    "ContentTime",
    "PatientOrientation",
    "BurnedInAnnotation",
    "RecognizableVisualFeatures",
    "FrameTime",
    "FrameTimeVector",
    "CineRate",
    "RecommendedDisplayFrameRate",
)


def line_width(rows: int, columns: int) -> int:
    """Stroke width in pixels for an image of this size."""
    return max(2, round(min(rows, columns) / 200))


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _draw(draw: ImageDraw.ImageDraw, a: Annotation, rows: int, columns: int) -> None:
    width = line_width(rows, columns)
    fill = (*_rgb(a.color), 255)
    if isinstance(a, ArrowAnnotation):
        dx, dy = a.head_x - a.tail_x, a.head_y - a.tail_y
        length = math.hypot(dx, dy)
        ux, uy = dx / length, dy / length
        head = min(max(4 * width, 10), length)
        bx, by = a.head_x - ux * head, a.head_y - uy * head
        draw.line([(a.tail_x, a.tail_y), (bx, by)], fill=fill, width=width)
        half = head / 2
        draw.polygon(
            [
                (a.head_x, a.head_y),
                (bx - uy * half, by + ux * half),
                (bx + uy * half, by - ux * half),
            ],
            fill=fill,
        )
    elif isinstance(a, EllipseAnnotation):
        box = (
            a.center_x - a.radius_x,
            a.center_y - a.radius_y,
            a.center_x + a.radius_x,
            a.center_y + a.radius_y,
        )
        draw.ellipse(box, outline=fill, width=width)
    else:
        size = a.font_size or max(12, rows // 30)
        draw.text(
            (a.x, a.y),
            a.text,
            fill=fill,
            font=_font(size),
            stroke_width=max(1, size // 12),
            stroke_fill=(0, 0, 0, 255),
        )


def annotation_layer(
    annotations: Sequence[Annotation], rows: int, columns: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb, alpha)`` of the annotations drawn on a transparent ``rows`` x ``columns`` layer."""
    layer = Image.new("RGBA", (columns, rows), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for a in annotations:
        _draw(draw, a, rows, columns)
    rgba = np.asarray(layer)
    return rgba[..., :3], rgba[..., 3]


def burn_annotations(
    frames: np.ndarray,
    annotations: Sequence[Annotation],
    *,
    frame_numbers: Sequence[int] | None = None,
    in_place: bool = False,
) -> np.ndarray:
    """8-bit RGB ``frames`` ``(n, rows, cols, 3)`` with ``annotations`` drawn in.

    Returns a copy unless ``in_place`` (then ``frames`` itself is changed and returned).
    ``frame_numbers`` (from 1) name the frames for the annotations' frame ranges; default 1..n.

    Raises:
        ValueError: ``frames`` is not 8-bit RGB with a frame axis.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError("burn_annotations needs 8-bit RGB frames shaped (n, rows, cols, 3)")
    out = frames if in_place else frames.copy()
    numbers = np.asarray(frame_numbers if frame_numbers is not None else range(1, len(out) + 1))
    rows, columns = out.shape[1:3]
    groups: dict[FrameRange | None, list[Annotation]] = {}
    for a in annotations:
        groups.setdefault(a.frames, []).append(a)
    for frames_range, members in groups.items():
        selected = (
            np.ones(len(out), dtype=bool)
            if frames_range is None
            else (numbers >= frames_range.first) & (numbers <= frames_range.last)
        )
        if not selected.any():
            continue
        rgb, alpha = annotation_layer(members, rows, columns)
        ys, xs = np.nonzero(alpha)
        if ys.size == 0:
            continue
        weight = alpha[ys, xs].astype(np.uint16)[np.newaxis, :, np.newaxis]
        colour = rgb[ys, xs].astype(np.uint16)[np.newaxis]
        chosen = np.nonzero(selected)[0]
        under = out[chosen[:, None], ys[None, :], xs[None, :]].astype(np.uint16)
        blended = (under * (255 - weight) + colour * weight + 127) // 255
        out[chosen[:, None], ys[None, :], xs[None, :]] = blended.astype(np.uint8)
    return out


def draw_annotations(
    image: np.ndarray, annotations: Sequence[Annotation], *, frame_number: int = 1
) -> np.ndarray:
    """A copy of one 8-bit image (greyscale or RGB) as RGB with the annotations of that frame."""
    rgb = image if image.ndim == 3 else np.repeat(image[..., np.newaxis], 3, axis=-1)
    return burn_annotations(rgb[np.newaxis], annotations, frame_numbers=[frame_number])[0]


# --- the derived, annotated Secondary Capture series ----------------------------------------


def derive_annotated_series(
    datasets: Sequence[Dataset],
    annotations: Mapping[str, Sequence[Annotation]],
    new_uid: Callable[[str], str],
    *,
    window: Window | None = None,
) -> list[Dataset]:
    """Secondary Capture copies of the annotated images, annotations burned into RGB pixels.

    ``annotations`` maps SOP Instance UIDs of ``datasets`` to their annotations, in each image's
    own pixel coordinates (after any crop); images without annotations are skipped. The inputs
    are not changed. ``new_uid(seed)`` must return a valid UID and be deterministic; it is called
    with ``"annotated-series:<SeriesInstanceUID>"`` (one derived series per source series) and
    ``"annotated-instance:<SOPInstanceUID>"``. One frame gives Secondary Capture Image Storage,
    several give Multi-frame True Color Secondary Capture; the SeriesDescription starts with
    "ANNOTATED".

    Raises:
        UnsupportedInputError: a source image cannot be decoded.
    """
    derived: list[Dataset] = []
    for ds in datasets:
        marks = annotations.get(str(ds.SOPInstanceUID), ())
        if not marks:
            continue
        burned = burn_annotations(display_rgb(ds, window=window), list(marks), in_place=True)
        derived.append(_secondary_capture(ds, burned, new_uid))
    return derived


def _secondary_capture(source: Dataset, rgb: np.ndarray, new_uid: Callable[[str], str]) -> Dataset:
    n_frames, rows, columns = rgb.shape[:3]
    multiframe = n_frames > 1
    sc = Dataset()
    for elem in source.group_dataset(0x0010):
        sc[elem.tag] = copy.deepcopy(elem)
    for keyword in _STUDY_SERIES_EQUIPMENT:
        if keyword in source:
            sc[keyword] = copy.deepcopy(source[keyword])
    sop_class = MULTIFRAME_TRUE_COLOR_SC if multiframe else SECONDARY_CAPTURE
    sc.SOPClassUID = sop_class
    sc.SOPInstanceUID = new_uid(f"annotated-instance:{source.SOPInstanceUID}")
    sc.SeriesInstanceUID = new_uid(f"annotated-series:{source.SeriesInstanceUID}")
    description = str(source.get("SeriesDescription", "") or "").strip()
    sc.SeriesDescription = (
        f"{ANNOTATED_PREFIX} {description}" if description else ANNOTATED_PREFIX
    )[:64]
    if "SeriesNumber" in source and source.SeriesNumber not in (None, ""):
        sc.SeriesNumber = int(source.SeriesNumber) + 1000
    else:
        sc.SeriesNumber = None
    if "Modality" not in sc:
        sc.Modality = "OT"
    sc.ConversionType = "WSD"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = DERIVATION
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = DicomSequence([reference])
    if "PatientOrientation" not in sc:
        sc.PatientOrientation = None
    if "InstanceNumber" not in sc:
        sc.InstanceNumber = None
    sc.SamplesPerPixel = 3
    sc.PhotometricInterpretation = "RGB"
    sc.PlanarConfiguration = 0
    sc.Rows, sc.Columns = rows, columns
    sc.BitsAllocated, sc.BitsStored, sc.HighBit, sc.PixelRepresentation = 8, 8, 7, 0
    if multiframe:
        sc.NumberOfFrames = n_frames
        if "FrameTime" in sc:
            sc.FrameIncrementPointer = Tag("FrameTime")
        elif "FrameTimeVector" in sc and len(sc.FrameTimeVector) == n_frames:
            sc.FrameIncrementPointer = Tag("FrameTimeVector")
        else:
            for key in ("FrameTimeVector", "CineRate", "RecommendedDisplayFrameRate"):
                if key in sc:
                    delattr(sc, key)
            sc.PageNumberVector = list(range(1, n_frames + 1))
            sc.FrameIncrementPointer = Tag("PageNumberVector")
        if "BurnedInAnnotation" not in sc:
            sc.BurnedInAnnotation = "NO"
    else:
        for key in ("FrameTime", "FrameTimeVector", "CineRate", "RecommendedDisplayFrameRate"):
            if key in sc:
                delattr(sc, key)
    sc.file_meta = FileMetaDataset()
    sc.file_meta.MediaStorageSOPClassUID = sop_class
    sc.file_meta.MediaStorageSOPInstanceUID = sc.SOPInstanceUID
    set_native_pixel_data(sc, np.ascontiguousarray(rgb).tobytes(), 8)
    return sc


def display_rgb(ds: Dataset, *, window: Window | None = None) -> np.ndarray:
    """All frames of ``ds`` as 8-bit RGB display values ``(n, rows, cols, 3)``."""
    pixels: DecodedPixels = decode_frames(ds)
    display = display_frames(pixels, ds, window=window)
    return display if display.ndim == 4 else np.repeat(display[..., np.newaxis], 3, axis=-1)
