"""Burned-in text from the header: risk flags and device-keyed blackout proposals (pure).

:func:`header_risk` says whether an image is likely to carry burned-in text (reasons are codes,
never header values). :func:`device_rule_regions` evaluates CTP's burned-in annotation library
(:mod:`tftt.pixels.pixel_rules`) against a header and proposes the matching regions, clipped to
the image. OCR proposals (:mod:`tftt.pixels.ocr`) use the same :class:`ProposedRegion` model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydicom import config as pydicom_config
from pydicom import hooks as pydicom_hooks
from pydicom.dataelem import DataElement, RawDataElement
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


_NO_RISK = RiskAssessment()
_DEFAULT_MODALITIES = frozenset(item.strip().upper() for item in RISKY_MODALITIES)


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


#: Raw values read without pydicom's conversion, by how pydicom 3 converts them
#: (``pydicom.values``): code strings (``convert_string``: the whole value right-stripped of
#: spaces and NULs, then split at ``\\``); UIDs (``convert_UI``: the same, then each value
#: stripped of whitespace by ``UID()``); application entities (``convert_AE_string``: each value
#: stripped); the text VRs that may be multi-valued (``convert_text``: each value right-stripped
#: of NULs and spaces) and those that may not (``convert_single_string``: the whole value).
_STRIPPED_VRS = frozenset({"CS", "AS"})
_DATE_VRS = frozenset({"DA", "DT", "TM"})  # as _STRIPPED_VRS unless config.datetime_conversion
_MULTI_TEXT_VRS = frozenset({"LO", "SH", "UC"})
_SINGLE_TEXT_VRS = frozenset({"ST", "LT", "UT"})
#: Character sets (pydicom's Python codec names) in which printable ASCII bytes decode to the same
#: characters, and those characters encode back to the same bytes (tests check both, through
#: pydicom's own ``decode_bytes``/``encode_string``). ISO 2022 sets with escapes, Shift JIS and
#: the multi-byte sets of code extensions are left to pydicom.
_ASCII_CHARSETS = frozenset(
    {
        "iso8859", "latin_1", "iso8859_2", "iso8859_3", "iso8859_4", "iso_ir_126", "iso_ir_127",
        "iso_ir_138", "iso_ir_144", "iso_ir_148", "iso_ir_166", "UTF8", "GB18030", "GBK",
    }
)  # fmt: skip


def _pydicom_defaults(vr: str) -> bool:
    """Whether pydicom converts ``vr`` as :func:`_raw_text` assumes: its default hooks and no
    callback (either could change any value), validation that only warns (under RAISE a value
    that fails it reads as absent), and dates left as strings."""
    return (
        pydicom_config.data_element_callback is None
        and pydicom_hooks.hooks.raw_element_vr is pydicom_hooks.raw_element_vr
        and pydicom_hooks.hooks.raw_element_value is pydicom_hooks.raw_element_value
        and not pydicom_hooks.hooks.raw_element_kwargs
        and pydicom_config.settings.reading_validation_mode != pydicom_config.RAISE
        and (vr not in _DATE_VRS or not pydicom_config.datetime_conversion)
    )


def _ascii_charset(source: Dataset) -> bool:
    """Whether ``source`` reads text in a character set of :data:`_ASCII_CHARSETS` (the set
    ``Dataset.__getitem__`` would hand to pydicom's conversion)."""
    encodings = source.original_character_set or source._character_set
    first = encodings if isinstance(encodings, str) else (encodings[0] if encodings else "iso8859")
    return first in _ASCII_CHARSETS


def _raw_text(source: Dataset, raw: RawDataElement) -> str | None:
    """What :func:`converted_element_text` returns for ``raw``, computed from its bytes, or
    ``None`` when that is not certain (the caller then converts as before).

    Why: reading an attribute through ``source[tag]`` builds a converted element and stores it
    in the dataset: most of :func:`header_risk`'s time on a plain CT file, and the second pass
    then takes the converted element's slower path too.

    Only printable ASCII (a UID's one trailing NUL pad aside), an explicit VR listed above, a
    defined length, pydicom's default conversion, and for text VRs a character set of
    :data:`_ASCII_CHARSETS`. And only a *canonical* value: one that pydicom writes back as the
    same bytes (the text plus at most its one pad character). Reading such a value without
    converting it therefore changes nothing downstream either: the second pass writes the raw
    element's bytes as read, and the converted element (what the conversion left in the
    dataset before) encodes to exactly those bytes. Anything else converts, as before.
    """
    vr, value = raw.VR, raw.value
    if type(value) is not bytes or raw.length != len(value) or not value.isascii():
        return None
    text = value.decode("ascii")
    pad = "\0" if vr == "UI" else " "
    body = text[:-1] if vr == "UI" and text.endswith("\0") else text
    if not body.isprintable():  # ASCII controls: NUL, ESC (code extensions), CR, LF, TAB...
        return None
    if vr in _STRIPPED_VRS or vr in _DATE_VRS:
        result = text.rstrip(" \0")
    elif vr == "UI":
        result = "\\".join(item.strip() for item in text.rstrip("\0 ").split("\\"))
    elif vr == "AE":
        result = "\\".join(item.strip() for item in text.split("\\"))
    elif vr in _MULTI_TEXT_VRS:
        result = "\\".join(item.rstrip("\0 ") for item in text.split("\\"))
    elif vr in _SINGLE_TEXT_VRS:
        result = text.rstrip("\0 ")
    else:
        return None
    written = result + pad if len(result) % 2 else result
    if written != text or not _pydicom_defaults(vr):
        return None
    if (vr in _MULTI_TEXT_VRS or vr in _SINGLE_TEXT_VRS) and not _ascii_charset(source):
        return None
    return result


def _value_text(element: DataElement) -> str:
    value = element.value
    if type(value) is str and element.VR != "SQ":
        return value  # the common case, ahead of the ABC check for MultiValue
    if value is None or element.VR == "SQ" or isinstance(value, bytes | bytearray | memoryview):
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join("" if item is None else str(item) for item in value)
    return str(value)


def element_text(ds: Dataset, tag: int) -> str:
    """An attribute's value as CTP's filter sees it: ``""`` when absent, empty, binary, a
    sequence or unreadable; values of a multi-valued attribute joined with ``\\``. Group 0002
    is read from the file meta information.

    The same text as :func:`converted_element_text`, without converting (and so without storing
    a converted element in ``ds``) where the raw bytes give it for certain (see
    :func:`_raw_text`)."""
    source = getattr(ds, "file_meta", None) if tag >> 16 == 0x0002 else ds
    if source is None:
        return ""
    # A plain int finds its BaseTag key (an int subclass, with the same hash): no Tag() per read.
    element = source._dict.get(tag)  # type: ignore[call-overload]
    if element is None:
        return ""
    if type(element) is DataElement:
        return _value_text(element)  # what ``source[tag]`` hands back for a converted element
    if type(element) is RawDataElement:
        text = _raw_text(source, element)
        if text is not None:
            return text
    return converted_element_text(ds, tag)


def converted_element_text(ds: Dataset, tag: int) -> str:
    """:func:`element_text` read through pydicom's conversion (``ds[tag]``), which stores the
    converted element in the dataset in place of the raw one: the reference the fast path is
    tested against, and its fallback."""
    source = getattr(ds, "file_meta", None) if tag >> 16 == 0x0002 else ds
    if source is None or tag not in source:
        return ""
    try:
        element = source[tag]
        element.value  # noqa: B018 - a deferred or malformed value fails here
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, OverflowError):
        return ""  # a malformed value reads as absent, as in CTP
    return _value_text(element)


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


