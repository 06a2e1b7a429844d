"""Independent verification of a de-identified output (issue 2, part 4).

Written without reference to the engine: it re-reads the output bytes and checks them against
identifiers harvested from the original (:func:`~tftt.deid.harvest.harvest_identifiers`) and
against its own reading of the profile (:mod:`tftt.deid.retention`).

:func:`verify_output` checks

- every element value at every depth (main dataset, sequence items, private elements, file
  meta), the encapsulated pixel data fragments, the raw file bytes (preamble included) and the
  file name, for any harvested identifier, case-insensitively, in ASCII/Latin-1, UTF-8 and
  UTF-16-LE (see :mod:`tftt.deid.scan` for word and digit boundaries);
- e-mail addresses in any element value;
- JPEG (and JPEG-LS) fragments: any COM or APP1-APP15 segment is a finding, so is an APP0 that
  is not a thumbnail-free JFIF header and an APP14 that is not a plain Adobe header; JPEG 2000
  codestreams: any COM other than OpenJPEG's own signature;
- that only allowed attributes remain (:class:`~tftt.deid.retention.RuleView`): no private
  attributes unless listed as safe for their creator, no overlay or curve groups, no icon image,
  only the rebuilt file meta attributes (no source or sending AE title);
- UIDs: at most 64 characters, valid syntax, no harvested instance UID (when the profile remaps
  UIDs), MediaStorageSOPInstanceUID equal to SOPInstanceUID, file name equal to
  ``SOPInstanceUID + ".dcm"``;
- PatientIdentityRemoved is ``YES``; ages at most the profile's maximum, or exactly ``090Y``;
  under a ``year`` date policy every DA is ``YYYY0101`` or empty, every DT at most ``YYYY`` and
  no time of day remains in an attribute of the table (a zero dummy such as ``000000`` is
  accepted: it says nothing);
- the 128-byte preamble is all zeros and followed by ``DICM``.

Any finding raises :class:`~tftt.errors.ResidualPHIError`, whose ``findings`` name the place
(attribute path, fragment, raw offset, file name) and the kind of problem, never the value.

An output in Explicit VR Little Endian (natively or encapsulated) is read by
:mod:`tftt.deid.raw_dataset`, not by the parser that wrote it; other transfer syntaxes, and
anything that reader refuses, are read by pydicom, and an output neither reads is a finding.

The files of a series repeat almost every element value. With a :class:`~tftt.deid.memo.Memo`
kept across a batch, the verifier remembers its judgement of each plain element value read by
that reader (keyed by everything the judgement depends on, see
:meth:`_Verifier._walk_remembered`) and what the patient's shared needles find in each
searched value (see :meth:`_Verifier._search_remembered`); each file's own UIDs and its raw
bytes are searched every time. The findings are the same with or without a memo
(tests/deid/test_verify_memo.py).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, NamedTuple

from pydicom import dcmread
from pydicom.dataset import Dataset

from tftt.deid.harvest import Identifiers, harvest_identifiers
from tftt.deid.integrity import NATIVE_SYNTAXES, PIXEL_TAGS, image_bits, is_image_sop_class
from tftt.deid.memo import Memo
from tftt.deid.raw_dataset import RawDataset, read_explicit_little
from tftt.deid.retention import (
    DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
    FILE_META_ALLOWED,
    RuleView,
    is_private,
    is_private_creator,
    rule_view,
    tag_text,
)
from tftt.deid.rules import (
    Action,
    ConfidentialityTable,
    DatePolicy,
    KeepList,
    Profile,
    SafePrivateTags,
)
from tftt.deid.scan import (
    BINARY_TEXTLIKE_VRS,
    TEXT_VRS,
    ElementView,
    Hit,
    NeedleSet,
    character_set,
    iter_elements,
    merge_uid_hits,
    text_of,
    view_element,
    view_node,
)
from tftt.errors import ResidualPHIError, UnsupportedInputError

__all__ = [
    "Identifiers",
    "VerificationReport",
    "harvest_identifiers",
    "inspect_codestream",
    "verify_output",
]

MAX_FINDINGS = 200
_DEFER_SIZE = 1 << 20
PIXEL_DATA = 0x7FE00010
_BULK_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_NO_SCAN_VRS = frozenset(
    {"DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "AT", "OF", "OD", "OL", "OV", "SV", "UV"}
)
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_AGE = re.compile(r"(\d{3})([DWMY])")
_YEAR_DA = re.compile(r"\d{4}0101")
_YEAR_DT = re.compile(r"\d{4}")
_LEADING_YEAR = re.compile(r"(\d{4})")
_ZERO_TM = re.compile(r"0+(\.0+)?")
_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PIECE_SEPARATOR = b"\x00\x00\x00\x00"
_MEMO_MAX_VALUE = 256
"""Longest value or piece (bytes) whose judgement or search a memo keeps: in a CT series
almost every value is shorter and repeats; longer ones are rarer, cost more to compare and
would make the memo's size depend on the data."""
_ELEMENT = "verify element"  # first item of a memo key: which kind of result it keeps
_PIECE = "verify piece"

