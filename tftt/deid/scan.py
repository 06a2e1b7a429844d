"""Looking for many identifiers at once in bytes, and reading a dataset element by element.

:class:`NeedleSet` finds harvested identifiers ("needles") in a byte buffer, in ASCII/Latin-1,
UTF-8 and UTF-16-LE, case-insensitively.

Matching rules (documented because they decide false positives and misses):

- A needle of fewer than :data:`LONG_NEEDLE` (6) characters matches only as a whole word: the
  characters before and after it must not be letters or digits (bytes >= 0x80 count as letters
  in 8-bit text). So a name component ``ANN`` is found in ``ANN SMITH`` but not in
  ``ANNOTATION``. Short needles are only searched in element values (``short=True``), never in
  raw file bytes or pixel data, where three random letters between two non-letters are common.
- A needle of 6 characters or more matches anywhere as a substring (``CANARY`` inside
  ``XCANARYX``), in element values, raw file bytes and pixel data alike.
- Whatever its length, a needle that starts (ends) with a digit must not be preceded (followed)
  by a digit, nor by a dot next to a digit: the date ``19520314`` is not found inside the UID
  ``1.2.19520314.7`` or the number ``219520314``. UID needles are only barred by a digit, so a
  harvested UID is still found when something is appended to it (``<uid>.1``) or prefixed
  (``<root>.<uid>``).

Long needles are found without a regular expression: a vectorised first pass hashes the first
4 bytes (8 bytes for UTF-16) at every offset (numpy views at each alignment, case folded with
``| 0x20``) against a bit table of needle prefixes, keeps exact prefix hits, and only those few
positions are compared in Python. Short needles are whole tokens, so the buffer is split into
tokens by one regular expression and each token looked up in a dict.

:func:`iter_elements` reads a dataset's elements without converting (changing) the dataset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

LONG_NEEDLE = 6
"""Needles of at least this many characters match as substrings; shorter ones as words."""

ENCODINGS_8BIT = ("latin-1", "utf-8")
UTF16 = "utf-16-le"


class Category(StrEnum):
    """Kinds of harvested identifiers; the value is used in findings."""

    NAME = "person name"
    ID = "identifier"
    UID = "UID"
    DATE = "date"
    EMAIL = "e-mail address"
    PHONE = "phone number"
    TEXT = "removed text"


# When one string is harvested as two kinds, the first kind in this order labels it.
CATEGORY_PRIORITY = (
    Category.NAME,
    Category.ID,
    Category.UID,
    Category.DATE,
    Category.EMAIL,
    Category.PHONE,
    Category.TEXT,
)


@dataclass(frozen=True)
class Hit:
    """One needle found: where (offset and length in the searched buffer) and what kind."""

    offset: int
    length: int
    category: Category
    encoding: str


@dataclass(frozen=True)
class _Entry:
    forms: frozenset[bytes]  # accepted byte strings, ASCII-upper-cased
    length: int
    category: Category
    encoding: str
    word: bool  # short needle: whole word only
    digit_start: bool
    digit_end: bool
    uid: bool


_ALNUM8 = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") | frozenset(
    range(0x80, 0x100)
)
_ALNUM_ASCII = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset(b"0123456789")

_TOKEN8 = re.compile(rb"[A-Za-z0-9\x80-\xff]+")
_TOKEN16 = re.compile(rb"(?:[A-Za-z0-9]\x00)+")

_HASH_BITS = 20
_CHUNK = 1 << 22  # bytes per vectorised block (bounded temporary memory)


def _forms(text: str, encoding: str) -> frozenset[bytes]:
    out: set[bytes] = set()
    for variant in (text.upper(), text.lower()):
        try:
            out.add(variant.encode(encoding).upper())
        except UnicodeEncodeError:
            continue
    return frozenset(out)


class _PrefixIndex:
    """Vectorised candidate search on the first ``width`` bytes of each long needle form."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.dtype = np.dtype("<u4") if width == 4 else np.dtype("<u8")
        if width == 4:
            self.mask: Any = np.uint32(0x20202020)
            self.mul: Any = np.uint32(0x9E3779B1)
            self.shift: Any = np.uint32(32 - _HASH_BITS)
        else:
            self.mask = np.uint64(0x2020202020202020)
            self.mul = np.uint64(0x9E3779B97F4A7C15)
            self.shift = np.uint64(64 - _HASH_BITS)
        self.entries: dict[int, list[_Entry]] = {}
        self.table = np.zeros(1 << _HASH_BITS, dtype=bool)
        self.keys = np.zeros(0, dtype=self.dtype)

    def key_of(self, prefix: bytes) -> int:
        folded = bytes(b | 0x20 for b in prefix)
        return int.from_bytes(folded, "little")

    def add(self, entry: _Entry) -> None:
        for form in entry.forms:
            key = self.key_of(form[: self.width])
            bucket = self.entries.setdefault(key, [])
            if entry not in bucket:
                bucket.append(entry)

    def freeze(self) -> None:
        self.keys = np.array(sorted(self.entries), dtype=self.dtype)
        if self.keys.size:
            self.table[self._hash(self.keys)] = True

    def _hash(self, keys: np.ndarray) -> np.ndarray:
        hashed = keys * self.mul
        hashed >>= self.shift
        return hashed

    def candidates(self, data: bytes | memoryview) -> list[int]:
        """Offsets whose folded first ``width`` bytes equal some needle prefix, ascending."""
        if not self.keys.size:
            return []
        size = len(data)
        width = self.width
        found: list[np.ndarray] = []
        for start in range(0, size, _CHUNK):
            last = min(start + _CHUNK - 1, size - width)
            for align in range(width):
                first = start + align
                if first > last:
                    break
                count = (last - first) // width + 1
                folded = np.frombuffer(data, dtype=self.dtype, count=count, offset=first)
                folded = folded | self.mask
                hits = np.flatnonzero(self.table[self._hash(folded)])
                if hits.size:
                    exact = hits[np.isin(folded[hits], self.keys)]
                    if exact.size:
                        found.append(first + width * exact)
        if not found:
            return []
        return sorted(int(p) for p in np.concatenate(found))


