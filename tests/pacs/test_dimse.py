"""DIMSE adapter against a real Orthanc (source PACS and teaching archive).

What "byte-identical" means here: over DIMSE only the dataset travels; the receiver writes the
file meta itself (pynetdicom's implementation UID and version, and the negotiated transfer
syntax). So the tests compare the transfer syntax, the SOP UIDs, the Pixel Data and the whole
encoded dataset after the file meta, which must equal the uploaded file's bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    XRayAngiographicImageStorage,
    generate_uid,
)

from tests.orthanc import OrthancServer
from tests.pacs.endpoints import dimse_settings
from tests.pacs.rss_probe import STATUS_KIB
from tests.pacs.synthetic import (
    PATIENT_ID,
    InstanceSpec,
    SyntheticStudy,
    build_study,
    write_large_instance,
)
from tftt.errors import TargetRejectedError, TargetUnavailableError, UnsupportedInputError
from tftt.pacs import dimse
from tftt.pacs.base import InstancesRejectedError, Source, Target
from tftt.pacs.dimse import DimseClient

pytestmark = pytest.mark.integration

SHA_NAME = re.compile(r"^[0-9a-f]{64}\.dcm$")


def _dataset_bytes(path: Path) -> bytes:
    """The encoded dataset after the preamble and the file meta group.

    The meta group starts at byte 132 with (0002,0000) UL, whose value (bytes 140-144) is
    the length of the rest of the group.
    """
    data = path.read_bytes()
    assert data[128:132] == b"DICM" and data[132:138] == b"\x02\x00\x00\x00UL"
    return data[144 + int.from_bytes(data[140:144], "little") :]


def _assert_same_instances(files: tuple[Path, ...], expected: SyntheticStudy,
                           sop_uids: set[str]) -> None:
    by_sop = expected.by_sop()
    seen = set()
    for path in files:
        assert SHA_NAME.match(path.name)
        ds = pydicom.dcmread(path)
        original = by_sop[ds.SOPInstanceUID]
        seen.add(original.sop_instance_uid)
        assert ds.file_meta.TransferSyntaxUID == original.transfer_syntax
        assert ds.SOPClassUID == original.sop_class_uid
        assert ds.PixelData == original.pixel_data
        assert _dataset_bytes(path) == _dataset_bytes(original.path)
    assert seen == sop_uids


def _assert_clean(err: BaseException, *secrets_: str) -> None:
    text = str(err) + repr(err)
    assert not re.search(r"\d+\.\d+\.\d+\.\d+\.\d+", text)
    for secret in secrets_:
        assert secret not in text
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err) and str(copy) == str(err)


def test_client_is_a_source_and_a_target(pacs: OrthancServer) -> None:
    client = DimseClient(dimse_settings(pacs))
    assert isinstance(client, Source) and isinstance(client, Target)


def test_echo(pacs: OrthancServer) -> None:
    DimseClient(dimse_settings(pacs)).echo()


def test_wrong_called_aet_is_rejected(pacs: OrthancServer) -> None:
    client = DimseClient(dimse_settings(pacs, called_aet="NOT_THE_PACS"))
    with pytest.raises(TargetRejectedError) as caught:
        client.echo()
    assert caught.value.code == "association-rejected" and not caught.value.retryable
    _assert_clean(caught.value)


def test_closed_port_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = DimseClient(
        dimse.DimseSettings(host="127.0.0.1", port=port, called_aet="X", timeout_seconds=2)
    )
    with pytest.raises(TargetUnavailableError) as caught:
        client.echo()
    assert caught.value.retryable
    _assert_clean(caught.value)


def test_silent_peer_times_out_as_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # accepts TCP, never answers the association request
        client = DimseClient(dimse.DimseSettings(
            host="127.0.0.1", port=sock.getsockname()[1], called_aet="X", timeout_seconds=0.5
        ))
        with pytest.raises(TargetUnavailableError):
            client.echo()


def test_find_studies_series_and_instances(pacs: OrthancServer, study: SyntheticStudy) -> None:
    client = DimseClient(dimse_settings(pacs))
    studies = client.find_studies({"PatientID": PATIENT_ID[:-2] + "*"}, ["StudyDescription"])
    assert study.study_uid in {s.StudyInstanceUID for s in studies}
    assert client.find_studies({"PatientID": "NO-SUCH-PATIENT*"}) == []
    series = client.find_series(study.study_uid, return_keys=["Modality"])
    assert {s.SeriesInstanceUID: s.Modality for s in series} == {
        study.series_uids[0]: "CT", study.series_uids[1]: "MR", study.series_uids[2]: "OT"
    }
    mr = client.find_series(study.study_uid, {"Modality": "MR"})
    assert [s.SeriesInstanceUID for s in mr] == [study.series_uids[1]]
    instances = client.find_instances(study.study_uid, study.series_uids[0])
    assert {i.SOPInstanceUID for i in instances} == {
        i.sop_instance_uid for i in study.in_series(study.series_uids[0])
    }
    with pytest.raises(UnsupportedInputError):
        client.find_studies({"NotAKeyword": "x"})


def test_find_study(pacs: OrthancServer, study: SyntheticStudy) -> None:
    info = DimseClient(dimse_settings(pacs)).find_study(study.study_uid)
    assert set(info.series_uids) == set(study.series_uids)
    assert info.number_of_instances == len(study.instances)
    assert set(info.modalities) == {"CT", "MR", "OT"}
    with pytest.raises(TargetRejectedError) as caught:
        DimseClient(dimse_settings(pacs)).find_study("1.2.3.4.5.6.7.8.9")
    assert caught.value.code == "not-found"


def test_c_get_keeps_stored_syntaxes(
    pacs: OrthancServer, study: SyntheticStudy, tmp_path: Path
) -> None:
    result = DimseClient(dimse_settings(pacs)).get_study(study.study_uid, None, tmp_path)
    assert result.count == len(study.instances)
    assert result.total_bytes == sum(p.stat().st_size for p in result.files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in result.files)
    _assert_same_instances(result.files, study, set(study.by_sop()))


def test_a_destination_that_cannot_be_written_raises_oserror(
    pacs: OrthancServer, study: SyntheticStudy, tmp_path: Path
) -> None:
    # Regression: the PACS's answer to the failed sub-operations (status 0xA702 from Orthanc)
    # used to be raised as a permanent TargetRejectedError, hiding the local cause.
    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"")
    client = DimseClient(dimse_settings(pacs))
    with pytest.raises(OSError):
        client.get_study(study.study_uid, None, not_a_folder)
    assert not_a_folder.read_bytes() == b""


def test_c_get_selected_series(
    pacs: OrthancServer, study: SyntheticStudy, tmp_path: Path
) -> None:
    wanted = [study.series_uids[1], study.series_uids[2]]
    client = DimseClient(dimse_settings(pacs))
    result = client.retrieve_study(study.study_uid, wanted, tmp_path)
    expected = {i.sop_instance_uid for uid in wanted for i in study.in_series(uid)}
    _assert_same_instances(result.files, study, expected)
    with pytest.raises(TargetRejectedError) as caught:
        client.get_study(study.study_uid, ["1.2.3.4.5.6.7.8.9"], tmp_path / "none")
    assert caught.value.code == "not-found"


def test_c_get_of_a_study_with_more_sop_classes_than_fit_one_association(
    pacs: OrthancServer, tmp_path: Path
) -> None:
    classes = [CTImageStorage, MRImageStorage, SecondaryCaptureImageStorage,
               XRayAngiographicImageStorage, UltrasoundImageStorage,
               NuclearMedicineImageStorage, PositronEmissionTomographyImageStorage,
               DigitalXRayImageStorageForPresentation]
    assert len(classes) > dimse._CLASSES_PER_GET  # forces the split by SOP class
    series = [[InstanceSpec(c, ExplicitVRLittleEndian, "OT", size=16)] for c in classes]
    series[0].append(InstanceSpec(MRImageStorage, ExplicitVRLittleEndian, "OT", size=16))
    built = build_study(tmp_path / "study", series, seed=21)
    pacs.upload(built.files)
    client = DimseClient(dimse_settings(pacs))
    result = client.get_study(built.study_uid, None, tmp_path / "out")
    _assert_same_instances(result.files, built, set(built.by_sop()))
    subset = client.get_study(built.study_uid, [built.series_uids[0]], tmp_path / "subset")
    _assert_same_instances(
        subset.files, built, {i.sop_instance_uid for i in built.in_series(built.series_uids[0])}
    )


def test_c_move_to_own_scp(
    pacs: OrthancServer, study: SyntheticStudy, tmp_path: Path, tftt_scp_port: int
) -> None:
    client = DimseClient(dimse_settings(pacs, scp_port=tftt_scp_port, retrieve_method="c-move"))
    result = client.retrieve_study(study.study_uid, None, tmp_path)
    assert result.count == len(study.instances)
    _assert_same_instances(result.files, study, set(study.by_sop()))
    # the SCP listened only during the move
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", tftt_scp_port))
    one = client.move_study(study.study_uid, [study.series_uids[0]], tmp_path / "one")
    assert one.count == len(study.in_series(study.series_uids[0]))


def test_c_move_to_unknown_destination_is_rejected(
    pacs: OrthancServer, study: SyntheticStudy, tmp_path: Path
) -> None:
    client = DimseClient(dimse_settings(pacs, calling_aet="UNKNOWN_AE"))
    with pytest.raises(TargetRejectedError) as caught:
        client.move_study(study.study_uid, None, tmp_path)
    assert caught.value.code == "dimse-status"
    _assert_clean(caught.value)


def test_c_move_with_busy_scp_port_is_unavailable(
    pacs: OrthancServer, study: SyntheticStudy, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        client = DimseClient(dimse_settings(pacs, scp_port=sock.getsockname()[1]))
        with pytest.raises(TargetUnavailableError) as caught:
            client.move_study(study.study_uid, None, tmp_path)
    assert caught.value.code == "scp-port-busy"


def test_c_store_to_archive(archive: OrthancServer, tmp_path: Path) -> None:
    built = build_study(tmp_path / "study", seed=22)
    receipts = DimseClient(dimse_settings(archive)).send(built.files)
    assert [r.path for r in receipts] == built.files
    assert all(r.accepted and r.status == "stored" and r.target == "dimse" for r in receipts)
    assert archive.study_instance_uids(built.study_uid) == set(built.by_sop())
    # what the archive holds is what was sent, syntax included
    back = DimseClient(dimse_settings(archive)).get_study(built.study_uid, None, tmp_path / "b")
    _assert_same_instances(back.files, built, set(built.by_sop()))


def test_c_store_refusals_become_receipts(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
    orthanc_servers: list[OrthancServer],
) -> None:
    # An archive that accepts uncompressed syntaxes only: RLE and JPEG 2000 files have no
    # presentation context, and TFTT never transcodes to make them fit.
    server = OrthancServer(
        tmp_path_factory.mktemp("orthanc-uncompressed-only"), aet="PLAIN",
        extra_config={"AcceptedTransferSyntaxes": [ImplicitVRLittleEndian,
                                                   ExplicitVRLittleEndian]},
    )
    orthanc_servers.append(server)
    built = build_study(tmp_path / "study", seed=23)
    try:
        server.start()
        with pytest.raises(InstancesRejectedError) as caught:
            DimseClient(dimse_settings(server)).send(built.files)
    finally:
        server.terminate()
    err = caught.value
    accepted = {r.sop_instance_uid for r in err.receipts if r.accepted}
    plain = {i.sop_instance_uid for i in built.instances
             if i.transfer_syntax in (ImplicitVRLittleEndian, ExplicitVRLittleEndian)}
    assert accepted == plain and len(plain) == 3
    assert {r.status for r in err.receipts if not r.accepted} == {"no presentation context"}
    assert "3 of 6" in str(err)
    _assert_clean(err)


def test_c_store_refuses_non_dicom(archive: OrthancServer, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 300)
    with pytest.raises(UnsupportedInputError):
        DimseClient(dimse_settings(archive)).send([junk])


# -- large instances in bounded memory ------------------------------------------------------

_GET_IN_SUBPROCESS = """
import json, sys
from pathlib import Path
from tftt.pacs.dimse import DimseClient
from tftt.settings import DimseSettings

