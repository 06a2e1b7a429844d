"""The case flow under a real Prefect server (Prefect's test harness), review resumed from
another thread: a valid decision, an invalid then a valid one, a timeout, the quarantine branch.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tftt.case.runtime import runtime
from tftt.pixels.codecs import decode_frames
from tftt.review_index import ReviewIndex
from tftt.settings import Settings
from tftt.store.cases import create_or_get_case_for_study, get_case, list_audit, list_publications
from tftt.store.db import CaseStatus, transact
from tftt.synth.canaries import canary_strings, make_identity
from tftt.synth.studies import us_cine
from tftt.synth.transfer import encode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[Path]:
    """A real Prefect server on a temporary SQLite database; yields the database file."""
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        url = str(prefect.settings.PREFECT_API_DATABASE_CONNECTION_URL.value())
        yield Path(url.split(":///", 1)[1])


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, str, list, list[bytes]]:
    """A synthetic US study (two cines with burned-in name/ID) in a folder source."""
    who = make_identity(11)
    folder = tmp_path_factory.mktemp("source")
    objects = us_cine(who, series=1, frames=3) + us_cine(who, series=2, frames=2)
    for number, obj in enumerate(objects):
        (folder / f"file{number}").write_bytes(encode(obj.dataset))
    canaries = sorted({c.encode() for c in canary_strings(who).second_pass() if len(c) >= 4})
    return folder, str(objects[0].dataset.StudyInstanceUID), objects, canaries


@pytest.fixture
def case_env(tmp_path, monkeypatch, study, prefect_server) -> Iterator[tuple[Settings, str]]:
    folder, study_uid, _, _ = study
    env = {
        "TFTT_DATA_DIR": str(tmp_path / "data"),
        "TFTT_REVIEW__MODE": "pause",
        "TFTT_SOURCE__KIND": "folder",
        "TFTT_SOURCE__FOLDER": str(folder),
        "TFTT_PUBLISH__FOLDER": str(tmp_path / "published"),
        "TFTT_SECRET_KEY": "flow-test-secret-key-0123456789abcdef",
        "TFTT_REVIEW__TIMEOUT_DAYS": str(240 / 86400),  # a broken test fails in minutes, not days
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    rt = runtime(settings)
    case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(s, study_uid, None, "test", "Case"))
    yield settings, case.id


def _resume_when_paused(payloads: list[dict], seen: list[str], stop: threading.Event) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    with get_client(sync_client=True) as client:
        for payload in payloads:
            while not stop.is_set():
                runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
                fresh = [r for r in runs if f"{r.id}:{r.state.state_details.pause_key}" not in seen]
                if fresh:
                    run = fresh[0]
                    seen.append(f"{run.id}:{run.state.state_details.pause_key}")
                    resume_flow_run(run.id, run_input=payload)
                    break
                time.sleep(0.2)


def _index(settings: Settings, case_id: str) -> ReviewIndex:
    path = settings.cases_dir / case_id / "previews" / "index.json"
    return ReviewIndex.model_validate_json(path.read_bytes())


def _decision(index: ReviewIndex, *, rect: dict | None = None, crop: dict | None = None) -> dict:
    first = index.images[0]
    instance = {"sop_instance_uid": first.sop_instance_uid,
                "blackouts": [rect] if rect else [], "annotations": [
                    {"kind": "arrow", "tail_x": 10, "tail_y": 10, "head_x": 60, "head_y": 60}]}
    if crop:
        instance["crop"] = crop
    return {
        "approved": True,
        "reviewer": "Dr. Reviewer",
        "spec": {"instances": [instance], "series": [
            {"series_uid": image.series_uid, "blackouts": [dict(r.model_dump(mode="json")) for r in image.proposed]}
            for image in index.images if image.proposed]},
        "teaching_metadata": {"title": "Synthetic ultrasound", "history": "History text",
                              "findings": "Findings text", "diagnosis": "Diagnosis", "keywords": ["us"],
                              "author": "TFTT test"},
        "publish_now": True,
    }


def _run(case_id: str, payload_builder, settings: Settings) -> tuple[str, list[str]]:
    from flows.process_case import process_case

    seen: list[str] = []
    stop = threading.Event()

    def resumer() -> None:
        # wait for the review index, then answer every pause with the next payload
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (settings.cases_dir / case_id / "previews" / "index.json").exists():
            time.sleep(0.2)
        payloads = payload_builder(_index(settings, case_id))
        _resume_when_paused(payloads, seen, stop)

    thread = threading.Thread(target=resumer, daemon=True)
    thread.start()
    try:
        result = asyncio.run(process_case(case_id))
    finally:
        stop.set()
        thread.join(timeout=10)
    return result, seen


def test_valid_decision_publishes_a_clean_case(case_env, study, caplog):
    settings, case_id = case_env
    _, _, objects, canaries = study
    box = objects[0].boxes[0]

    def payloads(index: ReviewIndex) -> list[dict]:
        rect = {"x": box.x, "y": box.y, "width": box.width, "height": box.height}
        return [_decision(index, rect=rect, crop={"x": 0, "y": 0, "width": 300, "height": 200})]

    result, seen = _run(case_id, payloads, settings)
    assert result == "published"
    assert len(seen) == 1
    rt = runtime(settings)
    case = transact(rt.engine, lambda s: get_case(s, case_id))
    assert case.status == CaseStatus.PUBLISHED
    publications = transact(rt.engine, lambda s: list_publications(s, case_id))
    assert [p.target for p in publications] == ["folder"]
    kinds = [event.kind.value for event in transact(rt.engine, lambda s: list_audit(s, case_id))]
    assert "review_submitted" in kinds and "published" in kinds

    folder = settings.publish.folder / case_id
    dicoms = sorted((folder / "dicom").glob("*.dcm"))
    assert len(dicoms) == 2
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            for needle in canaries:
                assert needle.lower() not in data, (path.name, "canary in the published case")
    cropped = [pydicom.dcmread(p) for p in dicoms if pydicom.dcmread(p, stop_before_pixels=True).Columns == 300]
    assert len(cropped) == 1
    frames = decode_frames(cropped[0]).frames
    region = frames[:, box.y : box.y + box.height, box.x : min(box.x + box.width, 300)]
    assert (region == 0).all(), "the reviewer's rectangle is black in every frame"
    assert "canary" not in caplog.text.lower()

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        key = ArtifactFilterKey(any_=[f"review-{case_id}"])
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=key))
    assert len(artifacts) == 1 and artifacts[0].flow_run_id is not None, "the review artifact, on the case's run"
    assert f"## Case `{case_id}` awaits review" in str(artifacts[0].data)
    assert "| 2 | US | 1 | 2 | 1 |" in str(artifacts[0].data)  # series 2: one cine of 2 frames, flagged


def test_invalid_then_valid_decision_asks_again(case_env):
    settings, case_id = case_env

    def payloads(index: ReviewIndex) -> list[dict]:
        image = index.images[0]
        outside = {"x": image.columns - 5, "y": 0, "width": 50, "height": 10}
        return [_decision(index, rect=outside), _decision(index)]

    result, seen = _run(case_id, payloads, settings)
    assert result == "published"
    assert len(seen) == 2
    assert seen[0].endswith("review-1") and seen[1].endswith("review-2")


def test_review_timeout_expires_the_case(case_env, monkeypatch):
    settings, case_id = case_env
    monkeypatch.setenv("TFTT_REVIEW__TIMEOUT_DAYS", str(3 / 86400))
    result, _seen = _run(case_id, lambda index: [], Settings())
    assert result == "expired"
    rt = runtime(settings)
    assert transact(rt.engine, lambda s: get_case(s, case_id)).status == CaseStatus.EXPIRED
    assert not (settings.publish.folder / case_id).exists()


def test_case_without_any_valid_file_is_quarantined(tmp_path, monkeypatch, prefect_server):
    from flows.process_case import process_case

    source = tmp_path / "source"
    source.mkdir()
    who = make_identity(12)
    obj = us_cine(who, frames=1)[0]
    raw = bytearray(encode(obj.dataset))
    (source / "broken").write_bytes(bytes(raw[: len(raw) - 5000]))  # truncated pixel data
    monkeypatch.setenv("TFTT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TFTT_REVIEW__MODE", "pause")
    monkeypatch.setenv("TFTT_SOURCE__KIND", "folder")
    monkeypatch.setenv("TFTT_SOURCE__FOLDER", str(source))
    monkeypatch.setenv("TFTT_SECRET_KEY", "flow-test-secret-key-0123456789abcdef")
    settings = Settings()
    rt = runtime(settings)
    study_uid = str(obj.dataset.StudyInstanceUID)
    case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(s, study_uid, None, "test", None))
    assert asyncio.run(process_case(case.id)) == "quarantined"
    assert transact(rt.engine, lambda s: get_case(s, case.id)).status == CaseStatus.QUARANTINED
    assert list((settings.cases_dir / case.id / "quarantine").glob("*.json"))


def test_a_new_review_round_republishes_the_corrected_case(case_env):
    """Issue 7: a corrected decision on a published case gives a new second pass and an update."""
    import json

    settings, case_id = case_env

    def first(index: ReviewIndex) -> list[dict]:
        return [_decision(index)]

    def corrected(index: ReviewIndex) -> list[dict]:
        decision = _decision(index)
        decision["teaching_metadata"]["title"] = "Synthetic ultrasound, corrected"
        return [decision]

    assert _run(case_id, first, settings)[0] == "published"
    manifest = settings.publish.folder / case_id / "manifest.json"
    assert "corrected" not in manifest.read_text()
    assert _run(case_id, corrected, settings)[0] == "published"
    assert json.loads(manifest.read_text())["metadata"]["title"] == "Synthetic ultrasound, corrected"
    rt = runtime(settings)
    assert [p.target for p in transact(rt.engine, lambda s: list_publications(s, case_id))] == ["folder"]


def test_take_down_flow_removes_the_case_from_every_target(case_env, monkeypatch, tmp_path):
    """Issue 7: published through the case flow to a folder, a real Orthanc archive and a MIRC
    TFS stand-in (tests/publish/tfs_standin.py, labelled as such), then taken down from all three
    by the take-down flow, each step confirmed."""
    import secrets

    from flows.take_down_case import take_down_flow
    from tests.orthanc import OrthancServer
    from tests.publish.tfs_standin import TfsStandIn, User
    from tftt.case.takedown import TakeDownReason

    settings, case_id = case_env
    tfs = TfsStandIn(users={"teacher": User("tfs-password-2", frozenset({"author", "publisher"}))}).start()
    archive = OrthancServer(tmp_path / "archive", aet="ARCHIVE", username="arch",
                            password=secrets.token_urlsafe(12)).start()
    try:
        for name, value in {
            "TFTT_PUBLISH__TARGETS": '["folder", "dicomweb", "mirc"]',
            "TFTT_PUBLISH__MIRC__URL": tfs.url,
            "TFTT_PUBLISH__MIRC__USERNAME": "teacher",
            "TFTT_PUBLISH__MIRC__PASSWORD": "tfs-password-2",
            "TFTT_PUBLISH__ARCHIVE__URL": archive.dicomweb_url,
            "TFTT_PUBLISH__ARCHIVE__REST_URL": archive.url,
            "TFTT_PUBLISH__ARCHIVE__USERNAME": archive.username,
            "TFTT_PUBLISH__ARCHIVE__PASSWORD": archive.password,
        }.items():
            monkeypatch.setenv(name, value)
        settings = Settings()
        assert _run(case_id, lambda index: [_decision(index)], settings)[0] == "published"
        rt = runtime(settings)
        study_uid = next(p.remote_ref for p in transact(rt.engine, lambda s: list_publications(s, case_id))
                         if p.target == "dicomweb")
        assert len(tfs.documents) == 1 and (settings.publish.folder / case_id).exists()
        assert len(archive.study_instance_uids(study_uid)) == 2
        removed = take_down_flow(case_id, TakeDownReason.IDENTIFIER_FOUND, actor="admin")
        assert sorted(removed) == ["dicomweb", "folder", "mirc"]
        assert tfs.documents == {} and not (settings.publish.folder / case_id).exists()
        assert archive.study_instance_uids(study_uid) == set()
        assert transact(rt.engine, lambda s: get_case(s, case_id)).status == CaseStatus.TAKEN_DOWN
        kinds = [e.kind.value for e in transact(rt.engine, lambda s: list_audit(s, case_id))]
        assert kinds.count("taken_down") == 3
        assert tfs.violations == []
    finally:
        tfs.stop()
        archive.stop()


def test_review_page_decision_drives_the_real_case_flow(case_env, study, monkeypatch):
    """Issue 6: a reviewer logs in to TFTT's review page, submits a blackout over the burned-in
    text and a crop (the JSON the page's drawing tools build; the drawing itself is tested in
    Chromium in tests/web/test_review_browser.py), the server validates it, audits it and resumes
    the REAL suspended case run, and the published DICOM has the rectangle black in every frame,
    the crop applied with its geometry fixed, and no canary anywhere."""
    import json
    import re

    from fastapi.testclient import TestClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    from flows.process_case import process_case
    from tftt.store.cases import set_flow_run
    from tftt.web.app import create_app
    from tftt.web.review_accounts import hash_password

    _, case_id = case_env
    _, _, objects, canaries = study
    box = objects[0].boxes[0]
    monkeypatch.setenv("TFTT_WEB__SESSION_SECRET", "review-e2e-session-secret-0123456789abcdef")
    monkeypatch.setenv("TFTT_WEB__WEBHOOK_HMAC_SECRET", "review-e2e-webhook-secret-0123456789")
    monkeypatch.setenv("TFTT_WEB__REVIEWERS", json.dumps({"dr.review": hash_password("correct horse 42")}))
    settings = Settings()
    rt = runtime(settings)
    outcome: dict[str, object] = {}

    def reviewer() -> None:
        index_path = settings.cases_dir / case_id / "previews" / "index.json"
        with get_client(sync_client=True) as prefect:
            while True:
                runs = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
                if runs and index_path.exists():
                    break
                time.sleep(0.2)
        transact(rt.engine, lambda s: set_flow_run(s, case_id, str(runs[0].id)))
        index = ReviewIndex.model_validate_json(index_path.read_bytes())
        cine = next(i for i in index.images if i.frames == 3)
        app = create_app(settings, engine=rt.engine, start_case_run=lambda c: c)
        with TestClient(app) as client:
            page = client.get("/review/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            client.post("/review/login", data={"username": "dr.review", "password": "correct horse 42",
                                               "csrf_token": token}, follow_redirects=False)
            case_page = client.get(f"/review/cases/{case_id}")
            csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', case_page.text).group(1)
            decision = {
                "approved": True, "reviewer": "Dr. Entered Name",
                "spec": {"instances": [{"sop_instance_uid": cine.sop_instance_uid,
                                        "blackouts": [{"x": box.x, "y": box.y, "width": box.width,
                                                       "height": box.height}],
                                        "crop": {"x": 0, "y": 30, "width": cine.columns,
                                                 "height": cine.rows - 30}}]},
                "teaching_metadata": {"title": "Liver cine", "keywords": ["us"]},
                "publish_now": True,
            }
            answer = client.post(f"/review/cases/{case_id}/decision", content=json.dumps(decision).encode(),
                                 headers={"Content-Type": "application/json", "X-CSRF-Token": csrf})
            outcome["answer"] = (answer.status_code, answer.text)

    thread = threading.Thread(target=reviewer, daemon=True)
    thread.start()
    assert asyncio.run(process_case(case_id)) == "published"
    thread.join(timeout=30)
    assert outcome["answer"][0] == 200, outcome["answer"]
    kinds = [(e.kind.value, e.actor) for e in transact(rt.engine, lambda s: list_audit(s, case_id))]
    assert ("review_submitted", "dr.review") in kinds

    folder = settings.publish.folder / case_id
    cropped = [pydicom.dcmread(p) for p in (folder / "dicom").glob("*.dcm")]
    cine = next(ds for ds in cropped if int(ds.get("NumberOfFrames", 1)) == 3)
    assert (int(cine.Rows), int(cine.Columns)) == (240 - 30, 320)
    region = cine.SequenceOfUltrasoundRegions[0]
    assert int(region.RegionLocationMinY0) == max(0, 240 // 10 - 30)  # shifted by the crop, clipped
    frames = decode_frames(cine).frames
    inside = frames[:, box.y - 30 : box.y - 30 + box.height, box.x : box.x + box.width]
    assert (inside[:, max(0, 30 - box.y):] == 0).all(), "the reviewer's rectangle is black in every frame"
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            assert not any(needle.lower() in data for needle in canaries), path.name


def test_no_canary_in_prefect_database(prefect_server, study):
    """Runs last in this module: parameters, run names, results, logs, artifacts and review
    inputs of every run above are in Prefect's database; none may hold an identifier."""
    _, study_uid, _, canaries = study
    files = [p for p in prefect_server.parent.glob(prefect_server.name + "*") if p.is_file()]
    assert files and files[0].stat().st_size > 0
    for path in files:
        data = path.read_bytes().lower()
        for needle in canaries:
            assert needle.lower() not in data, (path.name, "canary in Prefect's database")
        assert study_uid.encode() not in data, "the source study UID is in Prefect's database"