class NeedleSet:
    """Harvested strings, ready to be found in bytes.

    ``needles`` maps a normalised string (upper case, single spaces) to its category. Strings
    shorter than 3 characters are ignored.
    """

    def __init__(self, needles: Mapping[str, Category]) -> None:
        self._count = 0
        self._long8 = _PrefixIndex(4)
        self._long16 = _PrefixIndex(8)
        self._short8: dict[bytes, list[_Entry]] = {}
        self._short16: dict[bytes, list[_Entry]] = {}
        irregular: list[tuple[bytes, _Entry]] = []
        for text, category in sorted(needles.items()):
            if len(text) < 3:
                continue
            self._count += 1
            word = len(text) < LONG_NEEDLE
            for encoding in (*ENCODINGS_8BIT, UTF16):
                forms = _forms(text, encoding)
                if not forms:
                    continue
                by_length: dict[int, set[bytes]] = {}
                for form in forms:
                    by_length.setdefault(len(form), set()).add(form)
                for length, same in by_length.items():
                    entry = _Entry(
                        forms=frozenset(same),
                        length=length,
                        category=category,
                        encoding=encoding,
                        word=word,
                        digit_start=text[0].isdigit(),
                        digit_end=text[-1].isdigit(),
                        uid=category is Category.UID,
                    )
                    if not word:
                        (self._long16 if encoding == UTF16 else self._long8).add(entry)
                    elif encoding == UTF16:
                        if all(c.isascii() and c.isalnum() for c in text):
                            for form in same:
                                self._short16.setdefault(form[::2], []).append(entry)
                    elif _TOKEN8.fullmatch(next(iter(same))):
                        for form in same:
                            self._short8.setdefault(form, []).append(entry)
                    else:
                        irregular.extend((form, entry) for form in same)
        self._long8.freeze()
        self._long16.freeze()
        self._irregular = {form: entry for form, entry in irregular}
        self._irregular_rx: re.Pattern[bytes] | None = None
        if irregular:
            alternatives = sorted({form for form, _ in irregular}, key=lambda f: (-len(f), f))
            pattern = b"|".join(re.escape(form) for form in alternatives)
            self._irregular_rx = re.compile(
                rb"(?<![A-Za-z0-9\x80-\xff])(?:" + pattern + rb")(?![A-Za-z0-9\x80-\xff])",
                re.IGNORECASE,
            )

    def __len__(self) -> int:
        return self._count

    # ----- boundaries --------------------------------------------------------------------
    @staticmethod
    def _unit(data: bytes | memoryview, pos: int, step: int) -> int | None:
        """The character code at ``pos`` for 8-bit (step 1) or UTF-16-LE (step 2) text."""
        if pos < 0 or pos + step > len(data):
            return None
        if step == 1:
            return data[pos]
        if data[pos + 1] != 0:
            return 0x100  # a non-ASCII UTF-16 unit: treat as a letter
        return data[pos]

    def _boundaries_ok(self, data: bytes | memoryview, start: int, entry: _Entry) -> bool:
        step = 2 if entry.encoding == UTF16 else 1
        end = start + entry.length
        before = self._unit(data, start - step, step)
        after = self._unit(data, end, step)
        if entry.word:
            alnum = _ALNUM8 if step == 1 else _ALNUM_ASCII | {0x100}
            if before is not None and before in alnum:
                return False
            if after is not None and after in alnum:
                return False
        if entry.digit_start and before is not None:
            if before in _DIGITS:
                return False
            if not entry.uid and before == 0x2E:
                two_before = self._unit(data, start - 2 * step, step)
                if two_before is not None and two_before in _DIGITS:
                    return False
        if entry.digit_end and after is not None:
            if after in _DIGITS:
                return False
            if not entry.uid and after == 0x2E:
                two_after = self._unit(data, end + step, step)
                if two_after is not None and two_after in _DIGITS:
                    return False
        return True

    # ----- search ------------------------------------------------------------------------
    def search(self, data: bytes | memoryview, *, short: bool = True) -> list[Hit]:
        """All needles found in ``data``, by offset.

        ``short=False`` searches only needles of :data:`LONG_NEEDLE` characters or more (for raw
        file bytes and pixel data).
        """
        hits: list[Hit] = []
        for index in (self._long8, self._long16):
            width = index.width
            for pos in index.candidates(data):
                key = index.key_of(bytes(data[pos : pos + width]))
                for entry in index.entries.get(key, ()):
                    segment = bytes(data[pos : pos + entry.length]).upper()
                    if segment in entry.forms and self._boundaries_ok(data, pos, entry):
                        hits.append(Hit(pos, entry.length, entry.category, entry.encoding))
        if short:
            hits.extend(self._search_short(data))
        hits.sort(key=lambda h: (h.offset, h.length))
        return hits

    def _search_short(self, data: bytes | memoryview) -> Iterator[Hit]:
        if self._short8:
            for match in _TOKEN8.finditer(data):
                for entry in self._short8.get(match.group().upper(), ()):
                    if self._boundaries_ok(data, match.start(), entry):
                        yield Hit(match.start(), entry.length, entry.category, entry.encoding)
        if self._short16:
            for match in _TOKEN16.finditer(data):
                token = match.group()
                for entry in self._short16.get(token[::2].upper(), ()):
                    if self._boundaries_ok(data, match.start(), entry):
                        yield Hit(match.start(), entry.length, entry.category, entry.encoding)
        if self._irregular_rx is not None:
            for match in self._irregular_rx.finditer(data):
                entry = self._irregular[match.group().upper()]
                if self._boundaries_ok(data, match.start(), entry):
                    yield Hit(match.start(), entry.length, entry.category, entry.encoding)