# JPEG markers: anywhere between segments; after a SOS only FF followed by >= 0x80 (this also
# holds for JPEG-LS, whose scan data may contain FF followed by a byte below 0x80).
_JPEG_SOI = re.compile(rb"\xff\xd8")
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_JPEG_MARKER_AFTER_SCAN = re.compile(rb"\xff[\x80-\xcf\xd8-\xfe]")
_OPENJPEG_COMMENT = re.compile(rb"Created by OpenJPEG version [0-9.]+")


@dataclass(frozen=True)
class VerificationReport:
    """What verification looked at, for the audit trail: counts only, no values."""

    elements_scanned: int
    sequence_items: int
    private_elements: int
    identifiers_checked: int
    bytes_scanned: int
    fragments_scanned: int
    codestream_segments: int


@dataclass
class _Findings:
    items: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    dropped: int = 0

    def add(self, where: str, what: str) -> None:
        text = f"{where}: {what}"
        if text in self.seen:
            return
        self.seen.add(text)
        if len(self.items) < MAX_FINDINGS:
            self.items.append(text)
        else:
            self.dropped += 1


def _label(prefix: str, tag: int, keyword: str, private: bool) -> str:
    """Where an element is, as findings name it."""
    name = keyword or ("private" if private else "unknown")
    return f"{prefix}{tag_text(tag)} {name}"


_CLEAN: tuple[tuple[Hit, ...], tuple[int, ...]] = ((), ())


def _search_pieces(
    needles: NeedleSet, pieces: list[bytes], *, short: bool, lead: bool, trail: bool
) -> list[tuple[tuple[Hit, ...], tuple[int, ...]]] | None:
    """Needle hits and e-mail offsets in each of ``pieces`` (offsets within the piece), found
    by one search of the pieces joined as :meth:`_Verifier.scan_pieces` joins them, with a
    separator before the first if ``lead`` and after the last if ``trail``.

    ``needles`` must be separable (see :attr:`~tftt.deid.scan.NeedleSet.separable`): each
    piece's results are then those it has in any buffer where it has the same neighbourhood.
    ``None`` if a match starts outside every piece, which that rules out.
    """
    sep = _PIECE_SEPARATOR
    offsets: list[int] = []
    position = len(sep) if lead else 0
    for data in pieces:
        offsets.append(position)
        position += len(data) + len(sep)
    buffer = (sep if lead else b"") + sep.join(pieces) + (sep if trail else b"")
    found: list[tuple[list[Hit], list[int]]] = [([], []) for _ in pieces]
    places: list[tuple[int, Hit | None]] = [(h.offset, h) for h in needles.search(buffer, short=short)]
    if short:
        places += [(match.start(), None) for match in _EMAIL.finditer(buffer)]
    for offset, hit in places:
        index = bisect.bisect_right(offsets, offset) - 1
        if index < 0 or offset >= offsets[index] + len(pieces[index]):
            return None
        relative = offset - offsets[index]
        if hit is None:
            found[index][1].append(relative)
        else:
            found[index][0].append(Hit(relative, hit.length, hit.category, hit.encoding))
    return [(tuple(h), tuple(e)) if h or e else _CLEAN for h, e in found]


@dataclass(frozen=True)
class CodestreamSegment:
    """A marker segment of a JPEG or JPEG 2000 codestream (offsets within the codestream)."""

    marker: int
    start: int
    payload_start: int
    payload_end: int
    allowed: bool
    description: str


def _jpeg_segment_allowed(marker: int, payload: bytes) -> tuple[bool, str]:
    if marker == 0xFE:
        return False, "JPEG COM segment"
    if marker == 0xE0:
        if payload.startswith(b"JFIF\x00") and len(payload) >= 14 and payload[12:14] == b"\0\0":
            return True, "JPEG APP0 JFIF segment"
        return False, "JPEG APP0 segment that is not a plain JFIF header"
    if marker == 0xEE:
        if payload.startswith(b"Adobe") and len(payload) <= 12:
            return True, "JPEG APP14 Adobe segment"
        return False, "JPEG APP14 segment that is not a plain Adobe header"
    if 0xE1 <= marker <= 0xEF:
        return False, f"JPEG APP{marker - 0xE0} segment"
    return True, f"JPEG marker FF{marker:02X}"


def _jpeg_segments(stream: bytes | memoryview) -> list[CodestreamSegment]:
    """APPn and COM segments of the JPEG frames in ``stream``. Outside a frame (before SOI,
    after EOI) only a SOI is looked for, so padding after a frame is not parsed as markers."""
    segments: list[CodestreamSegment] = []
    size = len(stream)
    pos = 0
    state = "outside"
    while pos < size:
        if state == "outside":
            soi = _JPEG_SOI.search(stream, pos)
            if soi is None:
                break
            state = "header"
            pos = soi.end()
            continue
        finder = _JPEG_MARKER_AFTER_SCAN if state == "scan" else _JPEG_MARKER
        match = finder.search(stream, pos)
        if match is None:
            break
        at = match.start()
        marker = stream[at + 1]
        if marker == 0xD9:  # EOI
            state = "outside"
            pos = at + 2
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos = at + 2
            continue
        if at + 4 > size:
            segments.append(CodestreamSegment(marker, at, size, size, False, "truncated marker"))
            break
        length = int.from_bytes(bytes(stream[at + 2 : at + 4]), "big")
        end = min(at + 2 + length, size)
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            payload = bytes(stream[at + 4 : end])
            allowed, description = _jpeg_segment_allowed(marker, payload)
            segments.append(CodestreamSegment(marker, at, at + 4, end, allowed, description))
        state = "scan" if marker == 0xDA else "header"
        pos = max(end, at + 2)
    return segments


