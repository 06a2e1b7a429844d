from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tftt.errors import UnsupportedInputError
from tftt.settings import PublishMode
from tftt.store import cases
from tftt.store.case_ids import is_case_id
from tftt.store.cases import (
    CaseNotFoundError,
    CaseTransitionError,
    InstanceInfo,
    PHIGuardError,
)
from tftt.store.db import (
    AuditKind,
    CaseStatus,
    InstanceStatus,
    PipelineStage,
    Publication,
    PublicationStatus,
    SourceLink,
    transact,
)

STUDY = "1.2.826.0.1.3680043.10.1000.1"
SERIES_A = "1.2.826.0.1.3680043.10.1000.1.1"
SERIES_B = "1.2.826.0.1.3680043.10.1000.1.2"


class FakeClock:
    """A clock that moves one second per call (injected; no sleeping)."""

    def __init__(self) -> None:
        self.now = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _new_case(engine: Engine, study: str = STUDY, series: list[str] | None = None) -> str:
    case, created = transact(
        engine,
        lambda s: cases.create_or_get_case_for_study(s, study, series, "dr. test", "Lung nodule"),
    )
    assert created
    return case.id


def test_create_then_get_is_idempotent_per_study_and_series(engine: Engine) -> None:
    clock = FakeClock()

    def create(series: list[str] | None) -> Callable[[Session], tuple[cases.Case, bool]]:
        return lambda s: cases.create_or_get_case_for_study(
            s, STUDY, series, "dr. test", "Title", calling_aet="ORTHANC", clock=clock
        )

    whole, created = transact(engine, create(None))
    assert created and is_case_id(whole.id) and whole.status is CaseStatus.RECEIVED
    again, created_again = transact(engine, create([]))  # empty list == whole study
    assert not created_again and again.id == whole.id
    ab, created_ab = transact(engine, create([SERIES_A, SERIES_B]))
    ba, created_ba = transact(engine, create([SERIES_B, SERIES_A, SERIES_A]))
    assert created_ab and not created_ba and ab.id == ba.id != whole.id
    link = transact(engine, lambda s: cases.get_source_link(s, ab.id))
    assert link.study_uid == STUDY and link.series_uids == [SERIES_A, SERIES_B]
    assert link.calling_aet == "ORTHANC" and link.requester == "dr. test"


