from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_fragmented_frames
from pydicom.uid import (
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from tftt.synth.canaries import make_identity
from tftt.synth.studies import ct_series, dx_image, mr_series, us_cine
from tftt.synth.transfer import (
    as_big_endian,
    as_implicit_vr,
    encode,
    jpeg_with_comment,
    with_j2k_lossless,
    with_jpeg_baseline,
    with_jpegls_lossless,
    with_rle,
)

WHO = make_identity(0)


def _read(data: bytes) -> pydicom.FileDataset:
    return pydicom.dcmread(io.BytesIO(data))


@pytest.mark.parametrize(
    ("convert", "uid"),
    [
        (with_rle, RLELossless),
        (with_jpegls_lossless, JPEGLSLossless),
        (with_j2k_lossless, JPEG2000Lossless),
        (as_implicit_vr, ImplicitVRLittleEndian),
        (as_big_endian, ExplicitVRBigEndian),
    ],
)
def test_lossless_encodings_round_trip_pixels_and_leave_the_input_alone(convert, uid) -> None:
    source = mr_series(WHO, slices=1, size=32)[0].dataset
    before = encode(source)
    expected = source.pixel_array.copy()
    converted = convert(source)
    assert encode(source) == before  # input untouched
    back = _read(encode(converted))
    assert back.file_meta.TransferSyntaxUID == uid
    assert back.SOPInstanceUID == source.SOPInstanceUID
    np.testing.assert_array_equal(back.pixel_array, expected)
    assert back.PatientName == WHO.patient_name


def test_big_endian_swaps_every_ow_value() -> None:
    """PS3.5: OW values are 16-bit words, byte-swapped in big endian (bit-packed overlay and
    curve data included). pydicom's overlay_array ignores the byte order, so compare bytes."""
    source = ct_series(WHO, slices=1, size=32)[0].dataset
    back = _read(encode(as_big_endian(source)))
    assert not back.is_little_endian
    for tag in (0x60003000, 0x50003000):
        swapped = np.frombuffer(back[tag].value, ">u2").astype("<u2").tobytes()
        assert swapped == source[tag].value
    np.testing.assert_array_equal(back.pixel_array, source.pixel_array)


def test_rle_keeps_multiframe_colour() -> None:
    source = us_cine(WHO, frames=2, size=256)[0].dataset
    back = _read(encode(with_rle(source)))
    assert back.NumberOfFrames == 2
    np.testing.assert_array_equal(back.pixel_array, source.pixel_array)


def test_jpeg_baseline_frames_start_with_a_comment_naming_the_patient() -> None:
    source = dx_image(WHO, size=256)[0].dataset
    comment = f"{WHO.patient_name} {WHO.patient_id}"
    converted = with_jpeg_baseline(source, comment=comment)
    data = encode(converted)
    back = _read(data)
    assert back.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert back.LossyImageCompression == "01"
    assert source.LossyImageCompression == "00"
    frame = b"".join(next(generate_fragmented_frames(back.PixelData)))
    assert frame[:4] == b"\xff\xd8\xff\xfe"
    length = int.from_bytes(frame[4:6], "big")
    assert frame[6 : 4 + length].decode() == comment
    decoded = back.pixel_array.astype(int)
    assert decoded.shape == source.pixel_array.shape
    assert np.abs(decoded - source.pixel_array.astype(int)).mean() < 3  # lossy but close


def test_jpeg_baseline_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError, match="8-bit"):
        with_jpeg_baseline(ct_series(WHO, slices=1, size=32)[0].dataset, comment="x")
    with pytest.raises(ValueError, match="2-D uint8"):
        jpeg_with_comment(np.zeros((4, 4, 3), np.uint8), "x", 90)
    with pytest.raises(ValueError, match="too long"):
        jpeg_with_comment(np.zeros((8, 8), np.uint8), "x" * 70000, 90)


def test_native_only_conversions_refuse_compressed_input() -> None:
    compressed = with_rle(mr_series(WHO, slices=1, size=32)[0].dataset)
    with pytest.raises(ValueError):
        as_implicit_vr(compressed)
    with pytest.raises(ValueError):
        as_big_endian(compressed)
    with pytest.raises(ValueError, match="16-bit"):
        as_big_endian(dx_image(WHO, size=256)[0].dataset)


def test_encode_writes_a_part10_file() -> None:
    data = encode(ct_series(WHO, slices=1, size=32)[0].dataset)
    assert data[128:132] == b"DICM"
    assert encode(ct_series(WHO, slices=1, size=32)[0].dataset) == data
