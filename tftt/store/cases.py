"""The case repository: every read and write of TFTT's domain tables goes through here.

Functions take an open :class:`~sqlmodel.Session` (inside :func:`tftt.store.db.transact`) and an
injectable clock; they flush but never commit. Whatever they write to free-text or JSON columns
(audit details, quarantine messages) is refused if it contains the case's source study or
series UIDs: those live in :class:`~tftt.store.db.SourceLink` only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from tftt.errors import TfttError, UnsupportedInputError
from tftt.settings import PublishMode
from tftt.store.case_ids import check_case_id, new_case_id
from tftt.store.db import (
    REQUESTER_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    AuditEvent,
    AuditKind,
    Case,
    CaseStatus,
    Clock,
    Cursor,
    Instance,
    InstanceStatus,
    PipelineStage,
    Publication,
    PublicationStatus,
    QuarantineRecord,
    SourceLink,
    utc_now,
)
from tftt.store.uid_syntax import is_uid

WHOLE_STUDY = "*"


class CaseNotFoundError(TfttError):
    """No case has this id."""

    default_code = "case-not-found"


class CaseTransitionError(TfttError):
    """The case cannot move from its status to the one asked for."""

    default_code = "case-transition"


class PHIGuardError(TfttError):
    """Text or details about to be stored contain the case's source study or series UID."""

    default_code = "phi-in-record"


# Which status may follow which. Any status may go to FAILED or QUARANTINED; setting the status a
# case already has is a no-op. A case that was taken down is published again only after a new
# review (issue 7), and an expired case is never published without one.
_ALWAYS_ALLOWED = frozenset({CaseStatus.FAILED, CaseStatus.QUARANTINED})
ALLOWED_TRANSITIONS: Mapping[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.RECEIVED: frozenset(
        {CaseStatus.RETRIEVING, CaseStatus.AWAITING_REVIEW, CaseStatus.EXPIRED}
    ),
    CaseStatus.RETRIEVING: frozenset(
        {CaseStatus.PROCESSING, CaseStatus.AWAITING_REVIEW, CaseStatus.EXPIRED}
    ),
    CaseStatus.AWAITING_REVIEW: frozenset({CaseStatus.PROCESSING, CaseStatus.EXPIRED}),
    CaseStatus.PROCESSING: frozenset(
        {CaseStatus.AWAITING_REVIEW, CaseStatus.READY, CaseStatus.PUBLISHED}
    ),
    CaseStatus.READY: frozenset(
        {
            CaseStatus.PUBLISHED,
            CaseStatus.PROCESSING,
            CaseStatus.AWAITING_REVIEW,
            CaseStatus.TAKEN_DOWN,
        }
    ),
    # A new review round retrieves the study again when its identified files were purged
    # (tftt.case.workspace_purge): published, expired and taken-down cases may go to RETRIEVING.
    CaseStatus.PUBLISHED: frozenset(
        {
            CaseStatus.TAKEN_DOWN,
            CaseStatus.RETRIEVING,
            CaseStatus.AWAITING_REVIEW,
            CaseStatus.PROCESSING,
        }
    ),
    CaseStatus.QUARANTINED: frozenset(
        {
            CaseStatus.RETRIEVING,
            CaseStatus.AWAITING_REVIEW,
            CaseStatus.PROCESSING,
            CaseStatus.TAKEN_DOWN,
        }
    ),
    CaseStatus.FAILED: frozenset({CaseStatus.RETRIEVING, CaseStatus.AWAITING_REVIEW}),
    CaseStatus.EXPIRED: frozenset({CaseStatus.RETRIEVING, CaseStatus.AWAITING_REVIEW}),
    CaseStatus.TAKEN_DOWN: frozenset({CaseStatus.RETRIEVING, CaseStatus.AWAITING_REVIEW}),
}


def can_transition(current: CaseStatus, new: CaseStatus) -> bool:
    """True if a case in ``current`` may be set to ``new``."""
    return new == current or new in _ALWAYS_ALLOWED or new in ALLOWED_TRANSITIONS[current]


# --------------------------------------------------------------------------------------------
# Source study and cases


def series_key(series: Iterable[str] | None) -> str:
    """``"*"`` for a whole study (no or empty series list), else a hash of the sorted set."""
    unique = sorted(set(series or ()))
    if not unique:
        return WHOLE_STUDY
    return hashlib.sha256("\\".join(unique).encode("ascii")).hexdigest()


