"""A recursive comparison of two pydicom object graphs read from the same bytes: every dataset's
instance attributes (in the order pydicom set them), every element's type and fields, every
sequence's attributes and items, the file meta, the preamble and the buffer read from; and
which datasets share one encoding list (pydicom hands one list to all the items of a
sequence)."""

from __future__ import annotations

import io
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence


def _same_value(a: Any, b: Any, where: str) -> None:
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, io.BytesIO):
        assert (a.getvalue(), a.tell()) == (b.getvalue(), b.tell()), where
    elif isinstance(a, list | tuple) and not isinstance(a, Sequence):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_value(x, y, f"{where}[{index}]")
    else:
        assert a == b, (where, a, b)


class GraphComparison:
    """Compares two graphs; ``shared_a``/``shared_b`` number the encoding lists in the order
    they are met, so that sharing can be compared too."""

    def __init__(self) -> None:
        self.shared_a: dict[int, int] = {}
        self.shared_b: dict[int, int] = {}

    def _sharing(self, a: Any, b: Any, where: str) -> None:
        if isinstance(a, list):
            ia = self.shared_a.setdefault(id(a), len(self.shared_a))
            ib = self.shared_b.setdefault(id(b), len(self.shared_b))
            assert ia == ib, f"{where}: encoding lists shared differently"

    def dataset(self, a: Dataset, b: Dataset, where: str = "") -> None:
        assert type(a) is type(b), where
        va, vb = vars(a), vars(b)
        assert list(va) == list(vb), (where, list(va), list(vb))
        for name in va:
            here = f"{where}.{name}"
            if name == "_dict":
                self.elements(va[name], vb[name], where)
            elif name == "file_meta":
                self.dataset(va[name], vb[name], here)
            else:
                _same_value(va[name], vb[name], here)
                if name in ("_parent_encoding", "_read_charset"):
                    self._sharing(va[name], vb[name], here)

    def elements(self, a: dict[Any, Any], b: dict[Any, Any], where: str) -> None:
        assert type(a) is type(b), where
        assert list(a) == list(b), where
        for ka, kb in zip(a, b, strict=True):
            assert type(ka) is type(kb), where
            self.element(a[ka], b[kb], f"{where}({int(ka):08X})")

    def element(self, a: Any, b: Any, where: str) -> None:
        assert type(a) is type(b), (where, type(a), type(b))
        if type(a) is RawDataElement:
            assert len(a) == len(b), where
            for field, x, y in zip(a._fields, a, b, strict=True):
                _same_value(x, y, f"{where}.{field}")
            return
        assert isinstance(a, DataElement), where
        va, vb = vars(a), vars(b)
        assert list(va) == list(vb), (where, list(va), list(vb))
        for name in va:
            if name == "_value" and isinstance(va[name], Sequence):
                self.sequence(va[name], vb[name], where)
            else:
                _same_value(va[name], vb[name], f"{where}.{name}")

    def sequence(self, a: Sequence, b: Sequence, where: str) -> None:
        assert type(a) is type(b), where
        va, vb = vars(a), vars(b)
        assert list(va) == list(vb), (where, list(va), list(vb))
        for name in va:
            if name != "_list":
                _same_value(va[name], vb[name], f"{where}.{name}")
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            self.dataset(x, y, f"{where}[{index}]")


def assert_same_graph(a: Dataset, b: Dataset) -> None:
    """``a`` and ``b`` are the same graph (raises AssertionError naming the first difference)."""
    GraphComparison().dataset(a, b)
