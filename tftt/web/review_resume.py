"""Resuming a case's paused or suspended flow run with the reviewer's decision, and reading
the run's state for the page that follows the case. The Prefect edge of the review pages.

:func:`resume_review` makes the same API call as :func:`prefect.flow_runs.resume_flow_run`
(``POST /flow_runs/{id}/resume`` with the decision as ``run_input``), but looks at every answer
of the server: ``REJECT`` (the input fails the JSON schema stored on the run, or the pause
expired) and ``ABORT`` (the run is no longer paused, e.g. another reviewer was faster), which
``resume_flow_run`` would let pass silently. Errors become typed TFTT errors that name a field
and a reason, never a value from the images; nothing here logs the decision.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from uuid import UUID

import httpx

from tftt.errors import ReviewError, TargetRejectedError, TargetUnavailableError
from tftt.review_decision import ReviewDecision
from tftt.settings import WebSettings

log = logging.getLogger(__name__)

FINAL_STATE_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
_FIELD = re.compile(r"Validation failed for field '([^']{1,300})'")
_REASON = re.compile(r"Failure reason: (.*)$", re.DOTALL)


class RunNotWaitingError(ReviewError):
    """The run does not wait for a review (not paused, expired, or unknown to Prefect)."""

    default_code = "run-not-waiting"


class ResumeRejectedError(ReviewError):
    """Prefect refused the decision against the run's input schema; ``field`` names where."""

    default_code = "run-input-rejected"

    def __init__(self, message: str, *, field: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


@dataclass(frozen=True)
class RunState:
    """The state of a flow run as the review page shows it."""

    type: str  # Prefect's StateType value: "PAUSED", "RUNNING", "COMPLETED", ...
    name: str  # e.g. "Suspended", "Paused", "Completed"
    pause_key: str | None = None

    @property
    def is_paused(self) -> bool:
        return self.type == "PAUSED"

    @property
    def is_final(self) -> bool:
        return self.type in FINAL_STATE_TYPES


def _run_uuid(flow_run_id: str) -> UUID:
    try:
        return UUID(flow_run_id)
    except ValueError:
        raise RunNotWaitingError("the case's flow run id is not a UUID", code="run-not-found") from None


def _translated(exc: BaseException) -> Exception | None:
    """A TFTT error for a Prefect/HTTP failure, or ``None`` if ``exc`` is something else."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    if isinstance(exc, ObjectNotFound):
        return RunNotWaitingError("Prefect does not know the case's flow run", code="run-not-found")
    if isinstance(exc, PrefectHTTPStatusError):
        status = exc.response.status_code
        if status >= 500 or status == 429:
            return TargetUnavailableError(
                f"the Prefect API answered HTTP {status}", code="prefect-unavailable"
            )
        return TargetRejectedError(f"the Prefect API answered HTTP {status}", code="prefect-rejected")
    if isinstance(exc, httpx.TransportError | OSError):
        return TargetUnavailableError(
            f"the Prefect API cannot be reached ({type(exc).__name__})", code="prefect-unavailable"
        )
    return None


def resume_review(flow_run_id: str, decision: ReviewDecision) -> None:
    """Hand ``decision`` to the paused/suspended flow run ``flow_run_id``.

    Raises:
        RunNotWaitingError: the run is unknown, not paused (``run-not-paused``), or its pause
            expired (``review-expired``).
        ResumeRejectedError: the server rejected the input against the run's schema.
        TargetUnavailableError: the Prefect API cannot be reached or answers 5xx/429.
        TargetRejectedError: the Prefect API refused the request otherwise (4xx).
    """
    from prefect import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.responses import SetStateStatus

    run_id = _run_uuid(flow_run_id)
    payload = decision.model_dump(mode="json")
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
            if run.state is None or not run.state.is_paused():
                raise RunNotWaitingError(
                    "the case's flow run is not waiting for a review "
                    f"(it is {run.state.name if run.state else 'without a state'})",
                    code="run-not-paused",
                )
            result = client.resume_flow_run(run_id, run_input=payload)
    except ReviewError:
        raise
    except Exception as exc:
        translated = _translated(exc)
        if translated is None:
            raise
        raise translated from None
    reason = getattr(result.details, "reason", None) or ""
    if result.status == SetStateStatus.ABORT:
        raise RunNotWaitingError(
            "the case's flow run is no longer waiting for a review", code="run-not-paused"
        )
    if result.status == SetStateStatus.REJECT:
        if result.state is not None and result.state.type == StateType.FAILED:
            raise RunNotWaitingError("the review has expired", code="review-expired")
        field_match = _FIELD.search(reason)
        reason_match = _REASON.search(reason)
        message = (reason_match.group(1) if reason_match else reason)[:300]
        raise ResumeRejectedError(
            f"Prefect rejected the decision: {message}",
            field=field_match.group(1) if field_match else "",
        )
    if result.status != SetStateStatus.ACCEPT:  # WAIT: the server asks to try later
        raise TargetUnavailableError(
            "Prefect did not accept the resume yet; try again", code="prefect-unavailable"
        )
    log.info("flow run %s resumed with a review decision", flow_run_id)


def read_run_state(flow_run_id: str) -> RunState | None:
    """The current state of ``flow_run_id``; ``None`` when Prefect does not know the run.

    Raises:
        TargetUnavailableError: the Prefect API cannot be reached or answers 5xx/429.
        TargetRejectedError: the Prefect API refused the request otherwise.
    """
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        run_id = _run_uuid(flow_run_id)
    except RunNotWaitingError:
        return None
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
    except ObjectNotFound:
        return None
    except Exception as exc:
        translated = _translated(exc)
        if translated is None:
            raise
        raise translated from None
    if run.state is None:
        return RunState(type="PENDING", name="Pending")
    details = run.state.state_details
    return RunState(
        type=run.state.type.value,
        name=run.state.name or run.state.type.value.title(),
        pause_key=details.pause_key if details is not None else None,
    )


def prefect_run_url(web: WebSettings, flow_run_id: str | None) -> str | None:
    """The Prefect UI page of a flow run (``web.prefect_ui_url``, else Prefect's own UI URL
    setting), or ``None`` when no UI URL is known or there is no run."""
    if not flow_run_id:
        return None
    base = web.prefect_ui_url
    if base is None:
        from prefect.settings import PREFECT_UI_URL

        base = PREFECT_UI_URL.value()
    if not base:
        return None
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"
