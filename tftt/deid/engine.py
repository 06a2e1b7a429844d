"""The de-identification engine: PS3.15 Table E.1-1 actions, as an allow-list, at every depth.

``deidentify(ds, context)`` is pure: it never mutates ``ds`` (elements that are kept unchanged
are shared as raw, unparsed elements; everything else is built anew), reads nothing but its
arguments, and gives the same bytes for the same input, key and rules.

Order of decisions for each element (main dataset and every sequence item):

1. File meta (group 0002) inside a dataset, group lengths, and command elements are dropped.
2. Private elements are dropped, unless the profile keeps safe private tags and this one is
   listed for its private creator.
3. The element's action comes from the compiled table (profile options and overrides applied,
   combined codes resolved by IOD type); if it is not in the table, it is kept only if it is in
   the curated keep-list, otherwise removed and counted in the report.
4. Special rules: patient pseudonym, dates/times by the date policy, the age cap, descriptors,
   and UIDs (every surviving instance UID is remapped when the profile says so).
5. Encapsulated pixel data loses its JPEG/J2K text segments, frame by frame.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID
from pydicom.valuerep import PersonName

from tftt.deid import dates
from tftt.deid.descriptors import clean_checked, clean_with_vocabulary, identifier_tokens
from tftt.deid.item_template import new_dataset
from tftt.deid.memo import Memo
from tftt.deid.rules import (
    CID_7050,
    RULES_DIR,
    Action,
    ConfidentialityTable,
    DatePolicy,
    DescriptorPolicy,
    KeepList,
    Option,
    Override,
    PrivateTagPolicy,
    Profile,
    SiteOverrides,
    load_attribute_types,
    load_keep_list,
    load_safe_private_tags,
    load_table,
    load_vocabulary,
)
from tftt.deid.uids import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    date_offset_days,
    is_class_uid_keyword,
    is_well_known_uid,
    map_uid,
    patient_pseudonym,
)
from tftt.deid.writer import encode_file
from tftt.errors import DeidentificationError, RuleError, UnsupportedInputError
from tftt.pixels.markers import J2K_SYNTAXES, JPEG_SYNTAXES, PLAIN_ENCAPSULATED_SYNTAXES, strip_text_segments

PIXEL_DATA = 0x7FE00010
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
ISSUER_OF_PATIENT_ID = 0x00100021
PATIENT_BIRTH_DATE = 0x00100030
PATIENT_BIRTH_TIME = 0x00100032
PATIENT_AGE = 0x00101010
SOP_INSTANCE_UID = 0x00080018
SOP_CLASS_UID = 0x00080016
ICON_IMAGE_SEQUENCE = 0x00880200

_PATIENT_IDENTITY_REMOVED = BaseTag(0x00120062)
_DEIDENTIFICATION_METHOD = BaseTag(0x00120063)
_METHOD_CODE_SEQUENCE = BaseTag(0x00120064)
_LONGITUDINAL_MODIFIED = BaseTag(0x00280303)
_META_VERSION = BaseTag(0x00020001)
_META_SOP_CLASS = BaseTag(0x00020002)
_META_SOP_INSTANCE = BaseTag(0x00020003)
_META_SYNTAX = BaseTag(0x00020010)
_META_IMPLEMENTATION = BaseTag(0x00020012)
_META_VERSION_NAME = BaseTag(0x00020013)
_CODE_VALUE = BaseTag(0x00080100)
_CODING_SCHEME_DESIGNATOR = BaseTag(0x00080102)
_CODE_MEANING = BaseTag(0x00080104)

#: Transfer syntaxes whose datasets TFTT reads and writes (native and inspectable encapsulated).
NATIVE_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
)
SUPPORTED_SYNTAXES = NATIVE_SYNTAXES | JPEG_SYNTAXES | J2K_SYNTAXES | PLAIN_ENCAPSULATED_SYNTAXES

#: Human-readable meanings of codes: free text that a code value already says, so it is kept
#: only as vocabulary words (a name there is dropped even when no header field names it).
_MEANING_TAGS = frozenset({0x00080104})  # CodeMeaning
_FREE_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "PN", "CS", "AE", "UC"})
_MARK_TAGS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})

#: Kept values that pass through as read, without pydicom value objects: fixed-size binary
#: numbers whose length fits their size, code strings, and number strings that match the
#: standard's grammar (anything else takes the converting path, where a value that does not
#: parse is removed).
_BINARY_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "AT": 4, "FL": 4, "FD": 8, "OF": 4, "OD": 8, "OL": 4,
                 "OV": 8, "SV": 8, "UV": 8}
_DS_VALUE = rb" *(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)? *"
_IS_VALUE = rb" *(?:[+-]?[0-9]+)? *"
_NUMBER_STRINGS = {
    "DS": re.compile(_DS_VALUE + rb"(?:\\" + _DS_VALUE + rb")*"),
    "IS": re.compile(_IS_VALUE + rb"(?:\\" + _IS_VALUE + rb")*"),
}


_UID_BYTES = re.compile(rb"[0-9.\\]*[\x00 ]?")


def _tag_order(item: tuple[BaseTag, object]) -> int:
    return int(item[0])  # plain ints sort without BaseTag's Python-level comparisons


def _passes_as_read(raw: RawDataElement) -> bool:
    """Whether a kept raw element can be copied without converting its value."""
    vr, value = raw.VR, raw.value
    if vr is None or not isinstance(value, bytes):  # implicit VR (dictionary lookup) or deferred
        return False
    size = _BINARY_SIZES.get(vr)
    if size is not None:
        return len(value) % size == 0
    if vr == "CS":
        return True
    grammar = _NUMBER_STRINGS.get(vr)
    return grammar is not None and grammar.fullmatch(value) is not None

_DUMMY_TEXT = "REMOVED"
_DUMMY_BY_VR: dict[str, object] = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "OB": b"\x00\x00",
    "OW": b"\x00\x00",
    "UN": b"\x00\x00",
}


@dataclass(frozen=True)
class CompiledProfile:
    """A profile resolved into per-tag decisions, ready for the engine."""

    profile: Profile
    actions: Mapping[int, Action]
    patterns: tuple[tuple[int, int, Action], ...]
    keep: frozenset[int]
    temporal: frozenset[int]
    descriptor_policy: Mapping[int, DescriptorPolicy]
    safe_private: frozenset[tuple[str, int, int]] | None
    vocabulary: frozenset[str]
    dates: DatePolicy
    table_edition: str
    # Names this compiled profile in a memo's keys (see :mod:`tftt.deid.memo`): a new object for
    # every profile compiled or replaced, never reused while a key holds it.
    token: object = field(init=False, default_factory=object, compare=False, repr=False)

    def action_for(self, tag: int) -> Action | None:
        action = self.actions.get(tag)
        if action is not None:
            return action
        for mask, value, pattern_action in self.patterns:
            if tag & mask == value:
                return pattern_action
        return None


def _tag_int(text: str) -> tuple[int, int]:
    """``GGGG,EEEE`` (with ``x`` wildcards) → (mask, value)."""
    digits = text.replace(",", "")
    mask = int("".join("0" if c == "x" else "F" for c in digits), 16)
    value = int("".join("0" if c == "x" else c for c in digits), 16)
    return mask, value


def _resolve_combined(action: Action, keyword: str | None, type1: frozenset[str],
                      type2: frozenset[str]) -> Action:
    """Resolve a combined code by the attribute's IOD type (1, 2 or 3)."""
    is1 = keyword in type1
    is2 = keyword in type2
    match action:
        case Action.ZERO_OR_DUMMY:
            return Action.DUMMY if is1 else Action.ZERO
        case Action.REMOVE_OR_ZERO:
            return Action.ZERO if (is1 or is2) else Action.REMOVE
        case Action.REMOVE_OR_DUMMY:
            return Action.DUMMY if (is1 or is2) else Action.REMOVE
        case Action.REMOVE_OR_ZERO_OR_DUMMY:
            return Action.DUMMY if is1 else Action.ZERO if is2 else Action.REMOVE
        case Action.REMOVE_OR_ZERO_OR_UID:
            return Action.UID if is1 else Action.ZERO if is2 else Action.REMOVE
        case _:
            return action


