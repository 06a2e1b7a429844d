"""Task logic through ``.fn`` (no Prefect server): the thin wrappers over the case layer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tasks.intake import first_pass, retrieve
from tasks.publish import choose_publish_mode
from tasks.retry_policy import retry_transient
from tasks.review import prepare, review_form
from tftt.case.intake import retrieve_case
from tftt.case.runtime import runtime
from tftt.errors import TargetRejectedError, TargetUnavailableError
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
    summary = prepare.fn(case_id)
    assert (summary.images, summary.flagged) == (1, 1)
    form = review_form.fn(case_id)
    (uid, geometry), = form.geometry.items()
    assert uid.startswith("2.25.") and geometry.frames == 2
    assert form.proposed_spec.instances and form.proposed_spec.instances[0].sop_instance_uid == uid
    rt = runtime()
    assert transact(rt.engine, lambda s: get_case(s, case_id)).status == CaseStatus.AWAITING_REVIEW


def test_publish_mode_per_case_then_site(case_id):
    assert choose_publish_mode.fn(case_id, True) is PublishMode.IMMEDIATE
    assert choose_publish_mode.fn(case_id, False) is PublishMode.NIGHTLY
    assert choose_publish_mode.fn(case_id, None) is PublishMode.IMMEDIATE  # the site default
