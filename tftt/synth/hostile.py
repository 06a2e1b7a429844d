"""Hostile inputs, as bytes: files a DICOM tool must reject (or survive) without leaking.

Most of them still carry the patient's canaries, so a tool that lets one through unchanged is
caught by the same byte search as any other leak. pydicom is lenient: several of these files
still "read" with ``dcmread`` but come back without pixel data or with broken values; each
:class:`HostileInput` says what is wrong in ``defect``.
"""

from __future__ import annotations

import copy
import io
import struct
from dataclasses import dataclass

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ImplicitVRLittleEndian

from tftt.synth.canaries import Identity
from tftt.synth.studies import ct_series, us_cine
from tftt.synth.transfer import encode

MPEG4_AVC = UID("1.2.840.10008.1.2.4.102")
"""MPEG-4 AVC/H.264 High Profile / Level 4.1: a transfer syntax TFTT does not decode."""

ABSURD_LENGTH = 0xFFFFFFF0
TRAVERSAL_UID = "../../x"


@dataclass(frozen=True)
class HostileInput:
    """One hostile file: a short ``kind`` name, what is wrong (``defect``), and the bytes."""

    kind: str
    defect: str
    data: bytes


def _ct_bytes(who: Identity, series: int) -> bytes:
    return encode(ct_series(who, series=series, slices=1, size=32)[0].dataset)


def not_dicom(who: Identity) -> HostileInput:
    """A text file that is not DICOM at all (but names the patient)."""
    text = f"Report for {who.patient_name} ({who.patient_id}); this is not a DICOM file.\n"
    return HostileInput("not-dicom", "no preamble, no DICM prefix, no DICOM data", text.encode())


def empty_file() -> HostileInput:
    """A zero-byte file."""
    return HostileInput("empty", "zero bytes", b"")


def truncated_header(who: Identity) -> HostileInput:
    """A CT file cut in the middle of its dataset, long before the pixel data."""
    data = _ct_bytes(who, 80)
    cut = data.index(b"\xe0\x7f\x10\x00") // 3
    return HostileInput(
        "truncated-header", "file ends inside the dataset; no pixel data", data[:cut]
    )


def truncated_pixels(who: Identity) -> HostileInput:
    """A CT file cut inside its pixel data (the declared length is longer than the file)."""
    data = _ct_bytes(who, 81)
    return HostileInput(
        "truncated-pixels", "pixel data shorter than its declared length", data[:-101]
    )


def no_preamble(who: Identity) -> HostileInput:
    """A raw Implicit VR LE dataset starting at group 0008: no preamble, DICM or file meta.

    ``pydicom.dcmread(..., force=True)`` reads it.
    """
    ds = copy.deepcopy(ct_series(who, series=82, slices=1, size=32)[0].dataset)
    ds.file_meta = FileMetaDataset()
    ds.preamble = None
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
    return HostileInput(
        "no-preamble", "raw implicit-VR dataset without preamble or file meta", buffer.getvalue()
    )


def _splice(data: bytes, tag: int, value: bytes, *, explicit_vr: str | None) -> bytes:
    """Replace the value of the first element ``tag`` in encoded little-endian ``data``.

    ``explicit_vr`` names the VR for an explicit-VR element with a 16-bit length; ``None``
    means implicit VR (32-bit length).

    Raises:
        ValueError: the element is not found, or the value does not fit a 16-bit length.
    """
    group, element = tag >> 16, tag & 0xFFFF
    head = struct.pack("<HH", group, element)
    if explicit_vr is not None:
        head += explicit_vr.encode("ascii")
        at = data.index(head)
        (old,) = struct.unpack("<H", data[at + 6 : at + 8])
        if len(value) > 0xFFFF:
            raise ValueError("value too long for a 16-bit length")
        return data[:at] + head + struct.pack("<H", len(value)) + value + data[at + 8 + old :]
    at = data.index(head)
    (old,) = struct.unpack("<I", data[at + 4 : at + 8])
    return data[:at] + head + struct.pack("<I", len(value)) + value + data[at + 8 + old :]


