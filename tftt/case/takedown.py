"""Take a published case down from every target it was published to.

Each target's removal is confirmed by the target itself (folder gone, archive study gone, MIRC
document answering 404) and recorded in the audit table; the case becomes TAKEN_DOWN and can be
published again only after a new review. The reason is one of a fixed set of codes, so no free
text (which could name a patient) reaches Prefect or the logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import Session

from tftt.case.runtime import CaseRuntime
from tftt.errors import TfttError
from tftt.publish.base import PublicationReceipt
from tftt.publish.registry import make_target
from tftt.store.cases import list_publications, set_status, upsert_publication
from tftt.store.db import CaseStatus, PublicationStatus, transact


class TakeDownReason(StrEnum):
    IDENTIFIER_FOUND = "identifier-found"
    AUTHOR_REQUEST = "author-request"
    CONTENT_ERROR = "content-error"
    OTHER = "other"


@dataclass(frozen=True)
class TakeDownSummary:
    taken_down: tuple[str, ...]
    failed: tuple[str, ...]


def take_down_case(rt: CaseRuntime, case_id: str, reason: TakeDownReason, *, actor: str | None = None
                   ) -> TakeDownSummary:
    """Remove the case from every target where it is published.

    Raises:
        TargetUnavailableError / TargetRejectedError: a target could not confirm the removal
            (after the others were attempted and everything was recorded); retry is safe.
    """
    publications = transact(rt.engine, lambda s: list_publications(s, case_id))
    done: list[str] = []
    failed: list[str] = []
    first_error: TfttError | None = None
    for publication in publications:
        if publication.status is PublicationStatus.TAKEN_DOWN:
            continue
        receipt = PublicationReceipt(target=publication.target, case_id=case_id,
                                     remote_ref=publication.remote_ref or "")
        try:
            make_target(publication.target, rt.settings).take_down(case_id, receipt)
        except TfttError as exc:
            failed.append(publication.target)
            first_error = first_error or exc
            continue
        _record(rt, case_id, publication.target, actor)
        done.append(publication.target)

    def finish(session: Session) -> None:
        set_status(session, case_id, CaseStatus.TAKEN_DOWN, actor=actor, reason=f"take-down: {reason.value}")

    if not failed:
        transact(rt.engine, finish)
    if first_error is not None:
        raise first_error
    return TakeDownSummary(taken_down=tuple(done), failed=tuple(failed))


def _record(rt: CaseRuntime, case_id: str, target: str, actor: str | None) -> None:
    def work(session: Session) -> None:
        upsert_publication(session, case_id, target, PublicationStatus.TAKEN_DOWN, actor=actor)

    transact(rt.engine, work)