def _check_source(study_uid: str, series: Sequence[str] | None) -> list[str]:
    if not is_uid(study_uid):
        raise UnsupportedInputError("the study UID is not a DICOM UID", code="bad-uid")
    unique = sorted(set(series or ()))
    if not all(is_uid(uid) for uid in unique):
        raise UnsupportedInputError("a series UID is not a DICOM UID", code="bad-uid")
    return unique


def _clean_text(value: str | None, limit: int, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit or any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise UnsupportedInputError(
            f"{what} is too long or holds control characters", code="bad-text"
        )
    return value or None


def create_or_get_case_for_study(
    session: Session,
    study_uid: str,
    series: Sequence[str] | None,
    requester: str,
    title: str | None,
    *,
    calling_aet: str | None = None,
    clock: Clock = utc_now,
) -> tuple[Case, bool]:
    """The case for (study, series selection), created with status RECEIVED if there is none.

    Idempotent, also under concurrency: a unique constraint on (study UID, series key) decides,
    and the loser of a race gets the winner's case. Returns ``(case, created)``.

    Raises:
        UnsupportedInputError: a UID is malformed, or requester/title/AET is too long or holds
            control characters (messages never echo the values).
    """
    series_uids = _check_source(study_uid, series)
    key = series_key(series_uids)
    existing = _case_for_source(session, study_uid, key)
    if existing is not None:
        return existing, False
    requester_clean = _clean_text(requester, REQUESTER_MAX_LENGTH, "the requester")
    if requester_clean is None:
        raise UnsupportedInputError("the requester is empty", code="bad-text")
    title_clean = _clean_text(title, TITLE_MAX_LENGTH, "the title")
    aet_clean = _clean_text(calling_aet, 64, "the calling AET")
    now = clock()
    case = Case(
        id=new_case_id(),
        status=CaseStatus.RECEIVED,
        title=title_clean,
        created_at=now,
        updated_at=now,
    )
    link = SourceLink(
        case_id=case.id,
        study_uid=study_uid,
        series_key=key,
        series_uids=series_uids,
        calling_aet=aet_clean,
        requester=requester_clean,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(case)
            session.flush()
            session.add(link)
            session.flush()
    except IntegrityError:
        # Another transaction created the case for this source first (PostgreSQL; on SQLite
        # BEGIN IMMEDIATE serialises writers, so the read above already saw it).
        winner = _case_for_source(session, study_uid, key)
        if winner is None:
            raise
        return winner, False
    return case, True


def _case_for_source(session: Session, study_uid: str, key: str) -> Case | None:
    statement = (
        select(Case)
        .join(SourceLink, col(SourceLink.case_id) == col(Case.id))
        .where(SourceLink.study_uid == study_uid, SourceLink.series_key == key)
    )
    return session.exec(statement).first()


def studies_without_case(session: Session, study_uids: Iterable[str]) -> list[str]:
    """Those of ``study_uids`` (order kept, duplicates dropped) that no case refers to at all,
    whatever its series selection."""
    wanted = list(dict.fromkeys(study_uids))
    if not wanted:
        return []
    known = set(
        session.exec(
            select(SourceLink.study_uid).where(col(SourceLink.study_uid).in_(wanted))
        ).all()
    )
    return [uid for uid in wanted if uid not in known]


def get_case(session: Session, case_id: str) -> Case:
    """The case with this id.

    Raises:
        UnsupportedInputError: ``case_id`` is not a case id.
        CaseNotFoundError: no such case.
    """
    case = session.get(Case, check_case_id(case_id))
    if case is None:
        raise CaseNotFoundError(f"no case {case_id}")
    return case


def get_source_link(session: Session, case_id: str) -> SourceLink:
    """The source study of a case (holds PHI-linked UIDs: never log or return it to a client).

    Raises:
        CaseNotFoundError: no such case.
    """
    link = session.exec(
        select(SourceLink).where(SourceLink.case_id == check_case_id(case_id))
    ).first()
    if link is None:
        raise CaseNotFoundError(f"no case {case_id}")
    return link


def list_cases(
    session: Session,
    status: CaseStatus | Iterable[CaseStatus] | None = None,
    *,
    limit: int | None = None,
) -> list[Case]:
    """Cases, oldest first, optionally only those in one status or a set of statuses."""
    statement = select(Case)
    if isinstance(status, CaseStatus):
        statement = statement.where(Case.status == status)
    elif status is not None:
        statement = statement.where(col(Case.status).in_(list(status)))
    statement = statement.order_by(col(Case.created_at), col(Case.id))
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.exec(statement).all())


def cases_without_run(session: Session) -> list[Case]:
    """RECEIVED cases whose flow run was never started (e.g. Prefect was down)."""
    statement = (
        select(Case)
        .where(Case.status == CaseStatus.RECEIVED, col(Case.flow_run_id).is_(None))
        .order_by(col(Case.created_at))
    )
    return list(session.exec(statement).all())


def set_status(
    session: Session,
    case_id: str,
    status: CaseStatus,
    *,
    actor: str | None = None,
    reason: str | None = None,
    clock: Clock = utc_now,
) -> Case:
    """Move a case to ``status`` and audit the change (no-op, no audit, if it is already there).

    Raises:
        CaseNotFoundError: no such case.
        CaseTransitionError: the move is not allowed (see :data:`ALLOWED_TRANSITIONS`).
        PHIGuardError: ``reason`` holds a source UID of the case.
    """
    case = get_case(session, case_id)
    old = case.status
    if old == status:
        return case
    if not can_transition(old, status):
        raise CaseTransitionError(f"case {case_id} cannot go from {old.value} to {status.value}")
    now = clock()
    case.status = status
    case.updated_at = now
    session.add(case)
    details: dict[str, Any] = {"from": old.value, "to": status.value}
    if reason is not None:
        details["reason"] = reason
    record_audit(
        session,
        case_id,
        AuditKind.STATUS_CHANGED,
        actor=actor,
        details=details,
        clock=lambda: now,
    )
    return case


def set_flow_run(
    session: Session, case_id: str, flow_run_id: str, *, clock: Clock = utc_now
) -> Case:
    """Remember the Prefect flow run of a case and audit it (no-op if it is already that one).

    Raises:
        CaseNotFoundError: no such case.
    """
    case = get_case(session, case_id)
    if case.flow_run_id == flow_run_id:
        return case
    previous = case.flow_run_id
    now = clock()
    case.flow_run_id = flow_run_id
    case.updated_at = now
    session.add(case)
    record_audit(
        session,
        case_id,
        AuditKind.FLOW_RUN_STARTED,
        details={"flow_run_id": flow_run_id, "previous": previous},
        clock=lambda: now,
    )
    return case


def set_publish_mode(
    session: Session, case_id: str, mode: PublishMode | None, *, clock: Clock = utc_now
) -> Case:
    """Override (or, with ``None``, stop overriding) the site's publish mode for one case."""
    case = get_case(session, case_id)
    case.publish_mode = mode
    case.updated_at = clock()
    session.add(case)
    return case


def effective_publish_mode(case: Case, default: PublishMode) -> PublishMode:
    """The case's own publish mode if set, else the site's ``default``."""
    return case.publish_mode if case.publish_mode is not None else default


def start_review_round(session: Session, case_id: str, *, clock: Clock = utc_now) -> int:
    """Count one more review round for the case and return its number (1, 2, ...)."""
    case = get_case(session, case_id)
    case.review_round += 1
    case.updated_at = clock()
    session.add(case)
    return case.review_round


# --------------------------------------------------------------------------------------------
# Audit and quarantine


def _source_uids(session: Session, case_id: str) -> list[str]:
    link = session.exec(select(SourceLink).where(SourceLink.case_id == case_id)).first()
    if link is None:
        return []
    return [link.study_uid, *link.series_uids]


def _contains_uid(blob: str, uid: str) -> bool:
    """True if ``uid`` occurs in ``blob`` as a whole UID (not as a prefix of a longer one)."""
    return re.search(rf"(?<![0-9])(?<![0-9]\.){re.escape(uid)}(?![0-9]|\.[0-9])", blob) is not None


def _refuse_source_uids(session: Session, case_id: str, *texts: str) -> None:
    forbidden = _source_uids(session, case_id)
    for blob in texts:
        if any(_contains_uid(blob, uid) for uid in forbidden):
            raise PHIGuardError(
                f"refusing to store a record of case {case_id} that holds a source UID"
            )


def record_audit(
    session: Session,
    case_id: str,
    kind: AuditKind,
    *,
    actor: str | None = None,
    details: Mapping[str, Any] | None = None,
    clock: Clock = utc_now,
) -> AuditEvent:
    """Append an audit event. ``actor`` is who did it, as entered (a reviewer's name, a PACS).

    Raises:
        UnsupportedInputError: ``details`` is not JSON-serialisable, or ``actor`` is too long.
        PHIGuardError: ``details`` or ``actor`` contains a source UID of the case.
    """
    check_case_id(case_id)
    try:
        payload = json.dumps(dict(details or {}), sort_keys=True)
    except (TypeError, ValueError):
        raise UnsupportedInputError("audit details must be JSON", code="bad-details") from None
    actor_clean = _clean_text(actor, REQUESTER_MAX_LENGTH, "the actor")
    _refuse_source_uids(session, case_id, payload, actor_clean or "")
    event = AuditEvent(
        case_id=case_id, kind=kind, actor=actor_clean, details=json.loads(payload), at=clock()
    )
    session.add(event)
    session.flush()
    return event


def list_audit(session: Session, case_id: str) -> list[AuditEvent]:
    """The audit events of a case, oldest first."""
    statement = (
        select(AuditEvent)
        .where(AuditEvent.case_id == check_case_id(case_id))
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
    )
    return list(session.exec(statement).all())


def record_quarantine(
    session: Session,
    case_id: str,
    stage: PipelineStage,
    reason_code: str,
    message: str,
    *,
    file_path: str | None = None,
    sop_instance_uid: str | None = None,
    clock: Clock = utc_now,
) -> QuarantineRecord:
    """Record why something was quarantined, and audit it. Does not change the case status.

    ``file_path`` is relative to the case workspace (see ``CaseWorkspace.relative``);
    ``sop_instance_uid`` is the NEW UID if one is known. Use an error's ``code`` and message.

    Raises:
        UnsupportedInputError: ``file_path`` is absolute or climbs out, or a field is malformed.
        PHIGuardError: the message or path holds a source UID of the case.
    """
    check_case_id(case_id)
    if not reason_code or len(reason_code) > 64:
        raise UnsupportedInputError("a quarantine reason code is 1-64 characters", code="bad-text")
    if file_path is not None and (
        file_path.startswith(("/", "\\")) or ".." in file_path.replace("\\", "/").split("/")
    ):
        raise UnsupportedInputError(
            "a quarantine path must be workspace-relative", code="unsafe-path"
        )
    if sop_instance_uid is not None and not is_uid(sop_instance_uid):
        raise UnsupportedInputError("the SOP Instance UID is not a DICOM UID", code="bad-uid")
    message = message[:2000]
    _refuse_source_uids(session, case_id, message, file_path or "", sop_instance_uid or "")
    now = clock()
    record = QuarantineRecord(
        case_id=case_id,
        stage=stage,
        reason_code=reason_code,
        message=message,
        file_path=file_path,
        sop_instance_uid=sop_instance_uid,
        created_at=now,
    )
    session.add(record)
    record_audit(
        session,
        case_id,
        AuditKind.QUARANTINED,
        details={"stage": stage.value, "reason_code": reason_code},
        clock=lambda: now,
    )
    return record


def list_quarantine(session: Session, case_id: str) -> list[QuarantineRecord]:
    """The quarantine records of a case, oldest first."""
    statement = (
        select(QuarantineRecord)
        .where(QuarantineRecord.case_id == check_case_id(case_id))
        .order_by(col(QuarantineRecord.created_at), col(QuarantineRecord.id))
    )
    return list(session.exec(statement).all())


# --------------------------------------------------------------------------------------------
# Instances


@dataclasses.dataclass(frozen=True)
class InstanceInfo:
    """What the pipeline reports about one image, by its NEW UIDs."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    rows: int
    columns: int
    frames: int = 1
    modality: str | None = None
    series_number: int | None = None
    instance_number: int | None = None
    burned_in_annotation: str | None = None
    text_detected: bool = False
    redacted: bool = False
    status: InstanceStatus = InstanceStatus.PENDING
    file_path: str | None = None


def replace_instances(
    session: Session, case_id: str, instances: Iterable[InstanceInfo]
) -> list[Instance]:
    """Make the case's instance rows exactly ``instances`` (idempotent; a re-run replaces).

    Raises:
        CaseNotFoundError: no such case.
        UnsupportedInputError: a UID is malformed, a count is < 1, or a SOP UID repeats.
        PHIGuardError: a UID is a source UID of the case (not de-identified).
    """
    get_case(session, case_id)
    infos = list(instances)
    sops = [info.sop_instance_uid for info in infos]
    if len(set(sops)) != len(sops):
        raise UnsupportedInputError("a SOP Instance UID appears twice", code="duplicate-uid")
    forbidden = set(_source_uids(session, case_id))
    for info in infos:
        uids = (info.study_uid, info.series_uid, info.sop_instance_uid, info.sop_class_uid)
        if not all(is_uid(uid) for uid in uids):
            raise UnsupportedInputError("an instance UID is not a DICOM UID", code="bad-uid")
        if forbidden.intersection(uids[:3]):
            raise PHIGuardError(f"case {case_id}: an instance still carries a source UID")
        if info.rows < 1 or info.columns < 1 or info.frames < 1:
            raise UnsupportedInputError(
                "rows, columns and frames must be positive", code="bad-count"
            )
    for old in session.exec(select(Instance).where(Instance.case_id == case_id)).all():
        session.delete(old)
    session.flush()
    rows = [Instance(case_id=case_id, **dataclasses.asdict(info)) for info in infos]
    session.add_all(rows)
    session.flush()
    return rows


def list_instances(session: Session, case_id: str) -> list[Instance]:
    """A case's instances in reading order: series number, instance number, then UIDs."""
    statement = (
        select(Instance)
        .where(Instance.case_id == check_case_id(case_id))
        .order_by(
            col(Instance.series_number).is_(None),
            col(Instance.series_number),
            col(Instance.series_uid),
            col(Instance.instance_number).is_(None),
            col(Instance.instance_number),
            col(Instance.sop_instance_uid),
        )
    )
    return list(session.exec(statement).all())


# --------------------------------------------------------------------------------------------
# Publications


_PUBLICATION_AUDIT = {
    PublicationStatus.PUBLISHED: AuditKind.PUBLISHED,
    PublicationStatus.FAILED: AuditKind.PUBLICATION_FAILED,
    PublicationStatus.TAKEN_DOWN: AuditKind.TAKEN_DOWN,
}


def upsert_publication(
    session: Session,
    case_id: str,
    target: str,
    status: PublicationStatus,
    *,
    remote_ref: str | None = None,
    error_code: str | None = None,
    actor: str | None = None,
    clock: Clock = utc_now,
) -> Publication:
    """Create or update THE publication record of (case, target), and audit the change.

    ``published_at`` is set on each PUBLISHED (the latest publication or update),
    ``taken_down_at`` on TAKEN_DOWN and cleared on a later PUBLISHED; ``remote_ref`` is kept
    when ``None`` is given. Races on PostgreSQL resolve to the one row.

    Raises:
        CaseNotFoundError: no such case.
        UnsupportedInputError: ``target`` is not a short lowercase name.
        PHIGuardError: ``remote_ref`` holds a source UID of the case.
    """
    get_case(session, case_id)
    if not target or len(target) > 32 or not target.replace("-", "").replace("_", "").isalnum():
        raise UnsupportedInputError("a target name is 1-32 letters/digits", code="bad-target")
    _refuse_source_uids(session, case_id, remote_ref or "")
    now = clock()
    publication = get_publication(session, case_id, target)
    if publication is None:
        publication = Publication(case_id=case_id, target=target, status=status, updated_at=now)
        try:
            with session.begin_nested():
                session.add(publication)
                session.flush()
        except IntegrityError:
            found = get_publication(session, case_id, target)
            if found is None:
                raise
            publication = found
    publication.status = status
    publication.updated_at = now
    if remote_ref is not None:
        publication.remote_ref = remote_ref
    publication.error_code = error_code
    if status == PublicationStatus.PUBLISHED:
        publication.published_at = now
        publication.taken_down_at = None
    elif status == PublicationStatus.TAKEN_DOWN:
        publication.taken_down_at = now
    session.add(publication)
    session.flush()
    kind = _PUBLICATION_AUDIT.get(status)
    if kind is not None:
        details: dict[str, Any] = {"target": target}
        if error_code is not None:
            details["error_code"] = error_code
        record_audit(session, case_id, kind, actor=actor, details=details, clock=lambda: now)
    return publication


def get_publication(session: Session, case_id: str, target: str) -> Publication | None:
    """The publication record of (case, target), if any."""
    statement = select(Publication).where(
        Publication.case_id == check_case_id(case_id), Publication.target == target
    )
    return session.exec(statement).first()


def list_publications(session: Session, case_id: str) -> list[Publication]:
    """All publication records of a case, by target name."""
    statement = (
        select(Publication)
        .where(Publication.case_id == check_case_id(case_id))
        .order_by(col(Publication.target))
    )
    return list(session.exec(statement).all())


# --------------------------------------------------------------------------------------------
# Cursors


def get_cursor(session: Session, name: str) -> int | None:
    """The stored position of feed ``name``, or ``None`` if it was never stored."""
    cursor = session.get(Cursor, name)
    return None if cursor is None else cursor.value


def set_cursor(session: Session, name: str, value: int, *, clock: Clock = utc_now) -> None:
    """Store the position of feed ``name``."""
    cursor = session.get(Cursor, name)
    if cursor is None:
        cursor = Cursor(name=name, value=value, updated_at=clock())
    else:
        cursor.value = value
        cursor.updated_at = clock()
    session.add(cursor)
    session.flush()