def _option_action(row_options: Mapping[Option, Action], options: Iterable[Option]) -> Action | None:
    """The action that the profile's options give a row: when a retaining option (K) and a
    cleaning or replacing one disagree, the stricter one wins."""
    chosen = [row_options[o] for o in options if o in row_options]
    if not chosen:
        return None
    stricter = [action for action in chosen if action is not Action.KEEP]
    return stricter[0] if stricter else Action.KEEP


def _override_key(override: Override) -> int:
    if override.tag is not None:
        mask, value = _tag_int(override.tag)
        if mask != 0xFFFFFFFF:
            raise RuleError("overrides must name a single tag, not a pattern")
        return value
    if override.keyword is not None:
        from pydicom.datadict import tag_for_keyword

        tag = tag_for_keyword(override.keyword)
        if tag is None:
            raise RuleError(f"override names an unknown keyword {override.keyword!r}")
        return int(tag)
    raise RuleError("an override must name a tag or a keyword")


def compile_profile(
    profile: Profile,
    *,
    rules_dir: Path = RULES_DIR,
    site_overrides: SiteOverrides | None = None,
    retain_safe_private: bool | None = None,
    dates: DatePolicy | None = None,
    table: ConfidentialityTable | None = None,
    keep_list: KeepList | None = None,
) -> CompiledProfile:
    """Resolve a profile against Table E.1-1, the keep-list and the site overrides.

    Raises:
        RuleError: a rules file is missing or invalid, or an override is malformed.
    """
    table = table or load_table(profile.table, rules_dir)
    keep_list = keep_list or load_keep_list(profile.keep_list, rules_dir)
    types = load_attribute_types(rules_dir)
    type1, type2 = frozenset(types.type1), frozenset(types.type2)
    options = tuple(profile.options)
    private_policy = profile.private_tags
    if retain_safe_private is not None:
        private_policy = PrivateTagPolicy.KEEP_SAFE if retain_safe_private else PrivateTagPolicy.REMOVE
    if private_policy is PrivateTagPolicy.KEEP_SAFE and Option.RETAIN_SAFE_PRIVATE not in options:
        options = (*options, Option.RETAIN_SAFE_PRIVATE)

    actions: dict[int, Action] = {}
    patterns: list[tuple[int, int, Action]] = []
    temporal: set[int] = set()
    for row in table.rows:
        action = _option_action(row.options, options) or row.basic
        action = _resolve_combined(action, row.keyword, type1, type2)
        mask, value = _tag_int(row.tag)
        if mask == 0xFFFFFFFF:
            actions[value] = action
            if Option.RETAIN_LONG_FULL_DATES in row.options:
                temporal.add(value)
        else:
            patterns.append((mask, value, action))

    descriptor_policy: dict[int, DescriptorPolicy] = {}
    for override in (*profile.overrides, *(site_overrides.overrides if site_overrides else ())):
        tag = _override_key(override)
        if override.action is not None:
            actions[tag] = _resolve_combined(
                override.action, keyword_for_tag(tag) or None, type1, type2
            )
        if override.descriptor_policy is not None:
            descriptor_policy[tag] = override.descriptor_policy

    keep = frozenset(_tag_int(entry.tag)[1] for entry in keep_list.attributes)
    safe: frozenset[tuple[str, int, int]] | None = None
    if private_policy is PrivateTagPolicy.KEEP_SAFE:
        safe = frozenset(
            (t.creator.strip().upper(), int(t.group, 16), int(t.element[-2:], 16))
            for t in load_safe_private_tags(rules_dir).tags
        )
    vocabulary = frozenset(w.upper() for w in load_vocabulary(rules_dir).words)
    return CompiledProfile(
        profile=profile,
        actions=actions,
        patterns=tuple(patterns),
        keep=keep,
        temporal=frozenset(temporal),
        descriptor_policy=descriptor_policy,
        safe_private=safe,
        vocabulary=vocabulary,
        dates=dates or profile.dates,
        table_edition=table.provenance.edition or "unknown",
    )


