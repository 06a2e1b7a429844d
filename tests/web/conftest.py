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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A REAL Prefect server (``prefect server start``, with its UI) on a free port, with its
    own home and SQLite database, started once per test session. While it lives, this
    process's Prefect settings (also in threads) point at it. Yields the API URL."""
    import os
    import subprocess
    import sys
    import time

    import httpx
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api,
        PREFECT_UI_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        DO_NOT_TRACK="1",
    )
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-services"]
    with (home / "server.log").open("wb") as log_file:
        process = subprocess.Popen(command, cwd=home, env=env, stdout=log_file, stderr=log_file)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prefect server exited early; see {home / 'server.log'}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prefect server did not answer /api/health within 120 s")
            time.sleep(0.5)
        with temporary_settings({PREFECT_API_URL: api}):
            with _temporary_global_settings_context(get_settings_context()):
                yield api
                _drain_prefect_workers()
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _drain_prefect_workers() -> None:
    """Send the buffered run logs and events before the server stops (as Prefect's own test
    harness does), so nothing tries to reach a stopped server at exit."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:
            pass
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


# ----- the review pages' settings and database (a module may override ``rsettings``) ----------


@pytest.fixture
def rsettings(tmp_path: Path) -> Settings:
    from tests.web.synthetic_case import review_settings

    return review_settings(tmp_path / "data")


@pytest.fixture
def rengine(rsettings: Settings) -> Iterator[Engine]:
    engine = db.make_engine(rsettings)
    db.init_db(engine)
    yield engine
    db.dispose_engines()
