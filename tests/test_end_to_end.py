"""End to end: a synthetic study goes into a real Orthanc PACS, its Lua webhook calls
``tftt serve`` (a real subprocess, deployments served on a real Prefect server), the case flow
runs and suspends for review, it is resumed through Prefect's API with a decision, and the case
is published to a real Orthanc teaching archive and a case folder. No canary may be found in the
archive, the JPEGs, the case folder, Prefect's database or the service's log.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from tests.orthanc import OrthancServer, free_port, orthanc_available
from tests.process_group import stop_group
from tftt.settings import Settings
from tftt.store.cases import list_cases
from tftt.store.db import CaseStatus, make_engine, transact
from tftt.synth.canaries import canary_strings, make_identity
from tftt.synth.studies import ct_series, us_cine
from tftt.synth.transfer import encode

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "deploy" / "orthanc" / "tftt-webhook.lua"

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not orthanc_available(), reason="Orthanc is not installed")]


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[tuple[str, Path]]:
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        url = str(prefect.settings.PREFECT_API_DATABASE_CONNECTION_URL.value())
        yield str(prefect.settings.PREFECT_API_URL.value()), Path(url.split(":///", 1)[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory, prefect_server) -> Iterator[dict]:
    api_url, _ = prefect_server
    root = tmp_path_factory.mktemp("e2e")
    secret = secrets.token_urlsafe(24)
    web_port = free_port()
    archive = OrthancServer(root / "archive", aet="ARCHIVE", username="arch", password=secrets.token_urlsafe(12))
    pacs = OrthancServer(root / "pacs", aet="PACS", username="pacs", password=secrets.token_urlsafe(12),
                         lua_scripts=[LUA], extra_config={"StableAge": 1},
                         env={"TFTT_WEBHOOK_URL": f"http://127.0.0.1:{web_port}/hooks/pacs",
                              "TFTT_WEBHOOK_SECRET": secret})
    archive.start()
    pacs.start()
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "TFTT_DATA_DIR": str(root / "data"),
        "TFTT_SECRET_KEY": "end-to-end-secret-key-0123456789abcdef",
        "TFTT_WEB__PORT": str(web_port),
        "TFTT_WEB__WEBHOOK_HMAC_SECRET": secret,
        "TFTT_SOURCE__KIND": "dicomweb",
        "TFTT_SOURCE__DICOMWEB__URL": pacs.dicomweb_url,
        "TFTT_SOURCE__DICOMWEB__USERNAME": pacs.username,
        "TFTT_SOURCE__DICOMWEB__PASSWORD": pacs.password,
        "TFTT_PUBLISH__TARGETS": '["folder", "dicomweb"]',
        "TFTT_PUBLISH__FOLDER": str(root / "published"),
        "TFTT_PUBLISH__ARCHIVE__URL": archive.dicomweb_url,
        "TFTT_PUBLISH__ARCHIVE__REST_URL": archive.url,
        "TFTT_PUBLISH__ARCHIVE__USERNAME": archive.username,
        "TFTT_PUBLISH__ARCHIVE__PASSWORD": archive.password,
    }
    log = root / "serve.log"
    with log.open("wb") as handle:
        service = subprocess.Popen([sys.executable, "-m", "tftt.cli", "serve"], cwd=ROOT, env=env,
                                   stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert service.poll() is None, log.read_text()[-3000:]
            try:
                up = all(httpx.get(f"{api_url}/deployments/name/{name}", timeout=2).status_code == 200
                         for name in ("process-case/process-case", "publish-ready-cases/publish-ready-cases",
                                      "take-down-case/take-down-case"))
                if up and httpx.get(f"http://127.0.0.1:{web_port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("tftt serve did not come up:\n" + log.read_text()[-3000:])
        yield {"pacs": pacs, "archive": archive, "root": root, "log": log,
               "settings": Settings(data_dir=root / "data", publish={"folder": root / "published"})}
    finally:
        stop_group(service)
        pacs.stop()
        archive.stop()


def _wait_case(settings: Settings, statuses: set[CaseStatus], seconds: float, log: Path):
    engine = make_engine(settings)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        cases = transact(engine, lambda s: list_cases(s))
        if cases and cases[0].status in statuses:
            return cases[0]
        time.sleep(1)
    raise AssertionError(f"no case reached {statuses}:\n" + log.read_text()[-4000:])


def _assert_replay_used_the_cache(flow_run_id: UUID) -> None:
    """After the resume the run starts again from the top: every step before the review ran
    once, and its second call came from the cache (state "Cached"), the PACS was not read again."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    for step in ("retrieve", "first-pass", "prepare-review"):
        states = sorted(run.state.name for run in runs if run.name.rsplit("-", 1)[0] == step and run.state)
        assert states == ["Cached", "Completed"], (step, states)
    assert sorted(run.name.rsplit("-", 1)[0] for run in runs if run.state and run.state.name == "Completed") == [
        "check-teaching-text", "finish", "first-pass", "prepare-review", "publish-or-mark-ready", "retrieve"]


def test_orthanc_to_published_through_a_suspended_review(world, prefect_server):
    from prefect.flow_runs import resume_flow_run

    from tftt.demo import example_decision

    _, prefect_db = prefect_server
    who = make_identity(31)
    objects = ct_series(who, study=6, series=1, slices=3, size=128) + us_cine(who, study=6, series=2, frames=4)
    with world["pacs"].client() as client:
        for obj in objects:
            client.post("/instances", content=encode(obj.dataset),
                        headers={"content-type": "application/dicom"}).raise_for_status()
    settings: Settings = world["settings"]
    case = _wait_case(settings, {CaseStatus.AWAITING_REVIEW}, 240, world["log"])
    time.sleep(3)  # the run reaches its suspended state
    resume_flow_run(UUID(case.flow_run_id), run_input=example_decision(settings, case.id))
    case = _wait_case(settings, {CaseStatus.PUBLISHED, CaseStatus.QUARANTINED, CaseStatus.FAILED}, 240,
                      world["log"])
    assert case.status == CaseStatus.PUBLISHED
    _assert_replay_used_the_cache(UUID(case.flow_run_id))

    canaries = sorted({c.encode().lower() for c in canary_strings(who).second_pass() if len(c) >= 4})
    study_uid = str(objects[0].dataset.StudyInstanceUID).encode()
    archive: OrthancServer = world["archive"]
    with archive.client() as client:
        studies = client.get("/studies").json()
        assert len(studies) == 1
        instances = client.get(f"/studies/{studies[0]}/instances").json()
        assert len(instances) == len(objects)
        for instance in instances:
            data = client.get(f"/instances/{instance['ID']}/file").content.lower()
            assert not any(needle in data for needle in canaries), "canary in the archive"
            assert study_uid not in data
    places = [world["root"] / "published", world["log"], *prefect_db.parent.glob(prefect_db.name + "*")]
    for place in places:
        for path in ([place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]):
            data = path.read_bytes().lower()
            assert not any(needle in data for needle in canaries), f"canary in {path.name}"
            assert study_uid not in data, f"source study UID in {path.name}"
