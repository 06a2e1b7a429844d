"""``process-case``: one case, from the PACS to publication (orchestration only).

retrieve ─► first pass ─► previews + flags + proposals ─► review (suspend) ─► pixel edits +
second pass + verification ─► quarantine branch ─► publish now, or mark READY for the nightly run.

Parameters, run names, logs, results and artifacts carry the opaque case id and counts only.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact

from flows.review import wait_for_review
from tasks.finish import finish, set_case_status
from tasks.intake import first_pass, retrieve
from tasks.publish import publish_or_mark_ready
from tasks.review import prepare
from tftt.settings import PublishMode, Settings
from tftt.store.case_ids import check_case_id
from tftt.store.db import CaseStatus


def _mark_failed(flow: Any, flow_run: Any, state: Any) -> None:
    """On an unexpected failure the case is marked failed (with the state's type, no message)."""
    from tftt.case.runtime import runtime
    from tftt.store.cases import set_status
    from tftt.store.db import transact

    case_id = str((flow_run.parameters or {}).get("case_id", ""))
    try:
        check_case_id(case_id)
        transact(runtime().engine, lambda s: set_status(s, case_id, CaseStatus.FAILED, reason="flow run failed"))
    except Exception:  # the hook must never mask the flow's own failure
        get_run_logger().exception("could not mark the case failed")


@flow(name="process-case", flow_run_name="case-{case_id}", persist_result=True, on_failure=[_mark_failed])
async def process_case(case_id: str) -> str:
    """Run one case through every step; returns the case's final status.

    An ``async`` flow around synchronous tasks (each runs in the flow's thread, one after the
    other, as in a sync flow): Prefect 3.9's sync engine joins the run's heartbeat thread at the
    end of every run, and that thread sleeps in 1 s steps, which added 0-1 s to every case
    (measured in ``benchmarks/case.py``). The async engine stops it without waiting.
    """
    check_case_id(case_id)
    settings = Settings()
    logger = get_run_logger()

    retrieved = retrieve(case_id)
    first = first_pass(case_id)
    logger.info("case %s: %d retrieved, %d first-pass, %d quarantined",
                case_id, retrieved.done, first.done, first.quarantined)
    if first.done == 0:
        set_case_status(case_id, CaseStatus.QUARANTINED, reason="no file passed the first pass")
        return CaseStatus.QUARANTINED.value

    prepared = prepare(case_id)
    await acreate_markdown_artifact(
        key=f"review-{case_id}", markdown=prepared.artifact, description="Case review summary"
    )
    decision = await wait_for_review(case_id, prepared.form, settings.review)
    if decision is None:
        set_case_status(case_id, CaseStatus.EXPIRED, reason="review timed out")
        return CaseStatus.EXPIRED.value
    if not decision.approved:
        set_case_status(case_id, CaseStatus.FAILED, reason="rejected by the reviewer", actor=decision.reviewer)
        return "rejected"

    finished = finish(case_id, decision)
    logger.info("case %s: %d written, %d excluded, %d quarantined, %d derived",
                case_id, finished.written, finished.excluded, finished.quarantined, finished.derived)
    if finished.written == 0:
        set_case_status(case_id, CaseStatus.QUARANTINED, reason="no image passed verification")
        return CaseStatus.QUARANTINED.value
    if publish_or_mark_ready(case_id, decision.publish_now) is PublishMode.IMMEDIATE:
        return CaseStatus.PUBLISHED.value
    return CaseStatus.READY.value
