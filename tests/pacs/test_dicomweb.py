"""DICOMweb adapter against a real Orthanc (source PACS and teaching archive).

What "byte-identical" means here: WADO-RS returns the stored file, so every retrieved file is
compared whole with the uploaded one (preamble, file meta and dataset).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import pickle
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydantic import SecretStr
from pydicom.uid import generate_uid

from tests.orthanc import OrthancServer
from tests.pacs.endpoints import dicomweb_settings
from tests.pacs.rss_probe import STATUS_KIB
from tests.pacs.synthetic import PATIENT_ID, SyntheticStudy, build_study, write_large_instance
from tftt.errors import (
    ConfigurationError,
    TargetRejectedError,
    TargetUnavailableError,
    UnsupportedInputError,
)
from tftt.pacs.base import InstancesRejectedError, Source, Target
from tftt.pacs.dicomweb import DicomwebClient, query_string
from tftt.settings import DicomwebSettings

pytestmark = pytest.mark.integration

SHA_NAME = re.compile(r"^[0-9a-f]{64}\.dcm$")


def _assert_clean_message(err: BaseException, *secrets_: str) -> None:
    text = str(err) + repr(err)
    for secret in secrets_:
        assert secret not in text
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"\d+\.\d+\.\d+\.\d+\.\d+", text), "a UID leaked into the message"


def test_client_is_a_source_and_a_target(pacs: OrthancServer) -> None:
    with DicomwebClient(dicomweb_settings(pacs)) as client:
        assert isinstance(client, Source)
        assert isinstance(client, Target)


def test_query_string_keeps_wildcards_literal() -> None:
    assert query_string([("PatientID", "AB*"), ("PatientName", "DOE^J?")]) == (
        "PatientID=AB*&PatientName=DOE^J?"
    )
    assert query_string([("x", "a b&c")]) == "x=a%20b%26c"


def test_search_studies_with_wildcards(pacs: OrthancServer, study: SyntheticStudy) -> None:
    with DicomwebClient(dicomweb_settings(pacs)) as client:
        prefix = PATIENT_ID[:-2] + "*"
        found = client.search_studies({"PatientID": prefix}, include_fields=["StudyDescription"])
        assert study.study_uid in {s["0020000D"]["Value"][0] for s in found}
        assert client.search_studies({"PatientID": "NO-SUCH-PATIENT*"}) == []
        # The same wildcard, percent-encoded as httpx's params= would send it, matches nothing:
        # this is why the adapter builds query strings itself.
        raw = httpx.get(
            f"{pacs.dicomweb_url}/studies",
            params={"PatientID": prefix},
            auth=pacs.auth,
            headers={"Accept": "application/dicom+json"},
        )
        assert "%2A" in str(raw.request.url)
        assert raw.json() == []


def test_search_series_and_instances(pacs: OrthancServer, study: SyntheticStudy) -> None:
    with DicomwebClient(dicomweb_settings(pacs)) as client:
        series = client.search_series(study.study_uid)
        assert {s["0020000E"]["Value"][0] for s in series} == set(study.series_uids)
        ct_series = client.search_series(study.study_uid, {"Modality": "CT"})
        assert [s["0020000E"]["Value"][0] for s in ct_series] == [study.series_uids[0]]
        instances = client.search_instances(study.study_uid, study.series_uids[1])
        assert {i["00080018"]["Value"][0] for i in instances} == {
            i.sop_instance_uid for i in study.in_series(study.series_uids[1])
        }
        everything = client.search_instances(study.study_uid, limit=2)
        assert len(everything) == 2
        with pytest.raises(UnsupportedInputError):
            client.search_instances(series_uid=study.series_uids[0])


def test_find_study(pacs: OrthancServer, study: SyntheticStudy) -> None:
    with DicomwebClient(dicomweb_settings(pacs)) as client:
        info = client.find_study(study.study_uid)
    assert info.study_uid == study.study_uid
    assert set(info.series_uids) == set(study.series_uids)
    assert info.number_of_instances == len(study.instances)
    assert set(info.modalities) == {"CT", "MR", "OT"}
    counts = {s.series_uid: s.number_of_instances for s in info.series}
    assert counts == {uid: len(study.in_series(uid)) for uid in study.series_uids}


def test_find_missing_study_is_rejected(pacs: OrthancServer) -> None:
    with DicomwebClient(dicomweb_settings(pacs)) as client:
        with pytest.raises(TargetRejectedError) as caught:
            client.find_study("1.2.3.4.5.6.7.8.9")
        assert caught.value.code == "not-found"
        with pytest.raises(UnsupportedInputError):
            client.find_study("1.2.3/../../instances")


def test_retrieve_study_is_byte_identical(
    pacs: OrthancServer, study: SyntheticStudy, tmp_path: Path
) -> None:
    with DicomwebClient(dicomweb_settings(pacs)) as client:
        result = client.retrieve_study(study.study_uid, None, tmp_path)
    assert result.count == len(study.instances)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in result.files)
    assert all(SHA_NAME.match(p.name) for p in result.files)
    uploaded = {p.read_bytes() for p in study.files}
    retrieved = [p.read_bytes() for p in result.files]
    assert set(retrieved) == uploaded
    assert result.total_bytes == sum(len(b) for b in retrieved)
    by_sop = study.by_sop()
    for path in result.files:
        ds = pydicom.dcmread(path)
        original = by_sop[ds.SOPInstanceUID]
        assert ds.file_meta.TransferSyntaxUID == original.transfer_syntax
        assert ds.PixelData == original.pixel_data


def test_retrieve_selected_series(
    pacs: OrthancServer, study: SyntheticStudy, tmp_path: Path
) -> None:
    wanted = [study.series_uids[1], study.series_uids[2]]
    with DicomwebClient(dicomweb_settings(pacs)) as client:
        result = client.retrieve_study(study.study_uid, wanted, tmp_path)
        single = client.retrieve_series(study.study_uid, wanted[0], tmp_path / "one")
    expected = {i.sop_instance_uid for uid in wanted for i in study.in_series(uid)}
    assert {pydicom.dcmread(p).SOPInstanceUID for p in result.files} == expected
    assert single.count == len(study.in_series(wanted[0]))


def test_retrieve_missing_study_is_rejected_and_leaves_nothing(
    pacs: OrthancServer, tmp_path: Path
) -> None:
    with DicomwebClient(dicomweb_settings(pacs)) as client:
        with pytest.raises(TargetRejectedError) as caught:
            client.retrieve_study("1.2.3.4.5.6.7.8.9", None, tmp_path)
    assert caught.value.code == "http-404"
    assert list(tmp_path.iterdir()) == []


def test_retrieve_metadata(pacs: OrthancServer, study: SyntheticStudy) -> None:
    with DicomwebClient(dicomweb_settings(pacs)) as client:
        metadata = client.retrieve_metadata(study.study_uid)
        one_series = client.retrieve_metadata(study.study_uid, study.series_uids[0])
    assert {m["00080018"]["Value"][0] for m in metadata} == set(study.by_sop())
    assert len(one_series) == len(study.in_series(study.series_uids[0]))
    assert all("7FE00010" not in m or "Value" not in m["7FE00010"] for m in metadata)


def test_stow_to_archive_in_batches(
    archive: OrthancServer, tmp_path: Path
) -> None:
    built = build_study(tmp_path / "study", seed=11)
    posts: list[int] = []
    with httpx.Client(
        timeout=30, event_hooks={"request": [lambda r: posts.append(1) if r.method == "POST"
                                             else None]}
    ) as http:
        client = DicomwebClient(dicomweb_settings(archive, stow_batch_size=4), client=http)
        receipts = client.send(built.files)
    assert len(posts) == 2  # 6 files in batches of 4
    assert [r.path for r in receipts] == built.files
    assert all(r.accepted and r.status == "stored" and r.target == "dicomweb" for r in receipts)
    assert [r.sop_instance_uid for r in receipts] == [i.sop_instance_uid for i in built.instances]
    assert archive.study_instance_uids(built.study_uid) == set(built.by_sop())


def test_stow_failed_instances_are_rejected_with_receipts(
    archive: OrthancServer, tmp_path: Path
) -> None:
    built = build_study(tmp_path / "study", seed=12)
    with DicomwebClient(dicomweb_settings(archive)) as client:
        # STOW to a different study's URL: the server must refuse every instance.
        with pytest.raises(InstancesRejectedError) as caught:
            client.store(built.files[:2], study_uid="1.2.3.4.5.6.7.8.9")
    err = caught.value
    assert not err.retryable
    assert [r.accepted for r in err.receipts] == [False, False]
    assert all(r.status.startswith("failed") for r in err.receipts)
    assert "2 of 2" in str(err)
    _assert_clean_message(err)
    assert archive.study_instance_uids(built.study_uid) == set()
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is InstancesRejectedError and copy.receipts == err.receipts


def test_stow_refuses_non_dicom_files(archive: OrthancServer, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    with DicomwebClient(dicomweb_settings(archive)) as client:
        with pytest.raises(UnsupportedInputError):
            client.send([junk])


def test_wrong_password_is_rejected(pacs: OrthancServer, study: SyntheticStudy,
                                    tmp_path: Path) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    with DicomwebClient(dicomweb_settings(pacs, password=SecretStr(wrong))) as client:
        for call in (
            lambda: client.find_study(study.study_uid),
            lambda: client.retrieve_study(study.study_uid, None, tmp_path),
            lambda: client.send(study.files[:1]),
        ):
            with pytest.raises(TargetRejectedError) as caught:
                call()
            err = caught.value
            assert err.code == "http-401" and not err.retryable
            _assert_clean_message(err, wrong, pacs.password)
            copy = pickle.loads(pickle.dumps(err))
            assert type(copy) is TargetRejectedError
            assert (str(copy), copy.code) == (str(err), err.code)


def test_credentials_in_url_are_refused(pacs: OrthancServer) -> None:
    url = pacs.dicomweb_url.replace("http://", f"http://{pacs.username}:{pacs.password}@")
    with pytest.raises(ConfigurationError) as caught:
        DicomwebClient(DicomwebSettings(url=url))
    assert pacs.password not in str(caught.value)
    with pytest.raises(ConfigurationError):
        DicomwebClient(DicomwebSettings(url=""))
    with pytest.raises(ConfigurationError):
        DicomwebClient(DicomwebSettings(url=pacs.dicomweb_url, password=SecretStr("x")))


def test_no_gzip_even_when_the_server_compresses(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    orthanc_servers: list[OrthancServer],
) -> None:
    """Orthanc's default gzips large answers (10-23 MB/s); the client asks for identity."""
    server = OrthancServer(tmp_path_factory.mktemp("orthanc-gzip"), aet="GZIP",
                           extra_config={"HttpCompressionEnabled": True})
    orthanc_servers.append(server)
    built = build_study(tmp_path / "study", seed=14)
    encodings: list[str] = []
    try:
        server.start()
        server.upload(built.files)
        with httpx.Client(timeout=30, event_hooks={"response": [
            lambda r: encodings.append(r.headers.get("content-encoding", "identity"))
        ]}) as http:
            client = DicomwebClient(dicomweb_settings(server), client=http)
            result = client.retrieve_study(built.study_uid, None, tmp_path / "out")
            client.retrieve_metadata(built.study_uid)
        with server.client() as plain:  # httpx's default Accept-Encoding: the server gzips
            response = plain.get(f"/dicom-web/studies/{built.study_uid}/metadata")
            assert response.headers.get("content-encoding") == "gzip"
    finally:
        server.terminate()
    assert encodings == ["identity", "identity"]
    assert {p.read_bytes() for p in result.files} == {p.read_bytes() for p in built.files}


