"""Retrieval and first pass of a case from a folder source (no Prefect)."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from PIL import Image

from tftt.case.intake import first_pass_case, retrieve_case
from tftt.case.runtime import runtime
from tftt.settings import Settings
from tftt.store.cases import create_or_get_case_for_study
from tftt.store.db import transact
from tftt.store.workspace import Area
from tftt.synth.canaries import make_identity
from tftt.synth.studies import ct_series
from tftt.synth.transfer import encode


def test_a_picture_beside_the_study_is_imported_and_de_identified(tmp_path: Path):
    who = make_identity(71)
    source = tmp_path / "source"
    source.mkdir()
    objects = ct_series(who, study=1, series=1, slices=1, size=32)
    (source / "ct").write_bytes(encode(objects[0].dataset))
    picture = io.BytesIO()
    Image.new("RGB", (40, 30), (120, 60, 30)).save(picture, format="JPEG")
    (source / "clinical photo.jpg").write_bytes(picture.getvalue())
    settings = Settings(data_dir=tmp_path / "data", secret_key="intake-test-secret-0123456789abcdef",  # type: ignore[arg-type]
                        source={"kind": "folder", "folder": source})
    rt = runtime(settings)
    study_uid = str(objects[0].dataset.StudyInstanceUID)
    case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(s, study_uid, None, "test", None))

    assert retrieve_case(rt, case.id).done == 2
    assert first_pass_case(rt, case.id).done == 2
    outputs = [pydicom.dcmread(p) for p in rt.workspace(case.id).area(Area.FIRST_PASS).glob("*.dcm")]
    [capture] = [ds for ds in outputs if ds.Modality == "OT"]
    assert capture.BurnedInAnnotation == "YES"  # a picture is reviewed for text like any other image
    assert capture.PatientIdentityRemoved == "YES"
    assert who.family_name.upper() not in str(capture.PatientName).upper()
    assert capture.StudyInstanceUID == outputs[0].StudyInstanceUID == outputs[1].StudyInstanceUID