@dataclass(frozen=True)
class DeidContext:
    """Everything the engine needs besides the dataset: rules and the site's secret key."""

    rules: CompiledProfile
    key: bytes = field(repr=False)
    pixels_cleaned: bool = False
    # Remembers per-element decisions across the files of a batch (see :meth:`_Walk.remember`);
    # None decides every element afresh. Either way the output is the same.
    memo: Memo | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise RuleError("the site secret key must be at least 16 bytes")


@dataclass(frozen=True)
class DeidReport:
    """What the engine did, as counts and keywords (no values) for the audit trail."""

    actions: tuple[tuple[str, int], ...]
    removed_not_allowed: tuple[tuple[str, int], ...]
    removed_private: int
    uids_remapped: int
    frames_stripped: int


@dataclass(frozen=True)
class DeidResult:
    dataset: Dataset
    file_name: str
    report: DeidReport


class _Walk:
    """State of one de-identification: counters and per-patient derived values."""

    def __init__(self, ctx: DeidContext, root: Dataset, syntax: str) -> None:
        self.syntax = syntax
        self.ctx = ctx
        self.rules = ctx.rules
        self.profile = ctx.rules.profile
        self.actions: Counter[str] = Counter()
        self.removed: Counter[str] = Counter()
        self.removed_private = 0
        self.uids_remapped = 0
        self.frames_stripped = 0
        self.encoding: tuple[bool | None, bool | None] = root.original_encoding
        if self.encoding == (None, None):  # built in memory: encode as the syntax says
            self.encoding = (syntax == "1.2.840.10008.1.2", syntax != "1.2.840.10008.1.2.2")
        self.charset = root.original_character_set
        self.memo = ctx.memo
        facts = _FileFacts.of(root, ctx.key, self.charset, self.memo)
        self.pseudonym = facts.pseudonym
        self.offset = facts.offset
        self.reference_year = facts.reference_year
        self.identifiers = facts.identifiers
        self.memo_token: object = None
        if self.memo is not None:
            # Everything besides the element itself that a decision may depend on, named once
            # per file by a token (a key of plain ints and bytes then hashes fast).
            context = ("engine", self.rules.token, ctx.key, _charset_key(self.charset),
                       self.encoding, syntax, self.pseudonym, self.offset, self.reference_year,
                       self.identifiers)  # fmt: skip
            self.memo_token = self.memo.token(context)

    # -- datasets -------------------------------------------------------------------------
    def dataset(self, src: Dataset, *, top: bool) -> Dataset:
        out = new_dataset()
        out.set_original_encoding(self.encoding[0], self.encoding[1], self.charset)
        # The element dict is read directly (pydicom 3 keeps it in ``_dict``, keyed by BaseTag):
        # ``sorted(keys())`` + ``get_item`` per tag was a tenth of a pass. A deferred value
        # (read later from its file) still goes through ``get_item``, which reads it.
        placed = out._dict
        memo = self.memo
        # Values are _Decision (Any: the hit path reads them without a cast() call per element).
        remembered: dict[Any, Any] | None = memo._entries if memo is not None else None
        token = self.memo_token
        actions = self.actions
        hits = 0
        for tag, raw in sorted(src._dict.items(), key=_tag_order):
            if type(raw) is RawDataElement and raw.value is None and raw.length:
                raw = src.get_item(tag)
            element: DataElement | RawDataElement | None
            key: tuple[object, ...] | None
            if remembered is None:
                key = None
            elif type(raw) is RawDataElement:
                # memo_key() for an element as read, written out here (the common case)
                tag_int = int(tag)
                value = raw.value
                if (tag_int & 0x10000 or tag_int == PIXEL_DATA or type(value) is not bytes
                        or len(value) > _MEMO_VALUE_LIMIT or raw.VR not in _MEMO_VRS):
                    key = None
                else:
                    key = (token, top, tag_int, raw.VR, value, raw.is_little_endian,
                           raw.is_implicit_VR, raw.length)  # fmt: skip
            else:
                key = self.memo_key(tag, raw, top)
            if key is None:
                element = self.decide(src, tag, raw, top=top)
            elif (decision := remembered.get(key)) is None:  # type: ignore[union-attr]
                assert memo is not None
                memo.misses += 1
                element = self.remember(src, tag, raw, key, top=top)
            else:
                # The memo's hit path, written out here: a call per element is a tenth of a
                # remembered pass.
                hits += 1
                for name, count in decision.actions:
                    actions[name] += count
                if decision.removed:
                    for name, count in decision.removed:
                        self.removed[name] += count
                self.uids_remapped += decision.remapped
                outcome = decision.outcome
                if outcome is _AS_READ:
                    element = raw
                elif outcome is _DROPPED:
                    continue
                else:  # _copied(), written out
                    element = DataElement.__new__(DataElement)
                    element.__dict__.update(decision.element.__dict__)
            if element is None:
                continue
            if tag & 0x10000 or element.VR == "SQ":
                out[tag] = element  # private blocks and nested encodings: pydicom's bookkeeping
            else:
                placed[tag] = element
        if memo is not None:
            memo.hits += hits
        return out

    def memo_key(self, tag: BaseTag, raw: DataElement | RawDataElement, top: bool
                 ) -> tuple[object, ...] | None:
        """The key :meth:`remembered` files ``raw``'s decision under, or None if the decision
        may depend on more than the key could hold.

        Only plain elements have one: not private (their fate depends on their block's
        creator), not pixel data (on the syntax and frame count), not a sequence, a VR that is
        neither ambiguous nor UN (pydicom would look at the parent dataset to resolve it), a
        value of at most :data:`_MEMO_VALUE_LIMIT` bytes. An element as read is keyed by its
        bytes and encoding; one already converted (the second pass reads the first's output)
        by its value, when that is a plain ``str`` (or UID), ``bytes``, ``int`` or ``float``
        (a DS or IS value or a name would compare equal to others written differently).
        """
        tag_int = int(tag)
        if tag_int & 0x10000 or tag_int == PIXEL_DATA:
            return None
        if type(raw) is RawDataElement:
            value = raw.value
            if type(value) is not bytes or len(value) > _MEMO_VALUE_LIMIT or raw.VR not in _MEMO_VRS:
                return None
            return (self.memo_token, top, tag_int, raw.VR, value, raw.is_little_endian,
                    raw.is_implicit_VR, raw.length)  # fmt: skip
        if type(raw) is DataElement and raw.VR in _MEMO_VRS:
            value = raw.value
            kind = type(value)
            if kind in _PLAIN_VALUES and (kind not in (str, UID, bytes) or len(value) <= _MEMO_VALUE_LIMIT):
                return (self.memo_token, top, tag_int, raw.VR, kind, value, raw.is_undefined_length)
        return None

    def remember(self, src: Dataset, tag: BaseTag, raw: DataElement | RawDataElement,
                 key: tuple[object, ...], *, top: bool) -> DataElement | RawDataElement | None:
        """:meth:`decide` ``raw`` and file the decision in the memo under ``key`` (a miss:
        :meth:`dataset` replays a hit itself).

        The decision depends only on what the key holds (see :meth:`memo_key`) and on this
        file's context (rules, key, character set, patient pseudonym and date offset, reference
        year, the patient's identifying tokens), which :attr:`memo_token` names. The report's
        counts are filed with it, to be replayed. A remembered element is never handed out:
        each file gets its own copy, since later stages may set values on it.
        """
        memo = self.memo
        assert memo is not None
        actions, removed, remapped = self.actions, self.removed, self.uids_remapped
        self.actions, self.removed = Counter(), Counter()
        try:
            result = self.decide(src, tag, raw, top=top)
            counts = (tuple(self.actions.items()), tuple(self.removed.items()),
                      self.uids_remapped - remapped)  # fmt: skip
        finally:
            actions.update(self.actions)
            removed.update(self.removed)
            self.actions, self.removed = actions, removed
        if result is None:
            memo.put(key, _Decision(_DROPPED, None, *counts))
        elif result is raw:
            memo.put(key, _Decision(_AS_READ, None, *counts))
        elif type(result) is DataElement and isinstance(result.value, _IMMUTABLE_VALUES):
            memo.put(key, _Decision(_BUILT, _copied(result), *counts))
        return result

    def decide(self, src: Dataset, tag: BaseTag, raw: DataElement | RawDataElement, *,
               top: bool) -> DataElement | RawDataElement | None:
        tag_int = int(tag)  # plain int comparisons: BaseTag's are Python-level
        group = tag_int >> 16
        if group in (0x0000, 0x0002) or tag_int & 0xFFFF == 0 or tag_int == ICON_IMAGE_SEQUENCE:
            self.removed["group-length-meta-or-icon"] += 1
            return None
        if group & 1:
            return self.private(src, tag, raw)
        if tag_int in _MARK_TAGS:
            return None  # rewritten by mark()
        action = self.rules.action_for(tag_int)
        if action is None:
            if tag_int not in self.rules.keep:
                self.removed[keyword_for_tag(tag) or f"{tag_int:08X}"] += 1
                return None
            action = Action.KEEP
        if action is Action.REMOVE and not self.dated(tag_int):
            self.actions["X"] += 1
            return None
        if action is Action.KEEP and type(raw) is RawDataElement and (
            _passes_as_read(raw) or (raw.VR == "UI" and self.keeps_uid_as_read(tag, raw))
        ):
            self.actions["K"] += 1  # what apply() does for these VRs, minus the conversion
            return raw
        elem = self.convert(src, raw)
        if elem is None:
            return None
        return self.apply(src, tag, elem, raw, action, top=top)

    def keeps_uid_as_read(self, tag: BaseTag, raw: RawDataElement) -> bool:
        """Whether :meth:`uid` would return this kept UID element as it is: the profile does not
        remap it, and its bytes are UID characters (so converting them could not fail)."""
        if self.profile.remap_uids and not is_class_uid_keyword(keyword_for_tag(tag)):
            return False
        return isinstance(raw.value, bytes) and _UID_BYTES.fullmatch(raw.value) is not None

    def dated(self, tag: int) -> bool:
        """Whether the date policy, not the table, decides this attribute's fate."""
        return tag in self.rules.temporal and self.rules.dates is not DatePolicy.TABLE

    def convert(self, src: Dataset, raw: DataElement | RawDataElement) -> DataElement | None:
        if isinstance(raw, DataElement):
            return raw
        try:
            return convert_raw_data_element(raw, encoding=self.charset, ds=src)
        except Exception:  # pydicom raises many types on malformed values
            self.removed["unparseable-value"] += 1
            return None

    def private(self, src: Dataset, tag: BaseTag, raw: DataElement | RawDataElement
                ) -> DataElement | RawDataElement | None:
        safe = self.rules.safe_private
        if safe is not None and tag.element >= 0x1000:
            creator_raw = src.get_item(Tag(tag.group, tag.element >> 8))
            creator_elem = self.convert(src, creator_raw) if creator_raw is not None else None
            creator = str(creator_elem.value).strip().upper() if creator_elem is not None else ""
            if (creator, tag.group, tag.element & 0xFF) in safe:
                return raw
        if safe is not None and 0x0010 <= tag.element <= 0x00FF:
            # A creator element is kept when any of its block's elements is safe.
            creator_elem = self.convert(src, raw)
            creator = str(creator_elem.value).strip().upper() if creator_elem is not None else ""
            block = tag.element << 8
            for other in src.keys():
                other_tag = BaseTag(other)
                if (other_tag.group == tag.group and block <= other_tag.element < block + 0x100
                        and (creator, tag.group, other_tag.element & 0xFF) in safe):
                    return raw
        self.removed_private += 1
        return None

    # -- actions ------------------------------------------------------------------------------
    def apply(self, src: Dataset, tag: BaseTag, elem: DataElement,
              raw: DataElement | RawDataElement, action: Action, *, top: bool
              ) -> DataElement | RawDataElement | None:
        self.actions[action.value] += 1
        vr = elem.VR
        tag_int = int(tag)
        if tag_int in (PATIENT_NAME, PATIENT_ID) and self.profile.pseudonymize_patient:
            value = f"TFTT^{self.pseudonym}" if tag_int == PATIENT_NAME else f"TFTT-{self.pseudonym}"
            return DataElement(tag, vr, value)
        if tag_int in (PATIENT_BIRTH_DATE, PATIENT_BIRTH_TIME):
            return DataElement(tag, vr, "") if action is not Action.REMOVE else None
        if vr == "SQ":
            if action is Action.REMOVE:
                return None
            return self.sequence(tag, elem, action)
        if vr in ("DA", "DT", "TM") and self.dated(tag_int):
            dated = self.temporal(tag, elem, action)
            return dated  # type: ignore[return-value]
        if action is Action.REMOVE:
            return None
        if action is Action.ZERO:
            return DataElement(tag, vr, b"" if vr in ("OB", "OW", "UN") else "")
        if action is Action.DUMMY:
            return self.dummy(tag, elem)
        if action is Action.CLEAN:
            return self.clean(tag, elem)
        if action is Action.UID or vr == "UI":
            return self.uid(tag, elem, raw)
        if tag_int == PATIENT_AGE:
            return self.age(tag, elem)
        if tag_int == PIXEL_DATA:
            return self.pixel_data(src, tag, elem, raw)
        if vr in _FREE_TEXT_VRS:
            return self.checked_text(tag, elem, raw)
        return raw  # KEEP: shared, unchanged

    def checked_text(self, tag: BaseTag, elem: DataElement, raw: DataElement | RawDataElement
                     ) -> DataElement | RawDataElement:
        """Kept free text (e.g. a CodeMeaning) still must not carry the patient's identifiers."""
        values = [str(v) for v in _as_list(elem.value)]
        policy = self.rules.descriptor_policy.get(
            int(tag), DescriptorPolicy.VOCABULARY if int(tag) in _MEANING_TAGS else DescriptorPolicy.CHECKED
        )
        if policy is DescriptorPolicy.VOCABULARY:
            cleaned = [clean_with_vocabulary(v, self.rules.vocabulary) for v in values]
        else:
            cleaned = [clean_checked(v, self.rules.vocabulary, self.identifiers) for v in values]
        if cleaned == values:
            return raw
        self.actions["kept-text-cleaned"] += 1
        return DataElement(tag, elem.VR, cleaned[0] if len(cleaned) == 1 else cleaned)

    def sequence(self, tag: BaseTag, elem: DataElement, action: Action) -> DataElement | None:
        if action is Action.ZERO:
            return DataElement(tag, "SQ", Sequence())
        items = [self.dataset(item, top=False) for item in elem.value or ()]
        return DataElement(tag, "SQ", Sequence(items))

    def dummy(self, tag: BaseTag, elem: DataElement) -> DataElement:
        vr = elem.VR
        if vr == "UI":
            return self.uid(tag, elem, elem)  # type: ignore[return-value]
        if vr in _TEXT_VRS or vr in ("UR",):
            return DataElement(tag, vr, _DUMMY_TEXT)
        return DataElement(tag, vr, _DUMMY_BY_VR.get(vr, ""))

    def clean(self, tag: BaseTag, elem: DataElement) -> DataElement | None:
        vr = elem.VR
        if vr in ("DA", "DT", "TM"):
            dated = self.temporal(tag, elem, Action.CLEAN)
            return None if dated is _TABLE else dated  # type: ignore[return-value]
        if vr not in _TEXT_VRS or vr == "PN":
            self.removed[f"clean-unsupported-{vr}"] += 1
            return None
        policy = self.rules.descriptor_policy.get(int(tag), self.profile.descriptors)
        values = _as_list(elem.value)
        cleaned = []
        for value in values:
            text = str(value)
            if policy is DescriptorPolicy.CHECKED:
                cleaned.append(clean_checked(text, self.rules.vocabulary, self.identifiers))
            else:
                cleaned.append(clean_with_vocabulary(text, self.rules.vocabulary))
        if vr == "CS":
            cleaned = [c[:16] for c in cleaned]
        return DataElement(tag, vr, cleaned[0] if len(cleaned) == 1 else cleaned)

    def temporal(self, tag: BaseTag, elem: DataElement, action: Action) -> object:
        policy = self.rules.dates
        vr = elem.VR
        if policy is DatePolicy.TABLE:
            return _TABLE
        if policy is DatePolicy.KEEP:
            return elem
        if vr == "TM":
            if policy is DatePolicy.SHIFT:
                return elem
            return DataElement(tag, vr, "") if action in (Action.ZERO, Action.DUMMY) else None
        out: list[str] = []
        for value in _as_list(elem.value):
            text = str(value)
            if not text:
                continue
            if dates.reveals_age_over(text, self.reference_year, self.profile.max_age_years):
                self.removed["date-revealing-age-over-cap"] += 1
                continue
            if policy is DatePolicy.YEAR:
                new = dates.year_only_date(text) if vr == "DA" else dates.year_only_datetime(text)
            else:
                new = (dates.shift_date(text, self.offset) if vr == "DA"
                       else dates.shift_datetime(text, self.offset))
            if new is not None:
                out.append(new)
        if not out:
            return DataElement(tag, vr, "") if action in (Action.ZERO, Action.DUMMY) else None
        return DataElement(tag, vr, out[0] if len(out) == 1 else out)

    def uid(self, tag: BaseTag, elem: DataElement, raw: DataElement | RawDataElement
            ) -> DataElement | RawDataElement | None:
        if elem.VR != "UI":
            return self.dummy(tag, elem)  # 'U' on a non-UID attribute: a dummy value
        keyword = keyword_for_tag(tag)
        if not self.profile.remap_uids or is_class_uid_keyword(keyword):
            return raw
        values = _as_list(elem.value)
        mapped = []
        for value in values:
            text = str(value).strip().rstrip("\x00")
            if not text:
                continue
            if is_well_known_uid(text):
                mapped.append(text)
            else:
                mapped.append(map_uid(self.ctx.key, text))
                self.uids_remapped += 1
        if not mapped:
            return DataElement(tag, "UI", "")
        return DataElement(tag, "UI", mapped[0] if len(mapped) == 1 else mapped)

    def age(self, tag: BaseTag, elem: DataElement) -> DataElement | None:
        text = str(elem.value or "")
        if not text:
            return elem
        capped = dates.capped_age(text, self.profile.max_age_years)
        return DataElement(tag, "AS", capped) if capped is not None else None

    def pixel_data(self, src: Dataset, tag: BaseTag, elem: DataElement,
                   raw: DataElement | RawDataElement) -> DataElement | RawDataElement:
        syntax = self.syntax
        if syntax in NATIVE_SYNTAXES:
            return raw
        frames_count = int(src.get("NumberOfFrames", 1) or 1)
        frames = list(generate_frames(elem.value, number_of_frames=frames_count))
        stripped = [strip_text_segments(frame, syntax) for frame in frames]
        if stripped == frames:
            return raw
        self.frames_stripped += sum(a != b for a, b in zip(frames, stripped, strict=True))
        new = DataElement(tag, elem.VR, encapsulate(stripped, has_bot=True))
        new.is_undefined_length = True
        return new

    def mark(self, out: Dataset) -> None:
        """Add the marks of de-identification (PS3.15 E.1.1): elements built directly with their
        dictionary VR, as keyword assignment would, without its per-keyword lookups. They
        depend on the rules alone, so a memo keeps them; each output gets its own copies."""
        marks: _Marks | None = None
        key = ("marks", self.rules.token, self.ctx.pixels_cleaned)
        if self.memo is not None:
            marks = cast("_Marks | None", self.memo.get(key))
        if marks is None:
            marks = self.build_marks()
            if self.memo is not None:
                self.memo.put(key, marks)
        placed = out._dict
        placed[_PATIENT_IDENTITY_REMOVED] = _copied(marks.identity_removed)
        placed[_DEIDENTIFICATION_METHOD] = _copied(marks.method)
        items = []
        for code in marks.codes:
            item = new_dataset()
            item._dict.update({element.tag: _copied(element) for element in code})
            items.append(item)
        out[_METHOD_CODE_SEQUENCE] = DataElement(_METHOD_CODE_SEQUENCE, "SQ", Sequence(items))
        placed[_LONGITUDINAL_MODIFIED] = _copied(marks.longitudinal)

    def build_marks(self) -> _Marks:
        profile = self.profile
        codes = [CID_7050["basic"]]
        codes += [CID_7050[o] for o in self.rules_options() if o in CID_7050]
        if self.ctx.pixels_cleaned:
            codes.append(CID_7050["clean_pixel"])
        longitudinal = {
            DatePolicy.TABLE: "REMOVED",
            DatePolicy.YEAR: "MODIFIED",
            DatePolicy.SHIFT: "MODIFIED",
            DatePolicy.KEEP: "MODIFIED",
        }[self.rules.dates]
        if self.rules.dates is DatePolicy.TABLE and Option.RETAIN_LONG_FULL_DATES in profile.options:
            longitudinal = "UNMODIFIED"
        return _Marks(
            identity_removed=DataElement(_PATIENT_IDENTITY_REMOVED, "CS", "YES"),
            method=DataElement(_DEIDENTIFICATION_METHOD, "LO", _split_lo(profile.method_description)),
            codes=tuple(
                (DataElement(_CODE_VALUE, "SH", value),
                 DataElement(_CODING_SCHEME_DESIGNATOR, "SH", "DCM"),
                 DataElement(_CODE_MEANING, "LO", meaning))
                for value, meaning in codes
            ),
            longitudinal=DataElement(_LONGITUDINAL_MODIFIED, "CS", longitudinal),
        )

    def rules_options(self) -> tuple[Option, ...]:
        options = list(self.profile.options)
        if self.rules.safe_private is not None and Option.RETAIN_SAFE_PRIVATE not in options:
            options.append(Option.RETAIN_SAFE_PRIVATE)
        return tuple(options)


