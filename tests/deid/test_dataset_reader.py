"""The fast reader builds exactly what ``dcmread`` and the pipeline's reading of sequences build,
or nothing; and :func:`~tftt.deid.pipeline.parse` gives what it gave without it.

Graphs are compared recursively (tests/deid/graph_support.py): every element's type and
fields, every dataset's instance attributes in pydicom's order, every sequence's attributes,
the file meta, the preamble and the buffer, and which items share one encoding list. Inputs:
every file ``tftt synth`` writes (hostile ones included) and their de-identified outputs, hand
built edge cases, and every cut and changed byte of one of them.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from pydicom import config, dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.hooks import hooks, raw_element_value_fix_separator
from pydicom.uid import CTImageStorage, ExplicitVRBigEndian, ImplicitVRLittleEndian

from tests.deid import views_support as views
from tests.deid.graph_support import assert_same_graph
from tftt.deid import dataset_reader, pipeline
from tftt.deid.dataset_reader import read_explicit_file
from tftt.deid.raw_dataset import EXPLICIT_LITTLE_SYNTAXES, VRS_LENGTH_32
from tftt.errors import TfttError

SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"
NATIVE = "1.2.840.10008.1.2.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
DEFLATED = "1.2.840.10008.1.2.1.99"


# --- reading both ways ----------------------------------------------------------------------


def fast_graph(data: bytes) -> Dataset | None:
    """The fast reader's graph (both steps), or ``None`` if it refuses either."""
    read = read_explicit_file(data)
    if read is None or not read.read_sequences():
        return None
    return read.dataset


def reference_graph(data: bytes) -> Dataset:
    """``dcmread`` and the pipeline's ``_read_sequences``."""
    ds = dcmread(io.BytesIO(data), force=True)
    pipeline._read_sequences(ds)
    return ds


def outcome(parse: Callable[[bytes], Dataset], data: bytes) -> tuple[Any, ...]:
    try:
        return ("ok", parse(data))
    except TfttError as exc:
        return ("error", type(exc), exc.code, exc.message)


def parse_without_reader(data: bytes) -> Dataset:
    with mock.patch.object(pipeline, "read_explicit_file", lambda _data: None):
        return pipeline.parse(data)


def assert_parsed_alike(data: bytes, what: str) -> tuple[Any, ...]:
    """``parse`` with the reader and without it: the same dataset or the same error."""
    ours, theirs = outcome(pipeline.parse, data), outcome(parse_without_reader, data)
    assert ours[0] == theirs[0], (what, ours, theirs)
    if ours[0] == "ok":
        assert_same_graph(ours[1], theirs[1])
    else:
        assert ours == theirs, what
    return ours


def assert_read_alike_or_refused(data: bytes, what: str) -> bool:
    """The reader refuses ``data``, or builds what pydicom builds; returns whether it read."""
    ours = fast_graph(data)
    if ours is None:
        return False
    try:
        theirs = reference_graph(data)
    except Exception as exc:  # pydicom fails where the reader read: a difference
        raise AssertionError(f"{what}: pydicom fails ({exc!r}) where the reader reads") from None
    try:
        assert_same_graph(ours, theirs)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None
    return True


# --- synthetic files ------------------------------------------------------------------------


def _syntax(data: bytes) -> str | None:
    try:
        return str(dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta.get("TransferSyntaxUID", ""))
    except Exception:
        return None


def test_every_synthetic_input_and_output_is_read_as_pydicom_reads_it_or_refused() -> None:
    read = refused = 0
    for case in views.synthetic_cases():
        for data, what in ((case.data, case.name), (case.output, f"{case.name} (output)")):
            if data is None:
                continue
            if assert_read_alike_or_refused(data, what):
                read += 1
            else:
                refused += 1
                if what.endswith("(output)"):
                    assert _syntax(data) not in EXPLICIT_LITTLE_SYNTAXES, what  # outputs are all read
    assert read >= 25 and refused >= 10, (read, refused)  # other syntaxes, hostile files


def test_parse_gives_every_synthetic_input_what_it_gave_without_the_reader() -> None:
    results = [assert_parsed_alike(case.data, case.name)[0] for case in views.synthetic_cases()]
    assert results.count("ok") >= 15 and results.count("error") >= 3


# --- hand-built files -----------------------------------------------------------------------


