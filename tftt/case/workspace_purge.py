"""Deleting the identified files of finished cases, after ``workspace.keep_identified_days``.

A case workspace holds the originals as retrieved (``incoming/``), the first pass (original UIDs,
institution and station kept) and the review previews (burned-in text): identified data that
TFTT needs only until the case is finished. The nightly run deletes those areas of every case
that has been finished for longer than the retention period:

* published, expired, failed (rejected by the reviewer or crashed) and quarantined cases lose
  their identified areas; the verified second pass and the files made for the targets stay, so
  the case can still be published again to a new target;
* a taken-down case also loses its second pass and target files: it was withdrawn;
* ``quarantine/`` is never deleted here: every quarantined object waits there, with its
  record, for a person (nothing is lost).

A new review round of a purged case (``reopen_for_review``) retrieves the study again from the
PACS: the markers of retrieval and first pass went with their areas, and each round is a flow
run of its own, so Prefect's cache does not replay them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlmodel import Session

from tftt.case.runtime import CaseRuntime
from tftt.store.cases import get_case, list_cases, record_audit
from tftt.store.db import AuditKind, CaseStatus, transact
from tftt.store.workspace import IDENTIFIED_AREAS, Area, CaseWorkspace

#: What is deleted from a finished case, by its status. Other statuses are not finished.
PURGED_AREAS: Mapping[CaseStatus, tuple[Area, ...]] = {
    CaseStatus.PUBLISHED: IDENTIFIED_AREAS,
    CaseStatus.EXPIRED: IDENTIFIED_AREAS,
    CaseStatus.FAILED: IDENTIFIED_AREAS,
    CaseStatus.QUARANTINED: IDENTIFIED_AREAS,
    CaseStatus.TAKEN_DOWN: (*IDENTIFIED_AREAS, Area.SECOND_PASS, Area.PUBLISHED),
}


@dataclass(frozen=True)
class PurgedCase:
    case_id: str
    areas: tuple[Area, ...]


@dataclass(frozen=True)
class PurgeReport:
    purged: tuple[PurgedCase, ...]
    failed: tuple[str, ...]  # case ids whose folders could not be deleted (tried again next night)


def purge_finished_workspaces(rt: CaseRuntime, now: datetime) -> PurgeReport:
    """Delete the identified areas of cases finished before ``now`` minus the retention period.

    Each purge is audited once (a case whose areas are already gone is skipped). A case that
    changed in the meantime (e.g. a new review round started) is left alone. A folder that
    cannot be deleted is reported and does not stop the others.
    """
    limit = now - timedelta(days=rt.settings.workspace.keep_identified_days)
    candidates = [case.id for case in transact(rt.engine, lambda s: list_cases(s, PURGED_AREAS.keys()))
                  if case.updated_at <= limit]
    purged: list[PurgedCase] = []
    failed: list[str] = []
    for case_id in candidates:
        case = transact(rt.engine, partial(get_case, case_id=case_id))
        areas = PURGED_AREAS.get(case.status)
        if areas is None or case.updated_at > limit:
            continue  # reopened or changed since the list was read
        try:
            removed = CaseWorkspace.for_settings(rt.settings, case_id).purge(areas)
        except OSError:
            failed.append(case_id)
            continue
        if removed:
            transact(rt.engine, partial(_audit, case_id=case_id, removed=removed, now=now))
            purged.append(PurgedCase(case_id, removed))
    return PurgeReport(tuple(purged), tuple(failed))


def _audit(session: Session, *, case_id: str, removed: tuple[Area, ...], now: datetime) -> None:
    record_audit(session, case_id, AuditKind.WORKSPACE_PURGED,
                 details={"areas": [area.value for area in removed]}, clock=lambda: now)