def test_nightly_batch_publishes_ready_cases_and_deletes_identified_files(case_env, monkeypatch):
    """A case reviewed for the nightly batch is READY; ``publish-ready-cases`` publishes it and,
    with a retention of 0 days, deletes its identified files (originals, first pass, previews)."""
    from flows.publish_ready_cases import publish_ready_cases

    settings, case_id = case_env

    def payloads(index: ReviewIndex) -> list[dict]:
        decision = _decision(index)
        decision["publish_now"] = False
        return [decision]

    result, _seen = _run(case_id, payloads, settings)
    assert result == "ready"
    ws = settings.cases_dir / case_id
    assert list((ws / "incoming").iterdir()) and list((ws / "second_pass").iterdir())

    monkeypatch.setenv("TFTT_WORKSPACE__KEEP_IDENTIFIED_DAYS", "0")
    counts = publish_ready_cases()
    assert counts["published"] == 1 and counts["failed"] == 0 and counts["purged"] == 1

    rt = runtime(Settings())
    assert transact(rt.engine, lambda s: get_case(s, case_id)).status == CaseStatus.PUBLISHED
    assert len(list((settings.publish.folder / case_id / "dicom").glob("*.dcm"))) == 2
    for area in ("incoming", "first_pass", "previews"):
        assert not (ws / area).exists(), area
    assert list((ws / "second_pass").iterdir()), "the verified second pass stays: it can be published again"
    assert publish_ready_cases()["purged"] == 0  # nothing more to do the next night


