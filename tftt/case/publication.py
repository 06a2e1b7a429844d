"""Publication of a finished case to its targets, at once or as READY for the nightly batch."""

from __future__ import annotations

import json
from dataclasses import dataclass

from tftt.case.finishing import DECISION_FILE, PUBLISHED_INDEX
from tftt.case.runtime import CaseRuntime
from tftt.errors import TfttError
from tftt.publish.base import PublishableCase, PublishableFrame, PublishableImage
from tftt.publish.registry import make_targets
from tftt.review_decision import ReviewDecision
from tftt.settings import PublishMode
from tftt.store.cases import effective_publish_mode, get_case, set_status, upsert_publication
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
    for target in make_targets(rt.settings):
        try:
            receipt = target.publish(case)
        except TfttError as exc:
            failed.append(target.name)
            first_error = first_error or exc
            transact(rt.engine, lambda s, name=target.name, code=exc.code: upsert_publication(
                s, case_id, name, PublicationStatus.FAILED, error_code=code, actor=actor))
            continue
        transact(rt.engine, lambda s, name=target.name, ref=receipt.remote_ref: upsert_publication(
            s, case_id, name, PublicationStatus.PUBLISHED, remote_ref=ref, actor=actor))
        done.append(target.name)
    if first_error is not None:
        raise first_error
    transact(rt.engine, lambda s: set_status(s, case_id, CaseStatus.PUBLISHED, actor=actor))
    return PublishSummary(targets=tuple(done), failed=tuple(failed))