def element(tag: int, vr: str, value: bytes, *, length: int | None = None) -> bytes:
    """One Explicit VR Little Endian element, its length as given (odd, undefined...)."""
    size = len(value) if length is None else length
    if vr in VRS_LENGTH_32:
        return struct.pack("<HH2s2xL", tag >> 16, tag & 0xFFFF, vr.encode(), size) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), size) + value


def item(*elements: bytes, undefined: bool = False) -> bytes:
    content = b"".join(elements)
    if undefined:
        return struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + content + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    return struct.pack("<HHL", 0xFFFE, 0xE000, len(content)) + content


def sequence(tag: int, *items: bytes, undefined: bool = False) -> bytes:
    content = b"".join(items)
    if undefined:
        return element(tag, "SQ", content + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0), length=0xFFFFFFFF)
    return element(tag, "SQ", content)


def uid(value: str) -> bytes:
    raw = value.encode()
    return raw + b"\0" * (len(raw) % 2)


def us(value: int) -> bytes:
    return struct.pack("<H", value)


def part10(dataset: bytes, syntax: str = NATIVE) -> bytes:
    meta = (
        element(0x00020001, "OB", b"\0\1")
        + element(0x00020002, "UI", uid(SC_IMAGE))
        + element(0x00020003, "UI", uid("1.2.3.4"))
        + element(0x00020010, "UI", uid(syntax))
        + element(0x00020012, "UI", uid("1.2.3.5"))
    )
    return b"\0" * 128 + b"DICM" + element(0x00020000, "UL", struct.pack("<L", len(meta))) + meta + dataset


def edge_file(
    charset: bytes | None = b"ISO_IR 100",
    *,
    syntax: str = NATIVE,
    pixel_representation: int | None = 1,
    wide_item: bool = True,
) -> bytes:
    """A file with what synthetic files lack: sequences and items of undefined length (empty
    ones too) nesting ones of defined length and back, three deep; sequences that pydicom
    reads at once (undefined length) holding ones it leaves raw; empty sequences and items
    (one followed by an item whose length reads as a VR); private sequences with and without
    their creator; character sets at the top and in items; pixel representations at the top
    and in items (empty too); odd-length values; native or encapsulated pixel data."""
    text = "Müller^Zoë".encode("utf-8" if charset and b"192" in charset else "latin-1")
    pixrep = [] if pixel_representation is None else [element(0x00280103, "US", us(pixel_representation))]
    deep = item(
        sequence(0x0008114A, item(element(0x00081155, "UI", uid("1.2.3.9")), element(0x00280103, "US", us(0)))),
        element(0x00081150, "UI", uid("1.2.840.10008.5.1.4.1.1.2")),
    )
    first = item(
        element(0x00080005, "CS", b"ISO_IR 192"),
        element(0x00080100, "SH", b"X1"),
        element(0x00080104, "LO", "Zoë".encode()),
        sequence(0x00081115, deep),
        element(0x00280103, "US", b""),  # empty: the item inherits its parent's
    )
    # pydicom guesses the VR encoding of an empty item from the bytes after it: the length of
    # the next item, taken for a VR, marks it implicit VR unless that length reads "AB".
    wide = [item(), item(element(0x00091003, "OB", b"\x01" * (0x4241 - 12)))] if wide_item else []
    wide += [item(), item(element(0x00080100, "SH", b"W1"))]
    inline = sequence(
        0x00081140,
        item(
            element(0x00081150, "UI", uid("1.2.3.6")),
            sequence(0x0040A170, item(element(0x00080100, "SH", b"Y2"))),  # stays raw
            sequence(0x0040A730, item(element(0x0040A010, "CS", b"CONTAINS"), undefined=True), undefined=True),
            undefined=True,
        ),
        item(undefined=True),
        item(sequence(0x00081199, item(element(0x00280103, "US", us(1)), undefined=True), undefined=True)),
        item(),  # empty, then the delimiter
        undefined=True,
    )
    nested_inline = sequence(0x00082218, item(sequence(0x00082220, item(element(0x00080100, "SH", b"Z3")))),
                             undefined=True)  # fmt: skip
    dataset = b"".join(
        [
            *([element(0x00080005, "CS", charset)] if charset is not None else []),
            element(0x00080016, "UI", uid(SC_IMAGE)),
            element(0x00080018, "UI", uid("1.2.3.4")),
            element(0x00080090, "PN", b"Abc"),  # odd length
            sequence(0x00081110, first, *wide, item()),  # ends with an empty item
            sequence(0x00081111),  # empty, defined length
            sequence(0x00081120, undefined=True),  # empty, undefined length
            inline,
            sequence(0x00082112, item(nested_inline)),
            element(0x00090010, "LO", b"ACME 1.0"),
            sequence(0x00091001, item(element(0x00080100, "SH", b"P1"))),
            sequence(0x00091002, item(element(0x00080100, "SH", b"P2")), undefined=True),
            element(0x00091004, "OB", b"\x01\x02\x03"),  # odd length
            element(0x00100010, "PN", text + b" " * (len(text) % 2)),
            element(0x00100020, "LO", b"ABC"),  # odd length
            sequence(0x00111001, item(element(0x00080100, "SH", b"P3"))),  # no private creator
            element(0x00280002, "US", us(1)),
            element(0x00280010, "US", us(2)),
            element(0x00280011, "US", us(2)),
            element(0x00280100, "US", us(16)),
            *pixrep,
        ]
    )
    if syntax == NATIVE:
        pixels = element(0x7FE00010, "OW", b"\x01\x00\x02\x00\x03\x00\x04\x00")
    else:
        fragments = item() + item(b"\xff\xd8frame\xff\xd9") + item(b"\xff\xd8odd\xff\xd9\x00")
        pixels = element(0x7FE00010, "OB", fragments + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0), length=0xFFFFFFFF)
    return part10(dataset + pixels, syntax)


