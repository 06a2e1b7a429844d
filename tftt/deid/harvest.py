"""Harvest, from an ORIGINAL object, the identifiers that must not survive de-identification.

:func:`harvest_identifiers` walks every element at every depth (sequences, private elements,
file meta) and, using the verifier's own reading of the profile (:mod:`tftt.deid.retention`),
collects:

- **person names**: every PN value that the profile does not keep, its family, given and middle
  components and the words in them (at least 3 characters, not in :data:`NAME_NOISE`), and the
  full name with the components in the usual orders and separators (``F G``, ``G F``,
  ``G M F``, ``F, G``, ``F^G`` ...). Names are never excused by other text.
- **identifiers**: values of the ID attributes in :data:`ID_KEYWORDS` (at least 3 characters,
  4 if all digits) and ID-like values (no space, a digit, at least 4 characters) of removed
  text attributes.
- **removed text**: every text value (LO, SH, LT, ST, UT, UC, AE, UR; printable runs of
  private or unknown OB/OW/UN values) of an attribute that the profile removes or replaces
  (X, Z, D, U and the combined codes, everything inside a removed or replaced sequence, private
  attributes, attributes neither in the table nor in the keep list): the whole value (4 to 256
  characters) when it has a word that could not legitimately remain, and its *distinctive*
  words: at least 4 characters (6 if all digits, so that years are never harvested), not in
  :data:`COMMON_WORDS`, not in the descriptor vocabulary, and not a word of any text the profile
  keeps (a word the output may legitimately hold cannot prove a leak). Cleaned (C) text under the
  vocabulary policy gives its out-of-vocabulary distinctive words; under the ``checked`` policy
  it counts as kept. A whole value that is a number (vendors copy measurements into private
  tags) is not harvested unless it is an integer of 6+ digits; one shaped like a UID goes to the
  UIDs, one that is a date to the dates. Pixel data and standard binary values (LUTs, ICC
  profiles) are never read as text.
- **dates** in every common written form (:func:`date_forms`), from every DA and DT value
  (except those the profile keeps as they are) and from dates written inside removed or cleaned
  text: ``YYYYMMDD``, ``YYYY-MM-DD``, ``YYYY.MM.DD``, ``YYYY/MM/DD``, ``MM/DD/YYYY``,
  ``DD/MM/YYYY``, ``DD.MM.YYYY``, ``14 Mar 1952``, ``March 14, 1952``, ``14-MAR-1952`` and a few
  more, never the bare year (years are kept). The birth date is always harvested. Under a
  ``year`` date policy, a 1 January date other than the birth date is not harvested, because the
  output legitimately writes ``YYYY0101``.
- **UIDs**: every UI value (also in private elements and MediaStorageSOPInstanceUID) that is not
  a well-known UID of pydicom's dictionary and not held by a kept attribute (SOP class UIDs of a
  keep-list attribute), when the profile remaps UIDs.
- **e-mail addresses and phone numbers** written in removed or cleaned text.

Attributes that the profile keeps (K by an option such as Retain Device Identity, Retain
Institution Identity or Retain UIDs, the keep list, safe private tags) are not harvested: the
option-to-attribute mapping is read from the option columns of the table.

Given a :class:`~tftt.deid.memo.Memo` (one per batch), the harvest remembers what each element
added and what each removed or cleaned value gave, keyed by everything that result depends on, and
replays it in the next files of a series, which then cost about a third (the keys are explained
at ``_Collector._walk_remembered`` and ``_assemble``). The result is the same without one.

The result, :class:`Identifiers`, holds PHI: never log, persist or pickle it across processes.
Its ``repr`` shows counts only.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, lru_cache
from typing import Any, NamedTuple, TypeVar, cast

from pydicom.dataset import Dataset
from pydicom.uid import UID_dictionary

from tftt.deid.dataset_reader import SequenceBytes
from tftt.deid.memo import Memo
from tftt.deid.retention import (
    DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
    Presence,
    RuleView,
    is_private,
    is_private_creator,
    rule_view,
)
from tftt.deid.rules import (
    CID_7050,
    Action,
    ConfidentialityTable,
    DatePolicy,
    DescriptorPolicy,
    KeepList,
    Profile,
    SafePrivateTags,
    Vocabulary,
    load_keep_list,
    load_vocabulary,
)
from tftt.deid.scan import (
    BINARY_TEXTLIKE_VRS,
    ElementView,
    NeedleSet,
    character_set,
    iter_elements,
    stored_items,
    stored_value,
    text_of,
    view_element,
)

# Name components that identify nobody (titles, particles, placeholders).
NAME_NOISE = frozenset(
    {
        "DR", "MD", "PHD", "MR", "MRS", "MS", "MISS", "JR", "SR", "II", "III", "IV", "DDS",
        "RN", "PROF", "THE", "VAN", "VON", "DER", "DEN", "DEL", "DE", "LA", "LE", "DA", "DI",
        "DOS", "DAS", "DU", "ANON", "ANONYMOUS", "ANONYMIZED", "UNKNOWN", "NONE", "NULL",
        "REMOVED", "PATIENT",
    }
)  # fmt: skip

# Words never harvested from removed text: dummy values an engine writes, and a few English
# function words. The kept text of the original and the descriptor vocabulary are added per
# object; that is where most legitimate words come from.
COMMON_WORDS = frozenset(
    {
        "ANON", "ANONYMOUS", "ANONYMIZED", "ANONYMISED", "REMOVED", "DUMMY", "UNKNOWN",
        "REDACTED", "DEIDENTIFIED", "IDENTIFIED", "NONE", "NULL", "TFTT", "MODIFIED",
        "UNMODIFIED", "PSEUDONYM", "WITH", "WITHOUT", "FROM", "THAT",
        "THIS", "THESE", "THOSE", "WERE", "WILL", "HAVE", "BEEN", "THAN", "THEN", "THEY",
        "THEIR", "THERE", "WHICH", "WHEN", "WHERE", "WHAT", "ALSO", "INTO", "ONTO", "OVER",
        "UNDER", "ABOUT", "AFTER", "BEFORE", "PLEASE", "NOTE", "SEEN", "SOME", "SUCH", "EACH",
        "ONLY", "VERY", "MORE", "MOST", "LESS", "NEAR", "UPON", "WITHIN",
        "JANUARY", "FEBRUARY", "MARCH", "APRIL", "JUNE", "JULY", "AUGUST", "SEPTEMBER",
        "OCTOBER", "NOVEMBER", "DECEMBER", "SEPT", "MONDAY", "TUESDAY", "WEDNESDAY",
        "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY",
    }
)  # fmt: skip

# Attributes whose values are identifiers (harvested from 3 characters, 4 if all digits).
ID_KEYWORDS = frozenset(
    {
        "PatientID", "OtherPatientIDs", "IssuerOfPatientID", "AccessionNumber", "StudyID",
        "AdmissionID", "MedicalRecordLocator", "RequestedProcedureID",
        "ScheduledProcedureStepID", "PerformedProcedureStepID",
        "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest",
        "ServiceEpisodeID", "LocalNamespaceEntityID", "UniversalEntityID",
        "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID", "DeviceSerialNumber",
        "DeviceID", "DetectorID", "PatientInsurancePlanCodeSequence", "CassetteID", "PlateID",
    }
)  # fmt: skip

BIRTH_DATE_TAG = 0x00100030
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
_FILE_META_IDENTITY = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028)
_TEXT_VRS = frozenset({"AE", "LO", "LT", "SH", "ST", "UC", "UR", "UT"})
#: Public numbers: collect() takes nothing from them (only private or UN blobs are read as text),
#: so the walk does not even view them.
_NO_IDENTIFIER_VRS = frozenset({"US", "SS", "UL", "SL", "AT", "FL", "FD", "OF", "OD", "OL", "OV", "SV", "UV",
                                "DS", "IS"})
_MAX_WHOLE_VALUE = 256

_MONTHS = (
    "JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST", "SEPTEMBER",
    "OCTOBER", "NOVEMBER", "DECEMBER",
)  # fmt: skip
_MONTH_BY_NAME = {name[:3]: i + 1 for i, name in enumerate(_MONTHS)} | {"SEPT": 9}

_WORD = re.compile(r"[^\W_]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}(?![\w])"
)
_DATE_NUMERIC_YMD = re.compile(r"(?<!\d)(\d{4})([-./]?)(\d{2})\2(\d{2})(?!\d)")
_DATE_NUMERIC_XXY = re.compile(r"(?<!\d)(\d{1,2})([-./])(\d{1,2})\2(\d{4})(?!\d)")
_DATE_DAY_MONTH = re.compile(
    r"(?<![A-Za-z0-9])(\d{1,2})(?:st|nd|rd|th)?[\s-]+([A-Za-z]{3,9})\.?[\s,-]+(\d{4})(?!\d)",
    re.IGNORECASE,
)
_DATE_MONTH_DAY = re.compile(
    r"(?<![A-Za-z])([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})(?!\d)",
    re.IGNORECASE,
)
_UID_SHAPE = re.compile(r"[0-9]+(?:\.[0-9]+){3,}")
_NUMBER_SHAPE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:E[+-]?[0-9]+)?")
_PRINTABLE8 = re.compile(rb"[\x20-\x7e\xa0-\xff]{4,}")
_PRINTABLE16 = re.compile(rb"(?:[\x20-\x7e]\x00){4,}")


def normalise(text: str) -> str:
    """Upper case, runs of white space as one space, trimmed."""
    return " ".join(text.upper().split())


# ----- dates ------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def date_forms(day: date) -> frozenset[str]:
    """Every written form of ``day`` that verification looks for (upper case); remembered, as a
    batch harvests the same few days from every file of a patient."""
    y, m, d = day.year, day.month, day.day
    month = _MONTHS[m - 1]
    mon = month[:3]
    forms = {
        f"{y:04d}{m:02d}{d:02d}",
        f"{y:04d}-{m:02d}-{d:02d}",
        f"{y:04d}.{m:02d}.{d:02d}",
        f"{y:04d}/{m:02d}/{d:02d}",
        f"{m:02d}/{d:02d}/{y:04d}",
        f"{d:02d}/{m:02d}/{y:04d}",
        f"{d:02d}.{m:02d}.{y:04d}",
        f"{m:02d}-{d:02d}-{y:04d}",
        f"{d:02d}-{m:02d}-{y:04d}",
        f"{m}/{d}/{y:04d}",
        f"{d}/{m}/{y:04d}",
        f"{d}.{m}.{y:04d}",
        f"{d} {mon} {y:04d}",
        f"{d:02d} {mon} {y:04d}",
        f"{d} {month} {y:04d}",
        f"{d:02d} {month} {y:04d}",
        f"{d}-{mon}-{y:04d}",
        f"{d:02d}-{mon}-{y:04d}",
        f"{month} {d}, {y:04d}",
        f"{month} {d} {y:04d}",
        f"{mon} {d}, {y:04d}",
        f"{mon} {d} {y:04d}",
        f"{mon}. {d}, {y:04d}",
    }
    return frozenset(forms)


def _valid_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def dates_in_text(text: str) -> set[date]:
    """Dates written in free text, in any of the recognised forms (both readings of an
    ambiguous DD/MM or MM/DD)."""
    return set(_dates_in_text(text))


def _dates_in_text(text: str) -> frozenset[date]:
    if len(text) > _CACHED_TEXT:
        return _compute_dates_in_text(text)
    return _cached_dates_in_text(text)


def _compute_dates_in_text(text: str) -> frozenset[date]:
    found: set[date] = set()
    for match in _DATE_NUMERIC_YMD.finditer(text):
        day = _valid_date(int(match.group(1)), int(match.group(3)), int(match.group(4)))
        if day is not None and 1800 <= day.year <= 2200:
            found.add(day)
    for match in _DATE_NUMERIC_XXY.finditer(text):
        a, b, y = int(match.group(1)), int(match.group(3)), int(match.group(4))
        for m, d in ((a, b), (b, a)):
            day = _valid_date(y, m, d)
            if day is not None:
                found.add(day)
    for match in _DATE_DAY_MONTH.finditer(text):
        month = _month(match.group(2))
        if month is not None:
            day = _valid_date(int(match.group(3)), month, int(match.group(1)))
            if day is not None:
                found.add(day)
    for match in _DATE_MONTH_DAY.finditer(text):
        month = _month(match.group(1))
        if month is not None:
            day = _valid_date(int(match.group(3)), month, int(match.group(2)))
            if day is not None:
                found.add(day)
    return frozenset(found)


# Remembered per text (short texts only): the same values recur in every file of a series.
_cached_dates_in_text = lru_cache(maxsize=4096)(_compute_dates_in_text)


def _month(word: str) -> int | None:
    """1-12 for an English month name or its abbreviation ("Mar", "Sept", "MARCH")."""
    upper = word.upper()
    full = [i + 1 for i, name in enumerate(_MONTHS) if name.startswith(upper)]
    if len(upper) >= 3 and len(full) == 1:
        return full[0]
    return _MONTH_BY_NAME.get(upper)


def _dicom_date(value: str) -> date | None:
    digits = value.strip().replace(".", "")
    if len(digits) >= 8 and digits[:8].isdigit():
        return _valid_date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    return None


# ----- names, phones, words ---------------------------------------------------------------


def name_needles(value: str) -> set[str]:
    """Needles for one PN value: components, their words, full-name orderings."""
    return set(_name_needles(value))


_CACHED_TEXT = 512  # longer texts are not remembered: the caches stay small whatever the data


def _name_needles(value: str) -> frozenset[str]:
    if len(value) > _CACHED_TEXT:
        return _compute_name_needles(value)
    return _cached_name_needles(value)


def _compute_name_needles(value: str) -> frozenset[str]:
    out: set[str] = set()

    def usable(text: str) -> bool:
        return len(text) >= 3 and text not in NAME_NOISE

    for group in value.split("="):
        if not group.strip():
            continue
        components = [normalise(c) for c in group.split("^")]
        family, given, middle = [*components, "", "", ""][:3]
        for part in (family, given, middle):
            if usable(part):
                out.add(part)
            for word in re.split(r"[\s\-'.,]+", part):
                if usable(word):
                    out.add(word)
        orders = ((family, given), (given, family), (given, middle, family),
                  (family, given, middle), (given, family, middle))  # fmt: skip
        for order in orders:
            parts = [p for p in order if p]
            if len(parts) < 2:
                continue
            for separator in (" ", ", ", ",", "^"):
                joined = separator.join(parts)
                if usable(joined):
                    out.add(joined)
        whole = normalise(group)
        if usable(whole) and whole.strip("^ "):
            out.add(whole)
    return frozenset(out)


# Remembered per value (short values only): a patient's names recur in every one of its files.
_cached_name_needles = lru_cache(maxsize=4096)(_compute_name_needles)


def phone_needles(number: str) -> set[str]:
    """The phone number as written, as bare digits and, for 10 digits, in the usual layouts."""
    digits = re.sub(r"\D", "", number)
    out = {normalise(number), digits}
    national = digits[-10:] if len(digits) >= 10 else digits
    if len(national) == 10:
        a, b, c = national[:3], national[3:6], national[6:]
        out |= {f"({a}) {b}-{c}", f"({a}){b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}",
                f"{a} {b} {c}", national}  # fmt: skip
    return {n for n in out if len(re.sub(r"\D", "", n)) >= 7}


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.upper())


def printable_text(data: bytes) -> str:
    """Readable runs (4+ characters) of a binary value, as Latin-1 and as UTF-16-LE text."""
    runs = [m.group().decode("latin-1") for m in _PRINTABLE8.finditer(data)]
    runs += [m.group().decode("utf-16-le") for m in _PRINTABLE16.finditer(data)]
    return "\n".join(runs)


# ----- result -----------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Identifiers:
    """Identifiers harvested from one original object (PHI: keep in memory only).

    Every string is normalised (upper case, single spaces). ``needles`` is the compiled search
    set over all of them.
    """

    names: frozenset[str] = field(default_factory=frozenset)
    ids: frozenset[str] = field(default_factory=frozenset)
    texts: frozenset[str] = field(default_factory=frozenset)
    dates: frozenset[str] = field(default_factory=frozenset)
    uids: frozenset[str] = field(default_factory=frozenset)
    emails: frozenset[str] = field(default_factory=frozenset)
    phones: frozenset[str] = field(default_factory=frozenset)

    def __repr__(self) -> str:
        return (
            f"Identifiers(names={len(self.names)}, ids={len(self.ids)}, "
            f"texts={len(self.texts)}, dates={len(self.dates)}, uids={len(self.uids)}, "
            f"emails={len(self.emails)}, phones={len(self.phones)})"
        )

    __str__ = __repr__

    @cached_property
    def needles(self) -> NeedleSet:
        return NeedleSet.of_harvest(names=self.names, ids=self.ids, uids=self.uids, dates=self.dates,
                                    emails=self.emails, phones=self.phones, texts=self.texts)

    @property
    def count(self) -> int:
        """Number of distinct strings searched for."""
        return len(self.needles)


# ----- harvesting -------------------------------------------------------------------------


_SET_FIELDS = ("names", "ids", "uids", "retained_uids", "dates", "birth_dates")
_LIST_FIELDS = ("removed", "cleaned", "retained")
#: What a collector holds, frozen: (field name, its items) for each field that is not empty.
_Contents = tuple[tuple[str, frozenset[object] | tuple[object, ...]], ...]
#: Tags the first item of the keys this module puts in a memo (a memo is one stage's, but the
#: tag keeps the kinds of keys apart whatever they hold).
_ELEMENT = "harvest.element"
_CONTEXT = "harvest.context"
_REMOVED = "harvest.removed"
_CLEANED = "harvest.cleaned"
_SEQUENCE = "harvest.sequence"
_MAX_REMEMBERED_SEQUENCE = 2048
"""Bytes of the longest sequence whose contribution is remembered (a key holds the bytes; a
series adds a few distinct ones per file)."""


@dataclass
class _Collector:
    view: RuleView
    memo: Memo | None = None
    sequence_bytes: SequenceBytes | None = None
    names: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    uids: set[str] = field(default_factory=set)
    retained_uids: set[str] = field(default_factory=set)
    dates: set[date] = field(default_factory=set)
    birth_dates: set[date] = field(default_factory=set)
    removed: list[tuple[str, bool]] = field(default_factory=list)  # (value, is an ID)
    cleaned: list[str] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)

    def walk(
        self,
        ds: Dataset,
        encoding: str | list[str] | None,
        *,
        removed: bool,
        in_mark_code: bool = False,
    ) -> None:
        encoding = character_set(ds, encoding)
        if self.memo is not None and isinstance(ds, Dataset):
            self._walk_remembered(ds, encoding, removed, in_mark_code, self.memo)
            return
        for element in iter_elements(ds, encoding, defer=_PIXEL_TAGS, skip_public_vrs=_NO_IDENTIFIER_VRS):
            if element.tag == 0x00080005 or element.tag in _PIXEL_TAGS:
                continue  # pixels are cleaned and checked elsewhere, never harvested as text
            self.take(ds, element, encoding, removed, in_mark_code)

    def take(
        self,
        ds: Dataset,
        element: ElementView,
        encoding: str | list[str] | None,
        removed: bool,
        in_mark_code: bool,
    ) -> None:
        """Judge one element of ``ds`` by the profile and collect what it holds (a sequence:
        what its items hold)."""
        creator = None
        if is_private_creator(element.tag) and element.value is not None:
            creator = text_of(element.value).strip()
        elif is_private(element.tag):
            creator = _private_creator(ds, element.tag, encoding)
        ruling = self.view.disposition(
            element.tag, element.keyword, private_creator=creator,
            in_mark_code_item=in_mark_code,
        )  # fmt: skip
        presence = Presence.REMOVED if removed else ruling.presence
        if element.vr == "SQ" and element.value is not None:
            # A sequence replaced by a dummy (D) keeps its items, each element judged by its
            # own rule, as PS3.15 applies actions inside sequences: only what those rules
            # remove is harvested. Z, U and combined codes, whose outcome depends on the
            # IOD type, count every inner value as removed.
            inner_removed = presence not in (Presence.RETAINED, Presence.CLEANED) and not (
                presence is Presence.REPLACED and ruling.action is Action.DUMMY
            )
            for item in element.value:
                self.walk(
                    item,
                    encoding,
                    removed=inner_removed,
                    in_mark_code=element.tag == DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
                )
            return
        policy = ruling.descriptor_policy or self.view.profile.descriptors
        self.collect(element, presence, policy)

    def _walk_remembered(
        self,
        ds: Dataset,
        encoding: str | list[str] | None,
        removed: bool,
        in_mark_code: bool,
        memo: Memo,
    ) -> None:
        """:meth:`walk` for a batch: what an element adds to the collector is remembered and
        replayed for the same element in a later file, which is then not even read.

        What :meth:`take` adds for an element that is not a sequence follows from: the rules
        (``self.view``: the profile, table, keep list and safe private tags, held by identity),
        the tag (its keyword, its rule), the value as stored and its VR (:func:`stored_value`
        gives them only when the element's view follows from them, the tag and the encoding),
        the encoding the text is decoded with, the ``removed`` and ``in_mark_code`` flags of the
        enclosing sequence, and for a private attribute its block's creator. That is the key.
        Everything else (sequences, converted or deferred values, values too long to be worth
        holding) is read and collected as :meth:`walk` does.
        """
        charset = tuple(encoding) if isinstance(encoding, list) else encoding
        creators: dict[int, str | None] = {}
        for tag, item in stored_items(ds):
            if item is None or tag == 0x00080005 or tag in _PIXEL_TAGS:
                continue  # pixels are cleaned and checked elsewhere, never harvested as text
            if not (tag >> 16) & 1 and item.VR in _NO_IDENTIFIER_VRS:
                continue
            stored = stored_value(item)
            sequence: bytes | None = None
            if stored is None or len(stored[1]) > _MAX_REMEMBERED_VALUE:
                read = self.sequence_bytes.get(id(item)) if self.sequence_bytes is not None else None
                if (read is None or read[0] is not item or item.__dict__.get("_value") is not read[1]
                        or len(read[2]) > _MAX_REMEMBERED_SEQUENCE):
                    element = view_element(ds, tag, encoding)
                    if element is not None:
                        self.take(ds, element, encoding, removed, in_mark_code)
                    continue
                sequence = read[2]
            creator = None
            if is_private(tag) and not is_private_creator(tag):
                creator_tag = _creator_tag(tag)
                if creator_tag in creators:
                    creator = creators[creator_tag]
                else:
                    creator = creators[creator_tag] = _private_creator(ds, tag, encoding)
            if sequence is None:
                key: tuple[object, ...] = (_ELEMENT, self.view, tag, stored, charset, removed, in_mark_code, creator)
            else:
                # A sequence read from these bytes: its items were built from them, the encoding
                # and the pixel representation ``ds`` hands down (see dataset_reader._store).
                key = (_SEQUENCE, self.view, tag, sequence, charset, removed, in_mark_code, creator,
                       ds.__dict__.get("_pixel_rep"))  # fmt: skip
            added = memo.get(key)
            if added is None:
                element = view_element(ds, tag, encoding)
                alone = _Collector(self.view, memo, self.sequence_bytes)
                if element is not None:
                    alone.take(ds, element, encoding, removed, in_mark_code)
                added = alone.contents()
                memo.put(key, added)
            if added:
                self.add(cast(_Contents, added))

    def contents(self) -> _Contents:
        """What this collector holds, frozen (the collections that are not empty, by name)."""
        held: list[tuple[str, frozenset[object] | tuple[object, ...]]] = []
        for name in _SET_FIELDS:
            found = getattr(self, name)
            if found:
                held.append((name, frozenset(found)))
        for name in _LIST_FIELDS:
            found = getattr(self, name)
            if found:
                held.append((name, tuple(found)))
        return tuple(held)

    def add(self, contents: _Contents) -> None:
        """Add what :meth:`contents` of another collector gave, in the order it was collected."""
        for name, found in contents:
            target = getattr(self, name)
            if isinstance(target, list):
                target.extend(found)
            else:
                target.update(found)

    def collect(self, element: ElementView, presence: Presence, policy: DescriptorPolicy) -> None:
        vr = element.vr
        value = element.value
        kept = presence is Presence.RETAINED
        if element.error or value is None:
            if element.raw and not kept and is_private(element.tag):
                self.removed.append((printable_text(element.raw), False))
            return
        if vr == "PN":
            if kept:
                self.retained.append(text_of(value))
            else:
                for part in text_of(value).split("\\"):
                    self.names |= _name_needles(part)
            return
        if vr in ("DA", "DT"):
            is_birth = element.tag == BIRTH_DATE_TAG
            if kept and not is_birth:
                return
            for part in text_of(value).split("\\"):
                day = _dicom_date(part)
                if day is not None:
                    (self.birth_dates if is_birth else self.dates).add(day)
            return
        if vr == "UI":
            for part in text_of(value).split("\\"):
                uid = part.strip().rstrip("\x00")
                if uid:
                    (self.retained_uids if kept else self.uids).add(uid)
            return
        if vr == "CS":
            if kept or presence is Presence.CLEANED:
                self.retained.append(text_of(value))
            return
        if vr in _TEXT_VRS:
            text = text_of(value)
        elif (
            vr in BINARY_TEXTLIKE_VRS
            and isinstance(value, bytes)
            and not kept
            and (is_private(element.tag) or vr == "UN")
        ):
            text = printable_text(value)  # readable runs of a private or unknown blob
        else:
            return
        if kept or (presence is Presence.CLEANED and policy is DescriptorPolicy.CHECKED):
            self.retained.append(text)
        elif presence is Presence.CLEANED:
            self.cleaned.append(text)
        else:
            is_id = element.keyword in ID_KEYWORDS
            for part in text.split("\\") if vr in _TEXT_VRS else [text]:
                self.removed.append((part, is_id))


def _creator_tag(tag: int) -> int:
    return (tag & 0xFFFF0000) | ((tag >> 8) & 0xFF)


def _private_creator(ds: Dataset, tag: int, encoding: str | list[str] | None) -> str | None:
    creator = view_element(ds, _creator_tag(tag), encoding)
    if creator is None or creator.value is None:
        return None
    return text_of(creator.value).strip()


_FIXED_WORDS: dict[tuple[str, int], tuple[Vocabulary | None, frozenset[str]]] = {}


def _fixed_allowed_words(method_description: str, vocabulary: Vocabulary | None) -> frozenset[str]:
    """The allowed words that do not depend on the object: common words, the vocabulary, the
    de-identification method codes and description. Remembered per vocabulary object (frozen),
    which the entry keeps alive so its identity is not reused."""
    key = (method_description, id(vocabulary))
    cached = _FIXED_WORDS.get(key)
    if cached is not None and cached[0] is vocabulary:
        return cached[1]
    allowed = set(COMMON_WORDS)
    if vocabulary is not None:
        allowed |= _vocabulary_words(vocabulary)
    for _code, meaning in CID_7050.values():
        allowed.update(words_of(meaning))
    allowed.update(words_of(method_description))
    if len(_FIXED_WORDS) >= 16:
        _FIXED_WORDS.clear()
    _FIXED_WORDS[key] = (vocabulary, frozenset(allowed))
    return _FIXED_WORDS[key][1]


_VOCABULARY_WORDS: dict[int, tuple[Vocabulary, frozenset[str]]] = {}


def _vocabulary_words(vocabulary: Vocabulary) -> frozenset[str]:
    """The vocabulary's words, upper case; remembered per (frozen) vocabulary object."""
    cached = _VOCABULARY_WORDS.get(id(vocabulary))
    if cached is not None and cached[0] is vocabulary:
        return cached[1]
    words = frozenset(w.upper() for w in vocabulary.words)
    if len(_VOCABULARY_WORDS) >= 16:
        _VOCABULARY_WORDS.clear()
    _VOCABULARY_WORDS[id(vocabulary)] = (vocabulary, words)
    return words


def _distinctive(word: str, context: _Context) -> bool:
    if len(word) < 4 or word in context.fixed or word in context.kept or word in NAME_NOISE:
        return False
    if word.isdigit():
        # short numbers are not distinctive; an 8-digit date is harvested as a date instead
        return len(word) >= 6 and not (len(word) == 8 and _dicom_date(word) is not None)
    return True


def _id_like(text: str) -> bool:
    return " " not in text and any(c.isdigit() for c in text) and len(text) >= 4


def _usable_id(text: str) -> bool:
    if text in COMMON_WORDS or text in NAME_NOISE:
        return False
    return len(text) >= 4 if text.isdigit() else len(text) >= 3


def harvest_identifiers(
    original: Dataset,
    profile: Profile,
    table: ConfidentialityTable,
    *,
    keep_list: KeepList | None = None,
    vocabulary: Vocabulary | None = None,
    safe_private: SafePrivateTags | None = None,
    memo: Memo | None = None,
    sequence_bytes: SequenceBytes | None = None,
) -> Identifiers:
    """Collect every identifier of ``original`` that ``profile`` must not let through.

    ``original`` is not modified (elements are converted without being stored back).
    ``keep_list`` defaults to the profile's keep list and ``vocabulary`` (used by the vocabulary
    descriptor policy) to the shipped descriptor vocabulary, both loaded from
    ``anonymization_rules/``.

    ``memo``, one per batch (whatever its patients, profiles and settings), remembers what each
    element adds and what the collected values give, so that the next files of a series cost a
    fraction of the first; the result is the same with or without it. ``sequence_bytes``, the
    bytes :mod:`~tftt.deid.dataset_reader` read ``original``'s sequences from, let the memo
    remember what a whole sequence adds (most sequences of a series are the same bytes).

    Raises:
        RuleError: a default rules file is missing or invalid.
    """
    if keep_list is None:
        keep_list = load_keep_list(profile.keep_list)
    if vocabulary is None and profile.descriptors is DescriptorPolicy.VOCABULARY:
        vocabulary = load_vocabulary()
    view = rule_view(profile, table, keep_list, safe_private)
    collector = _Collector(view, memo, sequence_bytes if memo is not None else None)

    file_meta = getattr(original, "file_meta", None)
    if file_meta is not None:
        meta_uid = view_element(file_meta, MEDIA_STORAGE_SOP_INSTANCE_UID, None)
        if meta_uid is not None and text_of(meta_uid.value).strip("\x00 "):
            collector.uids.add(text_of(meta_uid.value).strip("\x00 "))
        for tag in _FILE_META_IDENTITY:  # source/sending/receiving AE titles and addresses
            element = view_element(file_meta, tag, None)
            if element is not None and element.value:
                collector.removed.append((text_of(element.value), False))
    collector.walk(original, None, removed=False)
    return _assemble(collector, profile, vocabulary, memo)


class _Context:
    """What the judgement of one removed or cleaned value depends on besides the value: the
    words the rules allow (``fixed``, shared by every object) and the words of the kept values
    (``kept``), which cannot prove a leak, the kept text and the vocabulary's words. Not changed
    once made; hashed by identity, so that a memo key holding one names the context its value
    was judged in at the cost of a pointer."""

    __slots__ = ("fixed", "kept", "retained_blob", "vocabulary_words")

    def __init__(
        self,
        fixed: frozenset[str],
        kept: AbstractSet[str],
        retained_blob: str,
        vocabulary_words: frozenset[str],
    ) -> None:
        self.fixed = fixed
        self.kept = kept
        self.retained_blob = retained_blob
        self.vocabulary_words = vocabulary_words



class _Judged(NamedTuple):
    """What one removed or cleaned value gives, frozen (a memo hands it to later files)."""

    ids: frozenset[str]
    texts: frozenset[str]
    uids: frozenset[str]
    days: frozenset[date]
    emails: frozenset[str]
    phones: frozenset[str]


_T = TypeVar("_T")
_NOTHING: frozenset[Any] = frozenset()


def _frozen(items: set[_T]) -> frozenset[_T]:
    return frozenset(items) if items else _NOTHING


@dataclass(slots=True)
class _Found:
    """What removed and cleaned values give: for one object, or for one value (then frozen by
    :meth:`freeze` for a memo)."""

    ids: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)
    uids: set[str] = field(default_factory=set)  # UIDs written in a text or private value
    days: set[date] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)

    def freeze(self) -> _Judged:
        return _Judged(_frozen(self.ids), _frozen(self.texts), _frozen(self.uids),
                       _frozen(self.days), _frozen(self.emails), _frozen(self.phones))  # fmt: skip

    def add(self, judged: _Judged) -> None:
        """Add what :meth:`freeze` gave for one value."""
        if judged.ids:
            self.ids |= judged.ids
        if judged.texts:
            self.texts |= judged.texts
        if judged.uids:
            self.uids |= judged.uids
        if judged.days:
            self.days |= judged.days
        if judged.emails:
            self.emails |= judged.emails
        if judged.phones:
            self.phones |= judged.phones


