"""Fixtures for the web service: a real SQLite database file, webhook secrets, and a recording
``start_case_run`` (it records the case ids it was asked to start and returns a made-up run id;
tests that need real Prefect runs use ``tftt.web.runs.start_case_run`` against a Prefect test
server instead, see test_runs.py)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from tftt.errors import TargetUnavailableError
from tftt.settings import Settings, WebSettings
from tftt.store import db

with warnings.catch_warnings():  # starlette's TestClient warns about its httpx dependency
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

HMAC_SECRET = "hmac-secret-for-tests-0123456789"
BEARER_TOKEN = "bearer-token-for-tests-0123456789"


class RecordingStarter:
    """A stand-in for starting Prefect runs: records calls; can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail = False

    def __call__(self, case_id: str) -> str:
        self.calls.append(case_id)
        if self.fail:
            raise TargetUnavailableError("Prefect is down", code="prefect-unavailable")
        return f"run-{case_id}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        web=WebSettings(
            webhook_hmac_secret=SecretStr(HMAC_SECRET),
            webhook_bearer_token=SecretStr(BEARER_TOKEN),
        ),
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = db.make_engine(settings)
    db.init_db(engine)
    yield engine
    db.dispose_engines()


@pytest.fixture
def starter() -> RecordingStarter:
    return RecordingStarter()


@pytest.fixture
def client(settings: Settings, engine: Engine, starter: RecordingStarter) -> Iterator[TestClient]:
    from tftt.web.app import create_app

    app = create_app(settings, engine=engine, start_case_run=starter)
    with TestClient(app) as test_client:
        yield test_client
