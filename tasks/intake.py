"""Tasks: retrieve a case's study from the PACS, and the first pass."""

from __future__ import annotations

from prefect import task
from prefect.concurrency.sync import concurrency
from prefect.tasks import exponential_backoff

from tasks.retry_policy import retry_transient
from tftt.case.intake import StepCount, first_pass_case, retrieve_case
from tftt.case.runtime import runtime

#: Global concurrency limit that protects the PACS (created by ``tftt serve``).
PACS_LIMIT = "pacs"


@task(name="retrieve", retries=4, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_jitter_factor=0.2, retry_condition_fn=retry_transient, persist_result=True, tags=["pacs"])
def retrieve(case_id: str) -> StepCount:
    """Fetch the case's study into its workspace (retried on transient PACS errors only)."""
    with concurrency(PACS_LIMIT, occupy=1, strict=False):
        return retrieve_case(runtime(), case_id)


@task(name="first-pass", persist_result=True)
def first_pass(case_id: str) -> StepCount:
    """First-pass de-identification of every retrieved file; failures are quarantined."""
    return first_pass_case(runtime(), case_id)
