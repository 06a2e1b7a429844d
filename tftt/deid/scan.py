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

Long needles are found without a regular expression, at about the speed of one
``bytes.translate`` (see :func:`_long_candidates`): bytes are classified, offsets where a run of
needle characters starts are marked with a few vectorised ANDs, the first 4 bytes (8 for UTF-16)
at those offsets are compared with the needles' prefixes, and only exact prefix hits are
compared in Python. Short needles are whole tokens, so the buffer is split into tokens by one
regular expression and each token looked up in a dict.

:func:`iter_elements` reads a dataset's elements without converting (changing) the dataset: a
pydicom ``Dataset`` or a :class:`~tftt.deid.raw_dataset.RawDataset`, whose elements it views
exactly as it views pydicom's reading of the same bytes.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import Any, cast

import numpy as np
from pydicom.charset import convert_encodings, decode_bytes, default_encoding
from pydicom.datadict import dictionary_keyword, dictionary_VR
from pydicom.dataelem import (
    DataElement,
    RawDataElement,
    convert_raw_data_element,
    empty_value_for_VR,
)
from pydicom.dataset import Dataset
from pydicom.filereader import read_deferred_data_element
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

from tftt.deid import literal_search
from tftt.deid.raw_dataset import RawDataset, RawElement

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

_HAS_ASCII_LETTER = re.compile(rb"[A-Za-z]")
_ACCELERATE_AFTER = 16
"""Sets of the same shared needles compile their finder on this search (about the 6th to 8th
file of a series; see :meth:`NeedleSet.accelerated`)."""
_SPLIT_MIN_BYTES = 8 * 1024
"""Data at least this large is searched split (shared part and UIDs apart, each at C speed)."""

_CHUNK = 1 << 18
"""Bytes per vectorised block. A block's temporaries (its classes and a dozen boolean arrays of
its size) stay under a few hundred kB: with 1 MB blocks glibc served each temporary with fresh
pages (an mmap, or a heap trimmed back after the last block), about 500 page faults per 512 kB
CT file, which doubled the time of a raw scan; at 256 kB they are reused (no fault measured)."""


def _forms(text: str, encoding: str) -> frozenset[bytes]:
    out: set[bytes] = set()
    for variant in (text.upper(), text.lower()):
        try:
            out.add(variant.encode(encoding).upper())
        except UnicodeEncodeError:
            continue
    return frozenset(out)


def _gather(window: np.ndarray, positions: np.ndarray, width: int) -> np.ndarray:
    """Little-endian integers of ``width`` bytes at ``positions`` of a uint8 array."""
    keys = np.zeros(positions.size, dtype=np.uint64)
    for i in range(width):
        byte = window[positions + i].astype(np.uint64)
        keys = np.bitwise_or(keys, np.left_shift(byte, np.uint64(8 * i)))
    return keys


