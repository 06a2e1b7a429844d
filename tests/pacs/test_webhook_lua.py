"""The Orthanc Lua webhook (deploy/orthanc/tftt-webhook.lua) in a real Orthanc.

The Orthanc runs the shipped example configuration (ports, storage and users replaced), the
script, and a small ``http.server`` receiver on loopback. ``/tools/execute-script`` (enabled
for this test only) lets the test call the script's SHA-256/HMAC directly and compare with
Python's ``hmac`` on many key and message lengths, including the padding boundaries.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import queue
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.orthanc import OrthancServer
from tests.pacs.endpoints import dicomweb_settings, dimse_settings
from tests.pacs.synthetic import build_study
from tftt.pacs.dicomweb import DicomwebClient
from tftt.pacs.dimse import DimseClient
from tftt.pacs.webhook_signature import HEADER, verify

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "orthanc"
LUA = DEPLOY / "tftt-webhook.lua"
EXAMPLE = DEPLOY / "orthanc.json.example"
# Keys of the example that are site-specific; the test server supplies its own.
LOCAL_KEYS = {"Name", "DicomAet", "StorageDirectory", "IndexDirectory", "HttpPort", "DicomPort",
              "RegisteredUsers", "LuaScripts", "StableAge", "RemoteAccessAllowed"}


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: queue.Queue[tuple[dict[str, str], bytes]]

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.put(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, queue.Queue[tuple[dict[str, str], bytes]]]]:
    received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
    handler = type("Handler", (_Receiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/pacs", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def secret() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def hooked_orthanc(
    tmp_path_factory: pytest.TempPathFactory,
    receiver: tuple[str, queue.Queue[tuple[dict[str, str], bytes]]],
    secret: str,
    orthanc_servers: list[OrthancServer],
) -> Iterator[OrthancServer]:
    example: dict[str, Any] = json.loads(EXAMPLE.read_text())
    assert example["LuaScripts"] == ["/etc/orthanc/tftt-webhook.lua"]
    assert example["HttpCompressionEnabled"] is False
    extra = {k: v for k, v in example.items() if k not in LOCAL_KEYS}
    extra.update({"StableAge": 1, "ExecuteLuaEnabled": True})
    server = OrthancServer(
        tmp_path_factory.mktemp("orthanc-lua"),
        aet="HOOKED",
        lua_scripts=[LUA],
        env={"TFTT_WEBHOOK_URL": receiver[0], "TFTT_WEBHOOK_SECRET": secret},
        extra_config=extra,
    )
    orthanc_servers.append(server)
    yield server.start()
    server.terminate()


def _run_lua(server: OrthancServer, script: str) -> str:
    with server.client() as client:
        response = client.post("/tools/execute-script", content=script)
        response.raise_for_status()
        return response.text


def test_script_loads_and_passes_its_self_test(hooked_orthanc: OrthancServer) -> None:
    assert _run_lua(hooked_orthanc, "print(tostring(TfttWebhook.ready))").strip() == "true"
    assert "tftt-webhook: ready" in hooked_orthanc.log_text()


def test_lua_hmac_matches_python(hooked_orthanc: OrthancServer) -> None:
    cases = []
    for key_length in (0, 1, 20, 63, 64, 65, 131):
        for message_length in (0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 200, 1000):
            cases.append((os.urandom(key_length), os.urandom(message_length)))
    script = "\n".join(
        f'print(TfttWebhook.hmac_sha256_hex(TfttWebhook.unhex("{k.hex()}"), '
        f'TfttWebhook.unhex("{m.hex()}")))'
        for k, m in cases
    )
    lines = _run_lua(hooked_orthanc, script).split()
    assert lines == [hmac.new(k, m, hashlib.sha256).hexdigest() for k, m in cases]


def test_lua_json_body_escapes_and_parses(hooked_orthanc: OrthancServer) -> None:
    script = 'print(TfttWebhook.body("1.2.3", {"4.5", "6.7"}, "AE \\"x\\"\\\\\\n"))\n' \
             'print(TfttWebhook.body("1.2.3", {}, nil))'
    first, second = _run_lua(hooked_orthanc, script).strip().split("\n")
    assert json.loads(first) == {"study_uid": "1.2.3", "series": ["4.5", "6.7"],
                                 "calling_aet": 'AE "x"\\\n', "requester": "orthanc"}
    assert json.loads(second) == {"study_uid": "1.2.3", "series": [], "calling_aet": None,
                                  "requester": "orthanc"}


def test_lua_body_is_accepted_by_the_receivers_payload_model(hooked_orthanc: OrthancServer) -> None:
    """Regression: the script's body must validate against TFTT's webhook payload model."""
    from tftt.web.app import PacsWebhook

    script = 'print(TfttWebhook.body("1.2.3", {"4.5"}, "MODALITY1"))'
    body = _run_lua(hooked_orthanc, script).strip()
    assert PacsWebhook.model_validate_json(body).requester == "orthanc"


def _next_call(received: queue.Queue[tuple[dict[str, str], bytes]]) -> tuple[dict[str, str],
                                                                              bytes]:
    try:
        return received.get(timeout=30)
    except queue.Empty:
        raise AssertionError("the webhook was not called within 30 s") from None


def test_stable_study_is_announced_with_a_valid_signature(
    hooked_orthanc: OrthancServer,
    receiver: tuple[str, queue.Queue[tuple[dict[str, str], bytes]]],
    secret: str,
    tmp_path: Path,
) -> None:
    received = receiver[1]
    over_dimse = build_study(tmp_path / "dimse", seed=51)
    over_http = build_study(tmp_path / "http", seed=52)
    DimseClient(dimse_settings(hooked_orthanc, calling_aet="MODALITY1")).send(over_dimse.files)
    with DicomwebClient(dicomweb_settings(hooked_orthanc)) as client:
        client.send(over_http.files)

    calls = {}
    for _ in range(2):
        headers, body = _next_call(received)
        assert headers["content-type"] == "application/json"
        signature = headers[HEADER.lower()]
        assert verify(body, signature, secret.encode())
        assert signature == "sha256=" + hmac.new(secret.encode(), body,
                                                 hashlib.sha256).hexdigest()
        assert not verify(body, signature, b"not the secret")
        payload = json.loads(body)
        calls[payload["study_uid"]] = payload

    assert calls[over_dimse.study_uid] == {
        "study_uid": over_dimse.study_uid,
        "series": sorted(over_dimse.series_uids),
        "calling_aet": "MODALITY1",
        "requester": "orthanc",
    }
    assert calls[over_http.study_uid] == {
        "study_uid": over_http.study_uid,
        "series": sorted(over_http.series_uids),
        "calling_aet": None,
        "requester": "orthanc",
    }
    log = hooked_orthanc.log_text()
    assert over_dimse.study_uid not in log and over_http.study_uid not in log
