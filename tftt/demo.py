"""``tftt demo``: the main job on embedded defaults, end to end, on synthetic data.

1. Starts a local Prefect server (SQLite, ``prefect.toml``) and ``tftt serve`` if they are not
   already running (their logs go to ``<data>/logs/``).
2. Generates a synthetic study (CT series, ultrasound cine with burned-in name and ID, a screen
   capture) into the folder source ``<data>/import/``.
3. Sends the signed PACS webhook, exactly as Orthanc's Lua script would; the service creates the
   case and starts its ``process-case`` run, which suspends for review.
4. By default answers the review itself (the proposed blackouts plus example teaching metadata),
   through Prefect's API; with ``--review`` it prints the Prefect UI and review page addresses
   and waits for a person.
5. Waits for publication and prints where the case folder is and the run's address.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import httpx

from tftt.errors import ConfigurationError
from tftt.pacs.webhook_signature import sign
from tftt.settings import Settings
from tftt.store.cases import get_case
from tftt.store.db import Case, CaseStatus, init_db, make_engine, transact
from tftt.store.keys import with_embedded_web_secrets
from tftt.store.workspace import CaseWorkspace

FINAL = {CaseStatus.PUBLISHED, CaseStatus.READY, CaseStatus.QUARANTINED, CaseStatus.FAILED, CaseStatus.EXPIRED}


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(what: str, check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise ConfigurationError(f"{what} did not come up within {seconds:.0f} s (see the logs in the data folder)")


def _spawn(args: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def prefect_api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigurationError("PREFECT_API_URL is not set (run from the repository, which has prefect.toml)")
    return str(url).rstrip("/")


def ensure_services(settings: Settings, say: Callable[[str], None]) -> str:
    """Start the Prefect server and ``tftt serve`` unless they already answer; the API URL."""
    api = prefect_api_url()
    logs = settings.data_dir / "logs"
    if not _healthy(f"{api}/health"):
        say(f"starting a local Prefect server ({api}) ...")
        _spawn([sys.executable, "-m", "prefect", "server", "start"], logs / "prefect-server.log")
        _wait("the Prefect server", lambda: _healthy(f"{api}/health"), 180)
    web = f"http://{settings.web.host}:{settings.web.port}"
    if not _healthy(f"{web}/health"):
        say("starting tftt serve (deployments, webhook, review page) ...")
        _spawn([sys.executable, "-m", "tftt.cli", "serve"], logs / "tftt-serve.log")
        _wait("tftt serve", lambda: _healthy(f"{web}/health"), 180)

    def deployed() -> bool:
        try:
            return httpx.get(f"{api}/deployments/name/process-case/process-case", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _wait("the process-case deployment", deployed, 120)
    return api


def write_demo_study(settings: Settings, seed: int) -> str:
    """A synthetic study in the folder source; returns its Study Instance UID."""
    from tftt.synth.canaries import make_identity
    from tftt.synth.studies import ct_series, screen_save, us_cine
    from tftt.synth.transfer import encode

    who = make_identity(seed)
    study = 7
    objects = (ct_series(who, study=study, series=1, slices=6, size=128)
               + us_cine(who, study=study, series=2, frames=12)
               + screen_save(who, study=study, series=90))
    folder = (settings.source.folder or settings.data_dir / "import") / f"demo-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    for number, obj in enumerate(objects):
        (folder / f"object-{number:03d}").write_bytes(encode(obj.dataset))
    return str(objects[0].dataset.StudyInstanceUID)


def send_webhook(settings: Settings, study_uid: str) -> dict[str, str]:
    """POST the study to TFTT's webhook, signed with HMAC-SHA256, like the Orthanc Lua script."""
    secret = settings.web.webhook_hmac_secret
    if secret is None:
        raise ConfigurationError("no webhook HMAC secret is configured")
    body = json.dumps({"study_uid": study_uid, "requester": "tftt-demo", "title": "TFTT demo case"}).encode()
    response = httpx.post(f"http://{settings.web.host}:{settings.web.port}/hooks/pacs", content=body, timeout=60,
                          headers={"content-type": "application/json",
                                   "x-tftt-signature": sign(body, secret.get_secret_value().encode())})
    if response.status_code == 401:
        raise ConfigurationError(
            f"the webhook on port {settings.web.port} refused the demo's signature: a `tftt serve` started "
            "with another data directory or webhook secret is running there; stop it and run the demo again")
    if response.status_code not in (200, 202):
        raise ConfigurationError(f"the webhook answered {response.status_code}")
    return dict(response.json())


