"""An Explicit VR Little Endian Part 10 file read into the very objects pydicom would build.

Why: :func:`~tftt.deid.pipeline.parse` reads every input with ``dcmread`` and then reads every
sequence at every depth, so that the engine and the harvest do not each parse nested items
again. On a CT slice that costs about three times ``dcmread`` alone, mostly in pydicom's
per-item ``Dataset`` construction, its element generator and its tag handling. This module
walks the bytes itself (as :mod:`tftt.deid.raw_dataset` does for the verifier, with the same
strict subset) and builds the same object graph, in two steps that mirror the pipeline's:

1. :func:`read_explicit_file` builds what ``dcmread(BytesIO(data), force=True)`` returns: a
   ``FileDataset`` with its preamble and file meta, the top-level elements as
   ``RawDataElement`` tuples field for field, what ``dcmread`` converts while reading converted
   (the file meta's group length and transfer syntax, the top-level Specific Character Set)
   and sequences of undefined length read into items, as pydicom reads them at once;
2. :meth:`ExplicitFile.read_sequences` then does what the pipeline's ``_read_sequences`` does
   to that dataset: every raw sequence element reachable from the top through read sequences
   is replaced, in the same order, by the ``DataElement`` pydicom's conversion gives (items
   read from the sequence's own buffer, offsets and encodings as pydicom passes them), stored
   through pydicom's own ``Dataset.__setitem__`` (private creator and pixel representation
   bookkeeping), and the items are read in turn.

Between the two steps the pipeline runs its checks on the dataset, as it does between
``dcmread`` and ``_read_sequences``, so the checks see (and convert) exactly what they did.

Nothing uncertain is built: another transfer syntax, a missing preamble or file meta, anything
:mod:`tftt.deid.raw_dataset` refuses (truncated or overrunning values, unknown VRs, tags out of
order, items or delimiters out of place, unusual character sets, trailing bytes, sequences
nested too deeply), an empty dataset, or pydicom configured to convert elements otherwise
than by default: step 1 returns ``None``, step 2 returns ``False``, and the caller reads the
file with pydicom as before. tests/deid/test_dataset_reader.py compares both graphs, every
element and every dataset attribute, on every synthetic input and on hand-built edge cases.

Pure: bytes in, pydicom objects out; the input is not changed.
"""

from __future__ import annotations

import io
import struct
from collections.abc import MutableSequence
from typing import Any

from pydicom import config
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.hooks import hooks, raw_element_value, raw_element_vr
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import PrivateTransferSyntaxes
from pydicom.values import convert_string

from tftt.deid import item_template
from tftt.deid.item_template import new_item
from tftt.deid.raw_dataset import CHARSET_TERMS, EXPLICIT_LITTLE_SYNTAXES, VRS_LENGTH_16, VRS_LENGTH_32

Encoding = str | MutableSequence[str]

_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_CHARSET = 0x00080005
_META_GROUP_LENGTH = 0x00020000
_PIXEL_REPRESENTATION = 0x00280103
#: pydicom resets its pixel caches when one of these is stored.
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_NONE: Any = object()

_HEADER = struct.Struct("<HH2sH")
_U32 = struct.Struct("<L")
_TAG_LENGTH = struct.Struct("<HHL")
_VR_OF = {vr.encode("ascii"): vr for vr in VRS_LENGTH_32 | VRS_LENGTH_16}
_LONG = VRS_LENGTH_32
#: The fields of pydicom's RawDataElement, which this module builds as plain tuples.
RAW_FIELDS = ("tag", "VR", "length", "value", "value_tell", "is_implicit_VR", "is_little_endian",
              "is_raw", "is_buffered")  # fmt: skip
_RAW_SHAPE = RawDataElement._fields == RAW_FIELDS and RawDataElement._field_defaults == {
    "is_raw": True,
    "is_buffered": False,
}
_new_tuple = tuple.__new__

#: BaseTag objects by tag number, shared between reads (a BaseTag is an immutable int); bounded
#: so that files full of distinct private tags cannot grow it without end.
_TAGS: dict[int, BaseTag] = {}
_TAGS_MAX = 1 << 14