def traversal_uid(who: Identity) -> HostileInput:
    """A CT file whose SOP Instance UID, in the dataset and the file meta, is ``../../x``."""
    data = _ct_bytes(who, 83)
    value = TRAVERSAL_UID.encode("ascii") + b"\x00"
    for tag in (0x00020003, 0x00080018):  # MediaStorageSOPInstanceUID, SOPInstanceUID
        data = _splice(data, tag, value, explicit_vr="UI")
    data = _with_meta_group_length(data)
    return HostileInput("uid-path-traversal", "SOPInstanceUID is '../../x'", data)


def _with_meta_group_length(data: bytes) -> bytes:
    """Recompute (0002,0000) of an explicit-VR file with preamble after a splice in group 2."""
    long_vrs = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
    start = 132 + 12  # after the preamble, "DICM" and the group length element itself
    at = start
    while struct.unpack("<H", data[at : at + 2])[0] == 0x0002:
        vr = data[at + 4 : at + 6]
        if vr in long_vrs:
            (length,) = struct.unpack("<I", data[at + 8 : at + 12])
            at += 12 + length
        else:
            (length,) = struct.unpack("<H", data[at + 6 : at + 8])
            at += 8 + length
    return data[:140] + struct.pack("<I", at - start) + data[144:]


def unsupported_transfer_syntax(who: Identity) -> HostileInput:
    """A US file declaring MPEG-4 AVC with one fake (non-decodable) fragment."""
    ds = copy.deepcopy(us_cine(who, series=84, frames=1, size=256, burned_in=False)[0].dataset)
    fragment = b"\x00\x00\x00\x01\x67\x64\x00\x29" + who.patient_id.encode() + b"\x00\x00"
    ds.PixelData = encapsulate([fragment + b"\x00" * (len(fragment) % 2)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.LossyImageCompression = "01"
    ds.file_meta.TransferSyntaxUID = MPEG4_AVC
    return HostileInput(
        "unsupported-transfer-syntax",
        "MPEG-4 AVC transfer syntax with a fake codestream",
        encode(ds),
    )


def absurd_length(who: Identity) -> HostileInput:
    """A CT file whose private UN element (0011,1012) declares a length of 0xFFFFFFF0."""
    data = _ct_bytes(who, 85)
    header = struct.pack("<HH", 0x0011, 0x1012) + b"UN\x00\x00"
    at = data.index(header) + len(header)
    patched = data[:at] + struct.pack("<I", ABSURD_LENGTH) + data[at + 4 :]
    return HostileInput(
        "absurd-length", "element (0011,1012) declares 0xFFFFFFF0 bytes, past the end", patched
    )


def empty_pixel_data(who: Identity) -> HostileInput:
    """A CT file with Rows/Columns set but a zero-length Pixel Data element."""
    ds = copy.deepcopy(ct_series(who, series=86, slices=1, size=32)[0].dataset)
    ds.PixelData = b""
    ds["PixelData"].VR = "OW"
    return HostileInput("empty-pixel-data", "Pixel Data has zero bytes", encode(ds))


def huge_string(who: Identity, size: int = 1 << 20) -> HostileInput:
    """An Implicit VR LE CT file whose StudyDescription (LO, at most 64 characters) holds
    ``size`` bytes of repeated text naming the patient."""
    ds = copy.deepcopy(ct_series(who, series=87, slices=1, size=32)[0].dataset)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    unit = f"{who.patient_name} {who.patient_id} "
    text = (unit * (size // len(unit) + 1))[:size]
    value = text.encode("ascii") + b" " * (len(text) % 2)
    data = _splice(encode(ds), 0x00081030, value, explicit_vr=None)
    return HostileInput("huge-string", f"StudyDescription (LO) is {len(value)} bytes long", data)


def hostile_inputs(who: Identity, *, huge_size: int = 1 << 20) -> list[HostileInput]:
    """Every hostile input for ``who``, in a fixed order."""
    return [
        not_dicom(who),
        empty_file(),
        truncated_header(who),
        truncated_pixels(who),
        no_preamble(who),
        traversal_uid(who),
        unsupported_transfer_syntax(who),
        absurd_length(who),
        empty_pixel_data(who),
        huge_string(who, huge_size),
    ]
