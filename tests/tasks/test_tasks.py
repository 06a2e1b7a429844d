"""Task logic through ``.fn`` (no Prefect server): the thin wrappers over the case layer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tasks.finish import finish
from tasks.intake import first_pass, retrieve
from tasks.publish import publish_or_mark_ready
from tasks.retry_policy import retry_transient
from tasks.review import prepare
from tftt.case.intake import retrieve_case
from tftt.case.publication import publish_mode
from tftt.case.runtime import runtime
from tftt.demo import example_decision
from tftt.errors import TargetRejectedError, TargetUnavailableError
from tftt.review_decision import ReviewDecision
from tftt.settings import PublishMode, Settings
from tftt.store.cases import create_or_get_case_for_study, get_case
from tftt.store.db import CaseStatus, transact
from tftt.synth.canaries import make_identity
from tftt.synth.studies import us_cine
from tftt.synth.transfer import encode


class _State:
    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc

    def result(self) -> None:
        if self.exc is not None:
            raise self.exc


@pytest.mark.parametrize(("exc", "retry"), [
    (TargetUnavailableError("PACS down"), True),
    (TargetRejectedError("401"), False),
    (ValueError("bug"), False),
    (None, False),
])
def test_retry_only_transient_errors(exc, retry):
    assert retry_transient(SimpleNamespace(), SimpleNamespace(), _State(exc)) is retry


@pytest.fixture
def case_id(tmp_path, monkeypatch) -> str:
    source = tmp_path / "source"
    source.mkdir()
    obj = us_cine(make_identity(41), frames=2)[0]
    (source / "cine").write_bytes(encode(obj.dataset))
    monkeypatch.setenv("TFTT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TFTT_SOURCE__FOLDER", str(source))
    monkeypatch.setenv("TFTT_SECRET_KEY", "tasks-test-secret-key-0123456789abcdef")
    rt = runtime(Settings())
    case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(
        s, str(obj.dataset.StudyInstanceUID), None, "t", None))
    return case.id


def test_intake_and_review_tasks(case_id):
    # `retrieve` holds Prefect's global "pacs" concurrency slot, which needs a Prefect server
    # (tested in tests/flows); its body is the case step, called here directly.
    assert retrieve.fn.__doc__
    assert retrieve_case(runtime(), case_id).done == 1
    assert retrieve_case(runtime(), case_id).done == 1  # idempotent: the workspace already has it
    assert first_pass.fn(case_id).done == 1
    prepared = prepare.fn(case_id)
    assert (prepared.summary.images, prepared.summary.flagged) == (1, 1)
    (uid, geometry), = prepared.form.geometry.items()
    assert uid.startswith("2.25.") and geometry.frames == 2
    assert prepared.form.proposed_spec.instances and prepared.form.proposed_spec.instances[0].sop_instance_uid == uid
    assert f"## Case `{case_id}` awaits review" in prepared.artifact
    assert "| 1 | US | 1 | 2 | 1 |" in prepared.artifact  # series, modality, images, frames, flagged
    rt = runtime()
    assert transact(rt.engine, lambda s: get_case(s, case_id)).status == CaseStatus.AWAITING_REVIEW


def test_publish_mode_per_case_then_site(case_id):
    assert publish_mode(runtime(), case_id, True) is PublishMode.IMMEDIATE
    assert publish_mode(runtime(), case_id, False) is PublishMode.NIGHTLY
    assert publish_mode(runtime(), case_id, None) is PublishMode.IMMEDIATE  # the site default


@pytest.mark.parametrize(("publish_now", "mode", "status"), [
    (False, PublishMode.NIGHTLY, CaseStatus.READY),
    (True, PublishMode.IMMEDIATE, CaseStatus.PUBLISHED),
])
def test_a_finished_case_is_published_or_marked_ready(case_id, tmp_path, monkeypatch, publish_now, mode, status):
    monkeypatch.setenv("TFTT_PUBLISH__FOLDER", str(tmp_path / "published"))
    rt = runtime(Settings())
    retrieve_case(rt, case_id)
    first_pass.fn(case_id)
    prepare.fn(case_id)
    decision = ReviewDecision.model_validate(example_decision(rt.settings, case_id))
    assert finish.fn(case_id, decision).written == 1
    assert publish_or_mark_ready.fn(case_id, publish_now) is mode
    assert transact(rt.engine, lambda s: get_case(s, case_id)).status == status
    assert (tmp_path / "published" / case_id).exists() is (mode is PublishMode.IMMEDIATE)
