"""The server-rendered "after" view and CT window presets of the review page, through HTTP.

The case's first-pass DICOM (a synthetic burned-in US cine and a synthetic CT slice) is edited
and rendered by the same code as the published images; the JPEGs are decoded with Pillow and
compared region by region (with a tolerance for JPEG).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.engine import Engine

from tests.web.conftest import RecordingStarter, TestClient
from tests.web.synthetic_case import SyntheticCase, make_case, published_uid
from tests.web.test_review_pages import login, page_csrf
from tftt.review_index import frame_file
from tftt.settings import Settings
from tftt.store import cases
from tftt.store.db import CaseStatus, transact
from tftt.store.workspace import Area
from tftt.web.app import create_app


@pytest.fixture
def client(rsettings: Settings, rengine: Engine) -> Iterator[TestClient]:
    app = create_app(rsettings, engine=rengine, start_case_run=RecordingStarter())
    with TestClient(app) as test_client:
        yield test_client


def spec(*instances: dict[str, Any], series: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"spec_version": 1, "series": series or [], "instances": list(instances), "burn_in_annotations": False}


def edits(uid: str, **values: Any) -> dict[str, Any]:
    return {"sop_instance_uid": uid, **values}


def after(client: TestClient, case_id: str, uid: str, body: Any, token: str | None, query: str = "frame=1") -> Any:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-CSRF-Token"] = token
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(f"/review/cases/{case_id}/images/{uid}/after.jpg?{query}", content=content, headers=headers)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def stored_preview(case: SyntheticCase, uid: str, frame: int) -> bytes:
    return case.workspace.file(Area.PREVIEWS, uid, frame_file(frame)).read_bytes()


def test_after_view_blacks_out_the_rectangle_and_leaves_the_rest(
    client: TestClient, rsettings: Settings, rengine: Engine
) -> None:
    case = make_case(rsettings, rengine)
    login(client)
    token = page_csrf(client, case.case_id)
    frame = case.index.images[0].preview_frames[1]
    before_jpeg = stored_preview(case, case.cine_uid, frame)

    # no edits: the after view is the first-pass preview, byte for byte
    same = after(client, case.case_id, case.cine_uid, spec(), token, f"frame={frame}")
    assert same.status_code == 200 and same.headers["content-type"] == "image/jpeg"
    assert same.headers["cache-control"] == "no-store"
    assert same.content == before_jpeg

    b = case.box
    rect = {"x": b.x, "y": b.y, "width": b.width, "height": b.height, "frames": None, "source": "reviewer"}
    answer = after(client, case.case_id, case.cine_uid, spec(edits(case.cine_uid, blackouts=[rect])), token,
                   f"frame={frame}")
    assert answer.status_code == 200
    out, before = pixels(answer.content), pixels(before_jpeg)
    assert out.shape == before.shape == (case.rows, case.columns, 3)
    inside = out[b.y + 2 : b.y + b.height - 2, b.x + 2 : b.x + b.width - 2]
    assert inside.max() <= 24 and inside.mean() < 4
    assert before[b.y : b.y + b.height, b.x : b.x + b.width].max() > 200  # the text was there
    outside = np.ones(out.shape[:2], dtype=bool)
    outside[max(0, b.y - 16) : b.y + b.height + 16, max(0, b.x - 16) : b.x + b.width + 16] = False
    assert np.abs(out[outside] - before[outside]).mean() < 1.0
    assert np.abs(out[outside] - before[outside]).max() <= 40


def test_after_view_crops_resolves_series_edits_and_draws_annotations(
    client: TestClient, rsettings: Settings, rengine: Engine
) -> None:
    case = make_case(rsettings, rengine)
    login(client)
    token = page_csrf(client, case.case_id)
    crop = {"x": 10, "y": 30, "width": 200, "height": 150}
    series_crop = {"x": 0, "y": 0, "width": 100, "height": 100}
    band = {"x": 0, "y": 40, "width": case.columns, "height": 20}  # series blackout, kept
    arrow = {"kind": "arrow", "tail_x": 150, "tail_y": 150, "head_x": 110, "head_y": 100, "color": "#FF0000"}
    body = spec(
        edits(case.cine_uid, crop=crop, annotations=[arrow]),
        series=[{"series_uid": case.cine_series_uid, "blackouts": [band], "crop": series_crop}],
    )
    answer = after(client, case.case_id, case.cine_uid, body, token)
    assert answer.status_code == 200
    out = pixels(answer.content)
    assert out.shape == (150, 200, 3)  # the instance crop replaces the series crop
    assert out[12:28, 4:196].max() <= 24  # rows 42..58 of the image, now 12..28
    red = (out[..., 0] > 150) & (out[..., 1] < 90) & (out[..., 2] < 90)
    assert red[70:120, 100:140].sum() > 20  # the arrow, shifted by the crop


def test_after_view_rejects_invalid_edits_with_field_errors(
    client: TestClient, rsettings: Settings, rengine: Engine
) -> None:
    case = make_case(rsettings, rengine, extra_images=1)
    login(client)
    token = page_csrf(client, case.case_id)
    outside = {"x": case.columns - 4, "y": 0, "width": 10, "height": 10}
    answer = after(client, case.case_id, case.cine_uid, spec(edits(case.cine_uid, blackouts=[outside])), token)
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert [e["field"] for e in errors] == ["spec.instances[0].blackouts[0]"]
    assert "columns" in errors[0]["message"] and case.cine_uid not in answer.text

    empty_crop = {"x": 0, "y": 0, "width": 0, "height": 5}
    negative = after(client, case.case_id, case.cine_uid, spec(edits(case.cine_uid, crop=empty_crop)), token)
    assert negative.status_code == 422
    assert negative.json()["errors"][0]["field"] == "spec.instances[0].crop.width"
    unknown_field = after(client, case.case_id, case.cine_uid, spec(edits(case.cine_uid, secret="x")), token)
    assert unknown_field.status_code == 422
    assert unknown_field.json()["errors"][0]["field"] == "spec.instances[0].<unknown field>"
    assert after(client, case.case_id, case.cine_uid, b"{not json", token).status_code == 422

    # a problem of another image's edits does not concern this image's after view
    other = case.index.images[1].sop_instance_uid
    elsewhere = spec(edits(case.cine_uid), edits(other, blackouts=[{"x": 500, "y": 0, "width": 5, "height": 5}]))
    assert after(client, case.case_id, case.cine_uid, elsewhere, token).status_code == 200

    excluded = after(client, case.case_id, case.cine_uid, spec(edits(case.cine_uid, exclude=True)), token)
    assert excluded.status_code == 422 and "excluded" in excluded.json()["errors"][0]["message"]
    for query, field in (("frame=x", "frame"), ("", "frame"), ("frame=1&window=lung", "window")):
        answer = after(client, case.case_id, case.cine_uid, spec(), token, query)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == field
    too_big = b'{"spec_version": 1, "series": [], "instances": [], "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert after(client, case.case_id, case.cine_uid, too_big, token).status_code == 413


def test_after_view_needs_a_login_csrf_a_listed_image_and_a_case_awaiting_review(
    client: TestClient, rsettings: Settings, rengine: Engine
) -> None:
    case = make_case(rsettings, rengine, extra_images=1)
    other = make_case(rsettings, rengine)
    assert after(client, case.case_id, case.cine_uid, spec(), None).status_code == 401
    login(client)
    token = page_csrf(client, case.case_id)
    assert after(client, case.case_id, case.cine_uid, spec(), None).status_code == 403
    assert after(client, case.case_id, case.cine_uid, spec(), "forged").status_code == 403
    assert after(client, case.case_id, case.cine_uid, spec(), token).status_code == 200
    not_found = [
        (case.case_id, published_uid(1, 2, 3)),  # not in the index
        (case.case_id, other.cine_uid),  # another case's image
        (case.case_id, "../../etc"),
        ("c-0000000000000000", case.cine_uid),
        ("not-a-case", case.cine_uid),
        (case.case_id, case.index.images[1].sop_instance_uid),  # listed, but no first-pass file
    ]
    for case_id, uid in not_found:
        answer = after(client, case_id, uid, spec(), token)
        assert answer.status_code == 404, (case_id, uid)
    unsampled = after(client, case.case_id, case.cine_uid, spec(), token, "frame=999")
    assert unsampled.status_code == 404
    transact(rengine, lambda s: cases.set_status(s, case.case_id, CaseStatus.PROCESSING))
    busy = after(client, case.case_id, case.cine_uid, spec(), token)
    assert busy.status_code == 409 and "processing" in busy.json()["errors"][0]["message"]


def test_ct_window_presets_are_rendered_from_the_first_pass(
    client: TestClient, rsettings: Settings, rengine: Engine
) -> None:
    case = make_case(rsettings, rengine, ct_size=128)
    assert case.ct_uid is not None
    url = f"/review/cases/{case.case_id}/images/{case.ct_uid}/frames/1.jpg"
    assert client.get(url + "?window=lung").status_code == 401
    login(client)
    default = client.get(url)
    assert default.status_code == 200 and default.content == stored_preview(case, case.ct_uid, 1)
    # the synthetic CT's header window is the soft tissue one: same bytes as the stored preview
    soft = client.get(url + "?window=soft-tissue")
    assert soft.status_code == 200 and soft.headers["cache-control"] == "no-store"
    assert soft.content == default.content
    lung = client.get(url + "?window=lung")
    assert lung.status_code == 200 and lung.content != default.content
    assert pixels(lung.content).shape == pixels(default.content).shape == (128, 128, 3)
    assert pixels(lung.content).mean() > pixels(default.content).mean() + 5  # soft tissue is bright in lung
    for bad in ("?window=nope", "?window=", f"/../../{case.cine_uid}"):
        assert client.get(url + bad).status_code in (404, 422)
    us = f"/review/cases/{case.case_id}/images/{case.cine_uid}/frames/1.jpg?window=lung"
    answer = client.get(us)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "window"
    assert client.get(url.replace("/1.jpg", "/2.jpg") + "?window=lung").status_code == 404

    # the after view takes the preset too
    token = page_csrf(client, case.case_id)
    rect = {"x": 0, "y": 0, "width": 32, "height": 32}
    lung_after = after(client, case.case_id, case.ct_uid, spec(edits(case.ct_uid, blackouts=[rect])), token,
                       "frame=1&window=lung")
    assert lung_after.status_code == 200
    out, ref = pixels(lung_after.content), pixels(lung.content)
    # the blackout stores the lowest value (-1024 HU), which the wide lung window shows dark grey:
    # 255 * ((-1024 - (-600 - 0.5)) / 1499 + 0.5) = 55
    inside = out[2:30, 2:30]
    assert inside.std() < 1.5 and abs(inside.mean() - 55) < 3
    assert np.abs(out[48:, 48:] - ref[48:, 48:]).mean() < 1.0
    plain_after = after(client, case.case_id, case.ct_uid, spec(edits(case.ct_uid, blackouts=[rect])), token)
    assert pixels(plain_after.content)[2:30, 2:30].max() <= 24  # black in the default window
