"""A new review round for a case: after a take-down, or to correct a published case.

The case gets a new run of ``process-case`` (its own idempotency key per round): retrieval and
the first pass come back from the workspace (or are done again from the PACS once the nightly run
has deleted the case's identified files, see :mod:`tftt.case.workspace_purge`), the reviewer
decides again, and the new second pass is published to every target, updating what they hold in
place.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session

from tftt.case.runtime import CaseRuntime
from tftt.store.cases import set_flow_run, start_review_round
from tftt.store.db import transact

#: ``start_run(case_id, idempotency_key=...) -> flow run id`` (tftt.web.runs.start_case_run).
StartRun = Callable[..., str]


def round_key(case_id: str, review_round: int) -> str:
    return f"case-{case_id}-round-{review_round}"


def reopen_for_review(rt: CaseRuntime, case_id: str, start_run: StartRun) -> str:
    """Start review round N+1 of the case in a new flow run; returns the run id.

    Raises:
        CaseNotFoundError: no such case.
        ConfigurationError / TargetUnavailableError: the run could not be started.
    """
    def next_round(session: Session) -> int:
        return start_review_round(session, case_id)

    review_round = transact(rt.engine, next_round)
    run_id = start_run(case_id, idempotency_key=round_key(case_id, review_round))

    def remember(session: Session) -> None:
        set_flow_run(session, case_id, run_id)

    transact(rt.engine, remember)
    return run_id
