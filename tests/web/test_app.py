"""The webhook and health endpoints, on a real SQLite file. Runs are started by the recording
``RecordingStarter`` from conftest.py (no Prefect here; see test_runs.py for real runs)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.web.conftest import BEARER_TOKEN, HMAC_SECRET, RecordingStarter, TestClient
from tftt.errors import ConfigurationError
from tftt.pacs.webhook_signature import sign as body_signature
from tftt.settings import Settings, WebSettings
from tftt.store import cases, db
from tftt.store.db import AuditKind, transact
from tftt.web.app import create_app
from tftt.web.auth import SIGNATURE_HEADER

STUDY = "1.2.826.0.1.3680043.10.5555.77"
SERIES = "1.2.826.0.1.3680043.10.5555.77.3"


def _body(**overrides: Any) -> bytes:
    payload: dict[str, Any] = {"study_uid": STUDY, "requester": "dr. hook", "title": "Case"}
    payload.update(overrides)
    return json.dumps(payload).encode()


def _signed(body: bytes) -> dict[str, str]:
    return {
        SIGNATURE_HEADER: body_signature(body, HMAC_SECRET.encode()),
        "Content-Type": "application/json",
    }


def _bearer(token: str = BEARER_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _nothing_stored(engine: Engine) -> bool:
    return transact(engine, lambda s: cases.list_cases(s)) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: "sha256=" + "0" * 64},
        {SIGNATURE_HEADER: body_signature(b"another body", HMAC_SECRET.encode())},
        {SIGNATURE_HEADER: body_signature(_body(), b"wrong-secret-wrong-secret")},
        {SIGNATURE_HEADER: "garbage"},
        {"Authorization": "Bearer wrong-token-wrong-token-wrong"},
        {"Authorization": f"Basic {BEARER_TOKEN}"},
        {"Authorization": BEARER_TOKEN},
        {"Authorization": f"Bearer {BEARER_TOKEN}x"},
        {"Authorization": "Bearer ünïcode".encode("latin-1")},
        {SIGNATURE_HEADER: "sha256=ü".encode("latin-1")},
    ],
)
def test_missing_or_bad_credentials_get_401_and_nothing_is_done(
    client: TestClient, engine: Engine, starter: RecordingStarter, headers: dict[str, Any]
) -> None:
    response = client.post("/hooks/pacs", content=_body(), headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "unauthorized"}
    assert _nothing_stored(engine) and starter.calls == []


def test_invalid_payload_is_not_even_parsed_without_credentials(
    client: TestClient, engine: Engine
) -> None:
    response = client.post("/hooks/pacs", content=b"{not json")
    assert response.status_code == 401


def test_valid_hmac_creates_a_case_and_starts_one_run(
    client: TestClient, engine: Engine, starter: RecordingStarter
) -> None:
    body = _body(series=[SERIES], calling_aet="ORTHANC")
    response = client.post("/hooks/pacs", content=body, headers=_signed(body))
    assert response.status_code == 202
    answer = response.json()
    case_id = answer["case_id"]
    assert answer == {
        "case_id": case_id,
        "flow_run_id": f"run-{case_id}",
        "created": True,
        "status": "received",
    }
    assert starter.calls == [case_id]
    case = transact(engine, lambda s: cases.get_case(s, case_id))
    link = transact(engine, lambda s: cases.get_source_link(s, case_id))
    assert case.flow_run_id == f"run-{case_id}" and case.title == "Case"
    assert (link.study_uid, link.series_uids, link.calling_aet, link.requester) == (
        STUDY,
        [SERIES],
        "ORTHANC",
        "dr. hook",
    )
    audit = transact(engine, lambda s: cases.list_audit(s, case_id))
    assert [(a.kind, a.actor) for a in audit] == [
        (AuditKind.WEBHOOK_RECEIVED, "dr. hook"),
        (AuditKind.FLOW_RUN_STARTED, None),
    ]
    assert audit[0].details == {"created": True, "series_count": 1, "auth": "hmac"}


def test_valid_bearer_token_creates_a_case(
    client: TestClient, engine: Engine, starter: RecordingStarter
) -> None:
    response = client.post("/hooks/pacs", content=_body(), headers=_bearer())
    assert response.status_code == 202
    assert len(starter.calls) == 1
    audit = transact(engine, lambda s: cases.list_audit(s, response.json()["case_id"]))
    assert audit[0].details["auth"] == "bearer"


def test_duplicate_webhook_returns_the_same_case_without_a_new_run(
    client: TestClient, engine: Engine, starter: RecordingStarter
) -> None:
    body = _body(series=[SERIES, SERIES])
    first = client.post("/hooks/pacs", content=body, headers=_signed(body))
    # same study and series, other order/duplicates, other auth method, other title
    second = client.post(
        "/hooks/pacs", content=_body(series=[SERIES], title="Again"), headers=_bearer()
    )
    assert first.status_code == 202 and second.status_code == 200
    assert second.json() == {**first.json(), "created": False}
    assert len(starter.calls) == 1
    case_id = first.json()["case_id"]
    kinds = [a.kind for a in transact(engine, lambda s: cases.list_audit(s, case_id))]
    assert kinds.count(AuditKind.WEBHOOK_RECEIVED) == 2
    # another series selection of the same study is another case
    third = client.post("/hooks/pacs", content=_body(), headers=_bearer())
    assert third.status_code == 202 and third.json()["case_id"] != case_id
    assert len(starter.calls) == 2


@pytest.mark.parametrize(
    "payload",
    [
        {"study_uid": "1.2.abc", "requester": "x"},
        {"study_uid": "1." + "9" * 70, "requester": "x"},
        {"study_uid": STUDY},
        {"study_uid": STUDY, "requester": ""},
        {"study_uid": STUDY, "requester": "x", "series": ["bad uid"]},
        {"study_uid": STUDY, "requester": "x", "title": "t" * 201},
        {"study_uid": STUDY, "requester": "x", "title": "two\nlines"},
        {"study_uid": STUDY, "requester": "x", "calling_aet": "A" * 17},
        {"study_uid": STUDY, "requester": "x", "PatientID": "PAT-CANARY-1"},
        {"study_uid": STUDY, "requester": "x", STUDY: "as a key"},
        [STUDY],
    ],
)
def test_invalid_payload_gets_422_without_echo_and_nothing_is_stored(
    client: TestClient, engine: Engine, starter: RecordingStarter, payload: Any
) -> None:
    body = json.dumps(payload).encode()
    response = client.post("/hooks/pacs", content=body, headers=_signed(body))
    assert response.status_code == 422
    assert response.json()["detail"] == "invalid payload"
    for secret in (STUDY, "PAT-CANARY-1", "1.2.abc", "bad uid", "two\nlines"):
        assert secret not in response.text
    assert _nothing_stored(engine) and starter.calls == []


def test_requester_holding_the_study_uid_is_refused(client: TestClient, engine: Engine) -> None:
    body = _body(requester=f"dr. x for {STUDY}")
    response = client.post("/hooks/pacs", content=body, headers=_signed(body))
    assert response.status_code == 422 and STUDY not in response.text
    assert response.json()["errors"][0]["type"] == "phi-in-record"
    assert _nothing_stored(engine)


def test_malformed_json_gets_422(client: TestClient) -> None:
    body = b'{"study_uid": "1.2.3", '
    response = client.post("/hooks/pacs", content=body, headers=_signed(body))
    assert response.status_code == 422


def test_oversized_body_gets_413(client: TestClient, engine: Engine) -> None:
    body = _body(title="x" * 70_000)
    response = client.post("/hooks/pacs", content=body, headers=_signed(body))
    assert response.status_code == 413 and _nothing_stored(engine)


def test_study_uid_never_appears_in_responses_or_logs(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = []
    body = _body(series=[SERIES])
    for _ in range(2):
        texts.append(client.post("/hooks/pacs", content=body, headers=_signed(body)).text)
    texts.append(client.post("/hooks/pacs", content=body).text)  # 401
    bad = _body(series=[SERIES], requester="")
    texts.append(client.post("/hooks/pacs", content=bad, headers=_signed(bad)).text)  # 422
    texts.append(client.get("/health").text)
    assert any("case_id" in t for t in texts)
    assert caplog.records, "the service should log what it does"
    for blob in [*texts, caplog.text]:
        assert STUDY not in blob and SERIES not in blob


def test_run_start_failure_answers_503_and_a_resend_starts_it(
    client: TestClient, engine: Engine, starter: RecordingStarter
) -> None:
    starter.fail = True
    body = _body()
    failed = client.post("/hooks/pacs", content=body, headers=_signed(body))
    assert failed.status_code == 503
    case_id = failed.json()["case_id"]
    assert failed.json()["error"] == "prefect-unavailable"
    assert transact(engine, lambda s: cases.get_case(s, case_id)).flow_run_id is None
    assert [c.id for c in transact(engine, cases.cases_without_run)] == [case_id]
    starter.fail = False
    again = client.post("/hooks/pacs", content=body, headers=_signed(body))
    assert again.status_code == 202
    assert again.json() == {
        "case_id": case_id,
        "flow_run_id": f"run-{case_id}",
        "created": False,
        "status": "received",
    }


def test_health_reports_the_database(
    client: TestClient, settings: Settings, tmp_path: Path, starter: RecordingStarter
) -> None:
    assert client.get("/health").json() == {"status": "ok", "database": "ok"}
    (tmp_path / "broken" / "tftt.db").mkdir(parents=True)  # a folder where the file should be
    broken = settings.model_copy(update={"data_dir": tmp_path / "broken"})
    broken_engine = db.make_engine(broken)
    app = create_app(settings, engine=broken_engine, start_case_run=starter)
    with TestClient(app) as other:
        response = other.get("/health")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"


def test_app_refuses_to_start_without_webhook_credentials(
    tmp_path: Path, engine: Engine, starter: RecordingStarter
) -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK"):
        create_app(Settings(data_dir=tmp_path), engine=engine, start_case_run=starter)
    weak = Settings(data_dir=tmp_path, web=WebSettings(webhook_bearer_token="short"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at least"):
        create_app(weak, engine=engine, start_case_run=starter)


def test_only_the_configured_method_is_accepted(
    tmp_path: Path, engine: Engine, starter: RecordingStarter
) -> None:
    hmac_only = Settings(data_dir=tmp_path, web=WebSettings(webhook_hmac_secret=HMAC_SECRET))  # type: ignore[arg-type]
    with TestClient(create_app(hmac_only, engine=engine, start_case_run=starter)) as only:
        assert only.post("/hooks/pacs", content=_body(), headers=_bearer()).status_code == 401
        body = _body()
        assert only.post("/hooks/pacs", content=body, headers=_signed(body)).status_code == 202