class _LongIndex:
    """Long needle forms of one kind (8-bit text or UTF-16-LE), keyed by their first
    ``width`` bytes folded with ``| 0x20``."""

    def __init__(self, utf16: bool) -> None:
        self.utf16 = utf16
        self.width = 8 if utf16 else 4
        self.entries: dict[int, list[_Entry]] = {}
        self.keys = np.zeros(0, dtype=np.uint64)
        self.letters: set[int] = set()  # bytes (or UTF-16 low bytes) found in the forms
        self.highs: set[int] = {0}  # UTF-16 high bytes found in the forms

    def key_of(self, prefix: bytes) -> int:
        fold = 0x2020202020202020 if self.width == 8 else 0x20202020
        return int.from_bytes(prefix, "little") | fold

    def place(self, placement: _Placement) -> None:
        """Add one entry of a needle (see :func:`_placements`). Its keys are distinct and the
        entry is new to this index, so it is appended once per key."""
        entry = placement.entry
        entries = self.entries
        for key in placement.keys:
            bucket = entries.get(key)
            if bucket is None:
                entries[key] = [entry]
            else:
                bucket.append(entry)
        self.letters |= placement.letters
        self.highs |= placement.highs

    def freeze(self) -> None:
        self.keys = np.array(sorted(self.entries), dtype=np.uint64)
        self.letters |= {b | 0x20 for b in self.letters if 0x41 <= b <= 0x5A}

    def exact(self, window: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The ``starts`` whose folded first ``width`` bytes are a needle prefix."""
        keys = _gather(window, starts, self.width)
        keys |= np.uint64(0x2020202020202020 if self.width == 8 else 0x20202020)
        index = np.searchsorted(self.keys, keys)
        index[index == self.keys.size] = 0
        return starts[self.keys[index] == keys]


def _long_candidates(
    data: bytes | memoryview, long8: _LongIndex, long16: _LongIndex, classes: bytes
) -> tuple[list[int], list[int]]:
    """Offsets where a long 8-bit / UTF-16 needle form may start (exact prefix), ascending.

    One ``bytes.translate`` per block classifies every byte (bit 0: occurs in an 8-bit needle
    form; bit 1: occurs as the low byte of a UTF-16 needle character; bit 2: zero or the high
    byte of one). A few boolean ANDs then mark
    where 4 such bytes, or 6 such UTF-16 units, start; only those offsets have their prefix
    compared (vectorised) with the needles'. Pixel data rarely has such runs.
    """
    found8: list[int] = []
    found16: list[int] = []
    view = data if isinstance(data, bytes) else memoryview(data).cast("B")
    for start in range(0, len(data), _CHUNK):
        block = bytes(view[start : start + _CHUNK + 11])
        cls = np.frombuffer(block.translate(classes), dtype=np.uint8)
        window = np.frombuffer(block, dtype=np.uint8)
        n = cls.size
        if long8.keys.size and n >= 4:
            text = (cls & 1).view(bool)
            w2 = text[: n - 1] & text[1:n]  # p, p+1
            w4 = w2[: n - 3] & w2[2 : n - 1]  # p .. p+3
            del text, w2
            starts = np.flatnonzero(w4[:_CHUNK])
            del w4
            if starts.size:
                found8.extend(int(p) + start for p in long8.exact(window, starts))
        if long16.keys.size and n >= 12:
            unit = cls[1:n] >> 1
            unit &= cls[: n - 1]
            unit &= 2  # bit 1: a (low, high) UTF-16 unit starts at p
            units = unit.astype(bool)
            del unit
            u2 = units[: n - 3] & units[2 : n - 1]  # p, p+2
            del units
            u4 = u2[: n - 7] & u2[4 : n - 3]  # p .. p+6
            u6 = u4[: n - 11] & u2[8 : n - 3]  # p .. p+10
            del u2, u4
            starts = np.flatnonzero(u6[:_CHUNK])
            del u6
            if starts.size:
                found16.extend(int(p) + start for p in long16.exact(window, starts))
    return found8, found16


_LONG8, _LONG16, _SHORT8, _SHORT16, _IRREGULAR = range(5)


@dataclass(frozen=True)
class _Placement:
    """Where one entry of a needle goes in a :class:`NeedleSet`: ``kind`` names the index,
    ``keys`` are the index keys (prefix keys of a long index, tokens of a short one, forms of
    the irregular pattern), ``letters``/``highs`` the bytes a long index must classify."""

    kind: int
    entry: _Entry
    keys: tuple[Any, ...]
    letters: frozenset[int] = frozenset()
    highs: frozenset[int] = frozenset()


def _prefix_key(form: bytes, width: int) -> int:
    fold = 0x2020202020202020 if width == 8 else 0x20202020
    return int.from_bytes(form[:width], "little") | fold


_CACHED_NEEDLE = 512  # longer needles are not remembered: the cache stays small


def _placements(text: str, category: Category) -> tuple[_Placement, ...]:
    """The entries of one needle and where they go; the same for every set that holds it, so
    they are remembered (a batch repeats a patient's needles in every one of its files)."""
    if len(text) > _CACHED_NEEDLE:
        return _compute_placements(text, category)
    return _cached_placements(text, category)


def _compute_placements(text: str, category: Category) -> tuple[_Placement, ...]:
    out: list[_Placement] = []
    word = len(text) < LONG_NEEDLE
    encodings = ("latin-1", UTF16) if text.isascii() else (*ENCODINGS_8BIT, UTF16)
    for encoding in encodings:
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
                utf16 = encoding == UTF16
                width = 8 if utf16 else 4
                keys = tuple(dict.fromkeys(_prefix_key(form, width) for form in same))
                letters: set[int] = set()
                highs: set[int] = set()
                for form in same:
                    letters.update(form[::2] if utf16 else form)
                    if utf16:
                        highs.update(form[1::2])
                out.append(_Placement(_LONG16 if utf16 else _LONG8, entry, keys,
                                      frozenset(letters), frozenset(highs)))  # fmt: skip
            elif encoding == UTF16:
                if all(c.isascii() and c.isalnum() for c in text):
                    out.append(_Placement(_SHORT16, entry, tuple(form[::2] for form in same)))
            elif _TOKEN8.fullmatch(next(iter(same))):
                out.append(_Placement(_SHORT8, entry, tuple(same)))
            else:
                out.append(_Placement(_IRREGULAR, entry, tuple(same)))
    return tuple(out)


_cached_placements = lru_cache(maxsize=4096)(_compute_placements)


@dataclass
class _Indexes:
    """The lookup structures of a :class:`NeedleSet` (see there)."""

    count: int
    long8: _LongIndex
    long16: _LongIndex
    short8: dict[bytes, list[_Entry]]
    short16: dict[bytes, list[_Entry]]
    irregular: list[tuple[bytes, _Entry]]
    needles: frozenset[tuple[str, Category]] = frozenset()  # what a cached set was built from

    @classmethod
    def empty(cls) -> _Indexes:
        return cls(0, _LongIndex(utf16=False), _LongIndex(utf16=True), {}, {}, [])

    def copy(self) -> _Indexes:
        """A copy that can take more needles without changing this one."""
        longs = []
        for index in (self.long8, self.long16):
            twin = _LongIndex(utf16=index.utf16)
            twin.entries = {key: list(bucket) for key, bucket in index.entries.items()}
            twin.letters = set(index.letters)
            twin.highs = set(index.highs)
            longs.append(twin)
        return _Indexes(
            self.count, longs[0], longs[1],
            {token: list(bucket) for token, bucket in self.short8.items()},
            {token: list(bucket) for token, bucket in self.short16.items()},
            list(self.irregular),
        )  # fmt: skip

    def add(self, needles: Iterable[tuple[str, Category]]) -> None:
        longs = (self.long8, self.long16)
        for text, category in needles:
            self.count += 1
            for placement in _placements(text, category):
                kind, entry = placement.kind, placement.entry
                if kind <= _LONG16:
                    longs[kind].place(placement)
                elif kind == _SHORT16:
                    for token in placement.keys:
                        self.short16.setdefault(token, []).append(entry)
                elif kind == _SHORT8:
                    for token in placement.keys:
                        self.short8.setdefault(token, []).append(entry)
                else:
                    self.irregular.extend((form, entry) for form in placement.keys)


@lru_cache(maxsize=32)
def _shared_indexes(needles: frozenset[tuple[str, Category]]) -> _Indexes:
    """Indexes of the needles every file of a patient shares (names, IDs, dates, text).

    A batch harvests the same patient's needles from each of its files, and only a few UIDs
    differ from file to file; building the shared part once per patient saves most of the set's
    construction. The cache holds identifiers in this process's memory only, as the
    :class:`~tftt.deid.harvest.Identifiers` it serves do; it is never written anywhere. Callers
    copy before adding (see :meth:`_Indexes.copy`).
    """
    indexes = _Indexes.empty()
    indexes.add(sorted(needles))
    indexes.needles = needles
    return indexes


_Finder = tuple["literal_search.CaselessLiterals", tuple[tuple[int, "_Entry"], ...]]


class _Finders:
    """Compiled finders of shared sets and the searches counted towards them, by the sets'
    needles: bounded (:attr:`limit` finders, about 120 kB each for a CT patient's 500 forms;
    :attr:`count_limit` counts), in this process's memory only, like the sets themselves."""

    limit = 32
    count_limit = 512

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finders: OrderedDict[frozenset[tuple[str, Category]], _Finder] = OrderedDict()
        self._counts: dict[frozenset[tuple[str, Category]], int] = {}

    def get(self, needles: frozenset[tuple[str, Category]]) -> _Finder | None:
        with self._lock:
            found = self._finders.get(needles)
            if found is not None:
                self._finders.move_to_end(needles)
            return found

    def count(self, needles: frozenset[tuple[str, Category]]) -> bool:
        """Count one search of these needles; True when it is time to compile."""
        with self._lock:
            searches = self._counts.get(needles, 0) + 1
            if searches >= _ACCELERATE_AFTER:
                self._counts.pop(needles, None)
                return True
            if len(self._counts) >= self.count_limit and needles not in self._counts:
                self._counts.clear()
            self._counts[needles] = searches
            return False

    def put(self, needles: frozenset[tuple[str, Category]], finder: _Finder) -> None:
        with self._lock:
            self._finders[needles] = finder
            self._finders.move_to_end(needles)
            while len(self._finders) > self.limit:
                self._finders.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._finders.clear()
            self._counts.clear()


_FINDERS = _Finders()


@lru_cache(maxsize=32)
def _merged_shared(
    names: frozenset[str], ids: frozenset[str], dates: frozenset[str], emails: frozenset[str],
    phones: frozenset[str], texts: frozenset[str],
) -> tuple[frozenset[tuple[str, Category]], frozenset[str]]:
    """A patient's groups other than UIDs, merged (see :func:`merge_needles`): the shared
    needles of 3 characters or more, and every text merged. Held in this process's memory only,
    as the :class:`~tftt.deid.harvest.Identifiers` they come from."""
    merged = merge_needles(
        ((n, Category.NAME) for n in names), ((n, Category.ID) for n in ids),
        ((n, Category.DATE) for n in dates), ((n, Category.EMAIL) for n in emails),
        ((n, Category.PHONE) for n in phones), ((n, Category.TEXT) for n in texts),
    )  # fmt: skip
    shared = frozenset((text, category) for text, category in merged.items() if len(text) >= 3)
    return shared, frozenset(merged)


@lru_cache(maxsize=32)
def _shared_set(needles: frozenset[tuple[str, Category]]) -> NeedleSet:
    """A set of a patient's shared needles only (see :meth:`NeedleSet.shared_part`); searched
    for every file of the patient, so it may compile a C-speed finder (see
    :meth:`NeedleSet.accelerated`)."""
    shared = NeedleSet(dict(needles))
    shared._reusable = True
    return shared


class NeedleSet:
    """Harvested strings, ready to be found in bytes.

    ``needles`` maps a normalised string (upper case, single spaces) to its category. Strings
    shorter than 3 characters are ignored.
    """

    def __init__(self, needles: Mapping[str, Category]) -> None:
        usable = sorted((text, category) for text, category in needles.items() if len(text) >= 3)
        shared = frozenset(item for item in usable if item[1] is not Category.UID)
        own = [item for item in usable if item[1] is Category.UID]
        self._setup(shared, own)

    @classmethod
    def of_harvest(cls, *, names: frozenset[str], ids: frozenset[str], uids: frozenset[str],
                   dates: frozenset[str], emails: frozenset[str], phones: frozenset[str],
                   texts: frozenset[str]) -> NeedleSet:
        """The set of one file's harvest: ``NeedleSet(merge_needles(...))`` of its groups, built
        from the patient's shared groups as remembered from an earlier file (a batch's files of
        one patient differ only in their UIDs), unless a UID is also harvested as another kind
        (then merged afresh, as the priority between the two kinds decides)."""
        shared, shared_texts = _merged_shared(names, ids, dates, emails, phones, texts)
        if not shared_texts.isdisjoint(uids):
            return cls(merge_needles(
                ((n, Category.NAME) for n in names), ((n, Category.ID) for n in ids),
                ((n, Category.UID) for n in uids), ((n, Category.DATE) for n in dates),
                ((n, Category.EMAIL) for n in emails), ((n, Category.PHONE) for n in phones),
                ((n, Category.TEXT) for n in texts),
            ))  # fmt: skip
        needle_set = cls.__new__(cls)
        needle_set._setup(shared, sorted((uid, Category.UID) for uid in uids if len(uid) >= 3))
        return needle_set

    def _setup(self, shared: frozenset[tuple[str, Category]], own: list[tuple[str, Category]]) -> None:
        """``shared``: the needles of 3 characters or more that are not UIDs; ``own``: the UID
        needles of 3 characters or more, sorted."""
        cached = _shared_indexes(shared)
        self.shared_needles: frozenset[tuple[str, Category]] = cached.needles
        """The needles every file of the patient shares (all but the UIDs), as one object for
        as long as the patient's indexes stay cached: what a search by the shared part
        (:meth:`shared_part`) depends on, and a cheap key for remembering its results."""
        self.uids_long = all(len(text) >= LONG_NEEDLE for text, _category in own)
        """True when every UID needle is long, so :meth:`search_uids` finds all of them."""
        self._uid_entries: tuple[_Entry, ...] | None = None
        if all(text.isascii() and "\x00" not in text for text, _category in own):
            self._uid_entries = tuple(placement.entry for text, category in own
                                      for placement in _placements(text, category)
                                      if placement.kind <= _LONG16)  # fmt: skip
        self._uid_exact: literal_search.ExactLiterals | None = None
        self._uid_patterns: tuple[tuple[bytes, _Entry], ...] = ()  # (form, its entry)
        if self._uid_entries is not None and literal_search.EXACT_AVAILABLE and all(
            not _HAS_ASCII_LETTER.search(form) for entry in self._uid_entries for form in entry.forms
        ):
            # No ASCII letter in a UID form: ``bytes.upper`` cannot change a byte that matches
            # one, so the forms can be found byte for byte in the data itself.
            self._uid_patterns = tuple((form, entry) for entry in self._uid_entries for form in entry.forms)
        self._reusable = False  # set by _shared_set: searched for every file of a patient
        self._caseless: literal_search.CaselessLiterals | None = None
        self._caseless_entries: tuple[tuple[int, _Entry], ...] = ()
        self._caseless_failed = False
        self._count = cached.count + len(own)
        # The set's own indexes (the shared ones copied, plus the UIDs) are built on first use:
        # with a compiled shared part, searches go split (see _search_split) and never need them.
        self._cached = cached
        self._own = own
        self._built = False

    def _build(self) -> None:
        if self._built:
            return
        indexes = self._cached.copy()
        indexes.add(self._own)
        self._long8 = indexes.long8
        self._long16 = indexes.long16
        self._short8 = indexes.short8
        self._short16 = indexes.short16
        irregular = indexes.irregular
        self._long8.freeze()
        self._long16.freeze()
        classes = bytearray(256)
        for byte in self._long8.letters:
            classes[byte] |= 1
        for byte in self._long16.letters:
            classes[byte] |= 2
        for byte in self._long16.highs:
            classes[byte] |= 4
        self._classes = bytes(classes)
        self._irregular = {form: entry for form, entry in irregular}
        self._irregular_rx: re.Pattern[bytes] | None = None
        if irregular:
            alternatives = sorted({form for form, _ in irregular}, key=lambda f: (-len(f), f))
            pattern = b"|".join(re.escape(form) for form in alternatives)
            self._irregular_rx = re.compile(
                rb"(?<![A-Za-z0-9\x80-\xff])(?:" + pattern + rb")(?![A-Za-z0-9\x80-\xff])",
                re.IGNORECASE,
            )
        self._built = True

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
        split = self._search_split(data, short=short)
        if split is not None:
            return split
        hits = self._search_long(data, uids_only=False)
        if short:
            hits.extend(self._search_short(data))
        hits.sort(key=_hit_order)
        return hits

    def _search_split(self, data: bytes | memoryview, *, short: bool) -> list[Hit] | None:
        """:meth:`search`'s result as the shared part's hits merged with :meth:`search_uids`
        (see :meth:`shared_part`), when the shared part has a compiled finder and this set's
        UIDs can be found byte for byte: then a large buffer costs two C-speed scans instead of
        the vectorised one. None when that split does not apply, or a shared hit and a UID hit
        share an offset and length (their order would follow the whole set's indexes)."""
        if not self._uid_patterns or not self.uids_long or len(data) < _SPLIT_MIN_BYTES:
            return None
        shared = self.shared_part()
        if shared is self or not shared.accelerated():
            return None
        return merge_uid_hits(shared.search(data, short=short), self.search_uids(data))

    def accelerated(self) -> bool:
        """Whether long needles are found by a compiled finder (:mod:`~tftt.deid.literal_search`).

        Only a patient's shared set has one, once sets of its needles have been searched
        :data:`_ACCELERATE_AFTER` times (each call counts as a search): compiling costs 10-30
        ms, which only a set searched for many files wins back. The count and the finder are
        kept apart from the set (see :class:`_Finders`), so that a set dropped from the cache and
        built again, as happens when many patients' files alternate, is not compiled again."""
        if self._caseless is not None:
            return True
        if not self._reusable or self._caseless_failed or not literal_search.CASELESS_AVAILABLE:
            return False
        needles = self.shared_needles
        found = _FINDERS.get(needles)
        if found is None and not _FINDERS.count(needles):
            return False
        self._build()  # the compiled search ranks its hits by this set's buckets
        if found is None:
            found = self._compile()
            if found is None:
                self._caseless_failed = True
                return False
            _FINDERS.put(needles, found)
        self._caseless_entries = found[1]  # before the finder: another thread may search
        self._caseless = found[0]
        return True

    def _compile(self) -> _Finder | None:
        entries: list[tuple[int, _Entry]] = []
        patterns: list[bytes] = []
        for kind, index in enumerate((self._long8, self._long16)):
            unique = dict.fromkeys(entry for bucket in index.entries.values() for entry in bucket)
            for entry in unique:
                for form in sorted(entry.forms):
                    entries.append((kind, entry))
                    patterns.append(form)
        if not patterns:
            return None
        try:
            return literal_search.CaselessLiterals(patterns), tuple(entries)
        except Exception:  # the library refused the set: the vectorised scan stays, same results
            return None

    def _search_long_compiled(self, data: bytes | memoryview, *, uids_only: bool) -> list[Hit]:
        """:meth:`_search_long` by the compiled finder: the same hits in the same order.

        The finder reports every place a form occurs, ASCII case folded; each is confirmed by
        the same checks as the vectorised path, and the hits are ordered as that path lists
        them: 8-bit before UTF-16, then by offset, then by the entry's place in its prefix
        bucket."""
        assert self._caseless is not None
        indexes = (self._long8, self._long16)
        found: dict[tuple[int, int, int], Hit] = {}
        for pos, pattern in self._caseless.find(data):
            kind, entry = self._caseless_entries[pattern]
            if uids_only and not entry.uid:
                continue
            segment = bytes(data[pos : pos + entry.length]).upper()
            if segment not in entry.forms or not self._boundaries_ok(data, pos, entry):
                continue
            index = indexes[kind]
            rank = index.entries[index.key_of(bytes(data[pos : pos + index.width]))].index(entry)
            found[(kind, pos, rank)] = Hit(pos, entry.length, entry.category, entry.encoding)
        return [found[place] for place in sorted(found)]

    def search_uids(self, data: bytes | memoryview) -> list[Hit]:
        """The hits of :meth:`search` whose needle is a UID (``Category.UID``), in the same
        order; complete only when :attr:`uids_long` (short needles are not searched).

        A file has a few UIDs, mostly ASCII: their forms are then found with ``bytes.find`` in
        the upper-cased data (a match is a form equal to the upper-cased bytes, as in
        :meth:`search`), which in a few kB costs less than the vectorised scan's set-up. Hits
        of two such needles at one place are equal (two texts with the same upper case) or
        impossible (a Latin-1 form of ASCII has no zero byte, a UTF-16 form has), so sorting
        by offset and length gives :meth:`search`'s order.
        """
        if self._uid_entries is None:
            hits: list[Hit] | None = self._search_long(data, uids_only=True)
        elif self._uid_patterns and len(data) >= _SPLIT_MIN_BYTES:
            # Large data: one Aho-Corasick pass over the data as it is (see __init__).
            hits = self._search_uids_exact(data)
        else:
            hits = None
        if hits is None:
            assert self._uid_entries is not None
            hits = []
            upper = bytes(data).upper()
            for entry in self._uid_entries:
                for form in entry.forms:
                    pos = upper.find(form)
                    while pos >= 0:
                        if self._boundaries_ok(data, pos, entry):
                            hits.append(Hit(pos, entry.length, entry.category, entry.encoding))
                        pos = upper.find(form, pos + 1)
        hits.sort(key=_hit_order)
        return hits

    def _search_uids_exact(self, data: bytes | memoryview) -> list[Hit] | None:
        """:meth:`search_uids`'s hits before sorting, by one Aho-Corasick pass over the data as it
        is (see ``_uid_patterns``); None if the library fails (the caller then finds them with
        ``bytes.find``, the same hits)."""
        try:
            if self._uid_exact is None:
                self._uid_exact = literal_search.ExactLiterals([form for form, _ in self._uid_patterns])
            found = self._uid_exact.find(data)
        except literal_search.LiteralSearchError:
            self._uid_patterns = ()
            return None
        hits = []
        for pos, pattern in found:
            entry = self._uid_patterns[pattern][1]
            if self._boundaries_ok(data, pos, entry):
                hits.append(Hit(pos, entry.length, entry.category, entry.encoding))
        return hits

    def _search_long(self, data: bytes | memoryview, *, uids_only: bool) -> list[Hit]:
        if self.accelerated():
            try:
                return self._search_long_compiled(data, uids_only=uids_only)
            except literal_search.LiteralSearchError:
                # The library failed at run time: the vectorised scan finds the same, from now on.
                self._caseless, self._caseless_failed = None, True
        self._build()
        hits: list[Hit] = []
        found8, found16 = _long_candidates(data, self._long8, self._long16, self._classes)
        for index, positions in ((self._long8, found8), (self._long16, found16)):
            width = index.width
            for pos in positions:
                key = index.key_of(bytes(data[pos : pos + width]))
                for entry in index.entries.get(key, ()):
                    if uids_only and not entry.uid:
                        continue
                    segment = bytes(data[pos : pos + entry.length]).upper()
                    if segment in entry.forms and self._boundaries_ok(data, pos, entry):
                        hits.append(Hit(pos, entry.length, entry.category, entry.encoding))
        return hits

    def shared_part(self) -> NeedleSet:
        """A set of :attr:`shared_needles` alone.

        When :attr:`uids_long`, what it finds in any data is exactly what :meth:`search` finds
        there apart from the UID hits, in the same order: each long or token entry is searched
        on its own, with the same entries in the same order; only the pattern of irregular
        short needles (non-overlapping matches of all of them at once) would mix in short UIDs.
        So :meth:`search` is this set's hits merged with :meth:`search_uids` by offset and
        length, unless a hit of each has the same offset and length (their order then follows
        the order of the indexes: search the whole set instead)."""
        return _shared_set(self.shared_needles)

    @cached_property
    def separable(self) -> bool:
        """Whether no needle form starts with a zero byte or holds two zero bytes in a row.

        Then no match can start in, or reach across, the four zero bytes that separate the
        pieces a verifier searches in one buffer: a match starting in a piece ends at most one
        byte into the separator after it, the boundary checks around it read at most four
        bytes on either side (all zeros there, which every check treats as the edge of the
        data), and the token and e-mail patterns cannot start on a zero byte. So each piece's
        matches depend only on its own bytes and on whether a separator precedes and follows
        it, whatever the other pieces hold. Forms of ordinary text qualify; the UTF-16 form of
        a character such as U+0100 (bytes 00 01) does not.
        """
        self._build()
        entries = [entry for index in (self._long8, self._long16)
                   for bucket in index.entries.values() for entry in bucket]  # fmt: skip
        for table in (self._short8, self._short16):
            entries.extend(entry for bucket in table.values() for entry in bucket)
        entries.extend(self._irregular.values())
        forms = {form for entry in entries for form in entry.forms} | set(self._irregular)
        return not any(form[:1] == b"\x00" or b"\x00\x00" in form for form in forms)

    def _search_short(self, data: bytes | memoryview) -> Iterator[Hit]:
        self._build()
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


def _hit_order(hit: Hit) -> tuple[int, int]:
    return hit.offset, hit.length


def merge_uid_hits(hits: list[Hit], uid_hits: list[Hit]) -> list[Hit] | None:
    """A set's :meth:`~NeedleSet.search` result from its shared part's hits (``hits``, in their
    order; extended in place) and :meth:`~NeedleSet.search_uids`'s: merged by offset and length.
    ``None`` when a hit of each has the same offset and length: their order would then follow
    the whole set's indexes, so the whole set must search."""
    if uid_hits:
        places = {(hit.offset, hit.length) for hit in hits}
        if any((hit.offset, hit.length) in places for hit in uid_hits):
            return None
        hits.extend(uid_hits)
        hits.sort(key=_hit_order)
    return hits


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
    yet (``None`` otherwise); ``value_tell`` the file offset of the value and ``length`` its
    length in the file, when known. ``deferred`` tells that a deferred value was left unread
    (``value`` is then ``None``). ``error`` is True when the value could not be read or
    converted (``value`` is then ``None``).
    """

    tag: int
    vr: str
    keyword: str
    value: Any
    raw: bytes | None
    value_tell: int | None
    undefined_length: bool
    length: int | None = None
    deferred: bool = False
    error: bool = False


def _element_map(ds: Dataset) -> dict[Any, Any] | None:
    """The dict in which pydicom 3.0 keeps ``ds``'s elements (``Dataset._dict``: BaseTag keys,
    RawDataElement or DataElement values), or ``None`` when that layout is not there.

    Reading it directly saves a ``Tag()`` conversion, a ``get_item`` call and a Python-level
    ``BaseTag.__eq__`` per element and lookup, much of the time of a harvest. It is a private
    attribute: if a pydicom release changes it, the plain path (``keys()`` and ``get_item``)
    is taken, and tests/deid/test_scan.py fails, since it asserts that the fast path is taken
    and gives the same views as the plain one.
    """
    elements = ds.__dict__.get("_dict")
    return elements if type(elements) is dict else None


def _get_item(ds: Dataset, tag: int) -> Any:
    """``ds.get_item(tag, keep_deferred=True)``: the element as stored, never read or converted."""
    elements = _element_map(ds)
    if elements is None:
        return ds.get_item(tag, keep_deferred=True)
    return elements.get(tag)


def _sorted_items(ds: Dataset) -> list[tuple[int, Any]]:
    """``(tag, element as stored)`` for every element of ``ds``, in tag order."""
    elements = _element_map(ds)
    if elements is None:
        return [(tag, ds.get_item(tag, keep_deferred=True)) for tag in sorted(map(int, ds.keys()))]
    return sorted([(int(tag), item) for tag, item in elements.items()], key=_first)


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


def character_set(ds: Dataset | RawDataset, inherited: str | list[str] | None) -> str | list[str] | None:
    """The encodings to decode ``ds``'s text with: its own SpecificCharacterSet, else inherited."""
    if isinstance(ds, RawDataset):
        node = ds.elements.get(0x00080005)
        item = None if node is None else _raw_data_element(ds, node)
    else:
        item = _get_item(ds, 0x00080005)
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


@lru_cache(maxsize=8192)
def keyword_of(tag: int) -> str:
    """The dictionary keyword of a tag (repeating groups such as 60xx included), else ``""``."""
    if (tag >> 16) & 1:
        return ""
    try:
        return dictionary_keyword(tag)
    except KeyError:
        return ""


def view_element(
    ds: Dataset | RawDataset, tag: int, encoding: str | list[str] | None, *, load_deferred: bool = True
) -> ElementView | None:
    """Read one element of ``ds`` without storing the conversion in ``ds``.

    A value whose reading was deferred (``dcmread(defer_size=...)``) is read from the dataset's
    source, unless ``load_deferred`` is False.
    """
    if isinstance(ds, RawDataset):
        node = ds.elements.get(tag)
        return None if node is None else _view_node(ds, node, encoding, load_deferred)
    item = _get_item(ds, tag)
    if item is None:
        return None
    return _view_item(ds, tag, item, encoding, load_deferred)


def _view_item(
    ds: Dataset, tag: int, item: Any, encoding: str | list[str] | None, load_deferred: bool
) -> ElementView | None:
    """The view of ``item``, the element of ``ds`` stored under ``tag`` (see view_element)."""
    keyword = keyword_of(tag)
    if isinstance(item, RawDataElement):
        undefined = item.length == 0xFFFFFFFF
        common: dict[str, Any] = {"value_tell": item.value_tell, "undefined_length": undefined,
                  "length": None if undefined else item.length}  # fmt: skip
        vr = str(item.VR or "UN")
        if item.value is None and item.length != 0:
            if not load_deferred:
                return ElementView(tag, vr, keyword, None, None, deferred=True, **common)
            try:
                source = ds.filename or ds.buffer
                item = read_deferred_data_element(ds.fileobj_type, source, ds.timestamp, item)
            except Exception:
                return ElementView(tag, vr, keyword, None, None, error=True, **common)
        if isinstance(item.value, bytes):
            vr_known = str(item.VR) if item.VR is not None else _implicit_vr(tag)
            if vr_known is not None and vr_known != "SQ":
                return _view_raw_value(item.value, tag, keyword, encoding, vr_known,
                                       item.value_tell, item.length)  # fmt: skip
        raw = item.value if isinstance(item.value, bytes) else None
        try:
            element = convert_raw_data_element(item, encoding=encoding, ds=ds)
        except Exception:
            return ElementView(tag, vr, keyword, None, raw, error=True, **common)
        return ElementView(tag, str(element.VR), keyword, element.value, raw, **common)
    if isinstance(item, DataElement):
        return ElementView(
            tag,
            str(item.VR),
            keyword,
            item.value,
            None,
            value_tell=item.file_tell,
            undefined_length=item.is_undefined_length,
        )
    return None


def stored_items(ds: Dataset) -> list[tuple[int, Any]]:
    """``(tag, element as stored)`` for every element of ``ds``, in tag order, none read or
    converted: for a caller that remembers its decisions by what the file holds
    (:func:`stored_value`) and views an element (:func:`view_element`) only when it must."""
    return _sorted_items(ds)


def stored_value(item: Any) -> tuple[str | None, bytes] | None:
    """``(VR as read, value bytes)`` of an element as stored, when its :func:`view_element` view
    follows from these, its tag and the encoding alone (the fast path of :func:`_view_raw_value`:
    nothing else of the file is read); else ``None`` (a converted element, a deferred value, a
    sequence)."""
    if not isinstance(item, RawDataElement) or type(item.value) is not bytes:
        return None
    vr = str(item.VR) if item.VR is not None else _implicit_vr(item.tag)
    if vr is None or vr == "SQ":
        return None
    return item.VR, item.value


_DECODED_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_ASCII_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
_PN_DELIMITERS = {0x5C, 0x3D, 0x5E}
_DELIMITERS = {0x5C}


def _implicit_vr(tag: int) -> str | None:
    """The VR of an implicit-VR element from the dictionary: ``None`` for a sequence (pydicom
    parses those), ``UN`` for private data and unknown tags, ``OB`` for an ambiguous VR (the
    value then stays raw bytes)."""
    if (tag >> 16) & 1:
        return "LO" if 0x0010 <= (tag & 0xFFFF) <= 0x00FF else "UN"
    if tag & 0xFFFF == 0:
        return "UL"
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return "UN"
    if vr == "SQ":
        return None
    return "OB" if " or " in vr else vr


def _view_raw_value(
    raw: bytes,
    tag: int,
    keyword: str,
    encoding: str | list[str] | None,
    vr: str,
    value_tell: int | None,
    length: int,
) -> ElementView:
    """Fast path for a value read from a file: text is decoded with the character set (no
    pydicom value objects, no validation warnings that would quote the value), numbers and
    binary stay as raw bytes. ``length`` is the length field as read (undefined: 0xFFFFFFFF)."""
    undefined = length == 0xFFFFFFFF
    value: Any = raw
    try:
        if vr in _DECODED_TEXT_VRS:
            encodings = [encoding] if isinstance(encoding, str) else list(encoding or [])
            delimiters = _PN_DELIMITERS if vr == "PN" else _DELIMITERS
            value = decode_bytes(raw, encodings or [default_encoding], delimiters)
            value = value.rstrip("\x00 ")
        elif vr in _ASCII_TEXT_VRS:
            value = raw.decode("latin-1").rstrip("\x00 ")
    except Exception:
        return ElementView(tag, vr, keyword, None, raw, value_tell, undefined,
                           None if undefined else length, error=True)  # fmt: skip
    return ElementView(
        tag, vr, keyword, value, raw, value_tell, undefined, None if undefined else length
    )  # fmt: skip


def _raw_data_element(ds: RawDataset, node: RawElement) -> RawDataElement:
    """The RawDataElement pydicom's reading of the same bytes holds for ``node`` (loaded if
    deferred): the value as written, and for an empty value what pydicom stores for the VR
    (``b""`` for text and sequences, ``None`` for the others)."""
    value: bytes | None
    if node.length == 0:
        value = cast(bytes | None, empty_value_for_VR(node.vr, raw=True))
    else:
        value = ds.value_bytes(node)
    return RawDataElement(BaseTag(node.tag), node.vr, node.length, value, node.value_tell,
                          False, True)  # fmt: skip


def _view_node(
    ds: RawDataset, node: RawElement, encoding: str | list[str] | None, load_deferred: bool
) -> ElementView:
    """The view of an element read by :mod:`tftt.deid.raw_dataset`: the same as
    :func:`_view_item` gives for the element pydicom's ``dcmread`` holds for the same bytes (a
    DataElement for a converted element or a sequence of undefined length, else a
    RawDataElement), with the sequence items as RawDatasets."""
    tag, vr = node.tag, node.vr
    keyword = keyword_of(tag)
    undefined = node.length == 0xFFFFFFFF
    if node.converted:
        element = convert_raw_data_element(_raw_data_element(ds, node), encoding=default_encoding)
        return ElementView(tag, str(element.VR), keyword, element.value, None,
                           value_tell=node.value_tell, undefined_length=False)  # fmt: skip
    if vr == "SQ" and undefined:
        return ElementView(tag, vr, keyword, list(node.items or ()), None,
                           value_tell=node.value_tell, undefined_length=True)  # fmt: skip
    length = None if undefined else node.length
    if node.deferred and not load_deferred:
        return ElementView(tag, vr, keyword, None, None, node.value_tell, undefined, length,
                           deferred=True)  # fmt: skip
    if vr == "SQ":
        raw = ds.value_bytes(node)
        items = list(node.items or ()) if node.length else []
        return ElementView(tag, vr, keyword, items, raw, node.value_tell, False, length)
    if node.length:
        return _view_raw_value(ds.value_bytes(node), tag, keyword, encoding, vr,
                               node.value_tell, node.length)  # fmt: skip
    item = _raw_data_element(ds, node)
    if isinstance(item.value, bytes):  # empty text
        return _view_raw_value(item.value, tag, keyword, encoding, vr, node.value_tell, 0)
    try:  # an empty value of a VR without text: pydicom's empty value for it
        element = convert_raw_data_element(item, encoding=encoding, ds=None)
    except Exception:
        return ElementView(tag, vr, keyword, None, None, node.value_tell, undefined, length,
                           error=True)  # fmt: skip
    return ElementView(tag, str(element.VR), keyword, element.value, None, node.value_tell,
                       undefined, length)  # fmt: skip


def view_node(
    ds: RawDataset, node: RawElement, encoding: str | list[str] | None, *, load_deferred: bool = True
) -> ElementView:
    """The view :func:`iter_elements` gives of ``node``, an element of ``ds`` (for a reader
    that looks at the nodes first, e.g. to skip the views of values it has judged before)."""
    return _view_node(ds, node, encoding, load_deferred)


def iter_elements(
    ds: Dataset | RawDataset,
    encoding: str | list[str] | None,
    *,
    defer: frozenset[int] = frozenset(),
    skip_public_vrs: frozenset[str] = frozenset(),
) -> Iterator[ElementView]:
    """Every element of ``ds`` (one level), in tag order, without converting ``ds``.

    Deferred values of the tags in ``defer`` are left unread. Public (even-group) elements whose
    explicit VR is in ``skip_public_vrs`` are not viewed at all.
    """
    if isinstance(ds, RawDataset):
        for node in ds.elements.values():  # in tag order
            if skip_public_vrs and not (node.tag >> 16) & 1 and node.vr in skip_public_vrs:
                continue
            yield _view_node(ds, node, encoding, node.tag not in defer)
        return
    for tag, item in _sorted_items(ds):
        if item is None:
            continue
        if skip_public_vrs and not (tag >> 16) & 1 and item.VR in skip_public_vrs:
            continue
        view = _view_item(ds, tag, item, encoding, tag not in defer)
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
