import pytest
from pydicom.dataset import Dataset

from tftt.deid.integrity import check_integrity
from tftt.errors import UnsupportedInputError

EXPLICIT = "1.2.840.10008.1.2.1"


def _image(pixels: bytes) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 4, 4, 1, 16
    if pixels is not None:
        ds.PixelData = pixels
    return ds


def test_complete_image_passes():
    check_integrity(_image(b"\x00" * 32), EXPLICIT)


def test_truncated_pixel_data_is_refused():
    with pytest.raises(UnsupportedInputError) as info:
        check_integrity(_image(b"\x00" * 30), EXPLICIT)
    assert info.value.code == "truncated-pixel-data"


def test_image_without_pixels_is_refused_but_a_report_is_fine():
    ds = _image(b"")
    del ds.PixelData
    with pytest.raises(UnsupportedInputError, match="no pixel data"):
        check_integrity(ds, EXPLICIT)
    report = Dataset()
    report.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    check_integrity(report, EXPLICIT)
