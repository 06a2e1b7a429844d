"""Direct DICOM Part 10 encoding of de-identified datasets, byte for byte what pydicom writes.

Why: pydicom's writer spends most of its time per element (a buffer object per element,
encoding properties, charset conversion, a deep copy of the file meta) rather than on the bytes;
for a de-identified CT file that overhead was larger than reading and writing the original.
:func:`encode_file` writes the same bytes as ``ds.save_as(buffer, implicit_vr=..., little_endian=...,
enforce_file_format=True)`` for the datasets the engine builds, element by element (tag, VR,
2- or 4-byte length per PS3.5 7.1.2, value), and reuses pydicom's own value encoders wherever a
value is not a plain string or bytes.

It mirrors what ``dcmwrite`` does besides encoding, because those steps change bytes:

* the top-level SOP Class/Instance UID and Pixel Data elements, and every level's Specific
  Character Set, are converted from raw to value form by ``dcmwrite``/``write_dataset`` before
  they are written, so they are written from their converted values here too;
* Pixel Data gets an undefined length exactly when the transfer syntax is compressed;
* a dataset whose recorded encoding (original VR/endianness, or character set against the one
  its elements now call for) differs from the target has every raw element converted and
  re-encoded, and every raw sequence below it parsed (``correct_ambiguous_vr``);
* the file meta: Media Storage SOP Class/Instance UIDs follow the dataset's, and (0002,0000)
  counts the bytes of the rest of the group.

It never guesses: whatever it is not certain to write as pydicom would (implicit VR or big
endian targets, deflate, raw elements without an explicit VR or with a deferred value,
ambiguous VRs, buffered values, lengths that do not fit, unexpected types, any error from an
encoder) makes it return ``None``, and the caller writes the whole file with pydicom. Pure: it
reads its argument and changes nothing in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from struct import Struct
from typing import Any

from pydicom.charset import convert_encodings, default_encoding, encode_string
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import writers
from pydicom.multival import MultiValue
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, IS, DSdecimal, DSfloat, PersonName

#: Explicit VR Little Endian, and the encapsulated syntaxes whose datasets are encoded as it.
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
ENCAPSULATED_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline
        "1.2.840.10008.1.2.4.51",  # JPEG Extended
        "1.2.840.10008.1.2.4.57",  # JPEG Lossless
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.92",  # JPEG 2000 Multi-component Lossless
        "1.2.840.10008.1.2.4.93",  # JPEG 2000 Multi-component
        "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
        "1.2.840.10008.1.2.4.203",  # HTJ2K
        "1.2.840.10008.1.2.5",  # RLE Lossless
    }
)

_EXPLICIT_LE = (False, True)
_CHARSET = 0x00080005
_SOP_CLASS_UID = 0x00080016
_SOP_INSTANCE_UID = 0x00080018
_PIXEL_DATA = 0x7FE00010
_GROUP_LENGTH_META = 0x00020000
_META_CLASS_UID = 0x00020002
_META_INSTANCE_UID = 0x00020003
_META_SYNTAX_UID = 0x00020010
_META_VERSION = 0x00020001
_META_IMPLEMENTATION_UID = 0x00020012
_META_IMPLEMENTATION_NAME = 0x00020013

_ITEM_TAG = b"\xfe\xff\x00\xe0"
_ITEM_DELIMITER = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_UNDEFINED = 0xFFFFFFFF

_HEADER_16 = Struct("<HH2sH").pack
_HEADER_32 = Struct("<HH2sHL").pack
_UL = Struct("<L").pack
_TAG = Struct("<HH").pack

#: Every VR pydicom can write, as plain strings; which ones take a 4-byte length.
_KNOWN_VRS = frozenset(str(vr.value) for vr in writers if len(vr.value) == 2)
_LONG_VRS = frozenset(str(vr.value) for vr in EXPLICIT_VR_LENGTH_32)
_STRING_VRS = frozenset({"AE", "AS", "CS", "UR"})
_DATE_VRS = frozenset({"DA", "DT", "TM"})
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
_CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OW", "OV"})
_NUMBER_STRING_TYPES = (IS, DSfloat, DSdecimal)
#: Value types whose emptiness (``DataElement.is_empty``) is their falsiness, or never.
_SIZED = (str, UID, bytes, PersonName, MultiValue, list)
_SCALARS = (int, float, IS, DSfloat, DSdecimal)
#: Single binary numbers: ``write_numbers`` packs them with the VR's format, little endian.
_NUMBERS: dict[str, tuple[Callable[[Any], bytes], tuple[type, ...]]] = {
    "US": (Struct("<H").pack, (int,)),
    "SS": (Struct("<h").pack, (int,)),
    "UL": (Struct("<L").pack, (int,)),
    "SL": (Struct("<l").pack, (int,)),
    "UV": (Struct("<Q").pack, (int,)),
    "SV": (Struct("<q").pack, (int,)),
    "FL": (Struct("<f").pack, (float, int)),
    "FD": (Struct("<d").pack, (float, int)),
}


class _Unsure(Exception):
    """This dataset is left to pydicom."""


class _Sink:
    """The part of pydicom's ``DicomIO`` its value encoders use, collecting bytes."""

    is_little_endian = True
    is_implicit_VR = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def write_tag(self, tag: int) -> None:
        self.parts.append(_TAG(tag >> 16, tag & 0xFFFF))


