"""The human-in-the-loop pause of a case, asked again until the decision is valid.

Production waits with ``suspend_flow_run`` (no process is held while a case waits for days; the
run restarts from the top on resume and finished tasks come back from cache). Tests and the
one-command demo, which run without a deployment, use ``pause_flow_run`` behind the same
function (``TFTT_REVIEW__MODE=pause``).

The Prefect server checks a submitted form only against the JSON schema. Python-side checks
(pydantic validators, the geometry of every rectangle and crop, and the teaching text against the
case's identifiers) run here, and a failing decision
is asked for again under a new key with the problems in the form's description. Problems name
fields and positions, never values.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run, asuspend_flow_run
from prefect.states import Running
from pydantic import ValidationError

from tasks.review import ReviewForm, review_page_url, teaching_text_problems
from tftt.errors import ReviewError
from tftt.redaction_spec import validate_against_geometry
from tftt.review_decision import ReviewDecision
from tftt.settings import ReviewSettings

MAX_ATTEMPTS = 5
#: How often a paused run (``pause`` mode: tests, the demo) asks the server whether it was
#: resumed. Prefect's default is 10 s; every check is one small read, and the run goes on at
#: most this long after the reviewer submits.
PAUSE_POLL_SECONDS = 0.2


def _problems_of(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()]


def _description(case_id: str, attempt: int, problems: list[str]) -> str:
    lines = [
        f"### Review case `{case_id}`",
        f"Previews and drawing tools: {review_page_url(case_id)}",
        "",
        "Images are named by their published UIDs, as listed on the review page. "
        "Proposed blackouts (device rules, OCR) are pre-filled.",
    ]
    if problems:
        lines += ["", f"**The previous decision (attempt {attempt - 1}) was not accepted:**", ""]
        lines += [f"- {problem}" for problem in problems[:20]]
    return "\n".join(lines)


async def _leave_paused_state() -> None:
    """After a pause timeout the server still has the run PAUSED; set it running again."""
    context = get_run_context()
    flow_run = getattr(context, "flow_run", None)
    if flow_run is None:
        return
    async with get_client() as client:
        await client.set_flow_run_state(flow_run.id, Running(message="review timed out"), force=True)


async def wait_for_review(case_id: str, form: ReviewForm, review: ReviewSettings) -> ReviewDecision | None:
    """The reviewer's valid decision, or ``None`` when the review timed out.

    Raises:
        ReviewError: no valid decision after :data:`MAX_ATTEMPTS` attempts.
    """
    logger = get_run_logger()
    timeout = int(timedelta(days=review.timeout_days).total_seconds())
    problems: list[str] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        form_input = ReviewDecision.with_initial_data(
            description=_description(case_id, attempt, problems),
            spec=form.proposed_spec.model_dump(mode="json"),
        )
        key = f"review-{attempt}"
        try:
            if review.mode == "suspend":
                decision = await asuspend_flow_run(wait_for_input=form_input, key=key, timeout=timeout)
            else:
                decision = await apause_flow_run(wait_for_input=form_input, key=key, timeout=timeout,
                                          poll_interval=PAUSE_POLL_SECONDS)  # type: ignore[call-overload]  # a float sleeps fine
            decision = ReviewDecision.model_validate(decision.model_dump())
        except FlowPauseTimeout:
            await _leave_paused_state()
            logger.warning("case %s: the review timed out", case_id)
            return None
        except ValidationError as exc:
            problems = _problems_of(exc)
            logger.warning("case %s: review decision %d rejected (%d problems)", case_id, attempt, len(problems))
            continue
        problems = validate_against_geometry(decision.spec, form.geometry)
        if problems:
            logger.warning("case %s: review decision %d does not fit the images (%d problems)",
                           case_id, attempt, len(problems))
            continue
        if decision.approved:
            problems = teaching_text_problems(case_id, decision.teaching_metadata, decision.spec)
            if problems:
                logger.warning("case %s: review decision %d has identifiers in its teaching text (%d problems)",
                               case_id, attempt, len(problems))
                continue
        return decision
    raise ReviewError(f"no valid review decision after {MAX_ATTEMPTS} attempts", code="review-invalid")