def _reader(ds: Dataset) -> Callable[[int], str]:
    """:func:`element_text` of ``ds``, each tag read once: CTP's conditions test the same
    attribute several times (the burned-in filter and :func:`header_risk` share three, the device
    rules mostly Manufacturer, Modality and Rows/Columns). Only for one evaluation over a
    dataset that does not change meanwhile."""
    texts: dict[int, str] = {}

    def read(tag: int) -> str:
        text = texts.get(tag)
        if text is None:
            text = texts[tag] = element_text(ds, tag)
        return text

    return read


def _holds(condition: Condition, read: Callable[[int], str]) -> bool:
    if isinstance(condition, Comparison):
        return _compare(condition, read(condition.tag_int))
    if isinstance(condition, Constant):
        return condition.value
    if isinstance(condition, Not):
        return not _holds(condition.operand, read)
    if isinstance(condition, And):
        return all(_holds(part, read) for part in condition.operands)
    if isinstance(condition, Or):
        return any(_holds(part, read) for part in condition.operands)
    raise AssertionError(f"unhandled condition {type(condition).__name__}")  # pragma: no cover


def evaluate_condition(condition: Condition, ds: Dataset) -> bool:
    """Evaluate a parsed CTP condition against a header.

    Reads ``ds`` only through :func:`element_text`: a value it cannot take from the raw bytes
    is converted by pydicom, which (as any ``ds[tag]``) stores the converted element in ``ds``
    in place of the raw one; the value and what is written from it stay the same."""
    return _holds(condition, _reader(ds))


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
    read = _reader(ds)
    found: set[RiskReason] = set()
    if read(0x00280301).strip().upper() == "YES":
        found.add(RiskReason.BURNED_IN_ANNOTATION)
    if risky_modalities is RISKY_MODALITIES:
        modalities: Collection[str] = _DEFAULT_MODALITIES
    else:
        modalities = {item.strip().upper() for item in risky_modalities}
    if read(0x00080060).strip().upper() in modalities:
        found.add(RiskReason.RISKY_MODALITY)
    image_type = read(0x00080008).upper()
    if "SECONDARY" in image_type:
        found.add(RiskReason.SECONDARY_IMAGE_TYPE)
    if _SCREEN_SAVE.search(image_type):
        found.add(RiskReason.SCREEN_SAVE_IMAGE_TYPE)
    sop_class = read(0x00080016).strip() or read(0x00020002).strip()
    if sop_class in SECONDARY_CAPTURE_SOP_CLASSES:
        found.add(RiskReason.SECONDARY_CAPTURE_SOP_CLASS)
    if not _holds(rule.condition, read):
        found.add(RiskReason.CTP_BURNED_IN_FILTER)
    if not found:
        return _NO_RISK  # frozen, so one instance serves every clean header
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
    read = _reader(ds)
    return [rule.id for rule in rules.rules if _holds(rule.condition, read)]


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
    read = _reader(ds)
    for rule in rules.rules:
        if not _holds(rule.condition, read):
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
