"""The nightly deletion of finished cases' identified files (real SQLite database, real folders)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tftt.case.runtime import CaseRuntime, runtime
from tftt.case.workspace_purge import purge_finished_workspaces
from tftt.settings import Settings, WorkspaceSettings
from tftt.store.cases import create_or_get_case_for_study, get_case, list_audit, set_status
from tftt.store.db import AuditKind, CaseStatus, transact
from tftt.store.workspace import IDENTIFIED_AREAS, Area

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
#: How each status is reached from RECEIVED (allowed transitions only).
PATHS = {
    CaseStatus.PUBLISHED: (CaseStatus.RETRIEVING, CaseStatus.PROCESSING, CaseStatus.PUBLISHED),
    CaseStatus.TAKEN_DOWN: (CaseStatus.RETRIEVING, CaseStatus.PROCESSING, CaseStatus.PUBLISHED,
                            CaseStatus.TAKEN_DOWN),
    CaseStatus.READY: (CaseStatus.RETRIEVING, CaseStatus.PROCESSING, CaseStatus.READY),
    CaseStatus.AWAITING_REVIEW: (CaseStatus.AWAITING_REVIEW,),
    CaseStatus.EXPIRED: (CaseStatus.EXPIRED,),
    CaseStatus.FAILED: (CaseStatus.FAILED,),
    CaseStatus.QUARANTINED: (CaseStatus.QUARANTINED,),
}


@pytest.fixture
def rt(tmp_path: Path) -> CaseRuntime:
    settings = Settings(data_dir=tmp_path / "data", secret_key="purge-test-secret-0123456789abcdef",  # type: ignore[arg-type]
                        workspace=WorkspaceSettings(keep_identified_days=7))
    return runtime(settings)


def _case(rt: CaseRuntime, number: int, status: CaseStatus, finished_days_ago: float) -> str:
    """A case in ``status`` since ``finished_days_ago``, with a file in every workspace area."""
    when = NOW - timedelta(days=finished_days_ago)
    case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(
        s, f"1.2.826.0.1.3680043.10.999.{number}", None, "test", None, clock=lambda: when))
    for step in PATHS[status]:
        transact(rt.engine, lambda s, step=step: set_status(s, case.id, step, clock=lambda: when))
    ws = rt.workspace(case.id).ensure()
    for area in Area:
        ws.write_bytes(area, "file", b"x")
    return case.id


def _left(rt: CaseRuntime, case_id: str) -> set[Area]:
    ws = rt.workspace(case_id)
    return {area for area in Area if ws.file(area, "file").exists()}


def test_finished_cases_lose_their_identified_files_after_the_retention_period(rt):
    published = _case(rt, 1, CaseStatus.PUBLISHED, 8)
    expired = _case(rt, 2, CaseStatus.EXPIRED, 30)
    failed = _case(rt, 3, CaseStatus.FAILED, 7)  # exactly the retention period
    quarantined = _case(rt, 4, CaseStatus.QUARANTINED, 10)
    taken_down = _case(rt, 5, CaseStatus.TAKEN_DOWN, 9)

    report = purge_finished_workspaces(rt, NOW)

    assert {p.case_id for p in report.purged} == {published, expired, failed, quarantined, taken_down}
    assert report.failed == ()
    everything = set(Area)
    for case_id in (published, expired, failed, quarantined):
        assert _left(rt, case_id) == everything - set(IDENTIFIED_AREAS)  # second pass, targets, quarantine
    assert _left(rt, taken_down) == {Area.QUARANTINE}  # withdrawn: only the quarantine stays
    events = transact(rt.engine, lambda s: list_audit(s, published))
    purges = [e for e in events if e.kind == AuditKind.WORKSPACE_PURGED]
    assert len(purges) == 1 and purges[0].details == {"areas": ["incoming", "first_pass", "previews"]}


def test_recent_and_unfinished_cases_keep_everything(rt):
    recent = _case(rt, 11, CaseStatus.PUBLISHED, 6.9)
    waiting = _case(rt, 12, CaseStatus.AWAITING_REVIEW, 100)
    ready = _case(rt, 13, CaseStatus.READY, 100)

    assert purge_finished_workspaces(rt, NOW).purged == ()
    for case_id in (recent, waiting, ready):
        assert _left(rt, case_id) == set(Area)


def test_a_second_run_finds_nothing_and_audits_nothing_more(rt):
    case_id = _case(rt, 21, CaseStatus.EXPIRED, 8)
    assert len(purge_finished_workspaces(rt, NOW).purged) == 1
    assert purge_finished_workspaces(rt, NOW + timedelta(days=1)).purged == ()
    events = transact(rt.engine, lambda s: list_audit(s, case_id))
    assert sum(e.kind == AuditKind.WORKSPACE_PURGED for e in events) == 1


def test_a_case_reopened_since_it_finished_is_left_alone(rt):
    case_id = _case(rt, 31, CaseStatus.PUBLISHED, 8)
    transact(rt.engine, lambda s: set_status(s, case_id, CaseStatus.AWAITING_REVIEW, clock=lambda: NOW))
    assert purge_finished_workspaces(rt, NOW).purged == ()
    assert _left(rt, case_id) == set(Area)
    assert transact(rt.engine, lambda s: get_case(s, case_id)).status == CaseStatus.AWAITING_REVIEW


def test_a_folder_that_cannot_be_deleted_is_reported_and_the_others_go_on(rt, tmp_path):
    stuck = _case(rt, 41, CaseStatus.PUBLISHED, 8)
    other = _case(rt, 42, CaseStatus.PUBLISHED, 8)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_bytes(b"x")
    incoming = rt.workspace(stuck).incoming
    (incoming / "file").unlink()
    incoming.rmdir()
    incoming.symlink_to(elsewhere)  # rmtree refuses symbolic links: it never deletes through one

    report = purge_finished_workspaces(rt, NOW)

    assert report.failed == (stuck,)
    assert [p.case_id for p in report.purged] == [other]
    assert (elsewhere / "keep").exists()
    assert _left(rt, stuck) == set(Area) - {Area.INCOMING}  # nothing else of it was deleted either


def test_a_purged_case_can_be_reviewed_again_from_the_pacs(tmp_path):
    """After the purge, a new review round retrieves the study again (the markers went with
    their areas) and gives the same published UIDs (keyed hash)."""
    from tftt.case.finishing import finish_case
    from tftt.case.intake import first_pass_case, retrieve_case
    from tftt.case.publication import publish_case
    from tftt.case.review_prep import load_index, prepare_review
    from tftt.review_decision import ReviewDecision
    from tftt.synth.canaries import make_identity
    from tftt.synth.studies import ct_series
    from tftt.synth.transfer import encode

    source = tmp_path / "source"
    source.mkdir()
    objects = ct_series(make_identity(31), study=1, series=1, slices=2, size=64)
    for number, obj in enumerate(objects):
        (source / f"f{number}").write_bytes(encode(obj.dataset))
    settings = Settings(data_dir=tmp_path / "data", secret_key="purge-test-secret-0123456789abcdef",  # type: ignore[arg-type]
                        source={"kind": "folder", "folder": source}, publish={"folder": tmp_path / "published"},
                        workspace=WorkspaceSettings(keep_identified_days=0))
    rt = runtime(settings)
    study_uid = str(objects[0].dataset.StudyInstanceUID)
    case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(s, study_uid, None, "test", None))

    def review_and_publish() -> set[str]:
        retrieve_case(rt, case.id)
        first_pass_case(rt, case.id)
        prepare_review(rt, case.id)
        index = load_index(rt.workspace(case.id))
        finish_case(rt, case.id, ReviewDecision(approved=True, reviewer="Dr. R", spec=index.proposed_spec,
                                                teaching_metadata={"title": "CT"}))
        publish_case(rt, case.id)
        return {p.name for p in (tmp_path / "published" / case.id / "dicom").glob("*.dcm")}

    first = review_and_publish()
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert [p.case_id for p in purge_finished_workspaces(rt, later).purged] == [case.id]
    assert not rt.workspace(case.id).file(Area.INCOMING, "f0").exists()
    assert review_and_publish() == first
    assert transact(rt.engine, lambda s: get_case(s, case.id)).status == CaseStatus.PUBLISHED