def encode_file(ds: Dataset) -> bytes | None:
    """``ds`` as a DICOM file, or ``None`` when only pydicom's own writer can be trusted with it.

    The bytes are those of ``ds.save_as(buffer, implicit_vr=False, little_endian=True,
    enforce_file_format=True)``. Never raises: anything unexpected gives ``None``.
    """
    try:
        return _encode_file(ds)
    except Exception:  # _Unsure, or an encoder's error: pydicom decides (and raises its own)
        return None


def _encode_file(ds: Dataset) -> bytes:
    if not isinstance(ds, Dataset):
        raise _Unsure
    meta = ds.__dict__.get("file_meta")
    if not isinstance(meta, FileMetaDataset):
        raise _Unsure
    syntax = _meta_value(meta, _META_SYNTAX_UID)
    if not isinstance(syntax, str):
        raise _Unsure
    if syntax == EXPLICIT_VR_LITTLE_ENDIAN:
        compressed = False
    elif syntax in ENCAPSULATED_SYNTAXES and _is_compressed_syntax(syntax):
        compressed = True
    else:
        raise _Unsure
    if any(tag >> 16 in (0, 2) for tag in ds._dict):
        raise _Unsure  # dcmwrite refuses command and file meta elements in the dataset
    preamble = ds.__dict__.get("preamble")
    if preamble is None or preamble == b"":
        preamble = b"\x00" * 128
    elif not isinstance(preamble, bytes) or len(preamble) != 128:
        raise _Unsure

    top = _Top(ds, compressed)
    body = _dataset(ds, default_encoding, forced=False, top=top)
    return b"".join((preamble, b"DICM", _file_meta(meta, top), body))


def _is_compressed_syntax(syntax: str) -> bool:
    uid = UID(syntax)
    return bool(uid.is_transfer_syntax and not uid.is_private and not uid.is_implicit_VR
                and uid.is_little_endian and uid.is_compressed and not uid.is_deflated)


def _encodings(value: Any) -> list[str]:
    """``convert_encodings(value)``, remembered: pydicom re-derives it for every element."""
    if isinstance(value, str):
        return _converted(value)
    if isinstance(value, MultiValue | list | tuple) and all(type(v) is str for v in value):
        return _converted(tuple(value))
    return convert_encodings(value)  # type: ignore[no-any-return]


@lru_cache(maxsize=64)
def _converted(value: str | tuple[str, ...]) -> list[str]:
    return convert_encodings(value if isinstance(value, str) else list(value))  # type: ignore[no-any-return]


def _meta_value(meta: FileMetaDataset, tag: int) -> Any:
    elem = meta._dict.get(tag)  # type: ignore[call-overload]
    if elem is None:
        return None
    if not isinstance(elem, DataElement):
        raise _Unsure
    return elem.value


class _Top:
    """What ``dcmwrite`` converts at the top level before writing, and the Pixel Data length."""

    def __init__(self, ds: Dataset, compressed: bool) -> None:
        self.compressed = compressed
        self.converted: dict[int, DataElement] = {}
        charset = _charset_element(ds)
        encoding = ds.original_character_set or (
            convert_encodings(charset.value) if charset is not None else ds._parent_encoding
        )
        for tag in (_SOP_CLASS_UID, _SOP_INSTANCE_UID, _PIXEL_DATA):
            elem = ds._dict.get(tag)  # type: ignore[call-overload]
            if elem is not None:
                self.converted[tag] = _as_element(elem, encoding, ds)

    def value(self, tag: int) -> Any:
        elem = self.converted.get(tag)
        return elem.value if elem is not None else None


