"""A case through every step (without Prefect), published to a case folder, a real Orthanc
teaching archive and a MIRC TFS stand-in (tests/publish/tfs_standin.py, labelled as such),
published again after a corrected review (updates in place), then taken down from all three."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from tests.orthanc import OrthancServer, orthanc_available
from tests.publish.tfs_standin import TfsStandIn, User
from tftt.case.finishing import finish_case
from tftt.case.intake import first_pass_case, retrieve_case
from tftt.case.publication import publish_case
from tftt.case.review_prep import load_index, prepare_review
from tftt.case.runtime import runtime
from tftt.cli import app
from tftt.review_decision import ReviewDecision
from tftt.settings import Settings
from tftt.store.cases import create_or_get_case_for_study, get_case, list_audit, list_publications
from tftt.store.db import CaseStatus, PublicationStatus, transact
from tftt.synth.canaries import canary_strings, make_identity
from tftt.synth.studies import ct_series, us_cine
from tftt.synth.transfer import encode

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not orthanc_available(), reason="Orthanc is not installed")]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Iterator[OrthancServer]:
    server = OrthancServer(tmp_path_factory.mktemp("archive"), aet="ARCHIVE", username="arch",
                           password=secrets.token_urlsafe(12))
    yield server.start()
    server.terminate()


@pytest.fixture
def tfs() -> Iterator[TfsStandIn]:
    standin = TfsStandIn(users={"teacher": User("tfs-password-1", frozenset({"author", "publisher"}))}).start()
    yield standin
    standin.stop()
    assert standin.violations == []


@pytest.fixture
def published(tmp_path, monkeypatch, archive, tfs):
    who = make_identity(21)
    source = tmp_path / "source"
    source.mkdir()
    objects = ct_series(who, study=4, series=1, slices=2) + us_cine(who, study=4, series=2, frames=2)
    for number, obj in enumerate(objects):
        (source / f"f{number}").write_bytes(encode(obj.dataset))
    env = {
        "TFTT_DATA_DIR": str(tmp_path / "data"),
        "TFTT_SOURCE__FOLDER": str(source),
        "TFTT_SECRET_KEY": "publication-test-secret-0123456789abcdef",
        "TFTT_PUBLISH__TARGETS": '["folder", "dicomweb", "mirc"]',
        "TFTT_PUBLISH__MIRC__URL": tfs.url,
        "TFTT_PUBLISH__MIRC__USERNAME": "teacher",
        "TFTT_PUBLISH__MIRC__PASSWORD": "tfs-password-1",
        "TFTT_PUBLISH__FOLDER": str(tmp_path / "published"),
        "TFTT_PUBLISH__ARCHIVE__URL": archive.dicomweb_url,
        "TFTT_PUBLISH__ARCHIVE__REST_URL": archive.url,
        "TFTT_PUBLISH__ARCHIVE__USERNAME": archive.username,
        "TFTT_PUBLISH__ARCHIVE__PASSWORD": archive.password,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rt = runtime(Settings())
    study_uid = str(objects[0].dataset.StudyInstanceUID)
    case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(s, study_uid, None, "test", None))
    retrieve_case(rt, case.id)
    first_pass_case(rt, case.id)
    prepare_review(rt, case.id)
    index = load_index(rt.workspace(case.id))
    decision = ReviewDecision(approved=True, reviewer="Dr. R", spec=index.proposed_spec,
                              teaching_metadata={"title": "CT and US"})
    finish_case(rt, case.id, decision)
    publish_case(rt, case.id, actor="Dr. R")
    canaries = sorted({c.encode().lower() for c in canary_strings(who).second_pass() if len(c) >= 4})
    return rt, case.id, canaries


def test_published_everywhere_without_a_canary(published, archive):
    rt, case_id, canaries = published
    publications = transact(rt.engine, lambda s: list_publications(s, case_id))
    assert {(p.target, p.status) for p in publications} == {
        ("folder", PublicationStatus.PUBLISHED), ("dicomweb", PublicationStatus.PUBLISHED),
        ("mirc", PublicationStatus.PUBLISHED)}
    study_uid = next(p.remote_ref for p in publications if p.target == "dicomweb")
    instances = archive.study_instance_uids(study_uid)
    assert len(instances) == 3  # two CT slices and one ultrasound cine
    client = archive.client()
    for instance in client.get(f"{archive.url}/studies/{archive.find_study(study_uid)}/instances").json():
        data = client.get(f"{archive.url}/instances/{instance['ID']}/file").content.lower()
        for needle in canaries:
            assert needle not in data, "canary in the archive"
    folder = rt.settings.publish.folder / case_id
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            assert not any(needle in data for needle in canaries), path.name


def test_corrected_review_updates_every_target_in_place(published, archive, tfs):
    rt, case_id, _ = published
    before = {p.target: p.remote_ref for p in transact(rt.engine, lambda s: list_publications(s, case_id))}
    assert len(tfs.documents) == 1
    index = load_index(rt.workspace(case_id))
    corrected = ReviewDecision(approved=True, reviewer="Dr. R", spec=index.proposed_spec,
                               teaching_metadata={"title": "CT and US, corrected", "diagnosis": "Normal"})
    finish_case(rt, case_id, corrected)
    publish_case(rt, case_id, actor="Dr. R")
    after = {p.target: p.remote_ref for p in transact(rt.engine, lambda s: list_publications(s, case_id))}
    assert after == before  # same MIRC document, same archive study, same folder
    assert len(tfs.documents) == 1
    assert b"corrected" in next(iter(tfs.documents.values())).xml
    assert len(archive.study_instance_uids(after["dicomweb"])) == 3


def test_take_down_from_every_target(published, archive, tfs):
    rt, case_id, _ = published
    study_uid = next(p.remote_ref for p in transact(rt.engine, lambda s: list_publications(s, case_id))
                     if p.target == "dicomweb")
    outcome = CliRunner().invoke(app, ["takedown", case_id, "--reason", "identifier-found", "--actor", "admin"])
    assert outcome.exit_code == 0, outcome.output
    assert "dicomweb" in outcome.output and "folder" in outcome.output and "mirc" in outcome.output
    assert tfs.documents == {}
    assert not (rt.settings.publish.folder / case_id).exists()
    assert archive.study_instance_uids(study_uid) == set()
    case = transact(rt.engine, lambda s: get_case(s, case_id))
    assert case.status == CaseStatus.TAKEN_DOWN
    kinds = [e.kind.value for e in transact(rt.engine, lambda s: list_audit(s, case_id))]
    assert kinds.count("taken_down") == 3
    # a taken-down case is published again only after a new review
    from tftt.store.cases import CaseTransitionError, set_status

    with pytest.raises(CaseTransitionError):
        transact(rt.engine, lambda s: set_status(s, case_id, CaseStatus.PUBLISHED))
    bad = CliRunner().invoke(app, ["takedown", case_id, "--reason", "because I say so"])
    assert bad.exit_code != 0

