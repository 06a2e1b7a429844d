"""Images the review page asks the server to render: the "after" view and CT window presets.

The "after" view of an image is its FIRST-PASS DICOM (``first_pass/<published uid>.dcm``) with
the reviewer's current edits applied by :func:`tftt.pixels.redact.apply_edits`, the code that
writes the edited DICOM after the review (:mod:`tftt.case.finishing`), rendered by
:func:`tftt.pixels.preview.render_frame` as the published annotated JPEGs are (annotations
drawn after the crop). A window preset renders the first-pass frame with a named VOI window of
:data:`~tftt.pixels.preview.CT_WINDOW_PRESETS` instead of the header's.

The page sends the spec it would submit (the ``spec`` of a ``ReviewDecision``); the image's
edits are resolved from it with :meth:`RedactionSpec.edits_for`, exactly as the decision is, and
checked against the image's geometry with the decision's own check. Paths come from the review
index (published UIDs) through :func:`~tftt.store.files.contained_path`, never from a request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydantic import ValidationError

from tftt.errors import UnsupportedInputError
from tftt.pixels.codecs import frame_count
from tftt.pixels.preview import CT_WINDOW_PRESETS, Window, render_frame
from tftt.pixels.redact import apply_edits
from tftt.redaction_spec import ImageEdits, RedactionSpec, validate_against_geometry
from tftt.review_index import ReviewImage, ReviewIndex
from tftt.store.files import contained_path
from tftt.store.workspace import CaseWorkspace
from tftt.web.review_cases import FieldError, dotted_field, geometry_of, problem_field

#: The largest spec the after view takes (the decision that carries it has the same limit).
MAX_SPEC_BYTES = 2 * 1024 * 1024
#: Modalities whose images are offered the window presets.
WINDOWED_MODALITIES = frozenset({"CT"})

_POSITION = re.compile(r"^spec\.(?P<level>series|instances)\[(?P<at>\d+)\]")


@dataclass(frozen=True)
class RenderTarget:
    """A listed image of a case and its first-pass file."""

    image: ReviewImage
    first_pass: Path


def render_target(workspace: CaseWorkspace, image: ReviewImage) -> RenderTarget | None:
    """The image's first-pass file, or ``None`` when it is not (or no longer) there."""
    try:
        path = contained_path(workspace.first_pass, f"{image.sop_instance_uid}.dcm")
    except UnsupportedInputError:
        return None
    return RenderTarget(image, path) if path.is_file() else None


def window_preset(name: str | None, image: ReviewImage) -> tuple[Window | None, list[FieldError]]:
    """The window named ``name`` for ``image`` (``None``: the default rendering)."""
    if name is None:
        return None, []
    if image.modality not in WINDOWED_MODALITIES:
        return None, [FieldError("window", "window presets are offered for CT images only")]
    window = CT_WINDOW_PRESETS.get(name)
    if window is None:
        known = ", ".join(CT_WINDOW_PRESETS)
        return None, [FieldError("window", f"unknown window preset; use one of: {known}")]
    return window, []


def check_after_spec(body: bytes, index: ReviewIndex, image: ReviewImage
                     ) -> tuple[ImageEdits | None, list[FieldError]]:
    """The edits of ``image`` resolved from the spec in ``body``, else ``None`` and problems.

    Fields are named as in a decision (``spec.instances[0].crop``). Only the spec's entries that
    apply to this image (its series' and its own) are checked against the case's geometry; an
    image the spec excludes has no after view.
    """
    if len(body) > MAX_SPEC_BYTES:
        return None, [FieldError("spec", "the spec is too large")]
    try:
        spec = RedactionSpec.model_validate_json(body)
    except ValidationError as exc:
        return None, [
            FieldError(dotted_field(("spec", *error["loc"])), error["msg"])
            for error in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
    mine = {("series", str(p)) for p, s in enumerate(spec.series) if s.series_uid == image.series_uid}
    mine |= {
        ("instances", str(p))
        for p, i in enumerate(spec.instances)
        if i.sop_instance_uid == image.sop_instance_uid
    }
    problems = []
    for problem in validate_against_geometry(spec, geometry_of(index)):
        field = problem_field(problem)
        match = _POSITION.match(field)
        if match is not None and (match.group("level"), match.group("at")) in mine:
            problems.append(FieldError(field, problem))
    if problems:
        return None, problems
    edits = spec.edits_for(image.series_uid, image.sop_instance_uid)
    if edits.exclude:
        return None, [FieldError("spec", "this image is excluded: nothing of it will be published")]
    return edits, []


def render_after(target: RenderTarget, edits: ImageEdits, frame: int, window: Window | None = None) -> bytes:
    """The JPEG of ``frame`` (from 1) of the image with ``edits`` applied, annotations drawn.

    Raises:
        UnsupportedInputError: the first-pass file cannot be read or decoded.
        RedactionError: the edits cannot be applied (see :func:`tftt.pixels.redact.apply_edits`).
    """
    ds = _read(target.first_pass)
    edited = apply_edits(ds, edits) if edits.changes_pixels else ds
    return render_frame(
        edited,
        frame,
        max_frames=_max_frames(target.image, ds),
        window=window,
        annotations=edits.annotations_after_crop(),
    )


def render_window(target: RenderTarget, frame: int, window: Window) -> bytes:
    """The JPEG of first-pass ``frame`` (from 1) with the VOI ``window``.

    Raises:
        UnsupportedInputError: the first-pass file cannot be read or decoded.
    """
    ds = _read(target.first_pass)
    return render_frame(ds, frame, max_frames=_max_frames(target.image, ds), window=window)


def _read(path: Path) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise UnsupportedInputError(
            f"the first-pass file cannot be read ({type(exc).__name__})", code="unreadable-first-pass"
        ) from None


def _max_frames(image: ReviewImage, ds: pydicom.Dataset) -> int:
    """The sampling the image's previews were made with (the index lists the sampled frames;
    :func:`~tftt.pixels.preview.sample_frame_numbers` gives them back from their count)."""
    return max(1, min(len(image.preview_frames), frame_count(ds)))
