"""The redaction spec: what a reviewer (or an automatic proposal) asks TFTT to do to the pixels.

A spec is data: frozen pydantic models with ``extra="forbid"``, exported as JSON Schema to
``redaction_specs/schema.json`` (see ``scripts/export_schema.py``) and embedded in the
:class:`tftt.review_decision.ReviewDecision` that the case flow waits for.

Coordinates and numbering
    All coordinates are in pixels of the image **as it arrived in the first pass** (before any
    crop): ``x`` counts columns from the left edge, ``y`` rows from the top edge, both from 0.
    A rectangle covers columns ``x .. x+width-1`` and rows ``y .. y+height-1``. Annotations use
    the same coordinates; after a crop, :func:`shift_annotations` moves them into the cropped
    image. Frames are numbered from 1, as DICOM numbers them, and a :class:`FrameRange` is
    inclusive at both ends. A missing frame range means every frame.

Keys
    Series and instances are named by their **first-pass** UIDs. The first pass retains UIDs, so
    these are the UIDs of the source study; the second pass replaces them later.

Lists, not dictionaries
    Per-series and per-instance edits are *lists* of items that carry their own
    ``series_uid`` / ``sop_instance_uid``, not dictionaries keyed by UID. The Prefect UI builds
    its review form from the JSON Schema and can add, edit and delete list items, but it cannot
    edit free-form dictionary keys. Duplicate UIDs in one list are rejected.

Resolution (:meth:`RedactionSpec.edits_for`)
    The edits of one image are its series' edits combined with its own instance edits:
    blackout rectangles and annotations of both are applied (instance items are *added* to the
    series items); an instance crop *replaces* the series crop; the image is excluded when
    either its series or the instance itself is excluded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tftt.errors import ReviewError

UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"
COLOR_PATTERN = r"^#[0-9A-Fa-f]{6}$"
SPEC_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FrameRange(_Model):
    """Frames ``first`` to ``last`` (numbered from 1, both included)."""

    first: int = Field(ge=1, description="First frame, numbered from 1")
    last: int = Field(ge=1, description="Last frame, included")

    @model_validator(mode="after")
    def _ordered(self) -> FrameRange:
        if self.last < self.first:
            raise ValueError("frame range: 'last' must not be before 'first'")
        return self

    def contains(self, frame_number: int) -> bool:
        return self.first <= frame_number <= self.last


class Rectangle(_Model):
    """A blackout rectangle in image pixels, over some or all frames."""

    x: int = Field(ge=0, description="Left edge, columns from the left (0 = first column)")
    y: int = Field(ge=0, description="Top edge, rows from the top (0 = first row)")
    width: int = Field(gt=0, description="Width in pixels")
    height: int = Field(gt=0, description="Height in pixels")
    frames: FrameRange | None = Field(
        None, title="Frames", description="Frames to black out; empty means every frame"
    )
    source: str | None = Field(
        None,
        title="Source",
        max_length=120,
        description="Where the rectangle came from, e.g. 'reviewer', 'device-rule:<id>', 'ocr'",
    )


class CropBox(_Model):
    """The part of the image to keep."""

    x: int = Field(ge=0, description="Left edge of the kept area")
    y: int = Field(ge=0, description="Top edge of the kept area")
    width: int = Field(gt=0, description="Width of the kept area")
    height: int = Field(gt=0, description="Height of the kept area")


class _AnnotationBase(_Model):
    color: str = Field("#FFFF00", pattern=COLOR_PATTERN, description="Colour as #RRGGBB")
    frames: FrameRange | None = Field(
        None, title="Frames", description="Frames to draw on; empty means every frame"
    )


class ArrowAnnotation(_AnnotationBase):
    """An arrow from a tail point to a head point."""

    kind: Literal["arrow"] = "arrow"
    tail_x: int = Field(description="Column of the arrow's tail")
    tail_y: int = Field(description="Row of the arrow's tail")
    head_x: int = Field(description="Column of the arrow's head (the pointed end)")
    head_y: int = Field(description="Row of the arrow's head")

    @model_validator(mode="after")
    def _not_a_point(self) -> ArrowAnnotation:
        if (self.tail_x, self.tail_y) == (self.head_x, self.head_y):
            raise ValueError("arrow: tail and head must differ")
        return self


class EllipseAnnotation(_AnnotationBase):
    """An ellipse outline around a centre; a circle has equal radii."""

    kind: Literal["ellipse"] = "ellipse"
    center_x: int = Field(description="Column of the centre")
    center_y: int = Field(description="Row of the centre")
    radius_x: int = Field(gt=0, description="Horizontal radius in pixels")
    radius_y: int = Field(gt=0, description="Vertical radius in pixels")


class TextAnnotation(_AnnotationBase):
    """A text label whose top-left corner is at (x, y)."""

    kind: Literal["text"] = "text"
    x: int = Field(description="Column of the label's left edge")
    y: int = Field(description="Row of the label's top edge")
    text: str = Field(min_length=1, max_length=200, description="The label")
    font_size: int | None = Field(
        None,
        title="Font size",
        ge=6,
        le=200,
        description="Pixels; empty means about 1/30 of the height",
    )


Annotation = Annotated[
    ArrowAnnotation | EllipseAnnotation | TextAnnotation, Field(discriminator="kind")
]


class _Edits(_Model):
    blackouts: list[Rectangle] = Field(default_factory=list, description="Areas to black out")
    crop: CropBox | None = Field(None, title="Crop", description="Area to keep; empty means all")
    annotations: list[Annotation] = Field(default_factory=list, description="Teaching marks")
    exclude: bool = Field(False, description="Drop from the case")


class SeriesEdits(_Edits):
    """Edits for every image of one series."""

    series_uid: str = Field(
        pattern=UID_PATTERN, max_length=64, description="Published Series UID, as in the review index"
    )


class InstanceEdits(_Edits):
    """Edits for one image; added to (blackouts, annotations) or replacing (crop) its series'."""

    sop_instance_uid: str = Field(
        pattern=UID_PATTERN, max_length=64, description="Published SOP Instance UID, as in the review index"
    )


