"""What a profile leaves in its output, read directly from PS3.15 Table E.1-1.

This is the verifier's own reading of the rules, written independently of the engine: given a
:class:`~tftt.deid.rules.Profile`, its :class:`~tftt.deid.rules.ConfidentialityTable`, the
:class:`~tftt.deid.rules.KeepList` and (optionally) the safe private tags, :class:`RuleView`
says for any tag whether the attribute may stay in an output and whether its original value may
stay unchanged. Harvesting (what to look for) and verification (what may remain) both use it.

Resolution of a table row (``effective_action``):

1. a profile override naming the tag or keyword wins;
2. otherwise, among the profile's options that have an action in the row, ``K`` beats ``C``
   (PS3.15 options only ever say K or C);
3. otherwise the Basic Profile action;
4. a ``U`` row counts as ``K`` when the profile does not remap UIDs.

Presence of an attribute (``disposition``):

- ``K`` or keep-list: :attr:`Presence.RETAINED` (value may be the original);
- ``C``: :attr:`Presence.CLEANED`;
- ``D``, ``Z``, ``U`` and every combined code (``Z/D``, ``X/Z``, ``X/D``, ``X/Z/D``,
  ``X/Z/U*``): :attr:`Presence.REPLACED` (it may be present, with a new value);
- ``X``: :attr:`Presence.REMOVED`, except a date/time row (one with a Retain Longitudinal
  option) under a profile whose dates are ``year`` or ``shift``: those stay, modified;
- not in the table and not in the keep list: removed; so are private attributes (unless the
  profile keeps safe private tags and the tag is listed for its creator), overlay (60xx) and
  curve (50xx) groups, group lengths and the Icon Image Sequence, wherever they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydicom.tag import BaseTag

from tftt.deid.rules import (
    Action,
    ConfidentialityTable,
    DatePolicy,
    DescriptorPolicy,
    KeepList,
    Option,
    Override,
    PrivateTagPolicy,
    Profile,
    SafePrivateTags,
    TableRow,
)

# Marks of de-identification (PS3.15 E.1.1 / PS3.3 C.12.1): always allowed.
MARK_KEYWORDS = frozenset(
    {
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified",
    }
)
MARK_TAGS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})
# Attributes of a code item, allowed inside DeidentificationMethodCodeSequence.
MARK_CODE_ITEM_TAGS = frozenset({0x00080100, 0x00080102, 0x00080103, 0x00080104})
DEIDENTIFICATION_METHOD_CODE_SEQUENCE = 0x00120064

# File meta attributes an output may carry (the engine rebuilds file meta). Source, sending and
# receiving AE titles, presentation addresses and private information are not among them.
FILE_META_ALLOWED = frozenset(
    {
        0x00020000,  # FileMetaInformationGroupLength
        0x00020001,  # FileMetaInformationVersion
        0x00020002,  # MediaStorageSOPClassUID
        0x00020003,  # MediaStorageSOPInstanceUID
        0x00020010,  # TransferSyntaxUID
        0x00020012,  # ImplementationClassUID
        0x00020013,  # ImplementationVersionName
    }
)

ICON_IMAGE_SEQUENCE = 0x00880200
_DATE_OPTIONS = (Option.RETAIN_LONG_FULL_DATES, Option.RETAIN_LONG_MODIFIED_DATES)
_COMBINED = frozenset(
    {
        Action.ZERO_OR_DUMMY,
        Action.REMOVE_OR_ZERO,
        Action.REMOVE_OR_DUMMY,
        Action.REMOVE_OR_ZERO_OR_DUMMY,
        Action.REMOVE_OR_ZERO_OR_UID,
    }
)


class Presence(StrEnum):
    """What an output may hold for an attribute."""

    RETAINED = "retained"
    """Kept: the original value may stay (K, keep list, safe private, mark)."""
    CLEANED = "cleaned"
    """Present with a cleaned value (C)."""
    REPLACED = "replaced"
    """May be present, but only with a new value (D, Z, U, combined codes, modified dates)."""
    REMOVED = "removed"
    """Must not be present."""


@dataclass(frozen=True)
class Disposition:
    """The verifier's ruling for one attribute. ``reason`` names the rule, never a value."""

    presence: Presence
    reason: str
    action: Action | None = None
    descriptor_policy: DescriptorPolicy | None = None

    @property
    def present_allowed(self) -> bool:
        return self.presence is not Presence.REMOVED


def is_private(tag: int) -> bool:
    return bool((tag >> 16) & 1)


def is_private_creator(tag: int) -> bool:
    return is_private(tag) and 0x0010 <= (tag & 0xFFFF) <= 0x00FF


def is_overlay_group(tag: int) -> bool:
    group = tag >> 16
    return 0x6000 <= group <= 0x60FF and not group & 1


def is_curve_group(tag: int) -> bool:
    group = tag >> 16
    return 0x5000 <= group <= 0x50FF and not group & 1


