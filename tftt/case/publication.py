"""Publication of a finished case to its targets, at once or as READY for the nightly batch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from tftt.case.finishing import DECISION_FILE, PUBLISHED_INDEX
from tftt.case.runtime import CaseRuntime
from tftt.errors import TfttError
from tftt.publish.base import PublicationReceipt, PublishableCase, PublishableFrame, PublishableImage
from tftt.publish.registry import make_targets
from tftt.review_decision import ReviewDecision
from tftt.settings import PublishMode
from tftt.store.cases import (
    effective_publish_mode,
    get_case,
    list_cases,
    list_publications,
    set_status,
    upsert_publication,
)
from tftt.store.db import CaseStatus, PublicationStatus, transact
from tftt.store.workspace import Area


@dataclass(frozen=True)
class PublishSummary:
    targets: tuple[str, ...]
    failed: tuple[str, ...]


def load_decision(rt: CaseRuntime, case_id: str) -> ReviewDecision:
    ws = rt.workspace(case_id)
    return ReviewDecision.model_validate_json(ws.file(Area.PUBLISHED, DECISION_FILE).read_bytes())


def publishable_case(rt: CaseRuntime, case_id: str) -> PublishableCase:
    """The verified second-pass files and their JPEGs, in reading order, with the metadata."""
    ws = rt.workspace(case_id)
    decision = load_decision(rt, case_id)
    entries = json.loads(ws.file(Area.PUBLISHED, PUBLISHED_INDEX).read_text())
    images = []
    for entry in entries:
        frames = tuple(
            PublishableFrame(
                number=int(frame["number"]),
                jpeg=ws.file(Area.PUBLISHED, str(frame["jpeg"])),
                annotated_jpeg=(ws.file(Area.PUBLISHED, str(frame["annotated_jpeg"]))
                                if frame.get("annotated_jpeg") else None),
            )
            for frame in entry["frames"]
        )
        if frames:
            images.append(PublishableImage(dicom=ws.file(Area.SECOND_PASS, entry["dicom"]), frames=frames))
    return PublishableCase(case_id=case_id, metadata=decision.teaching_metadata.model_dump(mode="json"),
                           images=tuple(images))


def publish_mode(rt: CaseRuntime, case_id: str, publish_now: bool | None) -> PublishMode:
    """Per case (the decision, then the case record), else the site's setting."""
    if publish_now is not None:
        return PublishMode.IMMEDIATE if publish_now else PublishMode.NIGHTLY
    case = transact(rt.engine, lambda s: get_case(s, case_id))
    return effective_publish_mode(case, rt.settings.publish.mode)


def mark_ready(rt: CaseRuntime, case_id: str) -> None:
    transact(rt.engine, lambda s: set_status(s, case_id, CaseStatus.READY, reason="nightly publication"))


def publish_case(rt: CaseRuntime, case_id: str, *, actor: str | None = None) -> PublishSummary:
    """Publish to every configured target; one publication record per (case, target).

    Raises:
        TargetUnavailableError: a target could not be reached (after recording the failure);
            retrying publishes again idempotently.
        TargetRejectedError: a target refused the case.
    """
    case = publishable_case(rt, case_id)
    done: list[str] = []
    failed: list[str] = []
    first_error: TfttError | None = None
    records = {p.target: p for p in transact(rt.engine, lambda s: list_publications(s, case_id))}
    for target in make_targets(rt.settings):
        record = records.get(target.name)
        previous = None
        if record is not None and record.status is PublicationStatus.PUBLISHED and record.remote_ref:
            previous = PublicationReceipt(target=target.name, case_id=case_id, remote_ref=record.remote_ref)
        try:
            receipt = target.publish(case, previous)
        except TfttError as exc:
            failed.append(target.name)
            first_error = first_error or exc
            _record(rt, case_id, target.name, PublicationStatus.FAILED, error_code=exc.code, actor=actor)
            continue
        _record(rt, case_id, target.name, PublicationStatus.PUBLISHED, remote_ref=receipt.remote_ref, actor=actor)
        done.append(target.name)
    if first_error is not None:
        raise first_error
    transact(rt.engine, lambda s: set_status(s, case_id, CaseStatus.PUBLISHED, actor=actor))
    return PublishSummary(targets=tuple(done), failed=tuple(failed))


def ready_case_ids(rt: CaseRuntime) -> list[str]:
    """Cases marked READY, oldest first."""
    return [case.id for case in transact(rt.engine, lambda s: list_cases(s, CaseStatus.READY))]


def expire_stale_reviews(rt: CaseRuntime, now: datetime) -> list[str]:
    """Cases that waited for review longer than the review timeout become EXPIRED.

    A suspended run whose timeout passed is failed by the Prefect server without running any
    of TFTT's code, so the nightly batch sweeps such cases; nothing of theirs is published.
    """
    limit = now - timedelta(days=rt.settings.review.timeout_days)
    stale = [case.id for case in transact(rt.engine, lambda s: list_cases(s, CaseStatus.AWAITING_REVIEW))
             if case.updated_at < limit]
    for case_id in stale:
        _set_status(rt, case_id, CaseStatus.EXPIRED, reason="review timed out")
    return stale


def _set_status(rt: CaseRuntime, case_id: str, status: CaseStatus, *, reason: str | None = None,
                actor: str | None = None) -> None:
    def work(session: Session) -> None:
        set_status(session, case_id, status, reason=reason, actor=actor)

    transact(rt.engine, work)


def _record(rt: CaseRuntime, case_id: str, target: str, status: PublicationStatus, *,
            remote_ref: str | None = None, error_code: str | None = None, actor: str | None = None) -> None:
    def work(session: Session) -> None:
        upsert_publication(session, case_id, target, status, remote_ref=remote_ref, error_code=error_code,
                           actor=actor)

    transact(rt.engine, work)