def test_teaching_text_with_the_patients_name_is_asked_for_again(case_env):
    """The review step refuses a decision whose teaching text names the patient and asks again."""
    settings, case_id = case_env
    who = make_identity(11)  # the study fixture's patient

    def payloads(index: ReviewIndex) -> list[dict]:
        named = _decision(index)
        named["teaching_metadata"] = {**named["teaching_metadata"], "history": f"{who.family_name} was seen"}
        return [named, _decision(index)]

    result, seen = _run(case_id, payloads, settings)
    assert result == "published"
    assert len(seen) == 2 and seen[1].endswith("review-2")
    manifest = (settings.publish.folder / case_id / "manifest.json").read_text()
    assert who.family_name.lower() not in manifest.lower()


def test_a_failed_run_marks_its_case_failed(tmp_path, monkeypatch, prefect_server):
    """The flow's on_failure hook (the flow is async; the hook is not) records FAILED."""
    from flows.process_case import process_case

    source = tmp_path / "source"
    source.mkdir()
    monkeypatch.setenv("TFTT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TFTT_REVIEW__MODE", "pause")
    monkeypatch.setenv("TFTT_SOURCE__KIND", "folder")
    monkeypatch.setenv("TFTT_SOURCE__FOLDER", str(source))
    monkeypatch.setenv("TFTT_SECRET_KEY", "flow-test-secret-key-0123456789abcdef")
    rt = runtime(Settings())
    case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(
        s, "1.2.826.0.1.3680043.10.997.1", None, "test", None))  # not in the folder: refused, not retried
    state = asyncio.run(process_case(case.id, return_state=True))
    assert state.is_failed()
    assert transact(rt.engine, lambda s: get_case(s, case.id)).status == CaseStatus.FAILED
