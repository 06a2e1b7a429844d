"""Reconciling from Orthanc's ``/changes`` feed.

Most tests talk over real HTTP (loopback) to ``OrthancChangesStandIn``, a STAND-IN written for
these tests: a tiny HTTP server that answers ``/changes`` and ``/studies/{id}`` the way Orthanc
documents them, with HTTP Basic auth. The last test runs the same code against a REAL Orthanc
(the Debian ``orthanc`` package) when it is installed, to check the stand-in's assumptions.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.engine import Engine

from tests.web.conftest import RecordingStarter
from tftt.errors import TargetRejectedError, TargetUnavailableError
from tftt.store import cases
from tftt.store.db import AuditKind, transact
from tftt.web.reconcile import (
    CHANGES_CURSOR,
    reconcile_from_orthanc_changes,
    reconcile_once,
)

USER, PASSWORD = "pacsuser", "pacspass"


def _orthanc_id(n: int) -> str:
    return "-".join(f"{n:08x}" for _ in range(5))


class OrthancChangesStandIn:
    """STAND-IN for Orthanc's REST ``/changes``, ``/changes?last`` and ``/studies/{id}``."""

    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []
        self.studies: dict[str, str] = {}  # Orthanc id -> StudyInstanceUID
        self.requests: list[str] = []
        self.fail_with: int | None = None
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stand_in.requests.append(self.path)
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._send(401, {"error": "auth"})
                if stand_in.fail_with is not None:
                    return self._send(stand_in.fail_with, {"error": "failing"})
                url = urlsplit(self.path)
                query = parse_qs(url.query, keep_blank_values=True)
                if url.path == "/changes":
                    return self._send(200, stand_in.page(query))
                if url.path.startswith("/studies/"):
                    uid = stand_in.studies.get(url.path.removeprefix("/studies/"))
                    if uid is None:
                        return self._send(404, {"error": "unknown"})
                    return self._send(200, {"MainDicomTags": {"StudyInstanceUID": uid}})
                return self._send(404, {})

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        last_seq = self.changes[-1]["Seq"] if self.changes else 0
        if "last" in query:
            return {"Changes": self.changes[-1:], "Done": True, "Last": last_seq}
        since = int(query.get("since", ["0"])[0])
        limit = int(query.get("limit", ["100"])[0])
        selected = [c for c in self.changes if c["Seq"] > since][:limit]
        done = not selected or selected[-1]["Seq"] == last_seq
        return {
            "Changes": selected,
            "Done": done,
            "Last": selected[-1]["Seq"] if selected else last_seq,
        }

    def add(self, change_type: str, orthanc_id: str, uid: str | None = None) -> None:
        seq = len(self.changes) + 1
        self.changes.append(
            {
                "ChangeType": change_type,
                "ID": orthanc_id,
                "Seq": seq,
                "ResourceType": "Study",
                "Path": f"/studies/{orthanc_id}",
                "Date": "20240101T000000",
            }
        )
        if uid is not None:
            self.studies[orthanc_id] = uid

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def orthanc() -> Iterator[OrthancChangesStandIn]:
    stand_in = OrthancChangesStandIn()
    yield stand_in
    stand_in.close()


@pytest.fixture
def http(orthanc: OrthancChangesStandIn) -> Iterator[httpx.Client]:
    with httpx.Client(auth=(USER, PASSWORD), timeout=5) as client:
        yield client


def test_stable_studies_are_found_across_pages(
    orthanc: OrthancChangesStandIn, http: httpx.Client
) -> None:
    for n in range(1, 8):
        orthanc.add("NewStudy", _orthanc_id(n))
        orthanc.add("StableStudy", _orthanc_id(n), f"1.2.3.{n}")
    orthanc.add("StableStudy", _orthanc_id(3), "1.2.3.3")  # stable again: reported once
    orthanc.add("StableSeries", _orthanc_id(99))
    new_since, uids = reconcile_from_orthanc_changes(http, orthanc.url, 0, limit=4)
    assert uids == [f"1.2.3.{n}" for n in range(1, 8)]
    assert new_since == 16
    assert sum(r.startswith("/changes?") for r in orthanc.requests) == 4  # 16 changes, 4 a page
    again = reconcile_from_orthanc_changes(http, orthanc.url, new_since)
    assert again == (16, [])


def test_since_skips_earlier_changes_and_deleted_or_bad_studies_are_skipped(
    orthanc: OrthancChangesStandIn, http: httpx.Client
) -> None:
    orthanc.add("StableStudy", _orthanc_id(1), "1.2.3.1")
    orthanc.add("StableStudy", _orthanc_id(2))  # deleted since: /studies answers 404
    orthanc.add("StableStudy", _orthanc_id(3), "not-a-uid")
    orthanc.add("StableStudy", "../../system")  # never put into a URL
    orthanc.add("StableStudy", _orthanc_id(5), "1.2.3.5")
    assert reconcile_from_orthanc_changes(http, orthanc.url, 1) == (5, ["1.2.3.5"])
    assert not any("system" in r for r in orthanc.requests)