_TABLE = object()


class _Marks(NamedTuple):
    """The marks of de-identification for one set of rules (see _Walk.mark); never handed out
    themselves, only copies."""

    identity_removed: DataElement
    method: DataElement
    codes: tuple[tuple[DataElement, DataElement, DataElement], ...]
    longitudinal: DataElement


_CHARSET = 0x00080005
_IDENTIFYING_TAGS = (0x00101001, 0x00101000, 0x00080050, 0x00101060, 0x00080090, 0x00101040)
"""OtherPatientNames, OtherPatientIDs, AccessionNumber, PatientMotherBirthName,
ReferringPhysicianName, PatientAddress."""
_FACT_TAGS = (_CHARSET, PATIENT_NAME, PATIENT_ID, ISSUER_OF_PATIENT_ID, PATIENT_BIRTH_DATE,
              *_IDENTIFYING_TAGS, *dates.REFERENCE_DATE_TAGS)
"""The elements :class:`_FileFacts` are read from: the character set (which decodes them when
the file did not say), the patient's name, ID, issuer and birth date, the identifying values
(see :func:`_identifying_values`) and the reference dates."""


class _FileFacts(NamedTuple):
    """What a pass derives from the file before its elements: the patient's pseudonym and date
    offset, the reference year of the age rule and the patient's identifying tokens."""

    pseudonym: str
    offset: int
    reference_year: int | None
    identifiers: frozenset[str]

    @classmethod
    def of(cls, root: Dataset, key: bytes, charset: object, memo: Memo | None) -> _FileFacts:
        """The facts of ``root``; with a memo, remembered by the elements they are read from
        (as stored: VR and bytes), the character set and the key."""
        memo_key: tuple[object, ...] | None = None
        if memo is not None:
            stored: list[object] = []
            for tag in _FACT_TAGS:
                element = root.get_item(tag)
                if element is None:
                    stored.append(None)
                elif type(element) is RawDataElement and type(element.value) is bytes:
                    stored.append((element.VR, element.value))
                elif type(element) is DataElement and isinstance(element.value, str):
                    stored.append(("converted", element.VR, str(element.value)))  # e.g. the charset
                elif type(element) is DataElement and type(element.value) is PersonName:
                    # A name the first pass wrote: the facts read it as str() (unstripped,
                    # unlike a str value, hence a kind of its own in the key).
                    stored.append(("person name", element.VR, str(element.value)))
                elif type(element) is DataElement and isinstance(element.value, MultiValue | list) \
                        and all(isinstance(v, str) for v in element.value):
                    stored.append(("converted", element.VR, tuple(str(v) for v in element.value)))
                else:
                    break  # another kind of value: read afresh
            else:
                memo_key = ("file facts", key, _charset_key(charset), tuple(stored))
                found = memo.get(memo_key)
                if found is not None:
                    return cast(_FileFacts, found)
        patient_key = _patient_key(root)
        facts = cls(
            pseudonym=patient_pseudonym(key, patient_key),
            offset=date_offset_days(key, patient_key),
            reference_year=next(
                (year for tag in dates.REFERENCE_DATE_TAGS
                 if (year := dates.year_of(_text(root, tag)))),
                None,
            ),
            identifiers=identifier_tokens(_identifying_values(root)),
        )
        if memo is not None and memo_key is not None:
            memo.put(memo_key, facts)
        return facts


