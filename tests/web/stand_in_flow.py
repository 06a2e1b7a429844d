"""STAND-IN for the case flow's review step (the real ``process_case`` flow is wired by the
lead): a tiny flow that waits with ``pause_flow_run(wait_for_input=ReviewDecision, ...)`` — as
the real review step does when it runs without a deployment — and returns what it receives.

:class:`PausedFlow` runs it in a background thread against the real Prefect server of the
``prefect_api`` fixture, gives the test its flow run id once the run is PAUSED, and hands back
the flow's return value: exactly the decision Prefect gave to the flow.
"""

from __future__ import annotations

import contextvars
import queue
import time
from concurrent.futures import Future, ThreadPoolExecutor
from uuid import UUID

from prefect import flow
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from tftt.review_decision import ReviewDecision

_run_ids: dict[str, queue.Queue[str]] = {}


class StricterDecision(ReviewDecision):
    """A run input whose schema the submitted ReviewDecision does not meet (a required field
    it lacks), to make the Prefect server REJECT a resume."""

    second_opinion: str = Field(min_length=1, description="Required by this stand-in only")


@flow(name="review-stand-in", persist_result=False)
def review_stand_in(key: str, strict: bool = False) -> RunInput:
    """Stand-in for the case flow: wait for the review decision, return it unchanged.
    ``key`` only tells the test's :class:`PausedFlow` which run is its own."""
    _run_ids[key].put(str(flow_run.id))
    wanted: type[RunInput] = StricterDecision if strict else ReviewDecision
    return pause_flow_run(wait_for_input=wanted, timeout=60, poll_interval=1, key="review-1")


class PausedFlow:
    """The stand-in flow running in a background thread until it is resumed."""

    def __init__(self, key: str, *, strict: bool = False) -> None:
        self.key = key
        _run_ids[key] = queue.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stand-in")
        context = contextvars.copy_context()
        self._future: Future[RunInput] = self._executor.submit(context.run, review_stand_in, key, strict)
        self.run_id = self._wait_paused()

    def _wait_paused(self, timeout: float = 60) -> str:
        from prefect import get_client

        run_id = _run_ids[self.key].get(timeout=timeout)
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                state = client.read_flow_run(UUID(run_id)).state
                if state is not None and state.is_paused():
                    return run_id
                if self._future.done():
                    self._future.result()  # raises what the flow raised
                time.sleep(0.1)
        raise TimeoutError("the stand-in flow did not pause")

    def state_type(self) -> str:
        from prefect import get_client

        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(self.run_id)).state
        return state.type.value if state is not None else "NONE"

    def result(self, timeout: float = 30) -> RunInput:
        """What the flow returned after it was resumed."""
        try:
            return self._future.result(timeout=timeout)
        finally:
            self._executor.shutdown(wait=False)
            _run_ids.pop(self.key, None)

    def finish(self, decision: ReviewDecision | None = None) -> None:
        """Resume a still-paused run (test cleanup) so its thread ends."""
        from prefect.flow_runs import resume_flow_run

        if self.state_type() == "PAUSED" and decision is not None:
            resume_flow_run(UUID(self.run_id), run_input=decision.model_dump(mode="json"))
            self.result()
