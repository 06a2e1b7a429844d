import io
import struct

import numpy as np
import pytest
from PIL import Image

from tftt.errors import UnsupportedInputError
from tftt.pixels.markers import has_text_segments, strip_text_segments

BASELINE = "1.2.840.10008.1.2.4.50"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
CANARY = b"CANARYZELDA^QUIXOTE"


def _jpeg(with_text: bool) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    buf = io.BytesIO()
    kwargs = {"comment": CANARY} if with_text else {}
    if with_text:
        exif = Image.Exif()
        exif[0x010E] = CANARY.decode()  # ImageDescription
        kwargs["exif"] = exif.tobytes()
    img.save(buf, format="JPEG", quality=90, **kwargs)
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_jpeg_com_and_app1_are_removed_and_pixels_identical():
    frame = _jpeg(with_text=True)
    assert CANARY in frame
    clean = strip_text_segments(frame, BASELINE)
    assert CANARY not in clean
    assert b"\xff\xfe" not in clean.split(b"\xff\xda")[0]  # no COM before the first scan
    assert b"Exif" not in clean
    np.testing.assert_array_equal(_decode(clean), _decode(frame))
    assert has_text_segments(frame, BASELINE)


def test_clean_jpeg_is_unchanged():
    frame = _jpeg(with_text=False)
    assert strip_text_segments(frame, BASELINE) == frame
    assert not has_text_segments(frame, BASELINE)


def test_progressive_jpeg_with_several_scans_keeps_every_scan():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 40), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", progressive=True, comment=CANARY)
    frame = buf.getvalue()
    clean = strip_text_segments(frame, BASELINE)
    assert CANARY not in clean
    assert clean.count(b"\xff\xda") == frame.count(b"\xff\xda") > 1
    np.testing.assert_array_equal(_decode(clean), _decode(frame))


def test_truncated_jpeg_is_refused_not_passed_through():
    frame = _jpeg(with_text=True)
    with pytest.raises(UnsupportedInputError, match="malformed"):
        strip_text_segments(frame[: len(frame) // 2], BASELINE)


def _j2k_with_comment() -> bytes:
    import openjpeg

    arr = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096
    stream = openjpeg.encode(arr, bits_stored=12, photometric_interpretation=2, use_mct=False)
    stream = bytes(stream)
    # insert a COM segment (Rcom=1: Latin-1 text) right after SIZ
    siz_len = struct.unpack(">H", stream[4:6])[0]
    pos = 2 + 2 + siz_len
    payload = b"\x00\x01" + CANARY
    com = b"\xff\x64" + struct.pack(">H", len(payload) + 2) + payload
    return stream[:pos] + com + stream[pos:]


def test_j2k_comment_removed_and_decodes_identically():
    import openjpeg

    stream = _j2k_with_comment()
    assert CANARY in stream
    clean = strip_text_segments(stream, J2K_LOSSLESS)
    assert CANARY not in clean
    np.testing.assert_array_equal(openjpeg.decode(clean), openjpeg.decode(stream))


def test_unsupported_syntax_is_refused():
    with pytest.raises(UnsupportedInputError) as info:
        strip_text_segments(b"\x00\x00\x01\xb3", "1.2.840.10008.1.2.4.102")
    assert info.value.code == "unsupported-transfer-syntax"