class _NotRead(Exception):
    """The bytes are outside the subset read here (internal: the caller gets ``None``)."""


#: The value bytes of sequences :meth:`ExplicitFile.read_sequences` read, by the ``id`` of the
#: element it built: the element and its value as built (kept alive, so the id stays its own;
#: pydicom may give an element a new value in place) and the bytes.
SequenceBytes = dict[int, tuple[DataElement, Sequence, bytes]]


class ExplicitFile:
    """A file read by :func:`read_explicit_file`: ``dataset`` as ``dcmread`` returns it, and
    the positions of its sequence values, for :meth:`read_sequences`."""

    __slots__ = ("_reader", "dataset")

    def __init__(self, dataset: FileDataset, reader: _Reader) -> None:
        self.dataset = dataset
        self._reader = reader

    @property
    def sequence_bytes(self) -> SequenceBytes:
        """The bytes each sequence of defined length was read from, once :meth:`read_sequences`
        has read them: a stage that judges a sequence by what the file holds (the harvest's
        memo) may key it by these, since its items are built from them alone (with the
        encoding and pixel representation handed down), as long as the dataset is as read.
        The objects are pydicom's own, so the bytes are kept here, beside them."""
        return self._reader.sequence_bytes

    def read_sequences(self) -> bool:
        """Do what the pipeline's ``_read_sequences`` does to ``dataset``: read every raw
        sequence element at every depth into items, in place.

        Returns ``False`` (``dataset`` is then half read: drop it) if a sequence is outside the
        subset read here; never raises.
        """
        try:
            self._reader.read_sequences(self.dataset)
        except Exception:  # _NotRead, RecursionError, or a pydicom surprise: read it with pydicom
            return False
        return True


def read_explicit_file(data: bytes) -> ExplicitFile | None:
    """The Part 10 file ``data`` (preamble, ``DICM``, file meta, dataset in a transfer syntax of
    :data:`~tftt.deid.raw_dataset.EXPLICIT_LITTLE_SYNTAXES`) as ``dcmread`` reads it, or
    ``None`` if it is outside the subset read here. Never raises."""
    if not _default_conversion() or len(data) < 132 or data[128:132] != b"DICM":
        return None
    try:
        return _Reader(data).file()
    except Exception:  # _NotRead, struct.error, RecursionError, or a pydicom surprise
        return None


def _default_conversion() -> bool:
    """pydicom converts raw elements as it does by default (no callback, no hooks) and builds
    datasets as :mod:`~tftt.deid.item_template` expects."""
    return (
        item_template.TEMPLATE is not None
        and _RAW_SHAPE
        and config.data_element_callback is None
        and hooks.raw_element_vr is raw_element_vr
        and hooks.raw_element_value is raw_element_value
        and not hooks.raw_element_kwargs
    )


def _tag(number: int) -> BaseTag:
    tag = _TAGS.get(number)
    if tag is None:
        tag = BaseTag(number)
        if len(_TAGS) < _TAGS_MAX:
            _TAGS[number] = tag
    return tag


