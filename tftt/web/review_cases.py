"""What the review pages show of a case, and the check of a submitted decision.

Reads the case's review index (``previews/index.json``, cached by file size and modification
time), the case rows of TFTT's database, and maps a reviewer's request for a preview to a file
inside the case workspace: only images listed in the index, only their previewed frames, and
only through :func:`~tftt.store.files.contained_path`; no path from a request is ever used.

:func:`check_decision` validates a submitted decision with the same pydantic model the flow
uses and with :func:`~tftt.redaction_spec.validate_against_geometry` against the index's image
sizes, and returns the problems as ``(field, message)`` pairs that carry no value.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from tftt.errors import UnsupportedInputError
from tftt.redaction_spec import (
    ArrowAnnotation,
    CropBox,
    EllipseAnnotation,
    FrameRange,
    ImageGeometry,
    InstanceEdits,
    Rectangle,
    RedactionSpec,
    SeriesEdits,
    TeachingMetadata,
    TextAnnotation,
    validate_against_geometry,
)
from tftt.review_decision import ReviewDecision
from tftt.review_index import INDEX_FILE, THUMBNAIL_FILE, ReviewImage, ReviewIndex, frame_file
from tftt.store import cases
from tftt.store.db import AuditKind, Case, CaseStatus, Instance, QuarantineRecord
from tftt.store.files import contained_path
from tftt.store.uid_syntax import is_uid
from tftt.store.workspace import CaseWorkspace

MAX_DECISION_BYTES = 2 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# The review index, cached


class IndexCache:
    """Review indexes by case workspace, re-read when the file changes (bounded, thread-safe)."""

    def __init__(self, max_entries: int = 64) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[Path, tuple[tuple[int, int], ReviewIndex]] = OrderedDict()

    def load(self, workspace: CaseWorkspace) -> ReviewIndex | None:
        """The case's review index, or ``None`` if the case has none yet.

        Raises:
            UnsupportedInputError: the index file is not a valid review index, or names
                another case.
        """
        path = contained_path(workspace.previews, INDEX_FILE)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._entries.get(path)
            if cached is not None and cached[0] == stamp:
                self._entries.move_to_end(path)
                return cached[1]
        try:
            index = ReviewIndex.model_validate_json(path.read_bytes())
        except ValidationError:
            raise UnsupportedInputError(
                f"case {workspace.case_id}: the review index is not valid", code="bad-review-index"
            ) from None
        if index.case_id != workspace.case_id:
            raise UnsupportedInputError(
                f"case {workspace.case_id}: the review index belongs to another case",
                code="bad-review-index",
            )
        with self._lock:
            self._entries[path] = (stamp, index)
            self._entries.move_to_end(path)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return index


def listed_image(index: ReviewIndex, sop_instance_uid: str) -> ReviewImage | None:
    """The image of the review index with this published UID, or ``None``."""
    if not is_uid(sop_instance_uid):
        return None
    return next((i for i in index.images if i.sop_instance_uid == sop_instance_uid), None)


def preview_file(
    workspace: CaseWorkspace, index: ReviewIndex, sop_instance_uid: str, frame: int | None
) -> Path | None:
    """The JPEG of a listed image's previewed ``frame`` (``None``: its thumbnail), or ``None``
    when the index does not list that image or frame, or the file is missing."""
    image = listed_image(index, sop_instance_uid)
    if image is None:
        return None
    if frame is not None and frame not in image.preview_frames:
        return None
    name = THUMBNAIL_FILE if frame is None else frame_file(frame)
    try:
        path = contained_path(workspace.previews, image.sop_instance_uid, name)
    except UnsupportedInputError:
        return None
    return path if path.is_file() else None


# --------------------------------------------------------------------------------------------
# Flags of images and cases


@dataclass(frozen=True)
class ImageFlags:
    """Why an image deserves the reviewer's attention."""

    burned_in_risk: tuple[str, ...] = ()
    device_rule: bool = False
    ocr_text: bool = False
    quarantine: tuple[str, ...] = ()  # "code: message" of each quarantine record

    @property
    def labels(self) -> list[str]:
        out = []
        if self.burned_in_risk:
            out.append("burned-in risk")
        if self.device_rule:
            out.append("device rule")
        if self.ocr_text:
            out.append("OCR text")
        if self.quarantine:
            out.append("quarantined")
        return out


def image_flags(image: ReviewImage, quarantine: Iterable[QuarantineRecord]) -> ImageFlags:
    sources = [r.source or "" for r in image.proposed]
    return ImageFlags(
        burned_in_risk=tuple(image.risk_flags),
        device_rule=any(s.startswith("device-rule") for s in sources),
        ocr_text=any(s.startswith("ocr") for s in sources),
        quarantine=tuple(
            f"{q.reason_code}: {q.message}"
            for q in quarantine
            if q.sop_instance_uid == image.sop_instance_uid
        ),
    )


