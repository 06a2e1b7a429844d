"""Elements as stored: what a memo may key an element's view by (scan.stored_value)."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ImplicitVRLittleEndian

from tests.deid import verify_support as vs
from tftt.deid.scan import character_set, stored_items, stored_value, view_element


def _read(ds: Dataset, **read: object) -> Dataset:
    return dcmread(BytesIO(vs.to_bytes(ds)), **read)  # type: ignore[arg-type]


def _seen(ds: Dataset, tag: int) -> tuple[object, ...]:
    """What a view tells of a value (not where it was in the file)."""
    view = view_element(ds, tag, character_set(ds, None))
    assert view is not None
    return view.vr, view.keyword, view.value, view.raw, view.error


@pytest.mark.parametrize("syntax", [None, ImplicitVRLittleEndian])
def test_the_same_stored_value_is_viewed_alike_wherever_it_is(syntax: UID | None) -> None:
    original = vs.original()
    shifted = vs.original()
    shifted.PatientComments = "padding that moves every later value " * 3
    if syntax is not None:
        original.file_meta.TransferSyntaxUID = syntax
        shifted.file_meta.TransferSyntaxUID = syntax
    first, second = _read(original), _read(shifted)
    compared = 0
    for tag, item in stored_items(first):
        stored = stored_value(item)
        other = second.get_item(tag, keep_deferred=True)
        if stored is None or other is None or stored_value(other) != stored:
            continue
        assert _seen(first, tag) == _seen(second, tag)
        compared += 1
    assert compared > 30


def test_converted_deferred_and_sequence_elements_have_no_stored_value() -> None:
    ds = _read(vs.original(), defer_size=64)
    items = dict(stored_items(ds))
    assert stored_value(items[0x00100010]) == ("PN", vs.PATIENT_NAME.encode() + b" ")
    assert stored_value(items[0x0040A730]) is None  # a sequence
    assert stored_value(items[0x00204000]) is None  # deferred (ImageComments, > 64 bytes)
    ds.PatientName = "CONVERTED^NOW"
    assert stored_value(ds.get_item(0x00100010)) is None
    implicit = vs.original()
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    read = dict(stored_items(_read(implicit)))
    assert stored_value(read[0x00100010]) == (None, vs.PATIENT_NAME.encode() + b" ")
    assert stored_value(read[0x0040A730]) is None  # a sequence known by the dictionary only
