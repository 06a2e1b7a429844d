"""After the review: pixel edits, the OCR re-check, the second pass and verification.

For every image of the review index (and every pixel-less document) the reviewer did not
exclude: apply the blackouts and crop to every frame, run OCR again on images flagged for
burned-in text (text still found → quarantine), de-identify with the second-pass profile, verify
the result independently against identifiers harvested from the *original* incoming file, and
write ``second_pass/<new SOP UID>.dcm`` plus a clean and an annotated JPEG per previewed frame in
``published/``. Anything that fails is quarantined with its reason and never published.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from tftt.case.intake import load_sources, quarantine_input
from tftt.case.review_prep import MAX_PREVIEW_FRAMES, load_index
from tftt.case.runtime import CaseRuntime
from tftt.case.teaching_text import require_clean_teaching_text
from tftt.deid.engine import DeidContext, deidentify, serialize
from tftt.deid.pipeline import parse
from tftt.deid.uids import map_uid
from tftt.errors import RedactionError, TfttError
from tftt.pixels.annotate import derive_annotated_series
from tftt.pixels.burned_in import ProposedRegion
from tftt.pixels.codecs import decode_frames
from tftt.pixels.ocr import residual_text
from tftt.pixels.preview import render_previews
from tftt.pixels.redact import apply_edits
from tftt.redaction_spec import Annotation, CropBox, ImageEdits, Rectangle
from tftt.review_decision import ReviewDecision
from tftt.review_index import ReviewImage
from tftt.store.cases import record_audit, set_status
from tftt.store.db import AuditKind, CaseStatus, PipelineStage, transact
from tftt.store.workspace import Area, CaseWorkspace

DECISION_FILE = "decision.json"
PUBLISHED_INDEX = "images.json"


@dataclass(frozen=True)
class FinishSummary:
    written: int
    excluded: int
    quarantined: int
    derived: int


@dataclass(frozen=True)
class _Written:
    sop_instance_uid: str
    dicom: str
    frames: list[dict[str, object]]


def _second_pass(rt: CaseRuntime, ds: Dataset, original: Dataset, *, cleaned: bool) -> tuple[str, bytes, Dataset]:
    result = deidentify(ds, DeidContext(rules=rt.pipeline.second, key=rt.key, pixels_cleaned=cleaned))
    data = serialize(result.dataset)
    rules = rt.pipeline.verification
    rules.verify(rules.harvest(original), data, result.file_name)
    return result.file_name, data, result.dataset


def _jpegs(ws: CaseWorkspace, name: str, ds: Dataset, annotations: tuple[Annotation, ...]) -> list[dict[str, object]]:
    if "PixelData" not in ds:
        return []
    frames: list[dict[str, object]] = []
    clean = render_previews(ds, max_frames=MAX_PREVIEW_FRAMES)
    annotated = render_previews(ds, max_frames=MAX_PREVIEW_FRAMES, annotations=annotations) if annotations else []
    for index, preview in enumerate(clean):
        jpeg = f"{name}-f{preview.frame_number:04d}.jpg"
        ws.write_bytes(Area.PUBLISHED, jpeg, preview.jpeg, mode=0o644)
        entry: dict[str, object] = {"number": preview.frame_number, "jpeg": jpeg, "annotated_jpeg": None}
        if annotated:
            annotated_name = f"{name}-f{preview.frame_number:04d}-annotated.jpg"
            ws.write_bytes(Area.PUBLISHED, annotated_name, annotated[index].jpeg, mode=0o644)
            entry["annotated_jpeg"] = annotated_name
        frames.append(entry)
    return frames


def _overlaps(a: Rectangle | ProposedRegion, b: Rectangle) -> bool:
    return a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height


def still_readable(found: list[ProposedRegion], detected: tuple[Rectangle, ...], crop: CropBox | None
                   ) -> list[ProposedRegion]:
    """Text read after the edit where text was detected before it (device rules, OCR).

    OCR on ultrasound speckle or at a new crop edge reads "words" where there is no text; only
    text found again where it was found before the edit means the reviewer left it readable.
    """
    dx, dy = (crop.x, crop.y) if crop is not None else (0, 0)
    shifted = [r.model_copy(update={"x": r.x - dx, "y": r.y - dy}) for r in detected]
    return [region for region in found if any(_overlaps(region, rect) for rect in shifted)]


def _edit(rt: CaseRuntime, ds: Dataset, image: ReviewImage | None, edits: ImageEdits) -> tuple[Dataset, bool]:
    edited = apply_edits(ds, edits) if edits.changes_pixels else ds
    if image is not None and image.risk_flags and rt.settings.deid.ocr:
        left = still_readable(residual_text(decode_frames(edited).frames, []), image.proposed, edits.crop)
        if left:
            raise RedactionError(f"burned-in text is still readable in {len(left)} region(s) after review",
                                 code="residual-burned-in-text")
    return edited, edits.changes_pixels


def finish_case(rt: CaseRuntime, case_id: str, decision: ReviewDecision) -> FinishSummary:
    """Apply the decision to every first-pass object and produce the verified second pass.

    Raises:
        ResidualPHIError: the decision's teaching text holds an identifier of the case (the
            review step asks again before this; checked here too, before anything is written).
    """
    require_clean_teaching_text(rt, case_id, decision.teaching_metadata, decision.spec)
    ws = rt.workspace(case_id)
    transact(rt.engine, lambda s: set_status(s, case_id, CaseStatus.PROCESSING, actor=decision.reviewer))
    for area in (Area.SECOND_PASS, Area.PUBLISHED):
        shutil.rmtree(ws.area(area), ignore_errors=True)
    ws.ensure()
    ws.write_bytes(Area.PUBLISHED, DECISION_FILE, decision.model_dump_json(indent=1).encode())
    index = load_index(ws)
    sources = load_sources(ws)
    images = {image.sop_instance_uid: image for image in index.images}
    order = [image.sop_instance_uid for image in index.images] + list(index.documents)
    written: list[_Written] = []
    edited_for_derivation: list[tuple[Dataset, tuple[Annotation, ...], Dataset]] = []
    excluded = quarantined = 0
    for published in order:
        image = images.get(published)
        edits = (decision.spec.edits_for(image.series_uid, published) if image is not None
                 else ImageEdits())
        if edits.exclude:
            excluded += 1
            continue
        first_path = ws.file(Area.FIRST_PASS, f"{published}.dcm")
        stage = PipelineStage.PIXELS
        try:
            first = pydicom.dcmread(first_path)
            original = parse(ws.resolve(sources[published]).read_bytes())
            edited, cleaned = _edit(rt, first, image, edits)
            stage = PipelineStage.SECOND_PASS
            name, data, final = _second_pass(rt, edited, original, cleaned=cleaned)
        except TfttError as exc:
            quarantine_input(rt, ws, case_id, first_path.read_bytes(), stage, exc, new_uid=published)
            quarantined += 1
            continue
        ws.write_bytes(Area.SECOND_PASS, name, data, mode=0o644)
        annotations = edits.annotations_after_crop()
        frames = _jpegs(ws, name.removesuffix(".dcm"), final, annotations)
        written.append(_Written(sop_instance_uid=name.removesuffix(".dcm"), dicom=name, frames=frames))
        if annotations and decision.spec.burn_in_annotations:
            edited_for_derivation.append((final, annotations, original))
    derived, failed = _derive_annotated(rt, ws, edited_for_derivation, written) if edited_for_derivation else (0, 0)
    quarantined += failed
    ws.write_bytes(Area.PUBLISHED, PUBLISHED_INDEX,
                   json.dumps([w.__dict__ for w in written], indent=1).encode(), mode=0o644)
    transact(rt.engine, lambda s: record_audit(
        s, case_id, AuditKind.REVIEW_SUBMITTED, actor=decision.reviewer,
        details={"approved": decision.approved, "written": len(written), "excluded": excluded,
                 "quarantined": quarantined, "derived": derived}))
    return FinishSummary(written=len(written), excluded=excluded, quarantined=quarantined, derived=derived)


def _derive_annotated(rt: CaseRuntime, ws: CaseWorkspace,
                      items: list[tuple[Dataset, tuple[Annotation, ...], Dataset]], written: list[_Written]
                      ) -> tuple[int, int]:
    """The optional derived Secondary Capture series with the annotations burned in.

    Each derived object is made from a verified second-pass image, then goes through the second
    pass and the verification against its source's original like every other output. One that
    cannot be made or fails is quarantined with its reason; the rest of the case goes on.
    """
    count = failed = 0
    for final, marks, original in items:
        source_uid = str(final.SOPInstanceUID)
        try:
            derived = derive_annotated_series([final], {source_uid: list(marks)},
                                              lambda seed: map_uid(rt.key, seed))
        except TfttError as exc:
            quarantine_input(rt, ws, ws.case_id, serialize(final), PipelineStage.PIXELS, exc, new_uid=source_uid)
            failed += 1
            continue
        for ds in derived:
            try:
                name, data, checked = _second_pass(rt, ds, original, cleaned=True)
            except TfttError as exc:  # this derived object only; the case goes on
                quarantine_input(rt, ws, ws.case_id, serialize(ds), PipelineStage.SECOND_PASS, exc)
                failed += 1
                continue
            ws.write_bytes(Area.SECOND_PASS, name, data, mode=0o644)
            uid = name.removesuffix(".dcm")
            written.append(_Written(sop_instance_uid=uid, dicom=name, frames=_jpegs(ws, uid, checked, ())))
            count += 1
    return count, failed