def _j2k_segments(stream: bytes | memoryview) -> list[CodestreamSegment]:
    """COM segments of a JPEG 2000 codestream's main and tile-part headers."""
    segments: list[CodestreamSegment] = []
    size = len(stream)
    pos = 2  # after SOC
    while pos + 4 <= size:
        marker = int.from_bytes(bytes(stream[pos : pos + 2]), "big")
        if marker >> 8 != 0xFF:
            break
        if marker == 0xFFD9:  # EOC
            break
        length = int.from_bytes(bytes(stream[pos + 2 : pos + 4]), "big")
        if marker == 0xFF90:  # SOT: walk this tile-part header, then jump to the next SOT
            psot = int.from_bytes(bytes(stream[pos + 6 : pos + 10]), "big")
            tile_end = pos + psot if psot else size
            inner = pos + 2 + length
            while inner + 4 <= min(tile_end, size):
                inner_marker = int.from_bytes(bytes(stream[inner : inner + 2]), "big")
                if inner_marker == 0xFF93 or inner_marker >> 8 != 0xFF:  # SOD
                    break
                inner_length = int.from_bytes(bytes(stream[inner + 2 : inner + 4]), "big")
                if inner_marker == 0xFF64:
                    segments.append(_j2k_comment(stream, inner, inner_length))
                inner += 2 + max(inner_length, 2)
            if not psot:
                break
            pos = tile_end
            continue
        if marker == 0xFF64:
            segments.append(_j2k_comment(stream, pos, length))
        pos += 2 + max(length, 2)
    return segments


def _j2k_comment(stream: bytes | memoryview, at: int, length: int) -> CodestreamSegment:
    end = min(at + 2 + length, len(stream))
    payload = bytes(stream[at + 4 : end])
    allowed = payload[:2] == b"\x00\x01" and bool(_OPENJPEG_COMMENT.fullmatch(payload[2:]))
    return CodestreamSegment(0xFF64, at, at + 4, end, allowed, "JPEG 2000 COM segment")


def inspect_codestream(stream: bytes | memoryview) -> list[CodestreamSegment]:
    """Text-capable marker segments of one JPEG, JPEG-LS or JPEG 2000 codestream (a frame).

    Returns COM and APPn segments (JPEG) or COM segments (JPEG 2000), each marked allowed or
    not. Other data (RLE, deflate, unknown) has none.
    """
    head = bytes(stream[:4])
    if head[:2] == b"\xff\xd8":
        return _jpeg_segments(stream)
    if head == b"\xff\x4f\xff\x51":
        return _j2k_segments(stream)
    return []


def _encapsulated_items(value: bytes | memoryview) -> tuple[list[tuple[int, int]], bool]:
    """(start, end) of each item's value within an encapsulated Pixel Data value (item 0 is the
    Basic Offset Table), and whether the structure was well formed."""
    items: list[tuple[int, int]] = []
    pos = 0
    size = len(value)
    while pos + 8 <= size:
        tag = bytes(value[pos : pos + 4])
        length = int.from_bytes(value[pos + 4 : pos + 8], "little")
        if tag == b"\xfe\xff\xdd\xe0":  # sequence delimiter
            return items, True
        if tag != b"\xfe\xff\x00\xe0" or pos + 8 + length > size:
            return items, False
        items.append((pos + 8, pos + 8 + length))
        pos += 8 + length
    return items, pos == size


class _Judgement(NamedTuple):
    """What one element adds to a verification, apart from where its value lies in the file.

    It is a function of the element (tag, VR, value bytes) and of the walk's context (see
    :meth:`_Verifier._walk_remembered`), never of the file's own identifiers: the check for a
    harvested UID is kept as a note naming the UID, tested against the file's identifiers each
    time the judgement is applied. So it can be remembered and applied to another file. (A
    named tuple: immutable, and made at a fraction of a frozen dataclass's cost, once per
    element.)
    """

    label: str
    private: bool
    notes: tuple[tuple[str, str | None], ...]
    """Findings in order: (what, ``None``) always holds; (what, uid) holds if ``uid`` was
    harvested from the file's original."""
    pieces: tuple[tuple[bytes, bool, bool], ...]
    """Values to search, in order: (data, binary: long needles only, spans the value bytes)."""
    value_length: int  # bytes of the value in the file, which the spanning pieces cover
    error: bool