class ImageEdits(_Model):
    """The resolved edits of one image (series and instance edits combined)."""

    blackouts: tuple[Rectangle, ...] = ()
    crop: CropBox | None = None
    annotations: tuple[Annotation, ...] = ()
    exclude: bool = False

    @property
    def changes_pixels(self) -> bool:
        """True when the original-format image needs new pixel data (blackout or crop)."""
        return bool(self.blackouts) or self.crop is not None

    def annotations_after_crop(self) -> tuple[Annotation, ...]:
        """The annotations in the coordinates of the edited (cropped) image."""
        if self.crop is None:
            return self.annotations
        return shift_annotations(self.annotations, -self.crop.x, -self.crop.y)


class RedactionSpec(_Model):
    """Pixel edits for a case, per series and per instance.

    Images are named by their published (keyed-hash) UIDs, listed in the case's review index
    (:mod:`tftt.review_index`), so a decision stored in Prefect carries no source identifier.
    """

    spec_version: Literal[1] = Field(1, description="Format version of this spec")
    series: list[SeriesEdits] = Field(default_factory=list, description="Edits per series")
    instances: list[InstanceEdits] = Field(default_factory=list, description="Edits per image")
    burn_in_annotations: bool = Field(
        False,
        title="Burn in annotations",
        description="Also publish a derived Secondary Capture series with the annotations drawn in",
    )

    @model_validator(mode="after")
    def _unique_keys(self) -> RedactionSpec:
        _reject_duplicates("series", [s.series_uid for s in self.series])
        _reject_duplicates("instances", [i.sop_instance_uid for i in self.instances])
        return self

    def edits_for(self, series_uid: str, sop_instance_uid: str) -> ImageEdits:
        """The edits of one image, combining its series' and its own (see the module doc)."""
        series = next((s for s in self.series if s.series_uid == series_uid), None)
        instance = next((i for i in self.instances if i.sop_instance_uid == sop_instance_uid), None)
        blackouts: list[Rectangle] = []
        annotations: list[Annotation] = []
        crop: CropBox | None = None
        exclude = False
        for part in (series, instance):
            if part is None:
                continue
            blackouts.extend(part.blackouts)
            annotations.extend(part.annotations)
            crop = part.crop if part.crop is not None else crop
            exclude = exclude or part.exclude
        return ImageEdits(
            blackouts=tuple(blackouts), crop=crop, annotations=tuple(annotations), exclude=exclude
        )


