"""Catching lost webhooks: read Orthanc's ``/changes`` feed for stable studies.

Orthanc's Lua ``HttpPost`` never retries, so a webhook sent while TFTT was down is lost. The
service therefore reads ``GET /changes?since=N&limit=M`` (pages of ``{"Changes": [...], "Done":
bool, "Last": N}``), keeps the ``StableStudy`` events, looks up each study's
StudyInstanceUID with ``GET /studies/{id}``, and creates a case, through the same
:func:`~tftt.store.cases.create_or_get_case_for_study` as the webhook, for every study that has
no case yet. The feed position is kept in the ``cursors`` table.

Orthanc ids are checked against their fixed shape before they go into a URL path; UIDs are
never logged. The ``httpx.Client`` carries the Orthanc credentials (auth, never in the URL).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tftt.errors import TargetRejectedError, TargetUnavailableError, TfttError
from tftt.store import cases
from tftt.store.db import AuditKind, Clock, transact, utc_now
from tftt.store.uid_syntax import is_uid

log = logging.getLogger(__name__)

ORTHANC_ID_PATTERN = r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$"
_ORTHANC_ID = re.compile(ORTHANC_ID_PATTERN)
CHANGES_CURSOR = "orthanc-changes"
RECONCILE_REQUESTER = "orthanc-changes"


def _get_json(client: httpx.Client, url: str, params: dict[str, Any] | None = None) -> Any:
    """GET ``url`` and decode JSON; ``None`` for 404.

    Raises:
        TargetUnavailableError: connection error, timeout, or 5xx/429.
        TargetRejectedError: another 4xx, or a body that is not JSON.
    """
    try:
        response = client.get(url, params=params)
    except httpx.TransportError as exc:
        raise TargetUnavailableError(
            f"Orthanc cannot be reached ({type(exc).__name__})", code="pacs-unavailable"
        ) from None
    if response.status_code == 404:
        return None
    if response.status_code >= 500 or response.status_code == 429:
        raise TargetUnavailableError(
            f"Orthanc answered HTTP {response.status_code}", code="pacs-unavailable"
        )
    if response.status_code >= 400:
        raise TargetRejectedError(
            f"Orthanc refused the request (HTTP {response.status_code})", code="pacs-rejected"
        )
    try:
        return response.json()
    except ValueError:
        raise TargetRejectedError(
            "Orthanc answered with non-JSON", code="pacs-bad-answer"
        ) from None


def reconcile_from_orthanc_changes(
    client: httpx.Client,
    rest_url: str,
    since: int,
    *,
    limit: int = 100,
    max_pages: int = 100,
) -> tuple[int, list[str]]:
    """Read ``/changes`` after ``since``; return ``(new_since, study_uids)``.

    ``study_uids`` are the StudyInstanceUIDs of the studies that became stable, each once, in
    feed order; studies deleted since, or whose UID is malformed, are skipped. ``new_since`` is
    the position to pass next time (never below ``since``). At most ``max_pages`` pages of
    ``limit`` changes are read per call; the rest comes with the next call.

    Raises:
        TargetUnavailableError: Orthanc cannot be reached or fails (retry later).
        TargetRejectedError: Orthanc refuses (e.g. 401: check the credentials) or answers
            something that is not a change list.
    """
    base = rest_url.rstrip("/")
    position = since
    study_ids: dict[str, None] = {}
    for _ in range(max_pages):
        page = _get_json(client, f"{base}/changes", {"since": position, "limit": limit})
        if not isinstance(page, dict) or not isinstance(page.get("Changes"), list):
            raise TargetRejectedError(
                "Orthanc's /changes answer has no change list", code="pacs-bad-answer"
            )
        changes: list[Any] = page["Changes"]
        for change in changes:
            if not isinstance(change, dict):
                continue
            seq = change.get("Seq")
            if isinstance(seq, int):
                position = max(position, seq)
            if change.get("ChangeType") == "StableStudy" and isinstance(change.get("ID"), str):
                study_ids[change["ID"]] = None
        last = page.get("Last")
        if isinstance(last, int):
            position = max(position, last)
        if page.get("Done", True) or not changes:
            break
    uids: dict[str, None] = {}
    for study_id in study_ids:
        if not _ORTHANC_ID.fullmatch(study_id):
            log.warning("skipping a change with a malformed Orthanc study id")
            continue
        study = _get_json(client, f"{base}/studies/{study_id}")
        if study is None:
            continue  # deleted since it became stable
        tags = study.get("MainDicomTags") if isinstance(study, dict) else None
        uid = tags.get("StudyInstanceUID") if isinstance(tags, dict) else None
        if not is_uid(uid):
            log.warning("skipping Orthanc study %s: no valid StudyInstanceUID", study_id)
            continue
        assert isinstance(uid, str)
        uids[uid] = None
    return position, list(uids)


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconcile pass did (case ids only; no UIDs)."""

    new_since: int
    created_case_ids: tuple[str, ...]
    started_runs: tuple[str, ...]
    failed_case_ids: tuple[str, ...]


