"""Publication-side sweeps of the nightly run that need no target (real SQLite database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tftt.case.publication import expire_stale_reviews
from tftt.case.runtime import runtime
from tftt.settings import ReviewSettings, Settings
from tftt.store.cases import create_or_get_case_for_study, get_case, list_audit, set_status
from tftt.store.db import AuditKind, CaseStatus, transact

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def test_reviews_waiting_past_the_timeout_expire(tmp_path: Path):
    """In production a suspended run whose timeout passed is failed by the Prefect server without
    running TFTT's code; the nightly sweep is what marks such a case EXPIRED."""
    rt = runtime(Settings(data_dir=tmp_path, secret_key="expiry-test-secret-0123456789abcdef",  # type: ignore[arg-type]
                          review=ReviewSettings(timeout_days=14)))

    def waiting(number: int, days_ago: float, status: CaseStatus = CaseStatus.AWAITING_REVIEW) -> str:
        when = NOW - timedelta(days=days_ago)
        case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(
            s, f"1.2.826.0.1.3680043.10.998.{number}", None, "test", None, clock=lambda: when))
        transact(rt.engine, lambda s: set_status(s, case.id, status, clock=lambda: when))
        return case.id

    stale = waiting(1, 14.5)
    fresh = waiting(2, 13.5)
    retrieving = waiting(3, 30, CaseStatus.RETRIEVING)

    assert expire_stale_reviews(rt, NOW) == [stale]
    assert transact(rt.engine, lambda s: get_case(s, stale)).status == CaseStatus.EXPIRED
    assert transact(rt.engine, lambda s: get_case(s, fresh)).status == CaseStatus.AWAITING_REVIEW
    assert transact(rt.engine, lambda s: get_case(s, retrieving)).status == CaseStatus.RETRIEVING
    events = transact(rt.engine, lambda s: list_audit(s, stale))
    assert any(e.kind == AuditKind.STATUS_CHANGED and e.details.get("to") == "expired" for e in events)
    assert expire_stale_reviews(rt, NOW) == []  # nothing more the next night
