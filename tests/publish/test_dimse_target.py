"""The ``dimse`` publication target against a real Orthanc teaching archive (C-STORE, C-FIND).

The archive refuses unknown SOP classes (``UnknownSopClassAccepted: false``) and drops, with a
C-STORE success status, every instance whose SeriesDescription is ``TFTT-DROP`` (a Lua
``ReceivedInstanceFilter``). It overwrites re-sent instances (``OverwriteInstances: true``, as
:mod:`tests.orthanc` configures every test Orthanc and the deployment example does). Each test
publishes its own synthetic patient, so the tests share one archive without seeing each other.
"""

from __future__ import annotations

import io
import pickle
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.orthanc import OrthancServer, free_port, orthanc_available
from tests.pacs.endpoints import dicomweb_settings, dimse_settings
from tests.publish.ct_cases import CASE, ct_case
from tftt.errors import ConfigurationError, TargetError, TargetRejectedError, TargetUnavailableError
from tftt.publish.base import PublicationReceipt, PublishableCase
from tftt.publish.dimse import DimseArchiveTarget
from tftt.publish.registry import make_target
from tftt.settings import PublishSettings, Settings
from tftt.synth.canaries import canary_strings, make_identity

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not orthanc_available(), reason="Orthanc is not installed")]
DROP = "TFTT-DROP"
UNKNOWN_SOP_CLASS = "1.2.826.0.1.3680043.10.543.99"  # a private, syntactically valid SOP class
_FILTER = f"""
function ReceivedInstanceFilter(dicom, origin, info)
  return dicom.SeriesDescription ~= "{DROP}"
end
"""
_UID = re.compile(r"\d+\.\d+\.\d+\.\d+")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancServer, OrthancServer]]:
    """The DIMSE archive, and another Orthanc (a second archive with its own REST API)."""
    work = tmp_path_factory.mktemp("dimse-archive")
    lua = work / "filter.lua"
    lua.write_text(_FILTER)
    archive = OrthancServer(work / "archive", aet="ARCHIVE", username="arch", password=secrets.token_urlsafe(12),
                            lua_scripts=[lua], extra_config={"UnknownSopClassAccepted": False})
    other = OrthancServer(work / "other", aet="OTHER", username="other", password=secrets.token_urlsafe(12))
    try:
        archive.start()
        other.start()
        yield archive, other
    finally:  # SIGTERM without waiting (Orthanc takes about 3 s to exit), as the dicomweb tests do
        archive.terminate()
        other.terminate()


@pytest.fixture
def archive(servers: tuple[OrthancServer, OrthancServer]) -> OrthancServer:
    return servers[0]


@pytest.fixture
def other(servers: tuple[OrthancServer, OrthancServer]) -> OrthancServer:
    return servers[1]


def _case(folder: Path, seed: int, *, deidentified: bool = True, slices: int = 3) -> PublishableCase:
    return ct_case(folder, seed, deidentified=deidentified, slices=slices, size=32)


def _edit(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


def _sop_uids(case: PublishableCase) -> set[str]:
    return {str(pydicom.dcmread(i.dicom, stop_before_pixels=True).SOPInstanceUID) for i in case.images}


def _target(archive: OrthancServer, rest_of: OrthancServer | None = None) -> DimseArchiveTarget:
    rest = None if rest_of is None else dicomweb_settings(rest_of, rest_url=rest_of.url)
    return DimseArchiveTarget(dimse_settings(archive, timeout_seconds=10.0), rest)


def _stored_files(archive: OrthancServer, study_uid: str) -> list[bytes]:
    """Every instance of the study as Orthanc stored it (one entry per instance it holds)."""
    orthanc_id = archive.find_study(study_uid)
    assert orthanc_id is not None
    with archive.client() as client:
        instances = client.get(f"/studies/{orthanc_id}/instances").json()
        return [client.get(f"/instances/{item['ID']}/file").content for item in instances]


def _clean(err: TargetError, seed: int) -> None:
    """No UID and no planted value in the message, and the error survives pickling."""
    text = str(err) + repr(err)
    assert not _UID.search(text), text
    for canary in canary_strings(make_identity(seed)).second_pass():
        assert canary.lower() not in text.lower()
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err) and copy.code == err.code


