"""Items built from the template are the items pydicom builds, and the template is pydicom's.

If pydicom's ``Dataset.__init__`` ever sets other attributes (or other values), the first test
fails: update :mod:`tftt.deid.item_template` (and the expected list here) deliberately.
"""

from __future__ import annotations

from pydicom.charset import default_encoding
from pydicom.dataset import Dataset

from tests.deid.graph_support import assert_same_graph
from tftt.deid import item_template
from tftt.deid.item_template import TEMPLATE, new_dataset, new_item

#: ``vars(Dataset())`` in pydicom 3.0.2, in the order ``__init__`` sets them.
EXPECTED = {
    "_parent_encoding": "iso8859",
    "_dict": {},
    "is_decompressed": False,
    "_read_little": None,
    "_read_implicit": None,
    "_read_charset": "",
    "_is_little_endian": None,
    "_is_implicit_VR": None,
    "is_undefined_length_sequence_item": False,
    "_private_blocks": {},
    "_pixel_array": None,
    "_pixel_array_opts": {"use_pdh": False},
    "_pixel_id": {},
}


def test_the_template_is_what_pydicom_dataset_init_sets() -> None:
    fresh = vars(Dataset())
    assert list(fresh.items()) == list(EXPECTED.items())
    assert all(type(fresh[name]) is type(value) for name, value in EXPECTED.items())
    assert TEMPLATE is not None, "pydicom's Dataset changed shape: the fast reader is disabled"
    assert list(TEMPLATE.items()) == list(EXPECTED.items())


def _pydicom_item(
    elements: dict, parent: str | list[str], encoding: str | list[str], implicit: bool, undefined: bool, tell: int
) -> Dataset:
    """What pydicom's read_dataset, read_sequence_item and read_sequence do."""
    ds = Dataset(elements, parent_encoding=parent)
    ds.set_original_encoding(implicit, True, encoding)
    ds.is_undefined_length_sequence_item = undefined
    ds.seq_item_tell = tell
    ds.file_tell = tell
    return ds


def test_an_item_from_the_template_is_the_item_pydicom_builds() -> None:
    parent = ["iso8859"]
    for encoding, implicit, undefined, tell in (
        (parent, False, False, 12),
        (["utf_8"], True, True, 0),
        (default_encoding, False, True, 99),
    ):
        ours = new_item({}, parent, encoding, implicit=implicit, undefined_length=undefined, tell=tell)
        theirs = _pydicom_item({}, parent, encoding, implicit, undefined, tell)
        assert_same_graph(ours, theirs)
        assert ours._parent_encoding is parent and ours._read_charset is encoding


def test_items_share_no_mutable_attribute() -> None:
    first = new_item({}, "iso8859", "iso8859", implicit=False, undefined_length=False, tell=0)
    second = new_item({}, "iso8859", "iso8859", implicit=False, undefined_length=False, tell=0)
    assert TEMPLATE is not None
    for name, value in TEMPLATE.items():
        if isinstance(value, dict):
            assert vars(first)[name] is not vars(second)[name] is not value
            assert vars(first)[name] == value
    first._pixel_array_opts["use_pdh"] = True
    assert TEMPLATE["_pixel_array_opts"] == {"use_pdh": False}


def test_a_template_of_another_shape_is_refused(monkeypatch) -> None:
    class Odd(Dataset):
        def __init__(self) -> None:
            super().__init__()
            self.extra = [1]  # a list: not copied per item, so the template must be refused

    monkeypatch.setattr(item_template, "Dataset", Odd)
    assert item_template._take_template() is None


def test_a_new_dataset_is_what_dataset_init_builds_and_owns_its_dicts() -> None:
    ours, theirs, again = new_dataset(), Dataset(), new_dataset()
    assert_same_graph(ours, theirs)
    assert list(vars(ours).items()) == list(vars(theirs).items())
    for name, value in vars(ours).items():
        if isinstance(value, dict):
            assert value is not vars(again)[name]
    assert TEMPLATE is not None and TEMPLATE["_dict"] == {}
    ours.PatientSex = "F"
    assert "PatientSex" not in again and TEMPLATE["_dict"] == {}


def test_without_a_template_a_new_dataset_is_pydicoms(monkeypatch) -> None:
    monkeypatch.setattr(item_template, "TEMPLATE", None)
    assert list(vars(new_dataset()).items()) == list(vars(Dataset()).items())