#: Longer values (stored bytes of an element, removed or cleaned text, the kept text of an
#: object) are judged again in every file rather than remembered, so that a memo entry stays
#: small (a few KB at most) whatever the data.
_MAX_REMEMBERED_VALUE = 1024


def _assemble(
    collector: _Collector, profile: Profile, vocabulary: Vocabulary | None, memo: Memo | None = None
) -> Identifiers:
    """The identifiers of a walked object.

    Each removed or cleaned value is judged on its own (:func:`_judge_removed`,
    :func:`_judge_cleaned`) in a context the whole object gives (:func:`_context`). With a memo,
    what a value gives is remembered by (context, value, is it an ID), all it depends on: the
    files of a series repeat most values, and a value that differs from file to file (a UID in
    a private text, a time stamp) costs only its own judgement.
    """
    if memo is not None and sum(map(len, collector.retained)) > _MAX_REMEMBERED_VALUE:
        memo = None  # a context too large to hold: this object's values are judged afresh
    vocabulary_words = _vocabulary_words(vocabulary) if vocabulary is not None else frozenset()
    context = _context(collector, profile, vocabulary, vocabulary_words, memo)
    found = _Found(days=set(collector.dates))
    for value, is_id in collector.removed:
        if memo is None or len(value) > _MAX_REMEMBERED_VALUE:
            _judge_removed(value, is_id, context, found)
            continue
        removed_key = (_REMOVED, context, value, is_id)
        judged = memo.get(removed_key)
        if judged is None:
            alone = _Found()
            _judge_removed(value, is_id, context, alone)
            judged = alone.freeze()
            memo.put(removed_key, judged)
        found.add(cast(_Judged, judged))
    for value in collector.cleaned:
        if memo is None or len(value) > _MAX_REMEMBERED_VALUE:
            _judge_cleaned(value, context, found)
            continue
        cleaned_key = (_CLEANED, context, value)
        judged = memo.get(cleaned_key)
        if judged is None:
            alone = _Found()
            _judge_cleaned(value, context, alone)
            judged = alone.freeze()
            memo.put(cleaned_key, judged)
        found.add(cast(_Judged, judged))

    collector.uids |= found.uids  # UIDs written in text count as UIDs
    date_needles: set[str] = set()
    for day in found.days:
        if profile.dates is DatePolicy.YEAR and (day.month, day.day) == (1, 1):
            continue
        date_needles |= date_forms(day)
    for day in collector.birth_dates:
        date_needles |= date_forms(day)

    uids: set[str] = set()
    if collector.view.remaps_uids:
        uids = {
            u for u in collector.uids - collector.retained_uids if u not in UID_dictionary
        }
    return Identifiers(
        names=frozenset(collector.names),
        ids=frozenset(found.ids),
        texts=frozenset(found.texts - collector.names),
        dates=frozenset(date_needles),
        uids=frozenset(uids),
        emails=frozenset(found.emails),
        phones=frozenset(found.phones),
    )