def test_publish_stores_every_instance_as_given(archive: OrthancServer, tmp_path: Path) -> None:
    case = _case(tmp_path, 21)
    receipt = _target(archive).publish(case)
    assert receipt.target == "dimse" and receipt.case_id == CASE
    assert receipt.remote_ref.startswith("2.25.")
    assert receipt.details == {"instances": 3}
    assert archive.study_instance_uids(receipt.remote_ref) == _sop_uids(case)
    stored = _stored_files(archive, receipt.remote_ref)
    assert len(stored) == 3
    canaries = canary_strings(make_identity(21)).second_pass()
    for data in stored:
        for canary in canaries:
            assert canary.encode().lower() not in data.lower(), canary
    pixels = {bytes(pydicom.dcmread(i.dicom).PixelData) for i in case.images}
    assert {bytes(pydicom.dcmread(io.BytesIO(d)).PixelData) for d in stored} == pixels


def test_publishing_again_replaces_in_place(archive: OrthancServer, tmp_path: Path) -> None:
    case = _case(tmp_path, 22)
    target = _target(archive)
    first = target.publish(case)
    again = target.publish(case, first)  # the same files again: no duplicates
    assert again == first
    assert len(_stored_files(archive, first.remote_ref)) == 3
    # a corrected case keeps its UIDs: the archive replaces each instance in place
    for image in case.images:
        _edit(image.dicom, SeriesDescription="CORRECTED")
    corrected = target.publish(case, again)
    assert corrected.remote_ref == first.remote_ref
    stored = _stored_files(archive, first.remote_ref)
    assert len(stored) == 3
    assert {pydicom.dcmread(io.BytesIO(d)).SeriesDescription for d in stored} == {"CORRECTED"}


def test_refuses_files_that_are_not_deidentified(archive: OrthancServer, tmp_path: Path) -> None:
    case = _case(tmp_path, 23, deidentified=False)
    raw = case.images[0].dicom.read_bytes()
    assert any(c.encode() in raw for c in canary_strings(make_identity(23)).second_pass())
    with pytest.raises(TargetRejectedError, match="not de-identified") as caught:
        _target(archive).publish(case)
    assert caught.value.code == "not-deidentified"
    _clean(caught.value, 23)
    study_uid = str(pydicom.dcmread(case.images[0].dicom, stop_before_pixels=True).StudyInstanceUID)
    assert archive.find_study(study_uid) is None  # nothing was sent


def test_refuses_a_case_of_two_studies(archive: OrthancServer, tmp_path: Path) -> None:
    case = _case(tmp_path, 24, slices=2)
    _edit(case.images[1].dicom, StudyInstanceUID="2.25.1234567890")
    with pytest.raises(TargetRejectedError, match="exactly one study, not 2"):
        _target(archive).publish(case)


def test_an_instance_the_archive_refuses(archive: OrthancServer, tmp_path: Path) -> None:
    case = _case(tmp_path, 25)
    path = case.images[1].dicom
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UNKNOWN_SOP_CLASS
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(TargetRejectedError,
                       match=r"refused 1 of 3 instances \(no presentation context: 1\)") as caught:
        _target(archive).publish(case)
    assert caught.value.code == "instances-rejected"
    _clean(caught.value, 25)


def test_an_instance_stored_with_success_but_dropped(archive: OrthancServer, tmp_path: Path) -> None:
    case = _case(tmp_path, 26)
    _edit(case.images[2].dicom, SeriesDescription=DROP)
    with pytest.raises(TargetRejectedError, match="does not hold 1 of 3 instances") as caught:
        _target(archive).publish(case)
    assert caught.value.code == "instances-not-held"
    _clean(caught.value, 26)


