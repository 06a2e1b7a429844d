"""Burned-in text from the header: risk flags and device-keyed blackout proposals (pure).

:func:`header_risk` says whether an image is likely to carry burned-in text (reasons are codes,
never header values). :func:`device_rule_regions` evaluates CTP's burned-in annotation library
(:mod:`tftt.pixels.pixel_rules`) against a header and proposes the matching regions, clipped to
the image. OCR proposals (:mod:`tftt.pixels.ocr`) use the same :class:`ProposedRegion` model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from tftt.pixels.pixel_rules import (
    And,
    BurnedInFilter,
    Comparison,
    Condition,
    Constant,
    Method,
    Not,
    Or,
    PixelRules,
    load_burned_in_filter,
)

SECONDARY_CAPTURE_SOP_CLASSES: frozenset[str] = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
RISKY_MODALITIES: frozenset[str] = frozenset({"US", "SC", "OT", "XA", "ES"})

_SCREEN_SAVE = re.compile(r"SCREEN\s*SAVE")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RiskReason(StrEnum):
    """Why a header suggests burned-in text. Codes only: safe for logs and quarantine records."""

    BURNED_IN_ANNOTATION = "burned-in-annotation-yes"
    RISKY_MODALITY = "risky-modality"
    SECONDARY_IMAGE_TYPE = "image-type-secondary"
    SCREEN_SAVE_IMAGE_TYPE = "image-type-screen-save"
    SECONDARY_CAPTURE_SOP_CLASS = "sop-class-secondary-capture"
    CTP_BURNED_IN_FILTER = "ctp-burned-in-filter"


class RiskAssessment(_Frozen):
    """The header's burned-in text risk: the reasons found, in :class:`RiskReason` order."""

    reasons: tuple[RiskReason, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


class ProposedRegion(_Frozen):
    """A proposed blackout in image pixels: columns ``x .. x+width-1``, rows
    ``y .. y+height-1``, on frames ``first_frame .. last_frame`` (0-based, inclusive; ``None``
    means from the first / to the last frame)."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    first_frame: int | None = Field(None, ge=0)
    last_frame: int | None = Field(None, ge=0)
    source: Literal["device-rule", "ocr"]
    rule_id: str | None = Field(None, description="The device rule's id (source 'device-rule')")

    @model_validator(mode="after")
    def _check(self) -> ProposedRegion:
        if (
            self.first_frame is not None
            and self.last_frame is not None
            and self.last_frame < self.first_frame
        ):
            raise ValueError("last_frame must not be before first_frame")
        if (self.source == "device-rule") != (self.rule_id is not None):
            raise ValueError("rule_id is required for device-rule regions and only for them")
        return self


# --------------------------------------------------------------------------- header values


def element_text(ds: Dataset, tag: int) -> str:
    """An attribute's value as CTP's filter sees it: ``""`` when absent, empty, binary, a
    sequence or unreadable; values of a multi-valued attribute joined with ``\\``. Group 0002
    is read from the file meta information."""
    source = getattr(ds, "file_meta", None) if tag >> 16 == 0x0002 else ds
    if source is None or tag not in source:
        return ""
    try:
        element = source[tag]
        value = element.value
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, OverflowError):
        return ""  # a malformed value reads as absent, as in CTP
    if value is None or element.VR == "SQ" or isinstance(value, bytes | bytearray | memoryview):
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join("" if item is None else str(item) for item in value)
    return str(value)


def _compare(comparison: Comparison, text: str) -> bool:
    value = comparison.value
    method = comparison.method
    if method is Method.EQUALS:
        return text == value
    if method is Method.EQUALS_IGNORE_CASE:
        return text.lower() == value.lower()
    if method is Method.MATCHES:
        return re.fullmatch(value, text) is not None
    if method is Method.CONTAINS:
        return value in text
    if method is Method.CONTAINS_IGNORE_CASE:
        return value.lower() in text.lower()
    if method is Method.STARTS_WITH:
        return text.startswith(value)
    if method is Method.STARTS_WITH_IGNORE_CASE:
        return text.lower().startswith(value.lower())
    if method is Method.ENDS_WITH:
        return text.endswith(value)
    if method is Method.ENDS_WITH_IGNORE_CASE:
        return text.lower().endswith(value.lower())
    raise AssertionError(f"unhandled method {method}")  # pragma: no cover - enum is closed


def evaluate_condition(condition: Condition, ds: Dataset) -> bool:
    """Evaluate a parsed CTP condition against a header (never mutates ``ds``)."""
    if isinstance(condition, Comparison):
        return _compare(condition, element_text(ds, condition.tag_int))
    if isinstance(condition, Constant):
        return condition.value
    if isinstance(condition, Not):
        return not evaluate_condition(condition.operand, ds)
    if isinstance(condition, And):
        return all(evaluate_condition(part, ds) for part in condition.operands)
    if isinstance(condition, Or):
        return any(evaluate_condition(part, ds) for part in condition.operands)
    raise AssertionError(f"unhandled condition {type(condition).__name__}")  # pragma: no cover


# --------------------------------------------------------------------------- risk flags


def header_risk(
    ds: Dataset,
    *,
    burned_in_filter: BurnedInFilter | None = None,
    risky_modalities: Iterable[str] = RISKY_MODALITIES,
) -> RiskAssessment:
    """Flag headers that suggest burned-in text.

    Reasons: BurnedInAnnotation is YES; Modality is one of ``risky_modalities`` (US, SC, OT, XA,
    ES by default); ImageType contains SECONDARY or SCREEN SAVE; the SOP class is a Secondary
    Capture variant; CTP's burned-in pixels filter does not pass the image.

    ``burned_in_filter`` defaults to the shipped ``burned-in-filter.json``.

    Raises:
        RuleError: the shipped filter file is missing or invalid.
    """
    rule = burned_in_filter if burned_in_filter is not None else load_burned_in_filter()
    found: set[RiskReason] = set()
    if element_text(ds, 0x00280301).strip().upper() == "YES":
        found.add(RiskReason.BURNED_IN_ANNOTATION)
    modalities = {item.strip().upper() for item in risky_modalities}
    if element_text(ds, 0x00080060).strip().upper() in modalities:
        found.add(RiskReason.RISKY_MODALITY)
    image_type = element_text(ds, 0x00080008).upper()
    if "SECONDARY" in image_type:
        found.add(RiskReason.SECONDARY_IMAGE_TYPE)
    if _SCREEN_SAVE.search(image_type):
        found.add(RiskReason.SCREEN_SAVE_IMAGE_TYPE)
    sop_class = element_text(ds, 0x00080016).strip() or element_text(ds, 0x00020002).strip()
    if sop_class in SECONDARY_CAPTURE_SOP_CLASSES:
        found.add(RiskReason.SECONDARY_CAPTURE_SOP_CLASS)
    if not evaluate_condition(rule.condition, ds):
        found.add(RiskReason.CTP_BURNED_IN_FILTER)
    return RiskAssessment(reasons=tuple(reason for reason in RiskReason if reason in found))


# --------------------------------------------------------------------------- device rules


def _image_size(ds: Dataset) -> tuple[int, int] | None:
    try:
        rows = int(ds.get("Rows") or 0)
        columns = int(ds.get("Columns") or 0)
    except (TypeError, ValueError):
        return None
    if rows <= 0 or columns <= 0:
        return None
    return rows, columns


def clip_region(
    x: int, y: int, width: int, height: int, rows: int, columns: int
) -> tuple[int, int, int, int] | None:
    """CTP's region adjustment (``Regions.getAdjustedRegions``): a negative x (y) counts from
    the right (bottom) edge and, if still negative, becomes 0; the region is then cut at the
    image's right and bottom edges. ``None`` when nothing of it is inside."""
    left = x + columns if x < 0 else x
    top = y + rows if y < 0 else y
    left, top = max(left, 0), max(top, 0)
    width = min(width, columns - left)
    height = min(height, rows - top)
    if width <= 0 or height <= 0:
        return None
    return left, top, width, height


def matching_rules(ds: Dataset, rules: PixelRules) -> list[str]:
    """Ids of the rules whose condition the header satisfies, in library order."""
    return [rule.id for rule in rules.rules if evaluate_condition(rule.condition, ds)]


def device_rule_regions(
    ds: Dataset, rules: PixelRules, *, first_match_only: bool = False
) -> list[ProposedRegion]:
    """Regions of every library rule the header matches, clipped to Rows x Columns, for all
    frames. CTP applies only the first matching signature; TFTT proposes the regions of every
    match (a superset) unless ``first_match_only``. Identical regions are proposed once.
    Without usable Rows/Columns nothing can be placed and the result is empty."""
    size = _image_size(ds)
    if size is None:
        return []
    rows, columns = size
    out: list[ProposedRegion] = []
    seen: set[tuple[int, int, int, int]] = set()
    for rule in rules.rules:
        if not evaluate_condition(rule.condition, ds):
            continue
        for region in rule.regions:
            clipped = clip_region(region.x, region.y, region.width, region.height, rows, columns)
            if clipped is None or clipped in seen:
                continue
            seen.add(clipped)
            x, y, width, height = clipped
            out.append(
                ProposedRegion(
                    x=x, y=y, width=width, height=height, source="device-rule", rule_id=rule.id
                )
            )
        if first_match_only:
            break
    return out
