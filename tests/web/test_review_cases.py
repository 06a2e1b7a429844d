"""Case data for the review pages: the index cache, preview paths, the list, decision checks."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy.engine import Engine

from tests.web.synthetic_case import SyntheticCase, make_case
from tftt.errors import UnsupportedInputError
from tftt.review_index import INDEX_FILE
from tftt.settings import Settings
from tftt.store import cases
from tftt.store.db import PipelineStage, transact
from tftt.store.workspace import Area
from tftt.web.review_cases import (
    IndexCache,
    awaiting_review,
    check_decision,
    decision_summary,
    image_flags,
    preview_file,
)


@pytest.fixture
def case(rsettings: Settings, rengine: Engine) -> SyntheticCase:
    return make_case(rsettings, rengine, flow_run_id="0b9a3c1e-0000-4000-8000-000000000001", extra_images=2)


def decision_json(case: SyntheticCase, **changes: object) -> dict:
    body: dict = {
        "approved": True,
        "reviewer": "Dr. Entered",
        "spec": {
            "instances": [
                {
                    "sop_instance_uid": case.cine_uid,
                    "blackouts": [
                        {"x": case.box.x, "y": case.box.y, "width": case.box.width, "height": case.box.height}
                    ],
                    "crop": {"x": 0, "y": 30, "width": case.columns, "height": case.rows - 30},
                }
            ]
        },
        "teaching_metadata": {"title": "Liver", "keywords": ["us"]},
    }
    body.update(changes)
    return body


def test_index_cache_reads_once_and_rereads_on_change(case: SyntheticCase) -> None:
    cache = IndexCache()
    first = cache.load(case.workspace)
    assert first is not None and first == case.index
    assert cache.load(case.workspace) is first  # cached
    path = case.workspace.file(Area.PREVIEWS, INDEX_FILE)
    data = json.loads(path.read_text())
    data["images"] = data["images"][:1]
    path.write_text(json.dumps(data))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    again = cache.load(case.workspace)
    assert again is not None and len(again.images) == 1


def test_index_of_another_case_or_garbage_is_refused(case: SyntheticCase) -> None:
    path = case.workspace.file(Area.PREVIEWS, INDEX_FILE)
    data = json.loads(path.read_text())
    data["case_id"] = "c-0000000000000000"
    path.write_text(json.dumps(data))
    with pytest.raises(UnsupportedInputError):
        IndexCache().load(case.workspace)
    path.write_text("{not json")
    with pytest.raises(UnsupportedInputError):
        IndexCache().load(case.workspace)
    path.unlink()
    assert IndexCache().load(case.workspace) is None


def test_preview_files_are_listed_images_and_frames_only(case: SyntheticCase) -> None:
    index = case.index
    ws = case.workspace
    cine = index.images[0]
    assert preview_file(ws, index, case.cine_uid, None) == ws.file(Area.PREVIEWS, case.cine_uid, "thumb.jpg")
    listed = cine.preview_frames[-1]
    assert preview_file(ws, index, case.cine_uid, listed) is not None
    unlisted = next(n for n in range(1, case.frames + 1) if n not in cine.preview_frames)
    assert preview_file(ws, index, case.cine_uid, unlisted) is None
    # a folder that exists on disk but is not in the index
    stray = ws.file(Area.PREVIEWS, "2.25.999")
    stray.mkdir()
    (stray / "thumb.jpg").write_bytes(b"\xff\xd8stray")
    for uid in ["2.25.999", "..", ".", "", "index.json", "../previews", case.cine_uid + "/..", "1.2\x00"]:
        assert preview_file(ws, index, uid, None) is None


def test_flags(case: SyntheticCase, rengine: Engine) -> None:
    cine = case.index.images[0]
    flags = image_flags(cine, [])
    assert flags.labels == ["burned-in risk", "device rule"]

    def quarantine(session: object) -> list:
        cases.record_quarantine(
            session,  # type: ignore[arg-type]
            case.case_id,
            PipelineStage.PREVIEWS,
            "undecodable",
            "pixel data cannot be decoded",
            sop_instance_uid=case.cine_uid,
        )
        return cases.list_quarantine(session, case.case_id)  # type: ignore[arg-type]

    records = transact(rengine, quarantine)
    flagged = image_flags(cine, records)
    assert flagged.quarantine == ("undecodable: pixel data cannot be decoded",)
    assert "quarantined" in flagged.labels


def test_awaiting_review_rows(rsettings: Settings, rengine: Engine, case: SyntheticCase) -> None:
    newer = make_case(rsettings, rengine, title=None)
    rows = transact(rengine, awaiting_review)
    assert [r.case_id for r in rows] == [newer.case_id, case.case_id]  # newest first
    row = rows[1]
    assert row.title == "Liver cine <b>&amp; friends</b>"  # raw here; the template escapes it
    assert (row.series, row.images, row.frames, row.flagged) == (2, 3, case.frames + 2, 1)
    assert row.modalities == ("OT", "US")
    assert row.flow_run_id == "0b9a3c1e-0000-4000-8000-000000000001"


def test_a_valid_decision_passes(case: SyntheticCase) -> None:
    decision, errors = check_decision(json.dumps(decision_json(case)).encode(), case.index)
    assert errors == [] and decision is not None
    assert decision_summary(decision)["blackouts"] == 1
    assert decision_summary(decision)["crops"] == 1


def test_model_errors_name_fields_not_values(case: SyntheticCase) -> None:
    body = decision_json(case, teaching_metadata={"title": "", "keywords": []}, reviewer="")
    body["spec"]["instances"][0]["blackouts"][0]["width"] = -7
    body["spec"]["instances"][0]["secret_patient_name"] = "CANARY^NAME"
    decision, errors = check_decision(json.dumps(body).encode(), case.index)
    assert decision is None
    fields = {e.field for e in errors}
    assert "teaching_metadata.title" in fields
    assert "reviewer" in fields
    assert "spec.instances[0].blackouts[0].width" in fields
    assert "spec.instances[0].<unknown field>" in fields
    text = json.dumps([e.__dict__ for e in errors])
    assert "CANARY" not in text and "secret_patient_name" not in text and "-7" not in text
    _, garbage = check_decision(b"{not json", case.index)
    assert garbage and garbage[0].field == "(decision)"


def test_geometry_errors_name_the_spec_position(case: SyntheticCase) -> None:
    body = decision_json(case)
    body["spec"]["instances"][0]["blackouts"][0]["x"] = case.columns - 5
    body["spec"]["instances"][0]["blackouts"][0]["frames"] = {"first": 2, "last": case.frames + 3}
    body["spec"]["series"] = [{"series_uid": "2.25.424242", "exclude": True}]
    decision, errors = check_decision(json.dumps(body).encode(), case.index)
    assert decision is None
    by_field = {e.field: e.message for e in errors}
    assert "spec.instances[0].blackouts[0]" in by_field
    assert "spec.series[0]" in by_field
    assert all(case.cine_uid not in e.message and "2.25.424242" not in e.message for e in errors)
