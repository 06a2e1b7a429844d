"""TFTT's own database: the tables, the engine, and the one place that retries a busy database.

This database is the only place that links a case to its source study (:class:`SourceLink`);
Prefect's database holds opaque case ids only. SQLite in the data directory by default (WAL,
a busy timeout, ``BEGIN IMMEDIATE`` for every transaction so that writers queue instead of
failing on a stale snapshot), PostgreSQL through ``TFTT_DATABASE_URL``.

Use one engine per process (:func:`make_engine` caches it) and one :func:`transact` call per
unit of work::

    engine = make_engine(settings)
    init_db(engine)
    case, created = transact(engine, lambda s: cases.create_or_get_case_for_study(s, ...))

All timestamps are timezone-aware UTC datetimes and come from an injectable clock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from sqlalchemy import JSON, Column, DateTime, UniqueConstraint, event, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel, create_engine

from tftt.errors import ConfigurationError, TfttError
from tftt.settings import PublishMode, Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]

TITLE_MAX_LENGTH = 200
REQUESTER_MAX_LENGTH = 128
SQLITE_BUSY_TIMEOUT_MS = 5000


def utc_now() -> datetime:
    """The default clock: the current time, timezone-aware UTC."""
    return datetime.now(UTC)


class DatabaseUnavailableError(TfttError):
    """The database is locked beyond the retries, or cannot be reached. Transient: retry later."""

    retryable = True
    default_code = "database-unavailable"


# --------------------------------------------------------------------------------------------
# Column types


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as naive UTC, the same on SQLite and PostgreSQL.

    Binding a naive datetime raises ``ValueError``: the clock must say which zone it means.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; the clock must return timezone-aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _enum_type(enum_cls: type[StrEnum]) -> SAEnum:
    """A portable enum column: stores the enum *values* as VARCHAR, loads enum members."""
    return SAEnum(
        enum_cls,
        native_enum=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


# --------------------------------------------------------------------------------------------
# Enumerations


class CaseStatus(StrEnum):
    RECEIVED = "received"
    RETRIEVING = "retrieving"
    AWAITING_REVIEW = "awaiting_review"
    PROCESSING = "processing"
    QUARANTINED = "quarantined"
    READY = "ready"
    PUBLISHED = "published"
    EXPIRED = "expired"
    FAILED = "failed"
    TAKEN_DOWN = "taken_down"


class InstanceStatus(StrEnum):
    PENDING = "pending"  # known (new UIDs computed), not yet through the second pass
    CLEAN = "clean"  # second pass done and verified
    EXCLUDED = "excluded"  # left out by the reviewer
    QUARANTINED = "quarantined"


class PipelineStage(StrEnum):
    RETRIEVE = "retrieve"
    FIRST_PASS = "first_pass"
    PREVIEWS = "previews"
    REVIEW = "review"
    PIXELS = "pixels"
    SECOND_PASS = "second_pass"
    VERIFY = "verify"
    PUBLISH = "publish"
    TAKE_DOWN = "take_down"


class PublicationStatus(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    FAILED = "failed"
    TAKEN_DOWN = "taken_down"


class AuditKind(StrEnum):
    WEBHOOK_RECEIVED = "webhook_received"
    RECONCILED = "reconciled"
    FLOW_RUN_STARTED = "flow_run_started"
    STATUS_CHANGED = "status_changed"
    REVIEW_SUBMITTED = "review_submitted"
    REVIEW_NOT_RESUMED = "review_not_resumed"  # a submitted decision the run did not take
    QUARANTINED = "quarantined"
    PUBLISHED = "published"
    PUBLICATION_FAILED = "publication_failed"
    TAKEN_DOWN = "taken_down"
    EXPIRED = "expired"
    WORKSPACE_PURGED = "workspace_purged"


# --------------------------------------------------------------------------------------------
# Tables


class Case(SQLModel, table=True):
    """One teaching-file case, known everywhere else by its opaque ``id`` only."""

    __tablename__: ClassVar[str] = "cases"  # type: ignore[misc]

    id: str = Field(primary_key=True, max_length=32)
    status: CaseStatus = Field(sa_column=Column(_enum_type(CaseStatus), nullable=False, index=True))
    title: str | None = Field(default=None, max_length=TITLE_MAX_LENGTH)
    publish_mode: PublishMode | None = Field(
        default=None, sa_column=Column(_enum_type(PublishMode), nullable=True)
    )
    review_round: int = Field(default=0)
    flow_run_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class SourceLink(SQLModel, table=True):
    """The link from a case to its source study: the ONLY place the original study UID lives.

    ``series_key`` is ``"*"`` for a whole study, else a SHA-256 over the sorted series UIDs, so
    that (study, series selection) is unique and a re-sent webhook finds its case.
    """

    __tablename__: ClassVar[str] = "source_links"  # type: ignore[misc]
    __table_args__ = (UniqueConstraint("study_uid", "series_key", name="uq_source_study_series"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", unique=True, max_length=32)
    study_uid: str = Field(max_length=64, index=True)
    series_key: str = Field(max_length=64)
    series_uids: list[str] = Field(default_factory=list, sa_type=JSON)
    calling_aet: str | None = Field(default=None, max_length=64)
    requester: str = Field(max_length=REQUESTER_MAX_LENGTH)
    created_at: datetime = Field(sa_type=UtcDateTime)


class Instance(SQLModel, table=True):
    """One image of a case, by its NEW (de-identified) UIDs only, with what the review page and
    the publication targets need: ordering, geometry, frame count and burned-in-text flags."""

    __tablename__: ClassVar[str] = "instances"  # type: ignore[misc]
    __table_args__ = (UniqueConstraint("case_id", "sop_instance_uid", name="uq_instance_case_sop"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", index=True, max_length=32)
    study_uid: str = Field(max_length=64)
    series_uid: str = Field(max_length=64)
    sop_instance_uid: str = Field(max_length=64)
    sop_class_uid: str = Field(max_length=64)
    modality: str | None = Field(default=None, max_length=16)
    series_number: int | None = None
    instance_number: int | None = None
    frames: int = Field(default=1, ge=1)
    rows: int = Field(ge=1)
    columns: int = Field(ge=1)
    burned_in_annotation: str | None = Field(
        default=None, max_length=16, description="the header's BurnedInAnnotation (YES/NO)"
    )
    text_detected: bool = Field(default=False, description="OCR or a device rule found text")
    redacted: bool = Field(default=False, description="pixel redaction was applied")
    status: InstanceStatus = Field(
        default=InstanceStatus.PENDING,
        sa_column=Column(_enum_type(InstanceStatus), nullable=False),
    )
    file_path: str | None = Field(
        default=None, max_length=512, description="current file, relative to the case workspace"
    )


class QuarantineRecord(SQLModel, table=True):
    """Why (a stable code and a PHI-free message) something of a case was set aside."""

    __tablename__: ClassVar[str] = "quarantine_records"  # type: ignore[misc]

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", index=True, max_length=32)
    stage: PipelineStage = Field(sa_column=Column(_enum_type(PipelineStage), nullable=False))
    reason_code: str = Field(max_length=64)
    message: str = Field(max_length=2000)
    file_path: str | None = Field(default=None, max_length=512)
    sop_instance_uid: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_type=UtcDateTime)


class Publication(SQLModel, table=True):
    """One case on one target: at most one row per (case, target)."""

    __tablename__: ClassVar[str] = "publications"  # type: ignore[misc]
    __table_args__ = (UniqueConstraint("case_id", "target", name="uq_publication_case_target"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", index=True, max_length=32)
    target: str = Field(max_length=32)
    status: PublicationStatus = Field(
        sa_column=Column(_enum_type(PublicationStatus), nullable=False)
    )
    remote_ref: str | None = Field(default=None, max_length=2048)
    error_code: str | None = Field(default=None, max_length=64)
    published_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    taken_down_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class AuditEvent(SQLModel, table=True):
    """Who did what to a case, and when. ``details`` holds counts, codes and ids, never PHI."""

    __tablename__: ClassVar[str] = "audit_events"  # type: ignore[misc]

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", index=True, max_length=32)
    kind: AuditKind = Field(sa_column=Column(_enum_type(AuditKind), nullable=False, index=True))
    actor: str | None = Field(default=None, max_length=REQUESTER_MAX_LENGTH)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    at: datetime = Field(sa_type=UtcDateTime)


class Cursor(SQLModel, table=True):
    """A named position in an outside feed, e.g. the last Orthanc ``/changes`` sequence seen."""

    __tablename__: ClassVar[str] = "cursors"  # type: ignore[misc]

    name: str = Field(primary_key=True, max_length=64)
    value: int = 0
    updated_at: datetime = Field(sa_type=UtcDateTime)


# --------------------------------------------------------------------------------------------
# Engine

_engines: dict[tuple[int, str], Engine] = {}
_engines_lock = threading.Lock()


def _normalised_url(raw: str) -> str:
    """The SQLAlchemy URL to use; ``postgresql://`` means the psycopg (3) driver.

    Raises:
        ConfigurationError: the URL does not parse or names an unsupported database.
    """
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigurationError("TFTT_DATABASE_URL is not a valid database URL") from None
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigurationError("TFTT's database must be SQLite or PostgreSQL")
    return url.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that reads, then writes after
        # another writer committed, fails at once with "database is locked" (stale snapshot),
        # whatever the busy timeout.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(settings: Settings) -> Engine:
    """The process's engine for ``settings``' database (created on first use, then reused).

    Engines are cached per process id and URL, so a forked worker gets its own pool.
    SQL parameters are hidden from error messages, so a study UID never reaches a log.

    Raises:
        ConfigurationError: the URL is invalid, names an unsupported database, or needs a
            driver that is not installed.
    """
    url = _normalised_url(settings.resolved_database_url())
    key = (os.getpid(), url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is not None:
            return engine
        is_sqlite = url.startswith("sqlite")
        if is_sqlite and url not in {"sqlite://", "sqlite:///:memory:"}:
            database = make_url(url).database
            if database:
                os.makedirs(os.path.dirname(os.path.abspath(database)), mode=0o700, exist_ok=True)
        try:
            engine = create_engine(
                url,
                hide_parameters=True,
                pool_pre_ping=not is_sqlite,
                connect_args={"check_same_thread": False} if is_sqlite else {},
            )
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise ConfigurationError(
                "the database driver is not installed (PostgreSQL needs the 'psycopg' package)"
            ) from exc
        if is_sqlite:
            _configure_sqlite(engine)
        _engines[key] = engine
        return engine


def dispose_engines() -> None:
    """Close and forget every cached engine of this process (for tests and shutdown)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def init_db(engine: Engine) -> None:
    """Create the tables that do not exist yet (idempotent; no migrations in schema v1).

    Raises:
        DatabaseUnavailableError: the database stays locked or cannot be reached.
    """

    def _create(_session: Session) -> None:
        SQLModel.metadata.create_all(_session.connection())

    transact(engine, _create)