# -- behaviour Orthanc cannot show: a small real HTTP server ------------------------------


class _StubHandler(http.server.BaseHTTPRequestHandler):
    token = ""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)

    def _answer(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(1.5)
        if self.path.startswith("/broken"):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps([]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def stub_url() -> Iterator[tuple[str, str]]:
    token = secrets.token_urlsafe(16)
    handler = type("Handler", (_StubHandler,), {"token": token})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", token
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_bearer_token_is_sent(stub_url: tuple[str, str]) -> None:
    url, token = stub_url
    with DicomwebClient(DicomwebSettings(url=url, bearer_token=SecretStr(token))) as client:
        assert client.search_studies({"PatientID": "X*"}) == []
    wrong = "wrong-" + token
    with DicomwebClient(DicomwebSettings(url=url, bearer_token=SecretStr(wrong))) as client:
        with pytest.raises(TargetRejectedError) as caught:
            client.search_studies()
    _assert_clean_message(caught.value, wrong, token)


def test_timeout_and_5xx_are_unavailable(stub_url: tuple[str, str]) -> None:
    url, token = stub_url
    slow = DicomwebSettings(url=f"{url}/slow", bearer_token=SecretStr(token), timeout_seconds=0.3)
    with DicomwebClient(slow) as client:
        with pytest.raises(TargetUnavailableError) as caught:
            client.search_studies()
    assert caught.value.code == "timeout"
    broken = DicomwebSettings(url=f"{url}/broken", bearer_token=SecretStr(token))
    with DicomwebClient(broken) as client:
        with pytest.raises(TargetUnavailableError) as caught:
            client.search_studies()
    assert caught.value.code == "http-503"
    _assert_clean_message(caught.value, token)


# -- a 1 GiB study in bounded memory --------------------------------------------------------

_RETRIEVE_IN_SUBPROCESS = """
import json, os, sys, time
from pathlib import Path
from pydantic import SecretStr
from tftt.pacs.dicomweb import DicomwebClient
from tftt.settings import DicomwebSettings

""" + STATUS_KIB + """

args = json.loads(sys.argv[1])
settings = DicomwebSettings(url=args["url"], username=args["username"],
                            password=SecretStr(os.environ["TFTT_TEST_PASSWORD"]))
# ru_maxrss would include the forked parent's (pytest's) peak; reset this process's own peak.
Path("/proc/self/clear_refs").write_text("5")
before = status_kib("VmRSS")
start = time.perf_counter()
with DicomwebClient(settings) as client:
    result = client.retrieve_study(args["study_uid"], None, Path(args["dest"]))
seconds = time.perf_counter() - start
after = status_kib("VmHWM")
print(json.dumps({"count": result.count, "bytes": result.total_bytes, "seconds": seconds,
                  "maxrss_before_kib": before, "maxrss_after_kib": after,
                  "files": [str(p) for p in result.files]}))
"""


def _tail_sha256(path: Path, length: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        handle.seek(-length, os.SEEK_END)
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.slow
def test_one_gib_study_is_retrieved_with_bounded_memory(
    pacs: OrthancServer, tmp_path: Path
) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    large = [
        write_large_instance(tmp_path / f"in{i}.dcm", study_uid, series_uid, frames=512, seed=i)
        for i in range(4)
    ]  # 4 x 256 MiB of pixel data
    total_pixels = sum(item.pixel_bytes for item in large)
    assert total_pixels == 1 << 30
    dest = tmp_path / "retrieved"
    try:
        with DicomwebClient(dicomweb_settings(pacs, stow_batch_size=1,
                                              timeout_seconds=120)) as client:
            assert all(r.accepted for r in client.send([item.path for item in large]))
        for item in large:
            item.path.unlink()  # keep the disk footprint down
        completed = subprocess.run(
            [sys.executable, "-c", _RETRIEVE_IN_SUBPROCESS,
             json.dumps({"url": pacs.dicomweb_url, "username": pacs.username,
                         "study_uid": study_uid, "dest": str(dest)})],
            env={**os.environ, "TFTT_TEST_PASSWORD": pacs.password,
                 "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            capture_output=True, text=True, timeout=600, check=True,
        )
        report = json.loads(completed.stdout)
        peak_mib = report["maxrss_after_kib"] / 1024
        growth_mib = (report["maxrss_after_kib"] - report["maxrss_before_kib"]) / 1024
        print(f"1 GiB WADO-RS retrieve: {report['bytes'] / 2**20 / report['seconds']:.0f} MiB/s, "
              f"peak RSS {peak_mib:.0f} MiB (grew {growth_mib:.0f} MiB during the retrieve)")
        assert peak_mib < 300
        assert report["count"] == 4 and report["bytes"] > total_pixels
        by_sop = {item.sop_instance_uid: item for item in large}
        for name in report["files"]:
            path = Path(name)
            sop = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            item = by_sop.pop(sop)
            assert _tail_sha256(path, item.pixel_bytes) == item.pixel_sha256
        assert by_sop == {}
    finally:
        pacs.delete_study(study_uid)
        shutil.rmtree(dest, ignore_errors=True)
