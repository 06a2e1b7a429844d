"""Strip text-bearing segments from compressed frames, without re-encoding them.

A JPEG frame can carry free text in COM segments and in application segments (APP1 Exif/XMP,
APP2 ICC descriptions, APP12 "Ducky"/picture info, ...). A JPEG 2000 codestream can carry COM
segments in its main header and tile-part headers. None of these affect the decoded pixels, so
TFTT removes them from every frame of every encapsulated image, edited or not.

What is kept: APP0 "JFIF" (rewritten without its thumbnail), APP14 "Adobe" (its colour-transform
flag changes how the frame decodes), and everything that is not a text-capable segment.
Pure functions: bytes in, bytes out.
"""

from __future__ import annotations

import struct

from tftt.errors import UnsupportedInputError

#: JPEG family (DCT and lossless) and JPEG-LS transfer syntaxes (marker-segment streams).
JPEG_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
    }
)
#: JPEG 2000 and HTJ2K transfer syntaxes (codestreams).
J2K_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.92",
        "1.2.840.10008.1.2.4.93",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    }
)
#: Encapsulated syntaxes whose frames carry no text segments.
PLAIN_ENCAPSULATED_SYNTAXES = frozenset({"1.2.840.10008.1.2.5"})

_SOI, _EOI, _SOS, _COM = 0xD8, 0xD9, 0xDA, 0xFE
_APP0, _APP14 = 0xE0, 0xEE
_JFIF_MINIMAL = b"JFIF\x00"


def _bad(what: str) -> UnsupportedInputError:
    return UnsupportedInputError(f"malformed compressed frame: {what}", code="malformed-frame")


def _clean_app0(payload: bytes) -> bytes | None:
    """Keep a JFIF APP0 without thumbnail; drop JFXX and anything else."""
    if not payload.startswith(_JFIF_MINIMAL) or len(payload) < 14:
        return None
    # identifier(5) version(2) units(1) xdensity(2) ydensity(2) xthumb(1) ythumb(1)
    header = payload[:12] + b"\x00\x00"
    return b"\xff\xe0" + struct.pack(">H", len(header) + 2) + header


def _strip_jpeg(frame: bytes) -> bytes:
    n = len(frame)
    if n < 4 or frame[0] != 0xFF or frame[1] != _SOI:
        raise _bad("JPEG frame does not start with SOI")
    out = bytearray(b"\xff\xd8")
    pos = 2
    while pos < n:
        if frame[pos] != 0xFF:
            raise _bad("expected a JPEG marker")
        # Fill bytes: any number of 0xFF may precede a marker.
        while pos < n and frame[pos] == 0xFF:
            pos += 1
        if pos >= n:
            raise _bad("truncated marker")
        marker = frame[pos]
        pos += 1
        if marker == _EOI:
            out += b"\xff\xd9"
            return bytes(out)  # anything after EOI is padding and dropped
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += bytes((0xFF, marker))
            continue
        if pos + 2 > n:
            raise _bad("truncated segment length")
        (length,) = struct.unpack_from(">H", frame, pos)
        if length < 2 or pos + length > n:
            raise _bad("segment length out of range")
        segment_end = pos + length
        payload = frame[pos + 2 : segment_end]
        if marker == _COM or (0xE1 <= marker <= 0xEF and marker != _APP14):
            pass  # text-capable: dropped
        elif marker == _APP0:
            kept = _clean_app0(payload)
            if kept is not None:
                out += kept
        else:
            out += frame[pos - 2 : segment_end]
        pos = segment_end
        if marker == _SOS:
            # Entropy-coded data up to the next marker. In JPEG, 0xFF is followed by 0x00
            # (stuffing) or RSTn inside it; in JPEG-LS by a byte < 0x80 (bit stuffing).
            scan_start = pos
            while True:
                ff = frame.find(b"\xff", pos)
                if ff < 0 or ff + 1 >= n:
                    raise _bad("scan data runs to the end without EOI")
                nxt = frame[ff + 1]
                if nxt < 0x80 or 0xD0 <= nxt <= 0xD7:
                    pos = ff + 2
                    continue
                if nxt == 0xFF:
                    pos = ff + 1
                    continue
                out += frame[scan_start:ff]
                pos = ff
                break
    raise _bad("JPEG frame has no EOI")