def _parse_pattern(text: str) -> tuple[int, int]:
    """``"60xx,4000"`` -> (mask, value) over the 32-bit tag."""
    digits = text.replace(",", "")
    mask = 0
    value = 0
    for char in digits:
        mask <<= 4
        value <<= 4
        if char.lower() != "x":
            mask |= 0xF
            value |= int(char, 16)
    return mask, value


class _TagIndex:
    """Exact tags in a dict, ``x`` wildcard tags as (mask, value) pairs."""

    def __init__(self) -> None:
        self.exact: dict[int, object] = {}
        self.patterns: list[tuple[int, int, object]] = []

    def add(self, tag_text: str, item: object) -> None:
        mask, value = _parse_pattern(tag_text)
        if mask == 0xFFFFFFFF:
            self.exact.setdefault(value, item)
        else:
            self.patterns.append((mask, value, item))

    def get(self, tag: int) -> object | None:
        found = self.exact.get(tag)
        if found is not None:
            return found
        for mask, value, item in self.patterns:
            if tag & mask == value:
                return item
        return None


_RULINGS_SIZE = 1 << 14


class RuleView:
    """A profile, its table, its keep list and the safe private tags, as the verifier reads them.

    Raises nothing on construction; unknown option keys in rows are ignored (the models have
    already validated them).
    """

    def __init__(
        self,
        profile: Profile,
        table: ConfidentialityTable,
        keep_list: KeepList,
        safe_private: SafePrivateTags | None = None,
    ) -> None:
        self.profile = profile
        self.table = table
        self.keep_list = keep_list
        self._rows = _TagIndex()
        for row in table.rows:
            mask, value = _parse_pattern(row.tag)
            group_mask = mask >> 16
            # Private rows ("xxx1,xxxx" ...) and the overlay/curve groups are ruled here, by
            # tag class, not through the table.
            if group_mask & 0xF == 0xF and (value >> 16) & 1:
                continue
            self._rows.add(row.tag, row)
        self._keep = _TagIndex()
        for entry in keep_list.attributes:
            self._keep.add(entry.tag, entry)
        self._override_tag: dict[int, Override] = {}
        self._override_keyword: dict[str, Override] = {}
        for override in profile.overrides:
            if override.tag is not None:
                mask, value = _parse_pattern(override.tag)
                self._override_tag[value] = override
            if override.keyword is not None:
                self._override_keyword[override.keyword] = override
        keeps_safe = (
            profile.private_tags is PrivateTagPolicy.KEEP_SAFE
            or Option.RETAIN_SAFE_PRIVATE in profile.options
        )
        self.safe_private_enabled = keeps_safe and safe_private is not None
        self._safe: set[tuple[str, int, int]] = set()
        self._safe_creators: set[str] = set()
        if self.safe_private_enabled and safe_private is not None:
            for safe in safe_private.tags:
                creator = safe.creator.strip()
                self._safe.add((creator, int(safe.group, 16), int(safe.element[-2:], 16)))
                self._safe_creators.add(creator)
        self.remaps_uids = profile.remap_uids and Option.RETAIN_UIDS not in profile.options
        self._rulings: dict[tuple[int, str, str | None, bool], Disposition] = {}

    # ----- table -------------------------------------------------------------------------
    def table_row(self, tag: int) -> TableRow | None:
        row = self._rows.get(tag)
        return row if isinstance(row, TableRow) else None

    def in_keep_list(self, tag: int) -> bool:
        return self._keep.get(tag) is not None

    def override_for(self, tag: int, keyword: str) -> Override | None:
        return self._override_tag.get(tag) or (
            self._override_keyword.get(keyword) if keyword else None
        )

    def effective_action(self, row: TableRow) -> Action:
        """The action this profile applies to a table row (see the module docstring)."""
        actions = [row.options[opt] for opt in self.profile.options if opt in row.options]
        if Action.KEEP in actions:
            action = Action.KEEP
        elif Action.CLEAN in actions:
            action = Action.CLEAN
        elif actions:
            action = actions[0]
        else:
            action = row.basic
        if action is Action.UID and not self.profile.remap_uids:
            action = Action.KEEP
        return action

    @staticmethod
    def is_date_row(row: TableRow) -> bool:
        return any(opt in row.options for opt in _DATE_OPTIONS)

    # ----- dispositions ------------------------------------------------------------------
    def _from_action(
        self, action: Action, row: TableRow | None, policy: DescriptorPolicy
    ) -> Disposition:
        if action is Action.KEEP:
            return Disposition(Presence.RETAINED, "kept by the profile (K)", action)
        if action is Action.CLEAN:
            return Disposition(Presence.CLEANED, "cleaned by the profile (C)", action, policy)
        if action in (Action.DUMMY, Action.ZERO, Action.UID) or action in _COMBINED:
            return Disposition(Presence.REPLACED, f"replaced by the profile ({action})", action)
        # X
        if (
            row is not None
            and self.is_date_row(row)
            and self.profile.dates in (DatePolicy.YEAR, DatePolicy.SHIFT)
        ):
            return Disposition(
                Presence.REPLACED, f"date modified by the profile ({self.profile.dates})", action
            )
        return Disposition(Presence.REMOVED, "removed by the profile (X)", action)

    def disposition(
        self,
        tag: int,
        keyword: str = "",
        *,
        private_creator: str | None = None,
        in_mark_code_item: bool = False,
    ) -> Disposition:
        """Rule for one attribute at any depth.

        ``private_creator`` is the creator of the private block the tag belongs to (if known);
        ``in_mark_code_item`` tells that the attribute is inside an item of
        DeidentificationMethodCodeSequence.

        A ruling depends only on these arguments and the (frozen) rules, so it is remembered
        (a bounded number of them: creators come from the data).
        """
        key = (tag, keyword, private_creator, in_mark_code_item)
        ruling = self._rulings.get(key)
        if ruling is None:
            ruling = self._disposition(tag, keyword, private_creator, in_mark_code_item)
            if len(self._rulings) >= _RULINGS_SIZE:
                self._rulings.clear()
            self._rulings[key] = ruling
        return ruling

    def _disposition(
        self, tag: int, keyword: str, private_creator: str | None, in_mark_code_item: bool
    ) -> Disposition:
        if is_private(tag):
            return self._private_disposition(tag, private_creator)
        if tag & 0xFFFF == 0 and tag >> 16 != 0x0002:
            return Disposition(Presence.REMOVED, "group length not allowed")
        if is_overlay_group(tag):
            return Disposition(Presence.REMOVED, "overlay group not allowed")
        if is_curve_group(tag):
            return Disposition(Presence.REMOVED, "curve group not allowed")
        if tag == ICON_IMAGE_SEQUENCE:
            return Disposition(Presence.REMOVED, "icon image not allowed")
        if tag in MARK_TAGS:
            return Disposition(Presence.RETAINED, "de-identification mark")
        if in_mark_code_item and tag in MARK_CODE_ITEM_TAGS:
            return Disposition(Presence.RETAINED, "de-identification method code")
        override = self.override_for(tag, keyword)
        row = self.table_row(tag)
        policy = self.profile.descriptors
        if override is not None and override.descriptor_policy is not None:
            policy = override.descriptor_policy
        if override is not None and override.action is not None:
            return self._from_action(override.action, row, policy)
        if row is not None:
            return self._from_action(self.effective_action(row), row, policy)
        if self.in_keep_list(tag):
            return Disposition(Presence.RETAINED, "in the keep list")
        return Disposition(Presence.REMOVED, "not in the table or the keep list")

    def _private_disposition(self, tag: int, creator: str | None) -> Disposition:
        element = tag & 0xFFFF
        if not self.safe_private_enabled:
            return Disposition(Presence.REMOVED, "private attribute not allowed")
        if 0x0010 <= element <= 0x00FF:
            if creator is not None and creator.strip() in self._safe_creators:
                return Disposition(Presence.RETAINED, "safe private creator")
            return Disposition(Presence.REMOVED, "private creator not in the safe list")
        if element < 0x1000 or creator is None:
            return Disposition(Presence.REMOVED, "private attribute without a creator")
        key = (creator.strip(), tag >> 16, element & 0xFF)
        if key in self._safe:
            return Disposition(Presence.RETAINED, "safe private attribute")
        return Disposition(Presence.REMOVED, "private attribute not in the safe list")


def tag_text(tag: int | BaseTag) -> str:
    """``(GGGG,EEEE)`` upper-case."""
    value = int(tag)
    return f"({value >> 16:04X},{value & 0xFFFF:04X})"


_VIEW_CACHE: dict[tuple[int, int, int, int], tuple[tuple[object, ...], RuleView]] = {}
_VIEW_CACHE_SIZE = 16


def rule_view(
    profile: Profile,
    table: ConfidentialityTable,
    keep_list: KeepList,
    safe_private: SafePrivateTags | None = None,
) -> RuleView:
    """A :class:`RuleView`, reused while the same rule objects are passed (they are frozen).

    The cache is keyed by object identity and keeps the objects alive, so an identity is never
    reused for different rules while its entry exists.
    """
    objects = (profile, table, keep_list, safe_private)
    key = (id(profile), id(table), id(keep_list), id(safe_private))
    cached = _VIEW_CACHE.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], objects, strict=True)):
        return cached[1]
    view = RuleView(profile, table, keep_list, safe_private)
    if len(_VIEW_CACHE) >= _VIEW_CACHE_SIZE:
        _VIEW_CACHE.pop(next(iter(_VIEW_CACHE)))
    _VIEW_CACHE[key] = (objects, view)
    return view