# Looked up in element dicts by the very objects the dicts are keyed by (when the cache held
# them): a dict then finds them by identity, without BaseTag.__eq__ (a Python-level call).
_CHARSET_TAG = _tag(_CHARSET)
_PIXEL_REPRESENTATION_TAG = _tag(_PIXEL_REPRESENTATION)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        #: Raw sequence elements this reader built where ``_read_sequences`` reads them, by id:
        #: the element (kept alive, so the id stays its own) and the offset of its value.
        self.pending: dict[int, tuple[RawDataElement, int]] = {}
        self.empty_values: dict[str, Any] = {}
        self.sequence_bytes: SequenceBytes = {}

    def file(self) -> ExplicitFile:
        meta_elements, pos = self.file_meta(132)
        # What _read_file_meta_info and read_partial do to the file meta, in their order.
        meta = FileMetaDataset(meta_elements)
        meta.set_original_encoding(False, True, default_encoding)
        meta[next(iter(meta_elements))]
        if "FileMetaInformationGroupLength" in meta:
            meta.FileMetaInformationGroupLength  # noqa: B018 (converts it, as pydicom does)
        syntax = meta.get("TransferSyntaxUID")
        if syntax is None or str(syntax) not in EXPLICIT_LITTLE_SYNTAXES or syntax in PrivateTransferSyntaxes:
            raise _NotRead

        if pos >= self.size or _U32.unpack_from(self.data, pos)[0] & 0xFFFF == 0:
            raise _NotRead  # an empty dataset, or command elements (read as implicit VR)
        elements, pos, _ = self.elements(pos, self.size, base=0, delimited=False,
                                         encoding=default_encoding, pending=True)  # fmt: skip
        if pos != self.size:
            raise _NotRead

        buffer = io.BytesIO(self.data)
        buffer.seek(self.size)  # where dcmread leaves it
        dataset = Dataset(elements, parent_encoding=default_encoding)
        ds = FileDataset(buffer, dataset, self.data[:128], meta, is_implicit_VR=False, is_little_endian=True)
        ds.set_original_encoding(False, True, dataset._character_set)
        return ExplicitFile(ds, self)

    def file_meta(self, pos: int) -> tuple[dict[BaseTag, DataElement | RawDataElement], int]:
        """Group 0002 elements from ``pos``: plain values only, the group length first."""
        data = self.data
        elements: dict[BaseTag, DataElement | RawDataElement] = {}
        last = -1
        while pos + 8 <= self.size:
            group, number, vr_bytes, length = _HEADER.unpack_from(data, pos)
            if group != 2:
                break
            tag = group << 16 | number
            vr = _VR_OF.get(vr_bytes)
            if vr is None or vr == "SQ" or tag <= last:
                raise _NotRead
            if vr in _LONG:
                length = _U32.unpack_from(data, pos + 8)[0]
                start = pos + 12
            else:
                start = pos + 8
            end = start + length
            if length == _UNDEFINED or end > self.size:
                raise _NotRead
            if not elements and (tag != _META_GROUP_LENGTH or vr != "UL" or length != 4):
                raise _NotRead
            key = _tag(tag)
            value = data[start:end] if length else self.empty_value(vr)
            elements[key] = _new_tuple(RawDataElement, (key, vr, length, value, start, False, True, True, False))
            last, pos = tag, end
        if not elements:
            raise _NotRead
        return elements, pos

    def empty_value(self, vr: str) -> Any:
        """pydicom's raw value of an empty element (it depends on pydicom's configuration)."""
        try:
            return self.empty_values[vr]
        except KeyError:
            value = self.empty_values[vr] = empty_value_for_VR(vr, raw=True)
            return value

    def elements(
        self, pos: int, limit: int, *, base: int, delimited: bool, encoding: Encoding, pending: bool
    ) -> tuple[dict[BaseTag, Any], int, Encoding]:
        """The elements of one dataset, as pydicom's element generator yields them, from ``pos``
        up to ``limit`` or, ``delimited`` (an item of undefined length), up to its item
        delimiter. Offsets count from ``base`` (the start of the buffer pydicom reads).
        ``encoding`` is the generator's (the parent's); raw sequences are registered for
        :meth:`read_sequences` if ``pending``, else checked here (they stay raw).

        Returns the elements, the position after them (after the delimiter) and the encoding
        the generator ends with.
        """
        data = self.data
        header = _HEADER.unpack_from
        new = _new_tuple
        raw_type = RawDataElement
        elements: dict[BaseTag, Any] = {}
        last = -1
        while pos < limit:
            if pos + 8 > limit:
                raise _NotRead
            group, number, vr_bytes, length = header(data, pos)
            tag = group << 16 | number
            if group == 0xFFFE:
                if tag == _ITEM_END and delimited and vr_bytes == b"\0\0" and length == 0:
                    return elements, pos + 8, encoding
                raise _NotRead
            vr = _VR_OF.get(vr_bytes)
            if vr is None or tag <= last:
                raise _NotRead
            if vr in _LONG:
                if pos + 12 > limit:
                    raise _NotRead
                length = _U32.unpack_from(data, pos + 8)[0]
                start = pos + 12
            else:
                start = pos + 8
            last = tag
            key = _TAGS.get(tag) or _tag(tag)
            if length != _UNDEFINED:
                pos = start + length
                if pos > limit:
                    raise _NotRead
                if length:
                    value = data[start:pos]
                elif vr == "UN":
                    raise _NotRead  # as the verifier's reader: pydicom looks its VR up
                else:
                    value = self.empty_value(vr)
                raw = new(raw_type, (key, vr, length, value, start - base, False, True, True, False))
                elements[key] = raw
                if tag == _CHARSET:
                    encoding = self.charset(raw)
                elif vr == "SQ":
                    if pending:
                        self.pending[id(raw)] = (raw, start)
                    else:
                        self.items(start, pos, base=start, offset=0, encoding=encoding, undefined=False,
                                   pending=False)  # fmt: skip
            elif tag == _CHARSET:
                raise _NotRead
            elif vr == "SQ":
                items, pos = self.items(start, limit, base=base, offset=0, encoding=encoding, undefined=True,
                                        pending=False)  # fmt: skip
                sequence = Sequence(items)
                sequence.is_undefined_length = True
                elements[key] = DataElement(key, vr, sequence, start - base, is_undefined_length=True)
            elif vr in ("OB", "OW"):
                end, pos = self.encapsulated(start, limit)
                elements[key] = new(raw_type, (key, vr, length, data[start:end], start - base, False, True, True,
                                               False))  # fmt: skip
            else:
                raise _NotRead
        if delimited:
            raise _NotRead
        return elements, pos, encoding

    def charset(self, raw: RawDataElement) -> Encoding:
        """The encoding pydicom's element generator takes from a Specific Character Set."""
        if raw.VR != "CS":
            raise _NotRead
        value = raw.value or b""
        terms = value.decode("latin-1").rstrip(" \x00")
        if not CHARSET_TERMS.issuperset(terms.split("\\")):
            raise _NotRead
        return convert_encodings(convert_string(value, True))

    def items(
        self, pos: int, limit: int, *, base: int, offset: int, encoding: Encoding, undefined: bool, pending: bool
    ) -> tuple[list[Dataset], int]:
        """The items of a sequence whose value starts at ``pos``, as pydicom's
        ``read_sequence`` returns them: of defined length (its value ends at ``limit``) or not
        (up to its delimiter, before ``limit``). ``base`` and ``offset`` are pydicom's: element
        offsets count from ``base``, an item's own offset is counted from ``base`` plus
        ``offset``. Returns the items and the position after the sequence."""
        data = self.data
        items: list[Dataset] = []
        while undefined or pos < limit:
            if pos + 8 > limit:
                raise _NotRead
            group, number, length = _TAG_LENGTH.unpack_from(data, pos)
            tag = group << 16 | number
            if tag == _SEQUENCE_END and undefined:
                if length != 0:
                    raise _NotRead
                return items, pos + 8
            if tag != _ITEM:
                raise _NotRead
            start = pos + 8
            if length == _UNDEFINED:
                elements, after, _ = self.elements(start, limit, base=base, delimited=True, encoding=encoding,
                                                   pending=pending)  # fmt: skip
            else:
                after = start + length
                if after > limit:
                    raise _NotRead
                elements, _, _ = self.elements(start, after, base=base, delimited=False, encoding=encoding,
                                               pending=pending)  # fmt: skip
            # pydicom guesses each item's VR encoding from the two bytes where the VR of its
            # first element would be: an empty item takes whatever follows it.
            implicit = start + 6 <= limit and not (0x40 < data[start + 4] < 0x5B and 0x40 < data[start + 5] < 0x5B)
            charset = elements.get(_CHARSET_TAG)
            own = encoding if charset is None else convert_encodings(convert_raw_data_element(charset).value)
            items.append(new_item(elements, encoding, own, implicit=implicit, undefined_length=length == _UNDEFINED,
                                  tell=pos - base + offset))  # fmt: skip
            pos = after
        return items, pos

    def encapsulated(self, start: int, limit: int) -> tuple[int, int]:
        """Items of an undefined-length OB/OW value (encapsulated pixel data), walked as
        pydicom walks them: the offset of its sequence delimiter and the position after it."""
        data = self.data
        pos = start
        while True:
            if pos + 8 > limit:
                raise _NotRead
            group, number, length = _TAG_LENGTH.unpack_from(data, pos)
            tag = group << 16 | number
            if tag == _SEQUENCE_END:
                if length != 0:
                    raise _NotRead
                return pos, pos + 8
            if tag != _ITEM or pos + 8 + length > limit:
                raise _NotRead
            pos += 8 + length

    def read_sequences(self, ds: Dataset) -> None:
        """The pipeline's ``_read_sequences``, with pydicom's conversion of a raw sequence
        replaced by :meth:`sequence` (see the module docstring)."""
        for tag, raw in list(ds._dict.items()):
            if type(raw) is not RawDataElement or raw.VR != "SQ":
                continue
            entry = self.pending.pop(id(raw), None)
            if entry is None or entry[0] is not raw:
                raise _NotRead  # not built by this reader
            element = self.sequence(ds, raw, entry[1])
            _store(ds, tag, element)
            for item in element.value:
                self.read_sequences(item)

    def sequence(self, ds: Dataset, raw: RawDataElement, start: int) -> DataElement:
        """The element ``convert_raw_data_element`` makes of the raw sequence ``raw`` of ``ds``
        (whose value starts at ``start``), with the encoding ``Dataset.__getitem__`` gives it."""
        if raw.length == 0:
            sequence = Sequence()  # pydicom converts it to [], which __setitem__ wraps
        else:
            encoding = ds._read_charset
            if not encoding:
                raise _NotRead  # pydicom would look the dataset's character set up
            if isinstance(encoding, str):
                encoding = [encoding]
            items, _ = self.items(start, start + raw.length, base=start, offset=raw.value_tell, encoding=encoding,
                                  undefined=False, pending=True)  # fmt: skip
            sequence = Sequence(items)
            sequence.is_undefined_length = False
        element = DataElement(raw.tag, "SQ", sequence, raw.value_tell, False, already_converted=True)
        if raw.length and raw.value is not None:
            self.sequence_bytes[id(element)] = (element, sequence, raw.value)
        return element


