"""Tasks after the review: pixel edits + second pass + verification, and case statuses."""

from __future__ import annotations

from prefect import task

from tftt.case.finishing import FinishSummary, finish_case
from tftt.case.runtime import runtime
from tftt.review_decision import ReviewDecision
from tftt.store.cases import set_status
from tftt.store.db import CaseStatus, transact


@task(name="finish", persist_result=True)
def finish(case_id: str, decision: ReviewDecision) -> FinishSummary:
    """Apply the reviewer's edits, run the second pass and verify; failures are quarantined."""
    return finish_case(runtime(), case_id, decision)


@task(name="set-status")
def set_case_status(case_id: str, status: CaseStatus, reason: str | None = None, actor: str | None = None) -> None:
    transact(runtime().engine, lambda s: set_status(s, case_id, status, reason=reason, actor=actor))
