"""Resuming a paused run and reading its state against a REAL Prefect server (``prefect_api``
fixture), with the stand-in review flow of stand_in_flow.py."""

from __future__ import annotations

import uuid

import pytest

from tests.web.stand_in_flow import PausedFlow
from tftt.errors import TargetUnavailableError
from tftt.redaction_spec import (
    CropBox,
    FrameRange,
    InstanceEdits,
    Rectangle,
    RedactionSpec,
    SeriesEdits,
    TeachingMetadata,
    TextAnnotation,
)
from tftt.review_decision import ReviewDecision
from tftt.settings import WebSettings
from tftt.web.review_resume import (
    ResumeRejectedError,
    RunNotWaitingError,
    prefect_run_url,
    read_run_state,
    resume_review,
)

pytestmark = pytest.mark.integration


def decision(**changes: object) -> ReviewDecision:
    values: dict[str, object] = {
        "approved": True,
        "reviewer": "Dr. Resume",
        "spec": RedactionSpec(
            series=[SeriesEdits(series_uid="2.25.1", crop=CropBox(x=0, y=40, width=300, height=200))],
            instances=[
                InstanceEdits(
                    sop_instance_uid="2.25.2",
                    blackouts=[Rectangle(x=1, y=2, width=30, height=40, frames=FrameRange(first=2, last=5))],
                    annotations=[TextAnnotation(x=5, y=50, text="lesion")],
                )
            ],
        ),
        "teaching_metadata": TeachingMetadata(title="A case", keywords=["liver", "us"]),
        "publish_now": False,
        "notes": None,
    }
    values.update(changes)
    return ReviewDecision.model_validate(values)


def test_the_paused_flow_receives_exactly_the_decision(prefect_api: str) -> None:
    run = PausedFlow("resume-exact")
    state = read_run_state(run.run_id)
    assert state is not None and state.is_paused and state.pause_key == "review-1"
    sent = decision()
    resume_review(run.run_id, sent)
    received = run.result()
    assert isinstance(received, ReviewDecision)
    assert received.model_dump() == sent.model_dump()
    final = read_run_state(run.run_id)
    assert final is not None and final.type == "COMPLETED" and final.is_final


def test_a_run_that_is_not_paused_is_refused(prefect_api: str) -> None:
    run = PausedFlow("resume-twice")
    resume_review(run.run_id, decision())
    run.result()
    with pytest.raises(RunNotWaitingError) as info:
        resume_review(run.run_id, decision(reviewer="Dr. Late"))
    assert info.value.code == "run-not-paused"


def test_unknown_runs(prefect_api: str) -> None:
    missing = str(uuid.uuid4())
    assert read_run_state(missing) is None
    assert read_run_state("not-a-uuid") is None
    with pytest.raises(RunNotWaitingError) as info:
        resume_review(missing, decision())
    assert info.value.code == "run-not-found"


def test_a_schema_rejection_names_the_problem_and_leaves_the_run_paused(prefect_api: str) -> None:
    run = PausedFlow("resume-strict", strict=True)
    with pytest.raises(ResumeRejectedError) as info:
        resume_review(run.run_id, decision())
    assert "second_opinion" in info.value.message
    assert info.value.code == "run-input-rejected"
    assert run.state_type() == "PAUSED"
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(
        uuid.UUID(run.run_id),
        run_input={**decision().model_dump(mode="json"), "second_opinion": "agree"},
    )
    assert run.result().second_opinion == "agree"  # type: ignore[attr-defined]


def test_an_unreachable_prefect_is_a_retryable_error() -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:1/api", PREFECT_CLIENT_MAX_RETRIES: 0}):
        with pytest.raises(TargetUnavailableError) as info:
            resume_review(str(uuid.uuid4()), decision())
        assert info.value.retryable
        with pytest.raises(TargetUnavailableError):
            read_run_state(str(uuid.uuid4()))


def test_run_links() -> None:
    web = WebSettings(prefect_ui_url="http://prefect.lan:4200/")
    run_id = str(uuid.uuid4())
    assert prefect_run_url(web, run_id) == f"http://prefect.lan:4200/runs/flow-run/{run_id}"
    assert prefect_run_url(web, None) is None
