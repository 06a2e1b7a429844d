from __future__ import annotations

import io
import struct

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ImplicitVRLittleEndian

from tftt.synth.canaries import make_identity
from tftt.synth.hostile import (
    ABSURD_LENGTH,
    MPEG4_AVC,
    TRAVERSAL_UID,
    hostile_inputs,
)

WHO = make_identity(0)
ITEMS = {h.kind: h for h in hostile_inputs(WHO, huge_size=200_000)}


def _read(kind: str, **kwargs: object) -> pydicom.FileDataset:
    return pydicom.dcmread(io.BytesIO(ITEMS[kind].data), **kwargs)  # type: ignore[arg-type]


def test_every_kind_is_there_once_with_a_defect() -> None:
    assert set(ITEMS) == {
        "not-dicom", "empty", "truncated-header", "truncated-pixels", "no-preamble",
        "uid-path-traversal", "unsupported-transfer-syntax", "absurd-length",
        "empty-pixel-data", "huge-string",
    }  # fmt: skip
    assert all(item.defect for item in ITEMS.values())


def test_deterministic() -> None:
    again = {h.kind: h.data for h in hostile_inputs(WHO, huge_size=200_000)}
    assert again == {k: v.data for k, v in ITEMS.items()}


@pytest.mark.parametrize("kind", ["not-dicom", "empty", "no-preamble"])
def test_not_part10_files_fail_dcmread(kind: str) -> None:
    with pytest.raises(InvalidDicomError):
        _read(kind)


def test_not_dicom_still_names_the_patient() -> None:
    assert ITEMS["empty"].data == b""
    assert WHO.patient_id.encode() in ITEMS["not-dicom"].data


def test_no_preamble_is_a_raw_dataset_that_force_reads() -> None:
    data = ITEMS["no-preamble"].data
    assert data[:2] == b"\x08\x00" and b"DICM" not in data[:200]
    ds = _read("no-preamble", force=True)
    assert ds.PatientID == WHO.patient_id
    with pytest.raises(AttributeError, match="Transfer Syntax"):
        _ = ds.pixel_array  # the reader has to infer the transfer syntax
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert ds.pixel_array.shape == (32, 32)


def test_truncated_files_lose_their_pixels() -> None:
    header = _read("truncated-header")
    assert "PixelData" not in header
    assert len(ITEMS["truncated-header"].data) < 3000
    pixels = _read("truncated-pixels")
    with pytest.raises(ValueError):
        _ = pixels.pixel_array


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_traversal_uid_is_in_dataset_and_meta_and_meta_length_is_right() -> None:
    data = ITEMS["uid-path-traversal"].data
    ds = _read("uid-path-traversal")
    assert ds.SOPInstanceUID == TRAVERSAL_UID
    assert ds.file_meta.MediaStorageSOPInstanceUID == TRAVERSAL_UID
    first_dataset_tag = data.index(b"\x08\x00\x05\x00CS")
    assert ds.file_meta.FileMetaInformationGroupLength == first_dataset_tag - 144
    assert ds.pixel_array.shape == (32, 32)


def test_unsupported_transfer_syntax_cannot_be_decoded() -> None:
    ds = _read("unsupported-transfer-syntax")
    assert ds.file_meta.TransferSyntaxUID == MPEG4_AVC
    with pytest.raises(NotImplementedError):
        _ = ds.pixel_array


def test_absurd_length_runs_past_the_end_of_the_file() -> None:
    data = ITEMS["absurd-length"].data
    at = data.index(struct.pack("<HH", 0x0011, 0x1012) + b"UN\x00\x00") + 8
    (length,) = struct.unpack("<I", data[at : at + 4])
    assert length == ABSURD_LENGTH > len(data)
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception:  # a stricter reader may raise; pydicom reads what is there
        return
    assert "PixelData" not in ds


def test_empty_pixel_data() -> None:
    ds = _read("empty-pixel-data")
    assert ds.Rows == 32 and "PixelData" in ds and not ds.PixelData
    with pytest.raises((ValueError, TypeError)):
        _ = ds.pixel_array


@pytest.mark.filterwarnings("ignore:The value length")
def test_huge_string_is_valid_looking_but_huge() -> None:
    ds = _read("huge-string")
    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    value = ds["StudyDescription"].value
    assert len(value) >= 200_000 - 1
    assert WHO.patient_name in value[:100]
    assert ds.pixel_array.shape == (32, 32)