EDGE_FILES = {
    "latin-1": edge_file(),
    "no charset": edge_file(None),
    "utf-8": edge_file(b"ISO_IR 192"),
    "two charsets": edge_file(b"\\ISO 2022 IR 100"),
    "empty charset": edge_file(b""),
    "no pixel representation": edge_file(pixel_representation=None),
    "signed": edge_file(pixel_representation=0),
    "encapsulated": edge_file(syntax=JPEG_BASELINE),
    "encapsulated uncompressed": edge_file(syntax="1.2.840.10008.1.2.1.98"),
}


@contextmanager
def _config(setting: str) -> Iterator[None]:
    """pydicom settings that change what it builds: the reader must follow them."""
    if setting == "none as empty text":
        with mock.patch.object(config, "use_none_as_empty_text_VR_value", True):
            yield
    elif setting == "ignore validation":
        with mock.patch.object(config.settings, "_reading_validation_mode", config.IGNORE):
            yield
    elif setting == "tag cache full":  # element dicts keyed by tags not from the reader's cache
        with mock.patch.object(dataset_reader, "_TAGS", {}), mock.patch.object(dataset_reader, "_TAGS_MAX", 0):
            yield
    else:
        yield


@pytest.mark.parametrize("setting", ["default", "none as empty text", "ignore validation", "tag cache full"])
@pytest.mark.parametrize("name", list(EDGE_FILES))
def test_edge_cases_are_read_as_pydicom_reads_them(name: str, setting: str) -> None:
    data = EDGE_FILES[name]
    with _config(setting), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert assert_read_alike_or_refused(data, name), f"{name}: refused"
        assert assert_parsed_alike(data, name)[0] == "ok"


def test_edge_cases_hold_what_they_are_meant_to() -> None:
    """The hand-built file has the shapes the comparison is meant to cover."""
    ds = fast_graph(EDGE_FILES["latin-1"])
    assert ds is not None
    first, before_wide, _wide, empty, _, last = ds.ReferencedStudySequence
    assert (before_wide._read_implicit, empty._read_implicit, last._read_implicit) == (False, True, False)
    assert first.ReferencedSeriesSequence[0]["ReferencedInstanceSequence"].value[0]._pixel_rep == 0
    assert first._pixel_rep == 1 and first._read_charset == ["UTF8"]
    inline = ds["ReferencedImageSequence"]
    assert inline.is_undefined_length and inline.value[1]._read_implicit and inline.value[3]._read_implicit
    assert type(inline.value[0]._dict[0x0040A170]).__name__ == "RawDataElement"  # pydicom leaves it raw
    assert not hasattr(ds[0x00081111].value, "is_undefined_length")  # empty, defined: [] wrapped
    assert ds[0x00081120].value.is_undefined_length and ds[0x00081120].is_undefined_length  # empty, undefined
    assert ds[0x00091001].private_creator == "ACME 1.0" and ds[0x00111001].private_creator is None