class _Verifier:
    def __init__(
        self,
        identifiers: Identifiers,
        output: bytes,
        profile: Profile,
        view: RuleView,
        memo: Memo | None = None,
    ) -> None:
        self.identifiers = identifiers
        self.output = output
        self.profile = profile
        self.view = view
        self.memo = memo
        self.findings = _Findings()
        self.pieces: list[tuple[str, bytes]] = []  # text and private/unknown values
        self.binary: list[tuple[str, bytes]] = []  # standard binary values: long needles only
        self.spans: list[tuple[int, int, str]] = []
        self.base = 0  # file offset that the value offsets of the elements being read count from
        self.reference_year: int | None = None  # the year the object was made (Study Date ...)
        self.elements = 0
        self.items = 0
        self.private = 0
        self.fragments = 0
        self.segments = 0

    # ----- walking -----------------------------------------------------------------------
    def walk(
        self,
        ds: Dataset | RawDataset,
        encoding: str | list[str] | None,
        prefix: str,
        *,
        top: bool,
        in_mark_code: bool = False,
        meta: bool = False,
    ) -> None:
        encoding = character_set(ds, encoding)
        if self.memo is not None and isinstance(ds, RawDataset):
            self._walk_remembered(ds, encoding, prefix, top=top, in_mark_code=in_mark_code,
                                  meta=meta)  # fmt: skip
            return
        defer = _BULK_PIXEL_TAGS if top else frozenset()
        for element in iter_elements(ds, encoding, defer=defer):
            self._element(ds, element, encoding, prefix, top=top, in_mark_code=in_mark_code,
                          meta=meta)  # fmt: skip

    def _walk_remembered(
        self,
        ds: RawDataset,
        encoding: str | list[str] | None,
        prefix: str,
        *,
        top: bool,
        in_mark_code: bool,
        meta: bool,
    ) -> None:
        """:meth:`walk` over the raw reader's nodes, replaying the judgement of a plain public
        value already judged in the same context (in this file or an earlier one).

        The key holds all a judgement depends on: the rule view (the profile, its table, keep
        list and safe private tags, by identity: they are frozen), the label prefix (path in
        the file), the character set, the top/meta/mark-code flags, the reference year (ages
        revealed by dates), and the element's tag, VR, length, value bytes and whether the
        reader marks it converted (the view of such a node is a function of these and the
        character set). Not remembered: private elements (their ruling depends on another
        element, the block's creator), sequences, pixel data, deferred nodes and values over
        ``_MEMO_MAX_VALUE`` bytes; they are judged as without a memo. Where the value lies
        (spans) and the harvested-UID check come from this file when the judgement is applied.
        """
        memo = self.memo
        assert memo is not None
        encodings = tuple(encoding) if isinstance(encoding, list) else encoding
        context = (_ELEMENT, self.view, prefix, encodings, top, in_mark_code, meta,
                   self.reference_year)  # fmt: skip
        token = memo.token(context)
        entries: dict[Any, Any] = memo._entries
        buffer = ds.buffer
        hits = 0
        for node in ds.elements.values():
            tag = node.tag
            pixels = top and tag in _BULK_PIXEL_TAGS
            if (node.vr == "SQ" or pixels or node.deferred or is_private(tag)
                    or node.end - node.start > _MEMO_MAX_VALUE):  # fmt: skip
                element = view_node(ds, node, encoding, load_deferred=not pixels)
                self._element(ds, element, encoding, prefix, top=top, in_mark_code=in_mark_code,
                              meta=meta)  # fmt: skip
                continue
            value = buffer[node.start : node.end]  # the value as written: ds.value_bytes(node)
            key = (token, tag, node.vr, node.length, node.converted, value)
            judgement = entries.get(key)
            if judgement is None:
                memo.misses += 1
                element = view_node(ds, node, encoding)
                if element.vr == "SQ":  # not for a node read as another VR; judged plainly
                    self._element(ds, element, encoding, prefix, top=top,
                                  in_mark_code=in_mark_code, meta=meta)  # fmt: skip
                    continue
                judgement = self._judge(element, _label(prefix, tag, element.keyword, False),
                                        False, None, in_mark_code=in_mark_code, meta=meta,
                                        value=True)  # fmt: skip
                memo.put(key, judgement)
            else:
                hits += 1
            self._apply(judgement, node.value_tell)
        memo.hits += hits

    def _element(
        self,
        ds: Dataset | RawDataset,
        element: ElementView,
        encoding: str | list[str] | None,
        prefix: str,
        *,
        top: bool,
        in_mark_code: bool,
        meta: bool,
    ) -> None:
        tag = element.tag
        private = is_private(tag)
        label = _label(prefix, tag, element.keyword, private)
        creator = None
        if not meta:
            if is_private_creator(tag) and element.value is not None:
                creator = text_of(element.value).strip()
            elif private:
                creator_view = view_element(ds, (tag & 0xFFFF0000) | ((tag >> 8) & 0xFF), encoding)
                if creator_view is not None and creator_view.value is not None:
                    creator = text_of(creator_view.value).strip()
        sequence = element.vr == "SQ"
        pixels = not sequence and top and tag in _BULK_PIXEL_TAGS
        judgement = self._judge(element, label, private, creator, in_mark_code=in_mark_code,
                                meta=meta, value=not (sequence or pixels))  # fmt: skip
        self._apply(judgement, element.value_tell)
        if judgement.error:
            return
        if sequence:
            # Offsets read inside a sequence of defined length count from that sequence's
            # value (pydicom reads it as a buffer of its own; the raw reader does alike).
            outer = self.base
            if not element.undefined_length and element.value_tell is not None:
                self.base = outer + element.value_tell
            for index, item in enumerate(element.value or ()):
                self.items += 1
                self.walk(
                    item,
                    encoding,
                    f"{label}[{index}] > ",
                    top=False,
                    in_mark_code=tag == DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
                )
            self.base = outer
        elif pixels:
            self._pixel_data(element, label)

    def _judge(
        self,
        element: ElementView,
        label: str,
        private: bool,
        creator: str | None,
        *,
        in_mark_code: bool,
        meta: bool,
        value: bool,
    ) -> _Judgement:
        """The findings and pieces of one element: whether it may be present, whether its value
        decodes, and (``value``: not a sequence or pixel data) the checks of its value."""
        notes: list[tuple[str, str | None]] = []
        pieces: list[tuple[bytes, bool, bool]] = []
        tag = element.tag
        if meta:
            if tag not in FILE_META_ALLOWED:
                notes.append(("not allowed in the file meta", None))
        else:
            ruling = self.view.disposition(
                tag, element.keyword, private_creator=creator, in_mark_code_item=in_mark_code
            )
            if not ruling.present_allowed:
                notes.append((f"not allowed ({ruling.reason})", None))
        raw = element.raw
        if element.error:
            notes.append(("value cannot be decoded", None))
            if raw:
                pieces.append((raw, False, True))
        elif value:
            self._judge_value(element, notes, pieces)
        return _Judgement(label, private, tuple(notes), tuple(pieces),
                          0 if raw is None else len(raw), element.error)  # fmt: skip

    def _apply(self, judgement: _Judgement, value_tell: int | None) -> None:
        """Add a judgement's findings, pieces and spans (where ``value_tell`` says the value
        lies, counted from :attr:`base`) to this verification."""
        self.elements += 1
        self.private += judgement.private
        label = judgement.label
        for what, uid in judgement.notes:
            if uid is None or uid in self.identifiers.uids:
                self.findings.add(label, what)
        for data, binary, spanned in judgement.pieces:
            (self.binary if binary else self.pieces).append((label, data))
            if spanned and value_tell is not None:
                start = self.base + value_tell
                self.spans.append((start, start + judgement.value_length, label))

    def _judge_value(
        self,
        element: ElementView,
        notes: list[tuple[str, str | None]],
        pieces: list[tuple[bytes, bool, bool]],
    ) -> None:
        vr = element.vr
        value = element.value
        if vr == "UI":
            self._check_uids(value, notes)
        elif vr == "AS":
            self._check_age(value, notes)
        elif vr in ("DA", "DT", "TM"):
            self._check_date_time(element, notes)
        if vr in _NO_SCAN_VRS:
            return
        spanned = element.raw is not None  # a piece read from the file covers the value's bytes
        if vr in TEXT_VRS:
            decoded = text_of(value).encode("utf-8")
            if decoded:
                pieces.append((decoded, False, spanned))
            if element.raw is not None and element.raw.rstrip(b"\x00 ") != decoded.rstrip(b" "):
                pieces.append((element.raw, False, False))
        elif isinstance(value, bytes) or (vr in BINARY_TEXTLIKE_VRS and element.raw):
            data = value if isinstance(value, bytes) else element.raw
            assert data is not None
            # Binary values of standard attributes (LUTs, ICC profiles, waveforms) are searched
            # for long needles only: three letters between two non-letters are common there.
            standard = not is_private(element.tag) and vr != "UN"
            if data:
                pieces.append((data, standard, spanned))

    # ----- specific checks ---------------------------------------------------------------
    def _check_uids(self, value: Any, notes: list[tuple[str, str | None]]) -> None:
        for part in text_of(value).split("\\"):
            uid = part.strip("\x00 ")
            if not uid:
                continue
            if len(uid) > 64:
                notes.append(("UID longer than 64 characters", None))
            if not _UID.fullmatch(uid):
                notes.append(("UID is not valid", None))
            notes.append(("harvested UID not remapped", uid))  # if harvested: see _apply

    def _check_age(self, value: Any, notes: list[tuple[str, str | None]]) -> None:
        for part in text_of(value).split("\\"):
            age = part.strip()
            if not age:
                continue
            match = _AGE.fullmatch(age)
            if match is None:
                notes.append(("not a valid age string", None))
                continue
            if age == "090Y":
                continue
            number, unit = int(match.group(1)), match.group(2)
            years = {"D": number / 365.25, "W": number * 7 / 365.25, "M": number / 12}.get(
                unit, float(number)
            )
            if years > self.profile.max_age_years:
                notes.append((f"age over {self.profile.max_age_years} years", None))

    def _check_date_time(self, element: ElementView, notes: list[tuple[str, str | None]]) -> None:
        if element.vr in ("DA", "DT") and self.profile.dates in (DatePolicy.YEAR, DatePolicy.SHIFT):
            for part in text_of(element.value).split("\\"):
                year = _LEADING_YEAR.match(part.strip())
                if (year is not None and self.reference_year is not None
                        and self.reference_year - int(year.group(1)) > self.profile.max_age_years):
                    notes.append((f"date reveals an age over {self.profile.max_age_years}", None))
        if self.profile.dates is not DatePolicy.YEAR:
            return
        for part in text_of(element.value).split("\\"):
            text = part.strip()
            if not text:
                continue
            if element.vr == "DA" and not _YEAR_DA.fullmatch(text):
                notes.append(("date keeps more than the year", None))
            elif element.vr == "DT" and not _YEAR_DT.fullmatch(text):
                notes.append(("date-time keeps more than the year", None))
            elif element.vr == "TM" and not _ZERO_TM.fullmatch(text):
                row = self.view.table_row(element.tag)
                if row is not None and self.view.effective_action(row) is not Action.KEEP:
                    notes.append(("time of day remains", None))

    def _pixel_data(self, element: ElementView, label: str) -> None:
        base = element.value_tell
        if not element.undefined_length:
            # Native pixel data: its bytes are searched by the raw scan (long needles).
            if base is not None and element.length is not None:
                self.spans.append((base, base + element.length, label))
            return
        value: bytes | memoryview | None = (
            element.value if isinstance(element.value, bytes) else element.raw
        )
        if value is None and base is not None:
            value = memoryview(self.output)[base:]  # the items, read in place: no copy
        if value is None:
            self.findings.add(label, "encapsulated pixel data cannot be read")
            return
        items, well_formed = _encapsulated_items(value)
        if not well_formed:
            self.findings.add(label, "encapsulated pixel data is malformed")
        if base is not None:
            for index, (start, end) in enumerate(items):
                where = f"{label} offset table" if index == 0 else f"{label} fragment {index}"
                self.spans.append((base + start, base + end, where))
        fragments = items[1:]
        self.fragments += len(fragments)
        # A frame starts at a fragment that opens with SOI / SOC and runs over the fragments
        # that follow until the next one that does.
        groups: list[list[int]] = []
        for index, (start, _end) in enumerate(fragments, start=1):
            head = bytes(value[start : start + 2])
            if head in (b"\xff\xd8", b"\xff\x4f") or not groups:
                groups.append([index])
            else:
                groups[-1].append(index)
        view = memoryview(value)
        for group in groups:
            spans = [items[i] for i in group]
            if len(spans) == 1:
                stream: bytes | memoryview = view[spans[0][0] : spans[0][1]]
            else:
                stream = b"".join(view[s:e] for s, e in spans)
            starts: list[int] = []
            total = 0
            for s, e in spans:
                starts.append(total)
                total += e - s
            for segment in inspect_codestream(stream):
                self.segments += 1
                fragment = group[bisect.bisect_right(starts, segment.start) - 1]
                where = f"{label} fragment {fragment}"
                if not segment.allowed:
                    self.findings.add(where, f"{segment.description} present")
                payload = bytes(stream[segment.payload_start : segment.payload_end])
                self.pieces.append((f"{where} {segment.description}", payload))

    # ----- scanning ----------------------------------------------------------------------
    def scan_pieces(self) -> None:
        for pieces, short in ((self.pieces, True), (self.binary, False)):
            if not pieces:
                continue
            starts: list[int] = []
            total = 0
            for _label, data in pieces:
                starts.append(total)
                total += len(data) + len(_PIECE_SEPARATOR)
            buffer = _PIECE_SEPARATOR.join(data for _label, data in pieces)
            found = None
            if self.memo is not None:
                found = self._search_remembered(pieces, starts, buffer, short=short)
            if found is None:
                hits = self.identifiers.needles.search(buffer, short=short)
                emails = [match.start() for match in _EMAIL.finditer(buffer)] if short else []
            else:
                hits, emails = found
            for hit in hits:
                label = pieces[bisect.bisect_right(starts, hit.offset) - 1][0]
                self.findings.add(label, f"contains harvested {hit.category}")
            for offset in emails:
                label = pieces[bisect.bisect_right(starts, offset) - 1][0]
                self.findings.add(label, "contains an e-mail address")

    def _search_remembered(
        self, pieces: list[tuple[str, bytes]], starts: list[int], buffer: bytes, *, short: bool
    ) -> tuple[list[Hit], list[int]] | None:
        """The needle hits and e-mail offsets that searching ``buffer`` (the ``pieces`` joined,
        each at its offset in ``starts``) would give, from remembered searches of the pieces.

        Splits the needle set into the patient's shared needles and the file's own UIDs
        (:meth:`~tftt.deid.scan.NeedleSet.shared_part`). What the shared needles and the
        e-mail pattern find in one piece depends only on the shared needles, the piece's bytes
        and whether a separator precedes and follows it, when the shared needles are
        :attr:`~tftt.deid.scan.NeedleSet.separable`: that is the key. The pieces not
        remembered are searched together, each with the same neighbourhood as in ``buffer``;
        the UIDs are searched in ``buffer`` itself, every time. ``None`` (search ``buffer``
        with the whole set) when that split is not exact: a UID needle too short to be searched
        apart, shared needles that are not separable, or a shared hit and a UID hit at the same
        offset and length (their order would depend on the whole set's indexes).
        """
        memo = self.memo
        assert memo is not None
        needles = self.identifiers.needles
        if not needles.uids_long:
            return None
        shared = needles.shared_part()
        if not shared.separable:
            return None
        last = len(pieces) - 1
        shared_needles = needles.shared_needles

        def key(index: int, data: bytes) -> tuple[object, ...]:
            return (_PIECE, shared_needles, short, index == 0, index == last, data)

        results: list[tuple[tuple[Hit, ...], tuple[int, ...]] | None] = []
        missed: list[int] = []
        for index, (_label, data) in enumerate(pieces):
            result = None
            if len(data) <= _MEMO_MAX_VALUE:
                result = memo.get(key(index, data))
            if result is None:
                missed.append(index)
            else:
                assert isinstance(result, tuple)
            results.append(result)
        if missed:
            searched = _search_pieces(
                shared, [pieces[i][1] for i in missed], short=short,
                lead=missed[0] != 0, trail=missed[-1] != last,
            )  # fmt: skip
            if searched is None:
                return None
            for index, result in zip(missed, searched, strict=True):
                results[index] = result
                data = pieces[index][1]
                if len(data) <= _MEMO_MAX_VALUE:
                    memo.put(key(index, data), result)
        hits: list[Hit] = []
        emails: list[int] = []
        for start, result in zip(starts, results, strict=True):
            if result is not _CLEAN:
                assert result is not None
                piece_hits, piece_emails = result
                hits.extend(Hit(start + h.offset, h.length, h.category, h.encoding)
                            for h in piece_hits)  # fmt: skip
                emails.extend(start + offset for offset in piece_emails)
        merged = merge_uid_hits(hits, needles.search_uids(buffer))
        return None if merged is None else (merged, emails)

    def scan_raw(self) -> None:
        self.spans.sort()
        span_starts = [s for s, _e, _l in self.spans]
        for hit in self.identifiers.needles.search(memoryview(self.output), short=False):
            self.findings.add(self._where(hit, span_starts), f"contains harvested {hit.category}")

    def _where(self, hit: Hit, span_starts: list[int]) -> str:
        index = bisect.bisect_right(span_starts, hit.offset) - 1
        if index >= 0:
            start, end, label = self.spans[index]
            if start <= hit.offset < end:
                return label
        return f"raw bytes offset {hit.offset}"


