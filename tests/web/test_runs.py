"""``start_case_run`` against a REAL Prefect server (Prefect's own test harness: a temporary
server with its own SQLite database). The real ``process-case`` flow does not exist on this
branch, so a STAND-IN flow named ``process-case`` is registered as deployment
``process-case/process-case``; nothing serves it, so its runs stay Scheduled, which is all that
starting a run needs."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest
from sqlalchemy.engine import Engine

from tests.web.conftest import BEARER_TOKEN, TestClient
from tftt.errors import ConfigurationError, TargetUnavailableError, UnsupportedInputError
from tftt.settings import Settings
from tftt.store import cases
from tftt.store.db import transact
from tftt.web.app import create_app
from tftt.web.runs import PROCESS_CASE_DEPLOYMENT, case_run_idempotency_key, start_case_run

CASE = "c-0a1b2c3d4e5f6071"


def test_malformed_case_ids_are_refused_before_prefect_is_called() -> None:
    for bad in ["", "1.2.840.1", "c-../x", "c-0A1B2C3D4E5F6071"]:
        with pytest.raises(UnsupportedInputError):
            start_case_run(bad)
    assert case_run_idempotency_key(CASE) == f"case-{CASE}"


def test_unreachable_prefect_is_a_retryable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with temporary_settings(
        {PREFECT_API_URL: "http://127.0.0.1:1/api", PREFECT_CLIENT_MAX_RETRIES: 0}
    ):
        with pytest.raises(TargetUnavailableError) as info:
            start_case_run(CASE)
    assert info.value.retryable and info.value.code == "prefect-unavailable"


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def stand_in_deployment(prefect_server: None) -> str:
    from prefect import flow

    @flow(name="process-case")
    def process_case_stand_in(case_id: str) -> None:
        """Test stand-in for the real flow (not on this branch); never executed here."""
        raise RuntimeError("stand-in flow must not run")

    deployment_id = process_case_stand_in.to_deployment(name="process-case").apply()
    return str(deployment_id)


@pytest.mark.integration
def test_missing_deployment_is_a_configuration_error(prefect_server: None) -> None:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_deployment_by_name(PROCESS_CASE_DEPLOYMENT)  # this test runs before it exists
    with pytest.raises(ConfigurationError, match="process-case"):
        start_case_run("c-00000000000000f1")


@pytest.mark.integration
def test_start_case_run_is_idempotent_per_case(stand_in_deployment: str) -> None:
    from prefect import get_client

    first = start_case_run(CASE)
    second = start_case_run(CASE)
    other = start_case_run("c-1111111111111111")
    assert first == second != other
    UUID(first)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(first))
    assert run.parameters == {"case_id": CASE}
    assert str(run.deployment_id) == stand_in_deployment
    assert run.idempotency_key == f"case-{CASE}"
    new_round = start_case_run(CASE, idempotency_key=f"case-{CASE}-round-2")
    assert new_round != first


@pytest.mark.integration
def test_webhook_with_real_prefect_runs(
    stand_in_deployment: str, settings: Settings, engine: Engine
) -> None:
    """The webhook wired to the real ``start_case_run``: one flow run per case in Prefect."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    app = create_app(settings, engine=engine, start_case_run=start_case_run)
    body = b'{"study_uid": "1.2.826.0.1.3680043.10.4242.1", "requester": "orthanc"}'
    headers = {"Authorization": f"Bearer {BEARER_TOKEN}"}
    with TestClient(app) as client:
        first = client.post("/hooks/pacs", content=body, headers=headers)
        again = client.post("/hooks/pacs", content=body, headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["flow_run_id"] == again.json()["flow_run_id"]
    case_id = first.json()["case_id"]
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(
            deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[UUID(stand_in_deployment)])
            )
        )
    mine = [r for r in runs if r.parameters == {"case_id": case_id}]
    assert [str(r.id) for r in mine] == [first.json()["flow_run_id"]]
    # Prefect holds the opaque case id only, never the study UID
    assert all("1.2.826.0.1.3680043.10.4242.1" not in r.model_dump_json() for r in runs)
    assert transact(engine, lambda s: cases.get_case(s, case_id)).flow_run_id == str(mine[0].id)