def _strip_j2k(frame: bytes) -> bytes:
    n = len(frame)
    if frame[:4] == b"\x00\x00\x00\x0c" and frame[4:8] == b"jP  ":
        raise UnsupportedInputError(
            "JPEG 2000 frame is a JP2 file, not a raw codestream", code="unsupported-j2k-wrapper"
        )
    if n < 4 or frame[:2] != b"\xff\x4f":
        raise _bad("JPEG 2000 frame does not start with SOC")
    out = bytearray(b"\xff\x4f")
    pos = 2
    while pos < n:
        if pos + 2 > n or frame[pos] != 0xFF:
            raise _bad("expected a JPEG 2000 marker")
        marker = frame[pos + 1]
        if marker == 0xD9:  # EOC
            out += b"\xff\xd9"
            return bytes(out)
        if pos + 4 > n:
            raise _bad("truncated JPEG 2000 segment")
        (length,) = struct.unpack_from(">H", frame, pos + 2)
        if marker == 0x90:  # SOT: a tile-part; Psot covers SOT..end of the tile-part
            if length != 10 or pos + 12 > n:
                raise _bad("bad SOT segment")
            (psot,) = struct.unpack_from(">I", frame, pos + 6)
            tile_end = n - 2 if psot == 0 else pos + psot
            if tile_end > n or tile_end < pos + 12:
                raise _bad("tile-part length out of range")
            header, body_start = _strip_tile_header(frame, pos + 12, tile_end)
            new_psot = 0 if psot == 0 else 12 + len(header) + (tile_end - body_start)
            out += frame[pos : pos + 6] + struct.pack(">I", new_psot) + frame[pos + 10 : pos + 12]
            out += header + frame[body_start:tile_end]
            pos = tile_end
            continue
        if length < 2 or pos + 2 + length > n:
            raise _bad("segment length out of range")
        if marker != 0x64:  # COM is dropped
            out += frame[pos : pos + 2 + length]
        pos += 2 + length
    raise _bad("JPEG 2000 codestream has no EOC")


def _strip_tile_header(frame: bytes, pos: int, tile_end: int) -> tuple[bytes, int]:
    """Tile-part header segments up to SOD (COM dropped); returns (header, index after SOD)."""
    header = bytearray()
    while pos + 2 <= tile_end:
        if frame[pos] != 0xFF:
            raise _bad("expected a tile-part marker")
        marker = frame[pos + 1]
        if marker == 0x93:  # SOD: bit stream follows
            header += b"\xff\x93"
            return bytes(header), pos + 2
        (length,) = struct.unpack_from(">H", frame, pos + 2)
        if length < 2 or pos + 2 + length > tile_end:
            raise _bad("tile-part segment length out of range")
        if marker != 0x64:
            header += frame[pos : pos + 2 + length]
        pos += 2 + length
    raise _bad("tile-part has no SOD")


def strip_text_segments(fragment: bytes, transfer_syntax_uid: str) -> bytes:
    """Remove text-capable segments from one compressed frame.

    Raises:
        UnsupportedInputError: the syntax is not one TFTT can inspect, or the frame is malformed
            (a frame TFTT cannot parse is never passed through).
    """
    if transfer_syntax_uid in JPEG_SYNTAXES:
        return _strip_jpeg(fragment)
    if transfer_syntax_uid in J2K_SYNTAXES:
        return _strip_j2k(fragment)
    if transfer_syntax_uid in PLAIN_ENCAPSULATED_SYNTAXES:
        return fragment
    raise UnsupportedInputError(
        f"cannot inspect frames of transfer syntax {transfer_syntax_uid}",
        code="unsupported-transfer-syntax",
    )


def has_text_segments(fragment: bytes, transfer_syntax_uid: str) -> bool:
    """True if stripping would change the frame (used by tests and verification reports)."""
    return strip_text_segments(fragment, transfer_syntax_uid) != fragment
