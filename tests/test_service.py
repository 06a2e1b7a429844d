"""``tftt serve --web-only``: the webhook and review page without serving any deployment
(several machines: the flows run on the workers of the ``tftt`` work pool)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.process_group import stop_group

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_web_only_serves_the_webhook_and_registers_no_deployment(tmp_path: Path):
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        api_url = str(prefect.settings.PREFECT_API_URL.value())
        port = _free_port()
        env = {**os.environ, "PREFECT_API_URL": api_url, "TFTT_DATA_DIR": str(tmp_path / "data"),
               "TFTT_SECRET_KEY": "service-test-secret-0123456789abcdef", "TFTT_WEB__PORT": str(port)}
        log = tmp_path / "serve.log"
        with log.open("wb") as handle:
            service = subprocess.Popen([sys.executable, "-m", "tftt.cli", "serve", "--web-only"], cwd=ROOT,
                                       env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert service.poll() is None, log.read_text()[-3000:]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            else:
                raise AssertionError("tftt serve --web-only did not come up:\n" + log.read_text()[-3000:])
            unsigned = httpx.post(f"http://127.0.0.1:{port}/hooks/pacs", json={"study_uid": "1.2.3"}, timeout=5)
            assert unsigned.status_code == 401
            for name in ("process-case/process-case", "publish-ready-cases/publish-ready-cases"):
                assert httpx.get(f"{api_url}/deployments/name/{name}", timeout=5).status_code == 404
            limits = httpx.get(f"{api_url}/v2/concurrency_limits/pacs", timeout=5)
            assert limits.status_code == 200  # the global "pacs" limit exists, as with `tftt serve`
        finally:
            stop_group(service)