def verify_output(
    identifiers: Identifiers,
    output: bytes,
    file_name: str,
    profile: Profile,
    table: ConfidentialityTable,
    keep_list: KeepList,
    *,
    safe_private: SafePrivateTags | None = None,
    memo: Memo | None = None,
) -> VerificationReport:
    """Check one de-identified output (the bytes of the file and its file name).

    ``identifiers`` come from :func:`~tftt.deid.harvest.harvest_identifiers` on the original.
    ``safe_private`` is honoured only when the profile keeps safe private tags.

    ``memo`` (one per process, kept across the files of a batch) remembers the judgement of
    each plain element value and what the patient's needles found in each value, so the
    elements and values a series repeats are not judged and searched again; the result is the
    same with or without it. The raw bytes of every output are always searched in full.

    Returns:
        A :class:`VerificationReport` of counts when nothing was found.

    Raises:
        ResidualPHIError: anything was found; ``findings`` lists where and what, never values.
    """
    view = rule_view(profile, table, keep_list, safe_private)
    verifier = _Verifier(identifiers, output, profile, view, memo)
    findings = verifier.findings

    if len(output) < 132 or output[128:132] != b"DICM":
        findings.add("preamble", "missing (no DICM prefix at offset 128)")
    elif output[:128].count(0) != 128:
        findings.add("preamble", "not all zeros")

    ds = _read(output)
    if ds is None:
        findings.add("output", "does not parse as DICOM")

    if ds is not None:
        file_meta = getattr(ds, "file_meta", None)
        if file_meta is not None:
            verifier.walk(file_meta, None, "file meta ", top=False, meta=True)
        for tag in (0x00080020, 0x00080021, 0x00080022, 0x00080023):  # Study/Series/Acq./Content
            year = _LEADING_YEAR.match(_top_text(ds, tag) or "")
            if year is not None:
                verifier.reference_year = int(year.group(1))
                break
        verifier.walk(ds, None, "", top=True)
        _check_top_level(ds, file_name, verifier)
        _check_pixels_complete(ds, verifier)

    if "/" in file_name or "\\" in file_name or file_name in ("", ".", ".."):
        findings.add("file name", "is not a plain file name")
    verifier.pieces.append(("file name", file_name.encode("utf-8")))
    verifier.scan_pieces()
    verifier.scan_raw()

    if findings.items:
        listed = list(findings.items)
        if findings.dropped:
            listed.append(f"and {findings.dropped} more findings")
        summary = "; ".join(listed[:3]) + ("; ..." if len(listed) > 3 else "")
        raise ResidualPHIError(
            f"verification failed with {len(findings.items) + findings.dropped} finding(s): "
            f"{summary}",
            findings=tuple(listed),
        )
    return VerificationReport(
        elements_scanned=verifier.elements,
        sequence_items=verifier.items,
        private_elements=verifier.private,
        identifiers_checked=identifiers.count,
        bytes_scanned=len(output),
        fragments_scanned=verifier.fragments,
        codestream_segments=verifier.segments,
    )