def example_decision(settings: Settings, case_id: str) -> dict[str, object]:
    """The proposed blackouts as they are, and example teaching metadata."""
    from tftt.case.review_prep import load_index

    index = load_index(CaseWorkspace.for_settings(settings, case_id))
    return {
        "approved": True,
        "reviewer": "TFTT demo (automatic review)",
        "spec": index.proposed_spec.model_dump(mode="json"),
        "teaching_metadata": {
            "title": "Demo: synthetic CT and ultrasound",
            "history": "Synthetic history for the TFTT demonstration.",
            "findings": "Synthetic phantom images; burned-in text was removed automatically.",
            "diagnosis": "None (synthetic data)",
            "keywords": ["demo", "synthetic"],
            "author": "TFTT",
        },
        "publish_now": True,
    }


def _case(settings: Settings, case_id: str) -> Case:
    engine = make_engine(settings)
    return transact(engine, lambda s: get_case(s, case_id))


def _wait_status(settings: Settings, case_id: str, wanted: set[CaseStatus], seconds: float) -> Case:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        case = _case(settings, case_id)
        if case.status in wanted:
            return case
        time.sleep(1)
    raise ConfigurationError(f"case {case_id} did not reach {sorted(s.value for s in wanted)} in {seconds:.0f} s")


def run_demo(settings: Settings, *, review: bool, say: Callable[[str], None]) -> int:
    """The whole main job; returns a process exit code."""
    from prefect.flow_runs import resume_flow_run

    settings = with_embedded_web_secrets(settings)
    init_db(make_engine(settings))
    api = ensure_services(settings, say)
    ui = api.removesuffix("/api")
    seed = int(time.time()) % 100000
    study_uid = write_demo_study(settings, seed)
    say("synthetic study written to the folder source; sending the signed PACS webhook ...")
    accepted = send_webhook(settings, study_uid)
    case_id, run_id = accepted["case_id"], accepted["flow_run_id"]
    say(f"case {case_id}: flow run {ui}/runs/flow-run/{run_id}")
    case = _wait_status(settings, case_id, {CaseStatus.AWAITING_REVIEW, *FINAL}, 600)
    if case.status is CaseStatus.AWAITING_REVIEW:
        if review:
            say(f"waiting for a reviewer: resume the run in the Prefect UI ({ui}/runs/flow-run/{run_id})")
            say(f"or use the review page: http://{settings.web.host}:{settings.web.port}/review/cases/{case_id}")
            case = _wait_status(settings, case_id, FINAL, settings.review.timeout_days * 86400)
        else:
            time.sleep(2)  # let the run reach its suspended state
            say("applying the example review decision (use --review to review yourself) ...")
            resume_flow_run(UUID(run_id), run_input=example_decision(settings, case_id))
            case = _wait_status(settings, case_id, FINAL, 600)
    say(f"case {case_id}: {case.status.value}")
    if case.status is CaseStatus.PUBLISHED:
        folder = (settings.publish.folder or settings.data_dir / "published") / case_id
        say(f"published case folder: {folder.resolve()}  (open index.html)")
    say(f"flow run: {ui}/runs/flow-run/{run_id}")
    return 0 if case.status in {CaseStatus.PUBLISHED, CaseStatus.READY} else 1