def _as_element(elem: DataElement | RawDataElement, encoding: Any, ds: Dataset) -> DataElement:
    """``elem`` as ``Dataset.__getitem__`` would leave it (without storing it back)."""
    if isinstance(elem, DataElement):
        return elem
    if not isinstance(elem, RawDataElement) or elem.value is None or elem.VR is None:
        raise _Unsure  # deferred read, no explicit VR, or not an element
    if elem.VR == "UN" and elem.tag >> 16 & 1:
        raise _Unsure  # its VR lookup would convert the private creator inside ``ds``
    converted = convert_raw_data_element(elem, encoding=encoding, ds=ds)
    if converted.VR not in _KNOWN_VRS:
        raise _Unsure  # an ambiguous VR: __getitem__ would correct it
    return converted


def _charset_element(ds: Dataset) -> DataElement | None:
    raw = ds._dict.get(_CHARSET)  # type: ignore[call-overload]
    if raw is None:
        return None
    return _as_element(raw, default_encoding, ds)


def _file_meta(meta: FileMetaDataset, top: _Top) -> bytes:
    """The file meta group as ``write_file_meta_info(enforce_standard=True)`` writes it."""
    elements: dict[int, DataElement] = {}
    for key, meta_elem in meta._dict.items():
        if not isinstance(meta_elem, DataElement) or key >> 16 != 2:
            raise _Unsure
        if key == _GROUP_LENGTH_META:
            if meta_elem.VR != "UL":
                raise _Unsure
            continue  # recomputed
        elements[int(key)] = meta_elem
    for meta_tag, ds_tag in ((_META_CLASS_UID, _SOP_CLASS_UID), (_META_INSTANCE_UID, _SOP_INSTANCE_UID)):
        current = elements.get(meta_tag)
        if current is None:
            raise _Unsure
        ds_value = top.value(ds_tag)
        if ds_value and ds_value != current.value:
            if not isinstance(ds_value, str):
                raise _Unsure
            elements[meta_tag] = DataElement(meta_tag, "UI", ds_value)
    for required in (_META_VERSION, _META_IMPLEMENTATION_UID, _META_CLASS_UID, _META_INSTANCE_UID,
                     _META_SYNTAX_UID):
        present = elements.get(required)
        if present is None or present.is_empty:
            raise _Unsure  # pydicom would add its own value, or refuse
    if _META_IMPLEMENTATION_NAME not in elements:
        raise _Unsure
    encodings = _encodings(default_encoding)
    parts: list[bytes] = []
    for meta_tag in sorted(elements):
        _data_element(parts, meta_tag, elements[meta_tag], encodings, forced=True)
    group = b"".join(parts)
    return _HEADER_16(2, 0, b"UL", 4) + _UL(len(group)) + group


def _dataset(ds: Dataset, parent_encoding: Any, *, forced: bool, top: _Top | None = None) -> bytes:
    """The encoded elements of ``ds`` (``write_dataset``).

    ``forced``: an enclosing dataset was re-encoded, so raw sequences here are parsed first.
    """
    charset = _charset_element(ds)
    own_charset = convert_encodings(charset.value) if charset is not None else ds._parent_encoding
    reencode = ds.original_encoding != _EXPLICIT_LE or ds.original_character_set != own_charset
    parse_sequences = reencode or forced
    dataset_encoding = charset.value if charset is not None else parent_encoding
    encodings = _encodings(dataset_encoding or [default_encoding])
    read_charset = ds.original_character_set or own_charset
    converted = top.converted if top is not None else {}

    parts: list[bytes] = []
    items = ds._dict
    # Plain ints: BaseTag's comparisons are Python-level.
    elem: Any
    for tag, elem in sorted([(int(key), value) for key, value in items.items()], key=_first):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written
        if tag in converted:
            elem = converted[tag]
        elif tag == _CHARSET:
            elem = charset
        elif type(elem) is not DataElement:
            if not isinstance(elem, RawDataElement) or elem.value is None:
                raise _Unsure
            if reencode or (parse_sequences and elem.VR == "SQ"):
                elem = _as_element(elem, read_charset, ds)
        if top is not None and tag == _PIXEL_DATA:
            _data_element(parts, tag, elem, encodings, forced=parse_sequences, undefined=top.compressed)
        else:
            _data_element(parts, tag, elem, encodings, forced=parse_sequences)
    return b"".join(parts)


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