@dataclass(frozen=True)
class CaseRow:
    """One line of the list of cases awaiting review (no PHI: ids, counts, codes)."""

    case_id: str
    title: str | None
    modalities: tuple[str, ...]
    series: int
    images: int
    frames: int
    flagged: int
    quarantined: int
    waiting_since: datetime
    flow_run_id: str | None
    round: int = 0
    flags: tuple[str, ...] = field(default=())


def _waiting_since(session: Session, case: Case) -> datetime:
    since = case.updated_at
    for event in cases.list_audit(session, case.id):
        if event.kind == AuditKind.STATUS_CHANGED and event.details.get("to") == (
            CaseStatus.AWAITING_REVIEW.value
        ):
            since = event.at
    return since


def _is_flagged(instance: Instance) -> bool:
    return instance.text_detected or (instance.burned_in_annotation or "").upper() == "YES"


def awaiting_review(session: Session) -> list[CaseRow]:
    """The cases awaiting review, the most recently arrived first."""
    rows: list[CaseRow] = []
    for case in cases.list_cases(session, CaseStatus.AWAITING_REVIEW):
        instances = cases.list_instances(session, case.id)
        quarantine = cases.list_quarantine(session, case.id)
        flagged = sum(1 for i in instances if _is_flagged(i))
        flags = []
        if flagged:
            flags.append(f"{flagged} flagged")
        if quarantine:
            flags.append(f"{len(quarantine)} quarantined")
        rows.append(
            CaseRow(
                case_id=case.id,
                title=case.title,
                modalities=tuple(sorted({i.modality for i in instances if i.modality})),
                series=len({i.series_uid for i in instances}),
                images=len(instances),
                frames=sum(i.frames for i in instances),
                flagged=flagged,
                quarantined=len(quarantine),
                waiting_since=_waiting_since(session, case),
                flow_run_id=case.flow_run_id,
                round=case.review_round,
                flags=tuple(flags),
            )
        )
    rows.sort(key=lambda r: (r.waiting_since, r.case_id), reverse=True)
    return rows


# --------------------------------------------------------------------------------------------
# Checking a submitted decision


@dataclass(frozen=True)
class FieldError:
    """A problem with a submitted decision: where (a dotted path) and what, no values."""

    field: str
    message: str


def _known_names() -> frozenset[str]:
    models: list[type[BaseModel]] = [
        ReviewDecision,
        RedactionSpec,
        SeriesEdits,
        InstanceEdits,
        Rectangle,
        CropBox,
        FrameRange,
        ArrowAnnotation,
        EllipseAnnotation,
        TextAnnotation,
        TeachingMetadata,
    ]
    names = {name for model in models for name in model.model_fields}
    return frozenset(names | {"arrow", "ellipse", "text"})


_KNOWN = _known_names()


def dotted_field(loc: Iterable[int | str]) -> str:
    """A pydantic error location as a decision's dotted field name (unknown names hidden)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if part in _KNOWN else "<unknown field>"
            out += f".{name}" if out else name
    return out or "(decision)"


_PROBLEM = re.compile(
    r"^(?P<where>(?:series|instances)\[\d+\])[^:]*:(?: (?P<what>blackouts\[\d+\]|crop|annotations\[\d+\]))?"
)


def problem_field(problem: str) -> str:
    """The decision field a geometry problem of :func:`validate_against_geometry` is about."""
    match = _PROBLEM.match(problem)
    if match is None:
        return "spec"
    where = f"spec.{match.group('where')}"
    return f"{where}.{match.group('what')}" if match.group("what") else where


def geometry_of(index: ReviewIndex) -> dict[str, ImageGeometry]:
    """Image sizes by published SOP Instance UID, as the flow checks a decision."""
    return {
        image.sop_instance_uid: ImageGeometry(image.rows, image.columns, image.frames, image.series_uid)
        for image in index.images
    }


def check_decision(body: bytes, index: ReviewIndex) -> tuple[ReviewDecision | None, list[FieldError]]:
    """The decision in ``body`` if it is valid for the case, else ``None`` and its problems."""
    if len(body) > MAX_DECISION_BYTES:
        return None, [FieldError("(decision)", "the decision is too large")]
    try:
        decision = ReviewDecision.model_validate_json(body)
    except ValidationError as exc:
        errors = [
            FieldError(dotted_field(error["loc"]), error["msg"])
            for error in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        return None, errors
    problems = validate_against_geometry(decision.spec, geometry_of(index))
    if problems:
        return None, [FieldError(problem_field(p), p) for p in problems]
    return decision, []


def decision_summary(decision: ReviewDecision) -> dict[str, object]:
    """Counts for the audit record (no free text but the reviewer's name as entered)."""
    spec = decision.spec
    parts = [*spec.series, *spec.instances]
    return {
        "approved": decision.approved,
        "reviewer": decision.reviewer,
        "publish_now": decision.publish_now,
        "blackouts": sum(len(p.blackouts) for p in parts),
        "crops": sum(1 for p in parts if p.crop is not None),
        "annotations": sum(len(p.annotations) for p in parts),
        "excluded_series": sum(1 for s in spec.series if s.exclude),
        "excluded_images": sum(1 for i in spec.instances if i.exclude),
    }