def _remember_run(engine: Engine, case_id: str, run_id: str, clock: Clock) -> None:
    transact(engine, lambda s: cases.set_flow_run(s, case_id, run_id, clock=clock))


def orthanc_last_change(client: httpx.Client, rest_url: str) -> int:
    """The sequence number of Orthanc's latest change (``/changes?last``).

    Raises:
        TargetUnavailableError, TargetRejectedError: as for :func:`reconcile_from_orthanc_changes`.
    """
    page = _get_json(client, f"{rest_url.rstrip('/')}/changes", {"last": ""})
    last = page.get("Last") if isinstance(page, dict) else None
    if not isinstance(last, int):
        raise TargetRejectedError("Orthanc's /changes?last has no Last", code="pacs-bad-answer")
    return last


def reconcile_once(
    engine: Engine,
    client: httpx.Client,
    rest_url: str,
    start_case_run: Callable[[str], str],
    *,
    start_from_latest: bool = True,
    clock: Clock = utc_now,
) -> ReconcileResult:
    """One reconcile pass: create cases for stable studies that have none, start their runs,
    and (re)start runs of RECEIVED cases that never got one; then store the feed position.

    On the very first pass (no stored position) it starts from Orthanc's latest change when
    ``start_from_latest`` (so a PACS full of old studies does not become cases), else from 0.

    Raises:
        TargetUnavailableError, TargetRejectedError: Orthanc fails; nothing is stored.
        DatabaseUnavailableError: the database stays locked or unreachable.
    """
    since = transact(engine, lambda s: cases.get_cursor(s, CHANGES_CURSOR))
    if since is None:
        since = orthanc_last_change(client, rest_url) if start_from_latest else 0
    new_since, study_uids = reconcile_from_orthanc_changes(client, rest_url, since)

    def create(session: Session) -> list[str]:
        created_ids = []
        for uid in cases.studies_without_case(session, study_uids):
            case, created = cases.create_or_get_case_for_study(
                session, uid, None, RECONCILE_REQUESTER, None, clock=clock
            )
            if created:
                cases.record_audit(
                    session,
                    case.id,
                    AuditKind.RECONCILED,
                    actor=RECONCILE_REQUESTER,
                    details={"source": "changes"},
                    clock=clock,
                )
                created_ids.append(case.id)
        cases.set_cursor(session, CHANGES_CURSOR, new_since, clock=clock)
        return created_ids

    created_ids = transact(engine, create)
    pending = transact(engine, cases.cases_without_run)
    started: list[str] = []
    failed: list[str] = []
    for case in pending:
        try:
            run_id = start_case_run(case.id)
        except TfttError as exc:
            log.error("case %s: flow run not started (%s)", case.id, exc.code)
            failed.append(case.id)
            continue
        _remember_run(engine, case.id, run_id, clock)
        started.append(case.id)
    if created_ids or started or failed:
        log.info(
            "reconcile: %d new case(s), %d run(s) started, %d failed",
            len(created_ids),
            len(started),
            len(failed),
        )
    return ReconcileResult(new_since, tuple(created_ids), tuple(started), tuple(failed))
