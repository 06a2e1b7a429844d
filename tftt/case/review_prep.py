"""Previews, burned-in text flags and proposed redactions for the reviewer.

Writes ``previews/<published SOP UID>/frame-NNNN.jpg`` and ``thumb.jpg`` for every first-pass
image, the :class:`~tftt.review_index.ReviewIndex` (``previews/index.json``) whose proposed
spec pre-fills the review form, and the case's instances in the database (published UIDs only).
"""

from __future__ import annotations

from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from sqlmodel import Session

from tftt.case.intake import load_sources, quarantine_input
from tftt.case.runtime import CaseRuntime
from tftt.deid.uids import map_uid
from tftt.errors import RedactionError, TfttError
from tftt.pixels.burned_in import header_risk
from tftt.pixels.codecs import frame_count
from tftt.pixels.preview import render_previews
from tftt.pixels.stage import to_rectangle
from tftt.redaction_spec import InstanceEdits, RedactionSpec
from tftt.review_index import INDEX_FILE, THUMBNAIL_FILE, ReviewImage, ReviewIndex, frame_file
from tftt.store.cases import InstanceInfo, replace_instances, set_status
from tftt.store.db import CaseStatus, PipelineStage, transact
from tftt.store.files import atomic_write_bytes
from tftt.store.workspace import Area, CaseWorkspace

#: At most this many frames of a cine get a preview (evenly spaced, first and last included).
MAX_PREVIEW_FRAMES = 24


@dataclass(frozen=True)
class ReviewSummary:
    """Counts for logs, artifacts and Prefect results (no identifiers)."""

    images: int
    series: int
    frames: int
    flagged: int
    proposed_blackouts: int
    quarantined: int


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _review_image(rt: CaseRuntime, ws: CaseWorkspace, published: str, ds: Dataset
                  ) -> tuple[ReviewImage, InstanceInfo]:
    frames = frame_count(ds)
    risk = header_risk(ds, burned_in_filter=rt.cleaner.burned_in_filter)
    try:
        proposals = rt.cleaner.propose(ds)
    except RedactionError:
        proposals = []  # OCR off and no device rule: the flag stays, the reviewer decides
    previews = render_previews(ds, max_frames=MAX_PREVIEW_FRAMES)
    for preview in previews:
        atomic_write_bytes(ws.file(Area.PREVIEWS, published, frame_file(preview.frame_number)), preview.jpeg,
                           mode=0o600)
    atomic_write_bytes(ws.file(Area.PREVIEWS, published, THUMBNAIL_FILE), previews[0].thumbnail, mode=0o600)
    image = ReviewImage(
        sop_instance_uid=published,
        series_uid=map_uid(rt.key, str(ds.SeriesInstanceUID)),
        series_number=_int(ds, "SeriesNumber"),
        series_description=str(ds.get("SeriesDescription", "") or "") or None,
        instance_number=_int(ds, "InstanceNumber"),
        modality=str(ds.get("Modality", "") or ""),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        frames=frames,
        preview_frames=tuple(p.frame_number for p in previews),
        risk_flags=tuple(risk.reasons),
        proposed=tuple(to_rectangle(r, frames) for r in proposals),
    )
    info = InstanceInfo(
        study_uid=map_uid(rt.key, str(ds.StudyInstanceUID)),
        series_uid=image.series_uid,
        sop_instance_uid=published,
        sop_class_uid=str(ds.SOPClassUID),
        rows=image.rows,
        columns=image.columns,
        frames=frames,
        modality=image.modality or None,
        series_number=image.series_number,
        instance_number=image.instance_number,
        burned_in_annotation=str(ds.get("BurnedInAnnotation", "") or "") or None,
        text_detected=bool(proposals),
    )
    return image, info


def _order(image: ReviewImage) -> tuple[int, int, str]:
    return (image.series_number or 0, image.instance_number or 0, image.sop_instance_uid)


def prepare_review(rt: CaseRuntime, case_id: str) -> ReviewSummary:
    """Build previews, flags, proposals and the review index of the case."""
    ws = rt.workspace(case_id)
    images: list[ReviewImage] = []
    infos: list[InstanceInfo] = []
    documents: list[str] = []
    quarantined = 0
    for published in sorted(load_sources(ws)):
        path = ws.file(Area.FIRST_PASS, f"{published}.dcm")
        data = path.read_bytes()
        try:
            ds = pydicom.dcmread(path)
            if "PixelData" not in ds:
                documents.append(published)  # e.g. a structured report: no previews
                continue
            image, info = _review_image(rt, ws, published, ds)
        except TfttError as exc:
            quarantine_input(rt, ws, case_id, data, PipelineStage.PREVIEWS, exc, new_uid=published)
            quarantined += 1
            continue
        images.append(image)
        infos.append(info)
    images.sort(key=_order)
    proposed = RedactionSpec(instances=[
        InstanceEdits(sop_instance_uid=image.sop_instance_uid, blackouts=list(image.proposed))
        for image in images if image.proposed
    ])
    index = ReviewIndex(case_id=case_id, images=tuple(images), documents=tuple(documents),
                        proposed_spec=proposed)
    ws.write_bytes(Area.PREVIEWS, INDEX_FILE, index.model_dump_json(indent=1).encode())

    def _record(session: Session) -> None:
        replace_instances(session, case_id, infos)
        set_status(session, case_id, CaseStatus.AWAITING_REVIEW)

    transact(rt.engine, _record)
    return ReviewSummary(
        images=len(images),
        series=len({i.series_uid for i in images}),
        frames=sum(i.frames for i in images),
        flagged=sum(1 for i in images if i.risk_flags),
        proposed_blackouts=sum(len(i.proposed) for i in images),
        quarantined=quarantined,
    )


def load_index(ws: CaseWorkspace) -> ReviewIndex:
    return ReviewIndex.model_validate_json(ws.file(Area.PREVIEWS, INDEX_FILE).read_bytes())