class TeachingMetadata(_Model):
    """What the case teaches; entered by the reviewer."""

    title: str = Field(min_length=1, max_length=200, description="Case title")
    history: str = Field("", max_length=5000, description="Clinical history")
    findings: str = Field("", max_length=10000, description="Imaging findings")
    diagnosis: str = Field("", max_length=1000, description="Diagnosis")
    keywords: list[str] = Field(default_factory=list, description="Keywords")
    author: str = Field("", max_length=200, description="Author(s) of the case")
    abstract: str | None = Field(None, title="Abstract", max_length=5000, description="Summary")
    public: bool | None = Field(
        None, title="Public", description="On a MIRC teaching file server: a public document (empty: the site default)"
    )


def _reject_duplicates(where: str, keys: Sequence[str]) -> None:
    seen: set[str] = set()
    for position, key in enumerate(keys):
        if key in seen:
            raise ValueError(f"{where}[{position}] repeats a UID used earlier in '{where}'")
        seen.add(key)


# --- geometry checks -------------------------------------------------------------------------


class ImageGeometry(NamedTuple):
    """The size of one image as stored after the first pass."""

    rows: int
    columns: int
    frames: int = 1
    series_uid: str | None = None


GeometryInput = ImageGeometry | tuple[int, int, int]


def validate_against_geometry(
    spec: RedactionSpec,
    geometry: Mapping[str, GeometryInput],
    *,
    series_of: Mapping[str, str] | None = None,
) -> list[str]:
    """Check every edit of ``spec`` against the images it applies to.

    ``geometry`` maps each SOP Instance UID of the case to ``(rows, columns, frames)`` or an
    :class:`ImageGeometry`. Series edits are checked against every image of their series; the
    series of an image comes from ``ImageGeometry.series_uid`` or from ``series_of``
    (SOP Instance UID -> Series Instance UID). Returns human-readable problems, empty when
    the spec fits; messages name spec positions and sizes, never UIDs.
    """
    images: dict[str, ImageGeometry] = {}
    for sop_uid, value in geometry.items():
        g = value if isinstance(value, ImageGeometry) else ImageGeometry(*value)
        if g.series_uid is None and series_of is not None and sop_uid in series_of:
            g = g._replace(series_uid=series_of[sop_uid])
        images[sop_uid] = g

    problems: list[str] = []
    for s_pos, series in enumerate(spec.series):
        members = [g for g in images.values() if g.series_uid == series.series_uid]
        where = f"series[{s_pos}]"
        if not members:
            problems.append(f"{where}: no image of the case belongs to this series")
            continue
        for n, image in enumerate(members, start=1):
            label = f"{where} (image {n} of {len(members)}, {image.columns}x{image.rows}"
            label += f", {image.frames} frame{'s' if image.frames != 1 else ''})"
            problems.extend(_check_edits(series, image, label))
    for i_pos, instance in enumerate(spec.instances):
        where = f"instances[{i_pos}]"
        found = images.get(instance.sop_instance_uid)
        if found is None:
            problems.append(f"{where}: no image of the case has this SOP Instance UID")
            continue
        label = f"{where} ({found.columns}x{found.rows}, {found.frames} frame"
        label += f"{'s' if found.frames != 1 else ''})"
        problems.extend(_check_edits(instance, found, label))
    return problems


def check_against_geometry(
    spec: RedactionSpec,
    geometry: Mapping[str, GeometryInput],
    *,
    series_of: Mapping[str, str] | None = None,
) -> None:
    """Like :func:`validate_against_geometry`, but raise when anything does not fit.

    Raises:
        ReviewError: code ``invalid-redaction-spec``; the message lists every problem.
    """
    problems = validate_against_geometry(spec, geometry, series_of=series_of)
    if problems:
        raise ReviewError(
            "the redaction spec does not fit the images: " + "; ".join(problems),
            code="invalid-redaction-spec",
        )