def merge_needles(*groups: Iterable[tuple[str, Category]]) -> dict[str, Category]:
    """Combine (text, category) pairs; a text harvested twice keeps the higher-priority kind."""
    rank = {category: i for i, category in enumerate(CATEGORY_PRIORITY)}
    merged: dict[str, Category] = {}
    for group in groups:
        for text, category in group:
            current = merged.get(text)
            if current is None or rank[category] < rank[current]:
                merged[text] = category
    return merged


# ----- reading datasets -------------------------------------------------------------------

TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
     "UR", "UT"}
)
BINARY_TEXTLIKE_VRS = frozenset({"OB", "OW", "UN", "OB or OW", "US or OW", "US or SS or OW"})


@dataclass(frozen=True)
class ElementView:
    """One element as read, without touching the dataset it belongs to.

    ``raw`` holds the value bytes as stored in the file when the element had not been converted
    yet (``None`` otherwise); ``value_tell`` the file offset of the value, when known.
    ``error`` is True when the value could not be converted (``value`` is then ``None``).
    """

    tag: int
    vr: str
    keyword: str
    value: Any
    raw: bytes | None
    value_tell: int | None
    undefined_length: bool
    error: bool = False


def character_set(ds: Dataset, inherited: str | list[str] | None) -> str | list[str] | None:
    """The encodings to decode ``ds``'s text with: its own SpecificCharacterSet, else inherited."""
    item = ds.get_item(0x00080005)
    if item is None:
        return inherited
    try:
        element = (
            convert_raw_data_element(item, encoding=None, ds=None)
            if isinstance(item, RawDataElement)
            else item
        )
        value = element.value
        terms = [value] if isinstance(value, str) else list(value or [])
        return convert_encodings(terms) if terms else inherited
    except Exception:  # a broken charset value: decode with the inherited one
        return inherited


