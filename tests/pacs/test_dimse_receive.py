"""The streaming C-STORE receiver against pynetdicom's own behaviour, over a real Orthanc.

These tests pin what :mod:`tftt.pacs.dimse_receive` relies on in pynetdicom's internals: if a
pynetdicom release changes the file meta it writes, how a DIMSE message is assembled, or where
the reactor reads PDUs, one of them fails.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_STORE_RQ

from tests.orthanc import OrthancServer
from tests.pacs.endpoints import TFTT_AET
from tests.pacs.synthetic import SyntheticStudy, build_study, write_large_instance
from tftt.pacs import dimse
from tftt.pacs.dimse_receive import StoreReceiver, close_streams

pytestmark = pytest.mark.integration

LARGE_FRAMES = 8  # 8 x 512 x 512 x 2 bytes = 4 MiB: hundreds of P-DATA PDUs from Orthanc


@pytest.fixture(scope="module")
def mixed_study(tmp_path_factory: pytest.TempPathFactory, pacs: OrthancServer) -> SyntheticStudy:
    """The small synthetic study plus one 4 MiB multi-frame in its own series."""
    folder = tmp_path_factory.mktemp("stream-study")
    built = build_study(folder, seed=31)
    large = write_large_instance(folder / "large.dcm", built.study_uid, generate_uid(),
                                 frames=LARGE_FRAMES, seed=31)
    pacs.upload([*built.files, large.path])
    return built


def _c_get(pacs: OrthancServer, study_uid: str, handlers: list[Any],
           during: Callable[[Association], None] | None = None) -> Association:
    """C-GET a study on an association set up as DimseClient does, with ``handlers`` bound."""
    ae = AE(ae_title=TFTT_AET)
    ae.maximum_pdu_size = 4 * 1024 * 1024
    ae.dimse_timeout = 2  # an aborted C-GET waits this long for a response that never comes
    ae.add_requested_context(dimse.STUDY_ROOT_GET)
    classes = ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4",
               "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.12.1"]
    for sop_class in classes:
        for syntax in dimse.GET_TRANSFER_SYNTAXES:
            ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(pacs.host, pacs.dicom_port, ae_title=pacs.aet,
                         ext_neg=[build_role(c, scp_role=True) for c in classes],
                         evt_handlers=handlers)
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    try:
        if during is not None:
            during(assoc)
        for status, _ in assoc.send_c_get(identifier, dimse.STUDY_ROOT_GET):
            if status and status.Status == 0x0000:
                break
    finally:
        if assoc.is_established:
            assoc.release()
    return assoc


def test_streamed_files_are_pynetdicoms_own_encoding(
    pacs: OrthancServer, mixed_study: SyntheticStudy, tmp_path: Path
) -> None:
    # Reference: pynetdicom's default path, the whole data set in memory.
    reference: dict[str, bytes] = {}

    def keep(event: evt.Event) -> int:
        reference[str(event.request.AffectedSOPInstanceUID)] = event.encoded_dataset()
        return 0x0000

    _c_get(pacs, mixed_study.study_uid, [(evt.EVT_C_STORE, keep)])
    assert len(reference) == len(mixed_study.instances) + 1

    # Streaming: no data set bytes reach pynetdicom's message, the PDUs go the fast way.
    in_memory: list[int] = []

    def record(event: evt.Event) -> None:
        if isinstance(event.message, C_STORE_RQ):
            in_memory.append(len(event.message.data_set.getvalue()))

    receiver = StoreReceiver(tmp_path)
    assoc = _c_get(pacs, mixed_study.study_uid,
                   [*receiver.handlers(), (evt.EVT_DIMSE_RECV, record)])
    result = receiver.result()
    assert in_memory == [0] * len(reference)
    reader = getattr(assoc.dimse, "reader", None)
    assert reader is not None and reader.pdus > LARGE_FRAMES * 512 * 512 * 2 // (16 * 1024)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in result.files)
    written = {p.read_bytes() for p in result.files}
    assert written == set(reference.values())
    assert all(p.name == f"{hashlib.sha256(p.read_bytes()).hexdigest()}.dcm"
               for p in result.files)
    assert result.total_bytes == sum(len(data) for data in reference.values())


def test_an_aborted_transfer_leaves_no_temporary_file(
    pacs: OrthancServer, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    large = write_large_instance(tmp_path / "in.dcm", study_uid, generate_uid(), frames=128)
    pacs.upload([large.path])
    large.path.unlink()
    dest = tmp_path / "out"
    receiver = StoreReceiver(dest)
    seen_partial = threading.Event()

    def abort_mid_transfer(assoc: Association) -> None:
        def watch() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if dest.exists() and any(p.name.startswith(".part-") for p in dest.iterdir()):
                    seen_partial.set()
                    assoc.abort()
                    return
                time.sleep(0.001)
        threading.Thread(target=watch, daemon=True).start()

    assoc = _c_get(pacs, study_uid, receiver.handlers(), during=abort_mid_transfer)
    close_streams(assoc)
    try:
        assert seen_partial.is_set() and assoc.is_aborted
        assert receiver.result().count == 0
        assert list(dest.iterdir()) == []
    finally:
        pacs.delete_study(study_uid)