def _data_element(parts: list[bytes], tag: int, elem: DataElement | RawDataElement, encodings: list[str], *,
                  forced: bool, undefined: bool | None = None) -> None:
    """Append one element (``write_data_element``)."""
    vr = elem.VR
    if vr not in _KNOWN_VRS:
        raise _Unsure  # no VR (implicit), an ambiguous one, or one pydicom has no writer for
    value: Any
    if type(elem) is RawDataElement:
        value = elem.value
        if type(value) is not bytes:
            raise _Unsure
        is_undefined = elem.length == _UNDEFINED
    elif isinstance(elem, DataElement):
        is_undefined = elem.is_undefined_length if undefined is None else undefined
        value = elem.value
        kind = type(value)
        if kind in _SIZED or vr == "SQ":
            empty = not value  # what DataElement.is_empty says for these
        elif kind in _SCALARS:
            empty = False
        elif elem.is_buffered:
            raise _Unsure
        else:
            empty = elem.is_empty
        value = b"" if empty else _value(elem, value, vr, encodings, forced)
    else:
        raise _Unsure
    if is_undefined and tag == _PIXEL_DATA and not value.startswith(_ITEM_TAG):
        raise _Unsure  # pydicom refuses unencapsulated data of undefined length
    length = len(value)
    if vr in _LONG_VRS:
        parts.append(_HEADER_32(tag >> 16, tag & 0xFFFF, vr.encode(), 0, _UNDEFINED if is_undefined else length))
    elif is_undefined or length > 0xFFFF:
        raise _Unsure  # pydicom would write a 4-byte length, or change the VR to UN
    else:
        parts.append(_HEADER_16(tag >> 16, tag & 0xFFFF, vr.encode(), length))
    parts.append(value)
    if is_undefined:
        parts.append(_SEQUENCE_DELIMITER)


def _value(elem: DataElement, value: Any, vr: str, encodings: list[str], forced: bool) -> bytes:
    """The encoded value of a non-empty element, padded as pydicom pads it."""
    kind = type(value)
    if vr == "UI":
        return _string(value, "\0", elem, vr)
    if vr in _STRING_VRS or (vr in _DATE_VRS and isinstance(value, str)):
        return _string(value, " ", elem, vr)
    if vr in _TEXT_VRS and kind is str:
        encoded = encode_string(value, encodings)
        return encoded + b" " if len(encoded) % 2 else encoded
    if vr == "PN" and kind is PersonName:
        encoded = value.encode(encodings)
        return encoded + b" " if len(encoded) % 2 else encoded
    if vr == "IS" or vr == "DS":  # write_number_string: as read if read, else str()
        if kind in _NUMBER_STRING_TYPES:
            text = value.original_string if hasattr(value, "original_string") else str(value)
            return (text + " " if len(text) % 2 else text).encode(default_encoding)
        if kind is MultiValue or kind is list:
            text = "\\".join(x.original_string if hasattr(x, "original_string") else str(x) for x in value)
            return (text + " " if len(text) % 2 else text).encode(default_encoding)
    number = _NUMBERS.get(vr)
    if number is not None and kind in number[1]:
        return number[0](value)  # type: ignore[no-any-return]
    if vr in _BINARY_VRS and kind is bytes:
        return value + b"\x00" if len(value) % 2 else value  # type: ignore[no-any-return]
    if vr == "UN" and kind is bytes:
        return value  # type: ignore[no-any-return]
    if vr == "SQ":
        return _sequence(value, encodings, forced)
    return _with_pydicom(elem, vr, encodings)


def _string(value: Any, padding: str, elem: DataElement, vr: str) -> bytes:
    """``write_string``: values joined with a backslash, padded to even length, ISO 8859-1."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, MultiValue | list | tuple):
        text = "\\".join(value)
    else:
        return _with_pydicom(elem, vr, [default_encoding])
    if len(text) % 2:
        text += padding
    return text.encode(default_encoding)


def _with_pydicom(elem: DataElement, vr: str, encodings: list[str]) -> bytes:
    """pydicom's own encoder for this VR, writing into a plain list."""
    function, parameter = writers[vr]  # type: ignore[index]
    sink = _Sink()
    call: Callable[..., None] = function  # type: ignore[assignment]
    if vr in _CHARSET_VRS:
        call(sink, elem, encodings=encodings)
    elif parameter is not None:
        call(sink, elem, parameter)
    else:
        call(sink, elem)
    return b"".join(sink.parts)


def _sequence(items: Iterable[Any], encodings: list[str], forced: bool) -> bytes:
    """Items with a defined length (or undefined, as read), as ``write_sequence_item`` does."""
    parts: list[bytes] = []
    for item in items:
        if not isinstance(item, Dataset):
            raise _Unsure
        content = _dataset(item, encodings, forced=forced)
        if getattr(item, "is_undefined_length_sequence_item", False):
            parts += (_ITEM_TAG, _UL(_UNDEFINED), content, _ITEM_DELIMITER)
        else:
            parts += (_ITEM_TAG, _UL(len(content)), content)
    return b"".join(parts)