def _context(
    collector: _Collector,
    profile: Profile,
    vocabulary: Vocabulary | None,
    vocabulary_words: frozenset[str],
    memo: Memo | None,
) -> _Context:
    """The context values are judged in. With a memo, the same object for the same method
    description, vocabulary words and kept values (in order), all it follows from, so that the
    values of a series are remembered under one context."""
    key = None
    if memo is not None:
        key = (_CONTEXT, profile.method_description, vocabulary_words, tuple(collector.retained))
        remembered = memo.get(key)
        if remembered is not None:
            return cast(_Context, remembered)
    fixed = _fixed_allowed_words(profile.method_description, vocabulary)
    kept: set[str] = set()
    for text in collector.retained:
        kept.update(word for word in words_of(text) if word not in fixed)
    retained_blob = "\n".join(normalise(t) for t in collector.retained)
    if memo is None or key is None:
        return _Context(fixed, kept, retained_blob, vocabulary_words)
    context = _Context(fixed, frozenset(kept), retained_blob, vocabulary_words)
    memo.put(key, context)
    return context


def _judge_removed(value: str, is_id: bool, context: _Context, found: _Found) -> None:
    """What a removed value gives: an ID, a UID, distinctive words and the whole value when a
    word of it could not legitimately remain, and the dates, e-mails and phones written in it."""
    _judge_written(value, found)
    text = normalise(value)
    if not text:
        return
    if _UID_SHAPE.fullmatch(text):  # a UID written in a text or private value
        found.uids.add(text)
        return
    if is_id:
        if _usable_id(text):
            found.ids.add(text)
        return
    if _NUMBER_SHAPE.fullmatch(text) and not (text.isdigit() and len(text) >= 6):
        return  # a measurement, not an identifier (vendors copy them into private tags)
    if _dicom_date(text) is not None and len(text) == 8:
        return  # a date: harvested in all its forms (by _judge_written)
    words = words_of(text)
    for word in words:
        if _distinctive(word, context):
            found.texts.add(word)
    if not 4 <= len(text) <= _MAX_WHOLE_VALUE or text in context.retained_blob:
        return
    fixed, kept = context.fixed, context.kept
    if not any(len(w) >= 2 and w not in fixed and w not in kept for w in words):
        return
    (found.ids if _id_like(text) else found.texts).add(text)


def _judge_cleaned(value: str, context: _Context, found: _Found) -> None:
    """What a cleaned value gives: its distinctive words outside the vocabulary, and the dates,
    e-mails and phones written in it."""
    _judge_written(value, found)
    for word in words_of(value):
        if word not in context.vocabulary_words and _distinctive(word, context):
            found.texts.add(word)


def _judge_written(value: str, found: _Found) -> None:
    """The dates, e-mail addresses and phone numbers written in a free text."""
    found.days |= _dates_in_text(value)
    found.emails |= {normalise(m.group()) for m in _EMAIL.finditer(value)}
    for match in _PHONE.finditer(value):
        found.phones |= phone_needles(match.group())