# What a remembered decision was (see _Walk.remember).
_DROPPED, _AS_READ, _BUILT = "dropped", "as read", "built"


class _Decision(NamedTuple):
    """A remembered decision on one element, with the report counts it added."""

    outcome: str
    element: DataElement | None  # the element built (_BUILT), never handed out itself
    actions: tuple[tuple[str, int], ...]
    removed: tuple[tuple[str, int], ...]
    remapped: int


_MEMO_VALUE_LIMIT = 1024
_MEMO_VRS = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
     "OL", "OV", "OW", "PN", "SH", "SL", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UR", "US",
     "UT", "UV"}
)  # every read VR but SQ and UN (and no ambiguous ones, which only implicit VR reads leave)
_PLAIN_VALUES = frozenset({str, UID, bytes, int, float})
# str covers UID, int and float cover IS and DS; MultiValue (a list) is not among them.
_IMMUTABLE_VALUES = (str, bytes, int, float, PersonName, type(None))


def _charset_key(charset: object) -> object:
    """A dataset's character set as a memo key can hold it (a list becomes a tuple)."""
    return tuple(charset) if isinstance(charset, list | MultiValue) else charset


def _copied(element: DataElement) -> DataElement:
    """A DataElement equal to ``element`` and independent of it (its value is immutable)."""
    twin = DataElement.__new__(DataElement)
    twin.__dict__.update(element.__dict__)
    return twin