def test_concurrent_creation_for_one_study_gives_one_case(engine: Engine) -> None:
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        case, created = transact(
            engine, lambda s: cases.create_or_get_case_for_study(s, STUDY, None, "x", None)
        )
        results.append((case.id, created))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({cid for cid, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len(transact(engine, lambda s: s.exec(select(SourceLink)).all())) == 1


@pytest.mark.parametrize(
    ("study", "series", "requester", "title"),
    [
        ("1.2.abc", None, "x", None),
        ("1." + "2" * 70, None, "x", None),
        (STUDY, ["not a uid"], "x", None),
        (STUDY, None, "", None),
        (STUDY, None, "x" * 200, None),
        (STUDY, None, "x", "t" * 201),
        (STUDY, None, "x", "line\nbreak"),
    ],
)
def test_bad_source_input_is_refused_without_echo(
    engine: Engine, study: str, series: list[str] | None, requester: str, title: str | None
) -> None:
    with pytest.raises(UnsupportedInputError) as info:
        transact(
            engine,
            lambda s: cases.create_or_get_case_for_study(s, study, series, requester, title),
        )
    assert study not in str(info.value)
    assert transact(engine, lambda s: cases.list_cases(s)) == []


def test_status_transitions_are_checked_and_audited(engine: Engine) -> None:
    cid = _new_case(engine)
    clock = FakeClock()
    for status in (
        CaseStatus.RETRIEVING,
        CaseStatus.AWAITING_REVIEW,
        CaseStatus.PROCESSING,
        CaseStatus.PUBLISHED,
        CaseStatus.TAKEN_DOWN,
    ):
        transact(
            engine, lambda s, st=status: cases.set_status(s, cid, st, actor="flow", clock=clock)
        )
    # a taken-down case is published again only after a new review
    with pytest.raises(CaseTransitionError, match="taken_down to published"):
        transact(engine, lambda s: cases.set_status(s, cid, CaseStatus.PUBLISHED))
    # setting the same status again is a no-op and writes no audit event
    transact(engine, lambda s: cases.set_status(s, cid, CaseStatus.TAKEN_DOWN))
    events = transact(engine, lambda s: cases.list_audit(s, cid))
    assert [e.details["to"] for e in events] == [
        "retrieving",
        "awaiting_review",
        "processing",
        "published",
        "taken_down",
    ]
    assert all(e.kind is AuditKind.STATUS_CHANGED and e.actor == "flow" for e in events)
    case = transact(engine, lambda s: cases.get_case(s, cid))
    assert case.status is CaseStatus.TAKEN_DOWN and case.updated_at == clock.now


def test_expired_case_cannot_become_ready(engine: Engine) -> None:
    cid = _new_case(engine)
    transact(engine, lambda s: cases.set_status(s, cid, CaseStatus.AWAITING_REVIEW))
    transact(engine, lambda s: cases.set_status(s, cid, CaseStatus.EXPIRED))
    for target in (CaseStatus.READY, CaseStatus.PUBLISHED, CaseStatus.PROCESSING):
        with pytest.raises(CaseTransitionError):
            transact(engine, lambda s, t=target: cases.set_status(s, cid, t))


def test_unknown_and_malformed_case_ids(engine: Engine) -> None:
    with pytest.raises(CaseNotFoundError):
        transact(engine, lambda s: cases.get_case(s, "c-0000000000000000"))
    with pytest.raises(UnsupportedInputError):
        transact(engine, lambda s: cases.get_case(s, "../etc"))


def test_list_cases_by_status_and_runs_to_start(engine: Engine) -> None:
    first = _new_case(engine)
    second = _new_case(engine, series=[SERIES_A])
    third = _new_case(engine, series=[SERIES_B])
    transact(engine, lambda s: cases.set_status(s, second, CaseStatus.RETRIEVING))
    transact(engine, lambda s: cases.set_flow_run(s, third, "run-3"))
    assert [c.id for c in transact(engine, lambda s: cases.list_cases(s))] == [first, second, third]
    received = transact(engine, lambda s: cases.list_cases(s, CaseStatus.RECEIVED))
    assert [c.id for c in received] == [first, third]
    several = transact(
        engine, lambda s: cases.list_cases(s, [CaseStatus.RETRIEVING, CaseStatus.READY])
    )
    assert [c.id for c in several] == [second]
    assert [c.id for c in transact(engine, cases.cases_without_run)] == [first]
    assert transact(engine, lambda s: cases.studies_without_case(s, [STUDY, "1.2.3", "1.2.3"])) == [
        "1.2.3"
    ]


def test_flow_run_is_recorded_once(engine: Engine) -> None:
    cid = _new_case(engine)
    transact(engine, lambda s: cases.set_flow_run(s, cid, "abc"))
    transact(engine, lambda s: cases.set_flow_run(s, cid, "abc"))
    events = transact(engine, lambda s: cases.list_audit(s, cid))
    assert [(e.kind, e.details["flow_run_id"]) for e in events] == [
        (AuditKind.FLOW_RUN_STARTED, "abc")
    ]
    assert transact(engine, lambda s: cases.get_case(s, cid)).flow_run_id == "abc"


def test_publish_mode_override_and_review_rounds(engine: Engine) -> None:
    cid = _new_case(engine)
    case = transact(engine, lambda s: cases.get_case(s, cid))
    assert cases.effective_publish_mode(case, PublishMode.IMMEDIATE) is PublishMode.IMMEDIATE
    transact(engine, lambda s: cases.set_publish_mode(s, cid, PublishMode.NIGHTLY))
    case = transact(engine, lambda s: cases.get_case(s, cid))
    assert cases.effective_publish_mode(case, PublishMode.IMMEDIATE) is PublishMode.NIGHTLY
    assert transact(engine, lambda s: cases.start_review_round(s, cid)) == 1
    assert transact(engine, lambda s: cases.start_review_round(s, cid)) == 2


def test_audit_and_quarantine_refuse_source_uids(engine: Engine) -> None:
    cid = _new_case(engine, series=[SERIES_A])
    with pytest.raises(PHIGuardError):
        transact(
            engine,
            lambda s: cases.record_audit(
                s, cid, AuditKind.REVIEW_SUBMITTED, details={"note": f"study {STUDY}."}
            ),
        )
    with pytest.raises(PHIGuardError):
        transact(
            engine,
            lambda s: cases.record_quarantine(
                s, cid, PipelineStage.VERIFY, "residual-phi", f"found {SERIES_A}"
            ),
        )
    with pytest.raises(PHIGuardError):
        transact(
            engine,
            lambda s: cases.record_quarantine(
                s,
                cid,
                PipelineStage.VERIFY,
                "residual-phi",
                "x",
                file_path=f"first_pass/{STUDY}.dcm",
            ),
        )
    # a longer UID that merely starts with the source UID is not the source UID
    transact(
        engine,
        lambda s: cases.record_audit(
            s, cid, AuditKind.REVIEW_SUBMITTED, actor="dr. r", details={"uid": STUDY + ".5"}
        ),
    )
    with pytest.raises(UnsupportedInputError):
        transact(
            engine,
            lambda s: cases.record_audit(
                s, cid, AuditKind.REVIEW_SUBMITTED, details={"x": object()}
            ),
        )


def test_quarantine_records_and_audit(engine: Engine) -> None:
    cid = _new_case(engine)
    clock = FakeClock()
    transact(
        engine,
        lambda s: cases.record_quarantine(
            s,
            cid,
            PipelineStage.VERIFY,
            "residual-phi",
            "PatientName survived in (0010,0010)",
            file_path="quarantine/2.25.1.dcm",
            sop_instance_uid="2.25.1",
            clock=clock,
        ),
    )
    records = transact(engine, lambda s: cases.list_quarantine(s, cid))
    assert [(r.stage, r.reason_code, r.file_path, r.sop_instance_uid) for r in records] == [
        (PipelineStage.VERIFY, "residual-phi", "quarantine/2.25.1.dcm", "2.25.1")
    ]
    audit = transact(engine, lambda s: cases.list_audit(s, cid))
    assert [(a.kind, a.details) for a in audit] == [
        (AuditKind.QUARANTINED, {"stage": "verify", "reason_code": "residual-phi"})
    ]
    for bad in ("/etc/passwd", "../x", "a/../../x"):
        with pytest.raises(UnsupportedInputError):
            transact(
                engine,
                lambda s, b=bad: cases.record_quarantine(
                    s, cid, PipelineStage.VERIFY, "x", "y", file_path=b
                ),
            )


def _info(n: int, **kw: object) -> InstanceInfo:
    base: dict[str, object] = {
        "study_uid": "2.25.100",
        "series_uid": f"2.25.200{n % 2}",
        "sop_instance_uid": f"2.25.300{n}",
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        "rows": 64,
        "columns": 64,
        "series_number": n % 2 + 1,
        "instance_number": 10 - n,
    }
    base.update(kw)
    return InstanceInfo(**base)  # type: ignore[arg-type]


def test_instances_are_replaced_and_listed_in_reading_order(engine: Engine) -> None:
    cid = _new_case(engine)
    transact(engine, lambda s: cases.replace_instances(s, cid, [_info(n) for n in range(4)]))
    transact(
        engine,
        lambda s: cases.replace_instances(
            s, cid, [_info(n, status=InstanceStatus.CLEAN, frames=3) for n in range(4)]
        ),
    )
    rows = transact(engine, lambda s: cases.list_instances(s, cid))
    assert [(r.series_number, r.instance_number) for r in rows] == [(1, 8), (1, 10), (2, 7), (2, 9)]
    assert {r.status for r in rows} == {InstanceStatus.CLEAN} and {r.frames for r in rows} == {3}


def test_instances_refuse_source_uids_and_duplicates(engine: Engine) -> None:
    cid = _new_case(engine)
    with pytest.raises(PHIGuardError):
        transact(engine, lambda s: cases.replace_instances(s, cid, [_info(1, study_uid=STUDY)]))
    with pytest.raises(UnsupportedInputError):
        transact(engine, lambda s: cases.replace_instances(s, cid, [_info(1), _info(1)]))
    with pytest.raises(UnsupportedInputError):
        transact(engine, lambda s: cases.replace_instances(s, cid, [_info(1, rows=0)]))
    assert transact(engine, lambda s: cases.list_instances(s, cid)) == []


def test_one_publication_record_per_case_and_target(engine: Engine) -> None:
    cid = _new_case(engine)
    clock = FakeClock()

    def upsert(status: PublicationStatus, ref: str | None = None) -> Publication:
        return transact(
            engine,
            lambda s: cases.upsert_publication(
                s, cid, "folder", status, remote_ref=ref, actor="dr. p", clock=clock
            ),
        )

    first = upsert(PublicationStatus.PUBLISHED, "/srv/cases/x")
    first_time = first.published_at
    again = upsert(PublicationStatus.PUBLISHED)
    assert again.id == first.id and again.remote_ref == "/srv/cases/x"
    assert again.published_at is not None and first_time is not None
    assert again.published_at > first_time
    down = upsert(PublicationStatus.TAKEN_DOWN)
    assert down.taken_down_at is not None and down.status is PublicationStatus.TAKEN_DOWN
    transact(
        engine,
        lambda s: cases.upsert_publication(
            s, cid, "mirc", PublicationStatus.FAILED, error_code="target-unavailable"
        ),
    )
    pubs = transact(engine, lambda s: cases.list_publications(s, cid))
    assert [(p.target, p.status) for p in pubs] == [
        ("folder", PublicationStatus.TAKEN_DOWN),
        ("mirc", PublicationStatus.FAILED),
    ]
    kinds = [(a.kind, a.details) for a in transact(engine, lambda s: cases.list_audit(s, cid))]
    assert kinds == [
        (AuditKind.PUBLISHED, {"target": "folder"}),
        (AuditKind.PUBLISHED, {"target": "folder"}),
        (AuditKind.TAKEN_DOWN, {"target": "folder"}),
        (AuditKind.PUBLICATION_FAILED, {"target": "mirc", "error_code": "target-unavailable"}),
    ]
    with pytest.raises(UnsupportedInputError):
        transact(
            engine, lambda s: cases.upsert_publication(s, cid, "../x", PublicationStatus.PENDING)
        )


def test_concurrent_publication_upserts_keep_one_row(engine: Engine) -> None:
    cid = _new_case(engine)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            transact(
                engine,
                lambda s: cases.upsert_publication(s, cid, "folder", PublicationStatus.PUBLISHED),
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(transact(engine, lambda s: cases.list_publications(s, cid))) == 1


def test_cursors(engine: Engine) -> None:
    assert transact(engine, lambda s: cases.get_cursor(s, "orthanc-changes")) is None
    transact(engine, lambda s: cases.set_cursor(s, "orthanc-changes", 5))
    transact(engine, lambda s: cases.set_cursor(s, "orthanc-changes", 9))
    assert transact(engine, lambda s: cases.get_cursor(s, "orthanc-changes")) == 9


def test_store_errors_round_trip_through_pickle() -> None:
    import pickle

    from tftt.store.db import DatabaseUnavailableError

    for error in (
        CaseNotFoundError("no case c-0000000000000000"),
        CaseTransitionError("x", code="case-transition"),
        PHIGuardError("refusing"),
        DatabaseUnavailableError("locked", code="database-locked"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert copy.code == error.code and copy.retryable == error.retryable