def keyword_of(tag: int) -> str:
    """The dictionary keyword of a tag (repeating groups such as 60xx included), else ``""``."""
    if (tag >> 16) & 1:
        return ""
    try:
        return dictionary_keyword(tag)
    except KeyError:
        return ""


def view_element(ds: Dataset, tag: int, encoding: str | list[str] | None) -> ElementView | None:
    """Read one element of ``ds`` without storing the conversion in ``ds``."""
    item = ds.get_item(tag)
    if item is None:
        return None
    if isinstance(item, RawDataElement):
        raw = item.value if isinstance(item.value, bytes) else None
        undefined = item.length == 0xFFFFFFFF
        try:
            element = convert_raw_data_element(item, encoding=encoding, ds=ds)
        except Exception:
            return ElementView(
                tag, str(item.VR or "UN"), "", None, raw, item.value_tell, undefined, error=True
            )
        return ElementView(
            tag, str(element.VR), keyword_of(tag), element.value, raw, item.value_tell, undefined
        )
    if isinstance(item, DataElement):
        return ElementView(
            tag,
            str(item.VR),
            keyword_of(tag),
            item.value,
            None,
            item.file_tell,
            item.is_undefined_length,
        )
    return None


def iter_elements(ds: Dataset, encoding: str | list[str] | None) -> Iterator[ElementView]:
    """Every element of ``ds`` (one level), in tag order, without converting ``ds``."""
    for tag in sorted(int(t) for t in ds.keys()):
        view = view_element(ds, tag, encoding)
        if view is not None:
            yield view


def text_of(value: Any) -> str:
    """A converted text value as one string (multiple values joined with a backslash)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str | PersonName):
        return str(value)
    if isinstance(value, Iterable):
        return "\\".join(text_of(v) for v in value)
    return str(value)