def check_db(engine: Engine) -> None:
    """Run ``SELECT 1``.

    Raises:
        DatabaseUnavailableError: the database cannot be reached.
    """
    transact(engine, lambda s: s.execute(text("SELECT 1")).scalar_one(), attempts=2)


# --------------------------------------------------------------------------------------------
# Units of work and the one retry on a locked database


def is_locked_error(exc: BaseException) -> bool:
    """True for SQLite's transient "database is locked" / "database table is locked"."""
    if not isinstance(exc, OperationalError):
        return False
    message = str(exc.orig).lower() if exc.orig is not None else ""
    return "database is locked" in message or "database table is locked" in message


def transact(
    engine: Engine,
    work: Callable[[Session], T],
    *,
    attempts: int = 6,
    first_delay: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``work(session)`` in one transaction and commit; the one place that retries.

    On SQLite's "database is locked" the whole unit of work is rolled back and run again after
    ``first_delay``, doubling each time, at most ``attempts`` times, so ``work`` must be safe to
    repeat (it is, if it only touches the session). Objects returned stay usable after the
    session closes (no expiry on commit).

    Raises:
        DatabaseUnavailableError: still locked after the last attempt, or any other
            ``OperationalError`` (unreachable server, ...); the SQL error is chained, its
            parameters are hidden.
        Exception: whatever ``work`` raises, after a rollback.
    """
    for attempt in range(1, attempts + 1):
        with Session(engine, expire_on_commit=False) as session:
            try:
                result = work(session)
                session.commit()
                return result
            except OperationalError as exc:
                session.rollback()
                if not is_locked_error(exc):
                    raise DatabaseUnavailableError(
                        "the TFTT database cannot be used (OperationalError)"
                    ) from exc
                if attempt == attempts:
                    raise DatabaseUnavailableError(
                        f"the TFTT database stayed locked after {attempts} attempts",
                        code="database-locked",
                    ) from exc
                delay = first_delay * 2 ** (attempt - 1)
                log.warning("database is locked; retry %d/%d in %.2f s", attempt, attempts, delay)
                sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
