"""A case prepared for review (retrieved from a folder source, first pass, previews), without Prefect."""

from __future__ import annotations

from pathlib import Path

import pytest

from tftt.case.intake import first_pass_case, retrieve_case
from tftt.case.review_prep import prepare_review
from tftt.case.runtime import CaseRuntime, runtime
from tftt.settings import Settings
from tftt.store.cases import create_or_get_case_for_study
from tftt.store.db import transact
from tftt.synth.canaries import Identity, make_identity
from tftt.synth.studies import ct_series, us_cine
from tftt.synth.transfer import encode


@pytest.fixture
def prepared_case(tmp_path: Path) -> tuple[CaseRuntime, str, Identity]:
    who = make_identity(61)
    source = tmp_path / "source"
    source.mkdir()
    objects = ct_series(who, study=1, series=1, slices=2, size=64) + us_cine(who, study=1, series=2, frames=1)
    for number, obj in enumerate(objects):
        (source / f"f{number}").write_bytes(encode(obj.dataset))
    settings = Settings(data_dir=tmp_path / "data", secret_key="teaching-text-secret-0123456789abc",  # type: ignore[arg-type]
                        source={"kind": "folder", "folder": source}, publish={"folder": tmp_path / "published"})
    rt = runtime(settings)
    study_uid = str(objects[0].dataset.StudyInstanceUID)
    created, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(s, study_uid, None, "test", None))
    retrieve_case(rt, created.id)
    first_pass_case(rt, created.id)
    prepare_review(rt, created.id)
    return rt, created.id, who