def _as_list(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _split_lo(text: str) -> list[str] | str:
    """Split a description into LO values of at most 64 characters, at word boundaries."""
    parts: list[str] = []
    current = ""
    for word in text.replace("\\", "/").split():
        if current and len(current) + 1 + len(word) > 64:
            parts.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        parts.append(current[:64])
    return parts[0] if len(parts) == 1 else parts


def _text(ds: Dataset, tag: int) -> str:
    raw = ds.get_item(tag)
    if raw is None:
        return ""
    value = raw.value
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace").strip(" \x00")
    if isinstance(value, PersonName):
        return str(value)
    return str(value or "").strip()


def _patient_key(ds: Dataset) -> str:
    """The identity a pseudonym and a date offset are derived from."""
    patient_id = _text(ds, PATIENT_ID)
    if patient_id:
        return f"id:{patient_id}|issuer:{_text(ds, ISSUER_OF_PATIENT_ID)}"
    return f"name:{_text(ds, PATIENT_NAME).upper()}|birth:{_text(ds, PATIENT_BIRTH_DATE)}"


def _identifying_values(ds: Dataset) -> list[str]:
    values = [_text(ds, t) for t in (PATIENT_NAME, PATIENT_ID, PATIENT_BIRTH_DATE)]
    for tag in _IDENTIFYING_TAGS:
        element = ds.get_item(tag)
        if element is None:
            continue
        if type(element) is RawDataElement:
            # Converted as ``ds.get(keyword)`` would, without storing the conversion in ``ds``:
            # the engine must not change its input, and an element left as read can be served
            # from the memo.
            element = convert_raw_data_element(
                element, encoding=ds.original_character_set or ds._character_set, ds=ds
            )
        values.extend(str(v) for v in _as_list(element.value))
    return [v for v in values if v]


def syntax_of(ds: Dataset) -> str:
    """The Transfer Syntax UID from the file meta; without one, the encoding pydicom read (or,
    for a dataset built in memory, Explicit VR Little Endian)."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if syntax:
        return syntax
    is_implicit, is_little = ds.original_encoding
    if is_implicit:
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.2" if is_little is False else "1.2.840.10008.1.2.1"


def deidentify(ds: Dataset, context: DeidContext) -> DeidResult:
    """De-identify one dataset (with its ``file_meta``) under ``context``.

    Returns a new dataset with a rebuilt file meta, the file name (new SOP Instance UID +
    ``.dcm``) and a report of counts.

    Raises:
        UnsupportedInputError: the transfer syntax is not supported, or the object has no
            SOP Class/Instance UID.
        DeidentificationError: the result would not be a valid object.
    """
    syntax = syntax_of(ds)
    if syntax not in SUPPORTED_SYNTAXES:
        raise UnsupportedInputError(
            f"transfer syntax {syntax} is not supported", code="unsupported-transfer-syntax"
        )
    if ds.get_item(SOP_CLASS_UID) is None or ds.get_item(SOP_INSTANCE_UID) is None:
        raise UnsupportedInputError("object has no SOP Class or SOP Instance UID",
                                    code="missing-sop-uid")
    walk = _Walk(context, ds, syntax)
    out = walk.dataset(ds, top=True)
    walk.mark(out)

    sop_instance = str(out.get("SOPInstanceUID", "") or "").strip()
    sop_class = str(out.get("SOPClassUID", "") or "").strip()
    if not sop_instance or not sop_class:
        raise DeidentificationError("the rules removed the SOP Class or Instance UID",
                                    code="rules-removed-sop-uid")
    file_meta = FileMetaDataset()
    # The elements keyword assignment would make (dictionary VRs), without its lookups.
    file_meta._dict.update({
        _META_VERSION: DataElement(_META_VERSION, "OB", b"\x00\x01"),
        _META_SOP_CLASS: DataElement(_META_SOP_CLASS, "UI", UID(sop_class)),
        _META_SOP_INSTANCE: DataElement(_META_SOP_INSTANCE, "UI", UID(sop_instance)),
        _META_SYNTAX: DataElement(_META_SYNTAX, "UI", UID(syntax)),
        _META_IMPLEMENTATION: DataElement(_META_IMPLEMENTATION, "UI", UID(IMPLEMENTATION_CLASS_UID)),
        _META_VERSION_NAME: DataElement(_META_VERSION_NAME, "SH", IMPLEMENTATION_VERSION_NAME),
    })  # fmt: skip
    out.file_meta = file_meta
    out.preamble = b"\x00" * 128
    report = DeidReport(
        actions=tuple(sorted(walk.actions.items())),
        removed_not_allowed=tuple(sorted(walk.removed.items())),
        removed_private=walk.removed_private,
        uids_remapped=walk.uids_remapped,
        frames_stripped=walk.frames_stripped,
    )
    return DeidResult(dataset=out, file_name=f"{sop_instance}.dcm", report=report)


def serialize(ds: Dataset) -> bytes:
    """Encode a de-identified dataset as a DICOM file (zeroed preamble, its own file meta).

    Raises:
        DeidentificationError: pydicom cannot encode it.
    """
    encoded = encode_file(ds)  # byte-identical to save_as below, without pydicom's per-element cost
    if encoded is not None:
        return encoded
    buffer = io.BytesIO()
    syntax = str(ds.file_meta.TransferSyntaxUID)
    try:
        ds.save_as(
            buffer,
            implicit_vr=syntax == "1.2.840.10008.1.2",
            little_endian=syntax != "1.2.840.10008.1.2.2",
            enforce_file_format=True,
        )
    except Exception as exc:
        raise DeidentificationError(f"cannot encode the de-identified object: {type(exc).__name__}",
                                    code="encode-failed") from None
    return buffer.getvalue()