def _read(output: bytes) -> Dataset | RawDataset | None:
    """The output as read for checking, or ``None`` if it does not parse.

    Explicit VR Little Endian outputs (natively or encapsulated) are read by this package's own
    reader (:mod:`tftt.deid.raw_dataset`), independently of the parser that wrote them; other
    transfer syntaxes, and anything that reader refuses, by pydicom. Large values are not copied
    either way: native pixel data is only searched in ``output``.
    """
    try:
        return read_explicit_little(output, defer_size=_DEFER_SIZE)
    except UnsupportedInputError:
        pass
    try:
        return dcmread(BytesIO(output), defer_size=_DEFER_SIZE)
    except Exception:  # any parse failure is a verification failure
        return None


def _top_text(ds: Dataset | RawDataset, tag: int) -> str | None:
    element = view_element(ds, tag, None)
    if element is None or element.value is None:
        return None
    return text_of(element.value).strip("\x00 ")


def _check_top_level(ds: Dataset | RawDataset, file_name: str, verifier: _Verifier) -> None:
    findings = verifier.findings
    removed = _top_text(ds, 0x00120062)
    if removed != "YES":
        findings.add("(0012,0062) PatientIdentityRemoved", "is not YES")
    sop_uid = _top_text(ds, 0x00080018)
    meta_uid = None
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        meta_uid = _top_text(file_meta, 0x00020003)
    if not sop_uid:
        findings.add("(0008,0018) SOPInstanceUID", "missing")
        return
    if meta_uid != sop_uid:
        findings.add(
            "file meta (0002,0003) MediaStorageSOPInstanceUID", "differs from SOPInstanceUID"
        )
    if file_name != f"{sop_uid}.dcm":
        findings.add("file name", "is not the SOPInstanceUID followed by .dcm")



