"""Integrity checks on a parsed input, before any de-identification.

pydicom reads broken files leniently: a file cut in its header or its pixel data still
"parses", without the elements that were lost. A truncated object may have lost exactly the
fields (PatientName, PatientID) from which identifiers are harvested, so it is quarantined
rather than de-identified. Pure.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.uid import UID

from tftt.errors import UnsupportedInputError

#: Transfer syntaxes whose pixel data is native (its length follows from the pixel module).
NATIVE_SYNTAXES = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"})
#: Pixel Data, Float Pixel Data, Double Float Pixel Data: the first present is the image's.
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


def _value(ds: Dataset, tag: int) -> Any:
    """``ds.get(keyword)`` for the UI, US and IS attributes checked here, without storing the
    conversion in ``ds``: a check only reads, and an element left as read passes on as read.
    These VRs decode no text, so the dataset's character set (which pydicom would work out
    again for every read) is not needed."""
    element = ds.get_item(tag)
    if element is None:
        return None
    if type(element) is RawDataElement:
        element = convert_raw_data_element(element, encoding=default_encoding, ds=ds)
    return element.value


def _int(ds: Dataset, tag: int, default: int) -> int:
    try:
        value = _value(ds, tag)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return -1


def image_bits(rows: int, columns: int, samples: int, frames: int, bits_allocated: int) -> int | None:
    """The bits native pixel data of this pixel module must hold; ``None`` if a value is missing
    (given as -1) or not positive."""
    if min(rows, columns, samples, frames, bits_allocated) <= 0:
        return None
    return rows * columns * samples * frames * bits_allocated


@lru_cache(maxsize=256)
def is_image_sop_class(sop_class_uid: str) -> bool:
    name = UID(sop_class_uid).name
    return "Image" in name and "Storage" in name and "Presentation" not in name


def check_integrity(ds: Dataset, transfer_syntax_uid: str) -> None:
    """Refuse objects that are visibly incomplete.

    Raises:
        UnsupportedInputError: an image object without pixel data, or native pixel data shorter
            than Rows × Columns × Samples × Frames × BitsAllocated says.
    """
    sop_class = str(_value(ds, 0x00080016) or "")
    raw = next((ds.get_item(tag) for tag in PIXEL_TAGS if ds.get_item(tag) is not None), None)
    if raw is None:
        if is_image_sop_class(sop_class):
            raise UnsupportedInputError("image object has no pixel data (truncated file?)",
                                        code="missing-pixel-data")
        return
    value = raw.value
    if not value:
        raise UnsupportedInputError("pixel data is empty", code="missing-pixel-data")
    if transfer_syntax_uid not in NATIVE_SYNTAXES or raw.tag != 0x7FE00010:
        return
    expected_bits = image_bits(_int(ds, 0x00280010, -1), _int(ds, 0x00280011, -1),  # rows, columns
                               _int(ds, 0x00280002, 1), _int(ds, 0x00280008, 1),  # samples, frames
                               _int(ds, 0x00280100, -1))  # bits allocated  # fmt: skip
    if expected_bits is None:
        raise UnsupportedInputError("image pixel module is missing or invalid", code="invalid-pixel-module")
    if len(value) * 8 < expected_bits:
        raise UnsupportedInputError("pixel data is shorter than the image size (truncated file?)",
                                    code="truncated-pixel-data")
