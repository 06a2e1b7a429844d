"""Tasks: retrieve a case's study from the PACS, and the first pass."""

from __future__ import annotations

from prefect import task
from prefect.tasks import exponential_backoff

from tasks.pacs_limit import pacs_slot
from tasks.retry_policy import retry_transient
from tftt.case.intake import StepCount, first_pass_case, retrieve_case
from tftt.case.runtime import runtime


@task(name="retrieve", retries=4, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_jitter_factor=0.2, retry_condition_fn=retry_transient, persist_result=True)
def retrieve(case_id: str) -> StepCount:
    """Fetch the case's study into its workspace (retried on transient PACS errors only), holding
    a slot of the global ``pacs`` concurrency limit while the PACS is read (not while a retry waits)."""
    with pacs_slot():
        return retrieve_case(runtime(), case_id)


@task(name="first-pass", persist_result=True)
def first_pass(case_id: str) -> StepCount:
    """First-pass de-identification of every retrieved file; failures are quarantined."""
    return first_pass_case(runtime(), case_id)