@pytest.mark.filterwarnings("ignore")
def test_every_cut_and_every_changed_byte_is_read_alike_or_refused_and_parsed_alike() -> None:
    data = edge_file(wide_item=False)
    read = 0
    for cut in range(len(data)):
        read += assert_read_alike_or_refused(data[:cut], f"[:{cut}]")
        assert_parsed_alike(data[:cut], f"[:{cut}]")
    for pos in range(128, len(data)):
        for change in (0xFF, 0x01):
            garbled = bytearray(data)
            garbled[pos] ^= change
            what = f"byte {pos} ^ {change:#x}"
            read += assert_read_alike_or_refused(bytes(garbled), what)
            assert_parsed_alike(bytes(garbled), what)
    assert read > len(data) // 2  # a changed value keeps the file well formed


# --- what the reader leaves to pydicom ------------------------------------------------------


def _pydicom_file(syntax: str) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4"
    ds.PatientName = "Doe^John"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _deflated() -> bytes:
    data = _pydicom_file(NATIVE)
    meta_end = 132 + 12 + struct.unpack_from("<L", data, 140)[0]
    deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = deflate.compress(data[meta_end:]) + deflate.flush()
    return data[:meta_end].replace(uid(NATIVE), uid(DEFLATED)) + body


def _replace_charset(value: bytes) -> bytes:
    data = edge_file()
    return data.replace(element(0x00080005, "CS", b"ISO_IR 100"), element(0x00080005, "CS", value))


REFUSED = {
    "implicit VR": _pydicom_file(ImplicitVRLittleEndian),
    "big endian": _pydicom_file(ExplicitVRBigEndian),
    "deflated": _deflated(),
    "no preamble": edge_file()[128:],
    "no file meta": b"\0" * 128 + b"DICM" + edge_file()[132 + 12 + struct.unpack_from("<L", edge_file(), 140)[0] :],
    "trailing bytes": edge_file() + b"\0\0",
    "command element": part10(element(0x00000900, "US", us(0)) + element(0x00080016, "UI", uid(SC_IMAGE))),
    "empty dataset": part10(b""),
    "unknown character set": _replace_charset(b"ISO_IR 999"),
    "character set in an item": edge_file().replace(b"ISO_IR 192", b"ISO_IR 999"),
    "value overrun": part10(element(0x00080016, "UI", uid(SC_IMAGE)) + element(0x00100010, "PN", b"ab", length=99)),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_what_the_reader_is_not_certain_about_is_left_to_pydicom(name: str) -> None:
    data = REFUSED[name]
    assert fast_graph(data) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_parsed_alike(data, name)


SR = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR: no pixel data needed


@pytest.mark.parametrize(
    ("value", "stays_raw"),
    [
        (b"\xfe\xff\x00\xe0", True),  # a cut item header: pydicom fails to read it
        (item(element(0x00080100, "SH", b"X1"))[:4] + struct.pack("<L", 99) + element(0x00080100, "SH", b"X1"), False),
    ],
)
def test_a_sequence_outside_the_subset_is_left_to_pydicom(value: bytes, stays_raw: bool) -> None:
    """A top-level sequence of defined length whose value is not a well-formed run of items:
    ``dcmread`` reads the file (the sequence raw), the reader too, but it does not read the
    sequence, and ``parse`` reads the whole file with pydicom, which reads the sequence its
    own way (an item overrunning the sequence) or leaves it raw (it fails to read it)."""
    data = part10(
        element(0x00080016, "UI", uid(SR)) + element(0x00080018, "UI", uid("1.2.3.4"))
        + element(0x00081110, "SQ", value) + element(0x00100010, "PN", b"Doe^John")
    )  # fmt: skip
    read = read_explicit_file(data)
    assert read is not None and not read.read_sequences()
    ours = assert_parsed_alike(data, "sequence outside the subset")
    assert ours[0] == "ok"
    assert (type(ours[1]._dict[0x00081110]).__name__ == "RawDataElement") is stays_raw


@pytest.mark.parametrize(
    "patch",
    [
        lambda: mock.patch.object(config, "data_element_callback", lambda raw, **kwargs: raw),
        lambda: mock.patch.object(hooks, "raw_element_value", raw_element_value_fix_separator),
        lambda: mock.patch.dict(hooks.raw_element_kwargs, {"target_VRs": ("DS",)}),
    ],
)
def test_pydicom_converting_otherwise_than_by_default_leaves_the_file_to_pydicom(patch: Callable[[], Any]) -> None:
    with patch():
        assert read_explicit_file(edge_file()) is None
    assert read_explicit_file(edge_file()) is not None