def _check_edits(edits: _Edits, image: ImageGeometry, label: str) -> list[str]:
    problems: list[str] = []
    for r_pos, rect in enumerate(edits.blackouts):
        where = f"{label}: blackouts[{r_pos}]"
        problems.extend(_box_problems(where, "rectangle", rect, image))
        problems.extend(_frame_problems(where, rect.frames, image))
    if edits.crop is not None:
        problems.extend(_box_problems(f"{label}: crop", "crop box", edits.crop, image))
    whole = CropBox(x=0, y=0, width=image.columns, height=image.rows)
    for a_pos, annotation in enumerate(edits.annotations):
        problems.extend(_frame_problems(f"{label}: annotations[{a_pos}]", annotation.frames, image))
        if not _annotation_inside(annotation, whole):
            problems.append(f"{label}: annotations[{a_pos}] lies entirely outside the image")
        elif edits.crop is not None and not _annotation_inside(annotation, edits.crop):
            problems.append(
                f"{label}: annotations[{a_pos}] lies outside the crop box and would not be seen"
            )
    return problems


def _box_problems(
    where: str, what: str, box: Rectangle | CropBox, image: ImageGeometry
) -> list[str]:
    problems = []
    if box.x + box.width > image.columns:
        problems.append(
            f"{where}: {what} spans columns {box.x}..{box.x + box.width - 1}, "
            f"but the image has columns 0..{image.columns - 1}"
        )
    if box.y + box.height > image.rows:
        problems.append(
            f"{where}: {what} spans rows {box.y}..{box.y + box.height - 1}, "
            f"but the image has rows 0..{image.rows - 1}"
        )
    return problems


def _frame_problems(where: str, frames: FrameRange | None, image: ImageGeometry) -> list[str]:
    if frames is None or frames.last <= image.frames:
        return []
    return [
        f"{where}: frames {frames.first}..{frames.last} requested, "
        f"but the image has frames 1..{image.frames}"
    ]


def annotation_bounds(annotation: Annotation) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the anchor area of an annotation (text: its anchor point only)."""
    if isinstance(annotation, ArrowAnnotation):
        xs, ys = (annotation.tail_x, annotation.head_x), (annotation.tail_y, annotation.head_y)
        return min(xs), min(ys), max(xs), max(ys)
    if isinstance(annotation, EllipseAnnotation):
        return (
            annotation.center_x - annotation.radius_x,
            annotation.center_y - annotation.radius_y,
            annotation.center_x + annotation.radius_x,
            annotation.center_y + annotation.radius_y,
        )
    return annotation.x, annotation.y, annotation.x, annotation.y


def _annotation_inside(annotation: Annotation, crop: CropBox) -> bool:
    """True when the annotation touches the crop box at all."""
    x0, y0, x1, y1 = annotation_bounds(annotation)
    return x1 >= crop.x and y1 >= crop.y and x0 < crop.x + crop.width and y0 < crop.y + crop.height


def shift_annotations(
    annotations: Iterable[Annotation], dx: int, dy: int
) -> tuple[Annotation, ...]:
    """The annotations moved by ``(dx, dy)`` pixels, e.g. ``(-crop.x, -crop.y)`` after a crop."""
    shifted: list[Annotation] = []
    for a in annotations:
        update: dict[str, Any]
        if isinstance(a, ArrowAnnotation):
            update = {
                "tail_x": a.tail_x + dx,
                "tail_y": a.tail_y + dy,
                "head_x": a.head_x + dx,
                "head_y": a.head_y + dy,
            }
        elif isinstance(a, EllipseAnnotation):
            update = {"center_x": a.center_x + dx, "center_y": a.center_y + dy}
        else:
            update = {"x": a.x + dx, "y": a.y + dy}
        shifted.append(a.model_copy(update=update))
    return tuple(shifted)


def schema_document() -> dict[str, Any]:
    """The JSON Schema document written to ``redaction_specs/schema.json``.

    ``RedactionSpec`` is pydantic's schema of the spec; ``ReviewDecision`` is the schema exactly
    as Prefect stores it for the review form (``create_v2_schema``).
    """
    from prefect._internal.pydantic.v2_schema import create_v2_schema

    from tftt.review_decision import ReviewDecision

    return {
        "$comment": "Generated by scripts/export_schema.py from tftt/redaction_spec.py and "
        "tftt/review_decision.py; do not edit by hand.",
        "spec_version": SPEC_VERSION,
        "RedactionSpec": RedactionSpec.model_json_schema(),
        "ReviewDecision": create_v2_schema(ReviewDecision.__name__, model_base=ReviewDecision),
    }
