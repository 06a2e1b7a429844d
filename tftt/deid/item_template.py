"""Sequence items as pydicom builds them when it reads a file, without ``Dataset.__init__``.

Why: a CT slice has a score of sequence items, and ``Dataset.__init__`` sets each of its thirteen
instance attributes through ``Dataset.__setattr__`` (a keyword check per name); for the items
:mod:`tftt.deid.dataset_reader` builds, that is most of the cost of reading the sequences. An
item is built instead from a copy of the attributes of a fresh ``Dataset()``, taken once at
import (the template), with what pydicom's reader then sets on an item
(``set_original_encoding``, ``is_undefined_length_sequence_item``, ``seq_item_tell``,
``file_tell``).

The template is checked when it is taken: every value must be a plain scalar or a dict of
scalars (the dicts are copied for every item, as ``__init__`` makes new ones), and the
attributes the reader sets must be there. If pydicom's ``Dataset`` ever holds anything else,
:data:`TEMPLATE` is ``None`` and the reader reads nothing (the pipeline falls back to
``dcmread``); tests/deid/test_item_template.py fails loudly in that case, and compares an item
built here with one built by pydicom, attribute for attribute.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Any

from pydicom.dataset import Dataset

_SCALARS = (type(None), bool, int, str)
#: What the reader sets on an item; the template must hold the first six (``__init__`` sets
#: them), the last two are added in this order, as pydicom adds them.
SET_BY_READER = (
    "_parent_encoding",
    "_dict",
    "_read_implicit",
    "_read_little",
    "_read_charset",
    "is_undefined_length_sequence_item",
    "seq_item_tell",
    "file_tell",
)


def _take_template() -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """The instance attributes of a fresh ``Dataset()`` and the names of those holding a dict
    (to be copied per item), or ``None`` if they are not what this module can copy."""
    attributes = dict(vars(Dataset()))
    if not set(SET_BY_READER[:6]) <= attributes.keys() or set(SET_BY_READER[6:]) & attributes.keys():
        return None
    copied = []
    for name, value in attributes.items():
        if name == "_dict":
            continue
        if type(value) is dict and all(type(v) in _SCALARS for v in value.values()):
            copied.append(name)
        elif type(value) not in _SCALARS:
            return None
    return attributes, tuple(copied)


_TAKEN = _take_template()
#: The attributes of a fresh ``Dataset()`` (``None``: pydicom's ``Dataset`` changed shape).
TEMPLATE: dict[str, Any] | None = _TAKEN[0] if _TAKEN else None
_COPIED: tuple[str, ...] = _TAKEN[1] if _TAKEN else ()
_new = object.__new__
_set = object.__setattr__


def new_dataset() -> Dataset:
    """What ``Dataset()`` returns (an empty dataset), built from the template when there is one.

    The engine builds a score of datasets per file (the output, its sequence items, the
    de-identification method codes); ``Dataset()`` costs it about a tenth of a remembered pass.
    """
    if TEMPLATE is None:
        return Dataset()
    attributes = dict(TEMPLATE)
    for name in _COPIED:
        attributes[name] = attributes[name].copy()
    attributes["_dict"] = {}
    dataset: Dataset = _new(Dataset)
    _set(dataset, "__dict__", attributes)
    return dataset


def new_item(
    elements: dict[Any, Any],
    parent_encoding: str | MutableSequence[str],
    encoding: str | MutableSequence[str],
    *,
    implicit: bool,
    undefined_length: bool,
    tell: int,
) -> Dataset:
    """The item pydicom's ``read_sequence_item`` returns for these elements: ``encoding`` is
    its character set (its own, or ``parent_encoding``), ``implicit`` the VR encoding pydicom
    guessed for it, ``tell`` its ``seq_item_tell`` and ``file_tell``.

    Call only when :data:`TEMPLATE` is not ``None``.
    """
    assert TEMPLATE is not None
    attributes = dict(TEMPLATE)
    for name in _COPIED:
        attributes[name] = attributes[name].copy()
    attributes["_parent_encoding"] = parent_encoding
    attributes["_dict"] = elements
    attributes["_read_implicit"] = implicit
    attributes["_read_little"] = True
    attributes["_read_charset"] = encoding
    attributes["is_undefined_length_sequence_item"] = undefined_length
    attributes["seq_item_tell"] = tell
    attributes["file_tell"] = tell
    item: Dataset = _new(Dataset)
    _set(item, "__dict__", attributes)
    return item
