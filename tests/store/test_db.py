from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select

from tftt.errors import ConfigurationError
from tftt.settings import Settings
from tftt.store import db
from tftt.store.db import Case, CaseStatus, DatabaseUnavailableError, transact


def test_init_db_creates_every_table_and_is_idempotent(engine: Engine) -> None:
    db.init_db(engine)  # second time: no error
    with engine.connect() as conn:
        from sqlalchemy import inspect

        names = set(inspect(conn).get_table_names())
    assert {
        "cases",
        "source_links",
        "instances",
        "quarantine_records",
        "publications",
        "audit_events",
        "cursors",
    } <= names


def test_make_engine_reuses_one_engine_per_process(settings: Settings) -> None:
    assert db.make_engine(settings) is db.make_engine(settings)


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    engine = db.make_engine(settings)
    db.init_db(engine)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (tmp_path / "d" / "tftt.db").is_file()
    finally:
        db.dispose_engines()


def test_timestamps_round_trip_as_aware_utc(engine: Engine) -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC) + timedelta(microseconds=7)
    local = when.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))

    def work(session: Session) -> None:
        session.add(
            Case(
                id="c-0123456789abcdef", status=CaseStatus.READY, created_at=local, updated_at=when
            )
        )

    transact(engine, work)
    case = transact(engine, lambda s: s.get(Case, "c-0123456789abcdef"))
    assert case is not None
    assert case.created_at == when and case.created_at.tzinfo is not None
    assert case.status is CaseStatus.READY


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    def work(session: Session) -> None:
        session.add(
            Case(
                id="c-0123456789abcdee",
                status=CaseStatus.READY,
                created_at=datetime(2024, 1, 1),
                updated_at=datetime(2024, 1, 1),
            )
        )

    with pytest.raises(Exception, match="naive datetime"):
        transact(engine, work)


def test_enum_is_stored_as_its_value(engine: Engine) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    transact(
        engine,
        lambda s: s.add(
            Case(
                id="c-00000000000000aa",
                status=CaseStatus.TAKEN_DOWN,
                created_at=now,
                updated_at=now,
            )
        ),
    )
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT status FROM cases")).scalar()
    assert raw == "taken_down"


def test_transact_rolls_back_when_work_fails(engine: Engine) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)

    def work(session: Session) -> None:
        session.add(
            Case(
                id="c-00000000000000ab", status=CaseStatus.RECEIVED, created_at=now, updated_at=now
            )
        )
        session.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        transact(engine, work)
    assert transact(engine, lambda s: s.exec(select(Case)).all()) == []


def test_transact_retries_a_locked_sqlite_database(tmp_path: Path) -> None:
    """A second connection holds the write lock longer than the busy timeout allows; transact
    backs off and succeeds once the lock is released."""
    settings = Settings(data_dir=tmp_path / "d")
    engine = db.make_engine(settings)
    db.init_db(engine)
    db_file = tmp_path / "d" / "tftt.db"
    holder = sqlite3.connect(db_file, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            holder.execute("COMMIT")  # release the lock while transact is backing off

    now = datetime(2024, 1, 1, tzinfo=UTC)

    @__import__("contextlib").contextmanager
    def short_busy_timeout():  # keep the test fast: the real timeout is 5 s
        from sqlalchemy import event

        def on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA busy_timeout = 50")

        engine.dispose()
        event.listen(engine, "connect", on_connect)
        try:
            yield
        finally:
            event.remove(engine, "connect", on_connect)
            engine.dispose()

    try:
        with short_busy_timeout():
            transact(
                engine,
                lambda s: s.add(
                    Case(
                        id="c-00000000000000ac",
                        status=CaseStatus.RECEIVED,
                        created_at=now,
                        updated_at=now,
                    )
                ),
                sleep=sleep,
            )
    finally:
        holder.close()
        db.dispose_engines()
    assert sleeps[:2] == [0.05, 0.1]
    check = sqlite3.connect(db_file)
    assert check.execute("SELECT count(*) FROM cases").fetchone() == (1,)
    check.close()


def test_transact_gives_up_with_a_typed_retryable_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    engine = db.make_engine(settings)
    calls = []

    def always_locked(session: Session) -> None:
        calls.append(1)
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))

    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            transact(engine, always_locked, attempts=3, sleep=lambda s: None)
    finally:
        db.dispose_engines()
    assert len(calls) == 3
    assert info.value.retryable and info.value.code == "database-locked"


def test_transact_does_not_retry_other_errors(tmp_path: Path) -> None:
    engine = db.make_engine(Settings(data_dir=tmp_path / "d"))
    calls = []

    def broken(session: Session) -> None:
        calls.append(1)
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x"))

    try:
        with pytest.raises(DatabaseUnavailableError):
            transact(engine, broken, sleep=lambda s: None)
    finally:
        db.dispose_engines()
    assert calls == [1]


def test_sql_errors_hide_parameters(engine: Engine) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    secret_uid = "1.2.826.0.1.3680043.99.424242"

    def work(session: Session) -> None:
        session.add(
            db.SourceLink(
                case_id="c-ffffffffffffffff",
                study_uid=secret_uid,
                series_key="*",
                requester="x",
                created_at=now,
            )
        )

    with pytest.raises(IntegrityError) as info:  # no such case: foreign key
        transact(engine, work)
    assert secret_uid not in str(info.value)


def test_concurrent_writers_on_sqlite_all_succeed(tmp_path: Path) -> None:
    engine = db.make_engine(Settings(data_dir=tmp_path / "d"))
    db.init_db(engine)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                cid = f"c-{n:08x}{i:08x}"

                def work(s: Session, cid: str = cid) -> None:
                    s.exec(select(Case)).all()  # read first, then write: the classic deadlock
                    s.add(Case(id=cid, status=CaseStatus.RECEIVED, created_at=now, updated_at=now))

                transact(engine, work)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert len(transact(engine, lambda s: s.exec(select(Case)).all())) == 40
    finally:
        db.dispose_engines()


def test_invalid_or_unsupported_urls_are_configuration_errors(tmp_path: Path) -> None:
    for url in ["not a url::", "mysql://u@h/db"]:
        settings = Settings(data_dir=tmp_path, database_url=SecretStr(url))
        with pytest.raises(ConfigurationError) as info:
            db.make_engine(settings)
        assert url not in str(info.value)


def test_postgres_scheme_uses_the_psycopg_driver(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=SecretStr("postgresql://u:pw@127.0.0.1:1/x")
    )
    engine = db.make_engine(settings)
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        with pytest.raises(DatabaseUnavailableError) as info:  # nothing listens on port 1
            db.check_db(engine)
        assert "pw" not in str(info.value)
    finally:
        db.dispose_engines()