""" + STATUS_KIB + """

args = json.loads(sys.argv[1])
client = DimseClient(DimseSettings(host=args["host"], port=args["port"], called_aet=args["aet"],
                                   calling_aet="TFTT", timeout_seconds=120))
Path("/proc/self/clear_refs").write_text("5")  # reset this process's peak RSS (VmHWM)
before = status_kib("VmRSS")
result = client.get_study(args["study_uid"], None, Path(args["dest"]))
print(json.dumps({"count": result.count, "before_kib": before, "peak_kib": status_kib("VmHWM"),
                  "files": [str(p) for p in result.files]}))
"""


@pytest.mark.slow
def test_c_get_of_large_instances_streams_in_bounded_memory(
    pacs: OrthancServer, tmp_path: Path
) -> None:
    # pynetdicom alone holds a whole instance in memory, and encoding it for the file copied
    # it twice more: about 3 x 128 MiB here. Streamed, memory must not grow with the size.
    study_uid, series_uid = generate_uid(), generate_uid()
    large = [write_large_instance(tmp_path / f"in{i}.dcm", study_uid, series_uid,
                                  frames=256, seed=40 + i) for i in range(2)]
    dest = tmp_path / "retrieved"
    try:
        pacs.upload([item.path for item in large])
        for item in large:
            item.path.unlink()
        completed = subprocess.run(
            [sys.executable, "-c", _GET_IN_SUBPROCESS,
             json.dumps({"host": pacs.host, "port": pacs.dicom_port, "aet": pacs.aet,
                         "study_uid": study_uid, "dest": str(dest)})],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            capture_output=True, text=True, timeout=300, check=True,
        )
        report = json.loads(completed.stdout)
        growth_mib = (report["peak_kib"] - report["before_kib"]) / 1024
        print(f"C-GET of 2 x 128 MiB: peak RSS {report['peak_kib'] / 1024:.0f} MiB "
              f"(grew {growth_mib:.0f} MiB)")
        assert report["count"] == 2
        assert growth_mib < 64 and report["peak_kib"] / 1024 < 300
        by_sop = {item.sop_instance_uid: item for item in large}
        for name in report["files"]:
            path = Path(name)
            item = by_sop.pop(str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID))
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                handle.seek(-item.pixel_bytes, os.SEEK_END)
                while block := handle.read(8 << 20):
                    digest.update(block)
            assert digest.hexdigest() == item.pixel_sha256
        assert by_sop == {}
    finally:
        pacs.delete_study(study_uid)
        shutil.rmtree(dest, ignore_errors=True)