def _top_int(ds: Dataset | RawDataset, tag: int, default: int) -> int:
    """A top-level IS value or a US value as read (little endian in every output written)."""
    element = view_element(ds, tag, None)
    if element is None or element.value is None:
        return default
    value = element.value
    if isinstance(value, bytes):
        little = (getattr(ds, "original_encoding", (None, True))[1] is not False)
        return int.from_bytes(value[:2], "little" if little else "big") if len(value) >= 2 else -1
    try:
        return int(str(text_of(value)).split("\\")[0].strip() or default)
    except ValueError:
        return -1


def _check_pixels_complete(ds: Dataset | RawDataset, verifier: _Verifier) -> None:
    """An image output must hold all of its pixel data: a file cut short still parses (pydicom
    reads a short last value without complaint, and a cut between elements is well formed), but
    it is not the image that was de-identified, and nothing must be published unchecked."""
    findings = verifier.findings
    sop_class = _top_text(ds, 0x00080016) or ""
    file_meta = getattr(ds, "file_meta", None)
    syntax = (_top_text(file_meta, 0x00020010) if file_meta is not None else None) or ""
    pixel = next(
        (view for tag in PIXEL_TAGS if (view := view_element(ds, tag, None, load_deferred=False))),
        None,
    )
    if pixel is None:
        if is_image_sop_class(sop_class):
            findings.add("(7FE0,0010) PixelData", "missing from an image object (output cut short?)")
        return
    if syntax not in NATIVE_SYNTAXES or pixel.tag != 0x7FE00010 or pixel.undefined_length:
        return
    expected_bits = image_bits(_top_int(ds, 0x00280010, -1), _top_int(ds, 0x00280011, -1),
                               _top_int(ds, 0x00280002, 1), _top_int(ds, 0x00280008, 1),
                               _top_int(ds, 0x00280100, -1))  # fmt: skip
    # What the file holds, not what the header declares: a short last value keeps its length.
    length = pixel.length if pixel.length is not None else len(pixel.raw or b"")
    if pixel.raw is not None:
        length = min(length, len(pixel.raw))
    if pixel.value_tell is not None:  # top level: an offset in the file
        length = min(length, max(0, len(verifier.output) - pixel.value_tell))
    if expected_bits is None:
        findings.add("(0028) image pixel module", "missing or invalid")
    elif length * 8 < expected_bits:
        findings.add("(7FE0,0010) PixelData", "shorter than the image size (output cut short?)")