def _store(ds: Dataset, tag: BaseTag, element: DataElement) -> None:
    """What ``Dataset.__setitem__`` does when ``Dataset.__getitem__`` stores a sequence it has
    just converted (and what ``__getitem__`` then does again, to the same effect): the element
    of a private block learns its creator (read through pydicom, which converts the creator
    element), and the pixel representation is passed on, as ``_set_pixel_representation``
    does: ``ds`` takes its own (converted through pydicom) or keeps the one it was given, and
    each item takes its own raw one, or else ``ds``'s."""
    if tag in _PIXEL_TAGS:
        raise _NotRead  # a sequence where pixel data belongs: pydicom also resets pixel caches
    elements = ds._dict
    if tag >> 16 & 1:
        creator = tag & 0xFFFF0000 | (tag & 0xFFFF) >> 8
        if creator in elements and creator != tag:
            element.private_creator = ds[creator].value
    elements[tag] = element
    attributes = ds.__dict__
    representation = (
        ds[_PIXEL_REPRESENTATION_TAG].value if _PIXEL_REPRESENTATION_TAG in elements else attributes.get("_pixel_rep")
    )
    if representation is not None:
        attributes["_pixel_rep"] = (
            int(b"\x01" in representation) if isinstance(representation, bytes) else representation
        )
    inherited = attributes.get("_pixel_rep", _NONE)
    for item in element.value:
        own = item._dict.get(_PIXEL_REPRESENTATION_TAG, _NONE)
        if own is not _NONE and own.value is not None:
            representation = own.value
            item.__dict__["_pixel_rep"] = (
                int(b"\x01" in representation) if isinstance(representation, bytes) else representation
            )
        elif inherited is not _NONE:
            item.__dict__["_pixel_rep"] = inherited