def test_orthanc_errors_are_typed(orthanc: OrthancChangesStandIn, http: httpx.Client) -> None:
    orthanc.fail_with = 503
    with pytest.raises(TargetUnavailableError):
        reconcile_from_orthanc_changes(http, orthanc.url, 0)
    orthanc.fail_with = None
    with (
        httpx.Client(auth=(USER, "wrong"), timeout=5) as bad,
        pytest.raises(TargetRejectedError, match="401"),
    ):
        reconcile_from_orthanc_changes(bad, orthanc.url, 0)
    with httpx.Client(timeout=1) as client, pytest.raises(TargetUnavailableError):
        reconcile_from_orthanc_changes(client, "http://127.0.0.1:1", 0)


def test_reconcile_once_creates_missing_cases_and_starts_their_runs(
    orthanc: OrthancChangesStandIn, http: httpx.Client, engine: Engine, starter: RecordingStarter
) -> None:
    orthanc.add("StableStudy", _orthanc_id(1), "1.2.3.1")  # before TFTT first looked
    first = reconcile_once(engine, http, orthanc.url, starter)  # starts from the latest change
    assert first.created_case_ids == () and first.new_since == 1
    # a webhook already created a case for study 2 (for one series); study 3 was lost
    existing, _ = transact(
        engine,
        lambda s: cases.create_or_get_case_for_study(s, "1.2.3.2", ["1.2.3.2.1"], "orthanc", None),
    )
    transact(engine, lambda s: cases.set_flow_run(s, existing.id, "run-existing"))
    orthanc.add("StableStudy", _orthanc_id(2), "1.2.3.2")
    orthanc.add("StableStudy", _orthanc_id(3), "1.2.3.3")
    result = reconcile_once(engine, http, orthanc.url, starter)
    assert result.new_since == 3 and len(result.created_case_ids) == 1
    (new_case,) = result.created_case_ids
    assert starter.calls == [new_case] and result.started_runs == (new_case,)
    assert transact(engine, lambda s: cases.get_source_link(s, new_case)).study_uid == "1.2.3.3"
    assert transact(engine, lambda s: cases.get_case(s, new_case)).flow_run_id == f"run-{new_case}"
    audit = transact(engine, lambda s: cases.list_audit(s, new_case))
    assert [a.kind for a in audit] == [AuditKind.RECONCILED, AuditKind.FLOW_RUN_STARTED]
    assert transact(engine, lambda s: cases.get_cursor(s, CHANGES_CURSOR)) == 3
    # nothing new: nothing happens
    assert reconcile_once(engine, http, orthanc.url, starter).created_case_ids == ()
    assert len(starter.calls) == 1


def test_reconcile_once_retries_runs_that_failed_to_start(
    orthanc: OrthancChangesStandIn, http: httpx.Client, engine: Engine, starter: RecordingStarter
) -> None:
    starter.fail = True
    result = reconcile_once(engine, http, orthanc.url, starter, start_from_latest=False)
    assert result.created_case_ids == ()
    orthanc.add("StableStudy", _orthanc_id(7), "1.2.3.7")
    failed = reconcile_once(engine, http, orthanc.url, starter)
    assert failed.failed_case_ids == failed.created_case_ids and len(failed.created_case_ids) == 1
    starter.fail = False
    retried = reconcile_once(engine, http, orthanc.url, starter)
    assert retried.created_case_ids == () and retried.started_runs == failed.created_case_ids


# ---------------------------------------------------------------------------------------------
# The same code against a real Orthanc (Debian package), if installed.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tiny_dicom(study_uid: str, n: int) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = f"{study_uid}.1"
    ds.PatientID = f"SYNTH-{n}"
    ds.Modality = "OT"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(16)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture
def real_orthanc(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("Orthanc")
    if binary is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc)")
    port = _free_port()
    config = {
        "Name": "TFTT_TEST",
        "StorageDirectory": str(tmp_path / "orthanc"),
        "IndexDirectory": str(tmp_path / "orthanc"),
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "DicomServerEnabled": False,
        "StableAge": 1,
        "Plugins": [],
        "HttpCompressionEnabled": False,
        "SaveJobs": False,
    }
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [binary, f"--logdir={tmp_path}", str(tmp_path / "orthanc.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/system", auth=(USER, PASSWORD), timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("Orthanc did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.integration
def test_against_a_real_orthanc(
    real_orthanc: str, engine: Engine, starter: RecordingStarter
) -> None:
    with httpx.Client(auth=(USER, PASSWORD), timeout=10) as http:
        empty = reconcile_from_orthanc_changes(http, real_orthanc, 0)
        assert empty == (0, [])
        first_pass = reconcile_once(engine, http, real_orthanc, starter)  # cursor at latest: 0
        assert first_pass.new_since == 0
        study_uids = ["1.2.826.0.1.3680043.10.777.1", "1.2.826.0.1.3680043.10.777.2"]
        for n, uid in enumerate(study_uids):
            answer = http.post(f"{real_orthanc}/instances", content=_tiny_dicom(uid, n))
            assert answer.status_code == 200
        deadline = time.monotonic() + 20
        found: list[str] = []
        since = 0
        while time.monotonic() < deadline and len(found) < 2:
            since, uids = reconcile_from_orthanc_changes(http, real_orthanc, since, limit=2)
            found += uids
            time.sleep(0.3)
        assert sorted(found) == study_uids and since > 0
        result = reconcile_once(engine, http, real_orthanc, starter)
        assert len(result.created_case_ids) == 2 and len(starter.calls) == 2
        assert reconcile_from_orthanc_changes(http, real_orthanc, result.new_since) == (
            result.new_since,
            [],
        )
