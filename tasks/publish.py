"""Tasks: publish a case to its targets, or mark it READY for the nightly batch."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.tasks import exponential_backoff

from tasks.retry_policy import retry_transient
from tftt.case.publication import (
    PublishSummary,
    expire_stale_reviews,
    mark_ready,
    publish_case,
    publish_mode,
    ready_case_ids,
)
from tftt.case.runtime import runtime
from tftt.case.workspace_purge import PurgeReport, purge_finished_workspaces
from tftt.settings import PublishMode


@task(name="publish", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=5),
      retry_condition_fn=retry_transient, persist_result=True)
def publish(case_id: str) -> PublishSummary:
    """Publish to every configured target (idempotent; retried on transient errors)."""
    return publish_case(runtime(), case_id)


@task(name="publish-or-mark-ready", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=5),
      retry_condition_fn=retry_transient, persist_result=True)
def publish_or_mark_ready(case_id: str, publish_now: bool | None) -> PublishMode:
    """The case's publish mode (the reviewer's choice, else the case's, else the site's), then
    publish now (idempotent; retried on transient errors) or mark the case READY for the nightly
    batch. One task, not two: a task run costs about 45 ms of Prefect client and server CPU."""
    rt = runtime()
    mode = publish_mode(rt, case_id, publish_now)
    if mode is PublishMode.IMMEDIATE:
        publish_case(rt, case_id)
    else:
        mark_ready(rt, case_id)
    return mode


@task(name="ready-cases")
def ready_cases() -> list[str]:
    return ready_case_ids(runtime())


@task(name="expire-stale-reviews")
def expire_stale() -> list[str]:
    return expire_stale_reviews(runtime(), datetime.now(UTC))


@task(name="purge-identified-files")
def purge_workspaces() -> PurgeReport:
    """Delete the identified files of cases finished longer ago than the retention period."""
    return purge_finished_workspaces(runtime(), datetime.now(UTC))
