"""``take-down-case``: remove a published case from every target (and the same from the CLI)."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.tasks import exponential_backoff

from tasks.retry_policy import retry_transient
from tftt.case.runtime import runtime
from tftt.case.takedown import TakeDownReason, TakeDownSummary, take_down_case
from tftt.store.case_ids import check_case_id


@task(name="take-down", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=5),
      retry_condition_fn=retry_transient)
def take_down(case_id: str, reason: TakeDownReason, actor: str | None) -> TakeDownSummary:
    return take_down_case(runtime(), case_id, reason, actor=actor)


@flow(name="take-down-case", flow_run_name="take-down-{case_id}")
def take_down_flow(case_id: str, reason: TakeDownReason, actor: str | None = None) -> list[str]:
    """Take the case down everywhere; returns the targets it was removed from."""
    check_case_id(case_id)
    summary = take_down(case_id, reason, actor)
    get_run_logger().info("case %s taken down from %d target(s)", case_id, len(summary.taken_down))
    return list(summary.taken_down)