def test_instances_left_from_an_earlier_version(archive: OrthancServer, tmp_path: Path) -> None:
    case = _case(tmp_path, 27)
    target = _target(archive)
    receipt = target.publish(case)
    fewer = case.model_copy(update={"images": case.images[:2]})  # the review dropped an image
    with pytest.raises(TargetRejectedError, match="holds 1 instances of the case's study") as caught:
        target.publish(fewer, receipt)
    assert caught.value.code == "stale-instances"
    _clean(caught.value, 27)


def test_take_down_through_the_archives_rest_api(archive: OrthancServer, tmp_path: Path) -> None:
    target = _target(archive, rest_of=archive)
    receipt = target.publish(_case(tmp_path, 28))
    target.take_down(CASE, receipt)
    assert archive.find_study(receipt.remote_ref) is None
    target.take_down(CASE, receipt)  # already gone: no error
    # after a take-down, publishing again brings the case back
    assert target.publish(_case(tmp_path / "again", 28)) == receipt
    assert len(_stored_files(archive, receipt.remote_ref)) == 3


def test_take_down_from_a_dimse_only_archive(archive: OrthancServer, tmp_path: Path) -> None:
    target = _target(archive)
    receipt = target.publish(_case(tmp_path, 29))
    with pytest.raises(ConfigurationError, match=r"needs its Orthanc REST API \(publish\.archive\.rest_url\)"):
        target.take_down(CASE, receipt)
    assert len(archive.study_instance_uids(receipt.remote_ref)) == 3  # still there
    archive.delete_study(receipt.remote_ref)  # the archive's operator deletes it by hand
    target.take_down(CASE, receipt)  # now confirmed gone over DIMSE


def test_take_down_through_another_orthancs_rest_api(
    archive: OrthancServer, other: OrthancServer, tmp_path: Path
) -> None:
    case = _case(tmp_path, 30)
    target = _target(archive, rest_of=other)
    receipt = target.publish(case)
    with pytest.raises(ConfigurationError, match="not the DIMSE archive's REST API"):
        target.take_down(CASE, receipt)
    assert len(archive.study_instance_uids(receipt.remote_ref)) == 3
    # the other Orthanc holds the same study (another target's copy): the check after the
    # delete still finds the case in the DIMSE archive
    other.upload([image.dicom for image in case.images])
    with pytest.raises(TargetRejectedError, match="still holds the study") as caught:
        target.take_down(CASE, receipt)
    assert caught.value.code == "delete-unconfirmed"
    assert len(archive.study_instance_uids(receipt.remote_ref)) == 3


def test_take_down_with_an_invalid_receipt(archive: OrthancServer) -> None:
    receipt = PublicationReceipt(target="dimse", case_id=CASE, remote_ref="")
    with pytest.raises(TargetRejectedError, match="no valid study UID"):
        _target(archive, rest_of=archive).take_down(CASE, receipt)


def test_an_unreachable_archive_is_retryable(archive: OrthancServer, tmp_path: Path) -> None:
    closed = dimse_settings(archive, port=free_port(), timeout_seconds=5.0)
    case = _case(tmp_path, 31, slices=1)
    with pytest.raises(TargetUnavailableError) as caught:
        DimseArchiveTarget(closed).publish(case)
    assert caught.value.retryable
    _clean(caught.value, 31)


def test_made_by_name_from_settings(archive: OrthancServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"publish\.dimse is not set"):
        make_target("dimse", Settings(data_dir=tmp_path))
    settings = Settings(data_dir=tmp_path, publish=PublishSettings(
        targets=("dimse",), dimse=dimse_settings(archive),
        archive=dicomweb_settings(archive, rest_url=archive.url)))
    target = make_target("dimse", settings)
    assert isinstance(target, DimseArchiveTarget)
    receipt = target.publish(_case(tmp_path, 32, slices=1))
    target.take_down(CASE, receipt)
    assert archive.find_study(receipt.remote_ref) is None
