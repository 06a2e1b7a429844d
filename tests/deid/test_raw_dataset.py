"""The verifier's own reader: it reads what pydicom reads, element for element, or refuses.

Every synthetic file (inputs and de-identified outputs) is read both ways and the recursive
lists of element views compared; truncated and garbled bytes must be refused or, when they
still form a well-formed file, read exactly as pydicom reads them; and verification gives the
same result with and without the reader.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest
from pydicom import dcmread, dcmwrite
from pydicom.charset import python_encoding
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filereader import ENCODED_VR
from pydicom.sequence import Sequence
from pydicom.uid import UID, CTImageStorage, JPEGBaseline8Bit
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from tests.deid import views_support as views
from tftt.deid import verify
from tftt.deid.raw_dataset import (
    CHARSET_TERMS,
    EXPLICIT_LITTLE_SYNTAXES,
    REFUSED,
    VRS_LENGTH_16,
    VRS_LENGTH_32,
    RawDataset,
    read_explicit_little,
)
from tftt.errors import ResidualPHIError, UnsupportedInputError

DEFER = 1 << 20


def syntax_of(data: bytes) -> str | None:
    try:
        meta = dcmread(BytesIO(data), stop_before_pixels=True).file_meta
    except Exception:
        return None
    return str(meta.get("TransferSyntaxUID", "")) or None


def read_raw(data: bytes, defer_size: int | None = DEFER) -> RawDataset | None:
    try:
        return read_explicit_little(data, defer_size=defer_size)
    except UnsupportedInputError as exc:
        assert exc.code == REFUSED
        return None


def pydicom_views(data: bytes, defer_size: int | None = DEFER) -> list[tuple[Any, ...]]:
    return views.file_views(dcmread(BytesIO(data), defer_size=defer_size))


def test_vr_and_charset_tables_agree_with_pydicom() -> None:
    assert VRS_LENGTH_32 == {str(vr) for vr in EXPLICIT_VR_LENGTH_32}
    assert VRS_LENGTH_16 | VRS_LENGTH_32 == {vr.decode() for vr in ENCODED_VR if len(vr) == 2}
    assert set(CHARSET_TERMS) <= set(python_encoding)


def test_every_synthetic_output_is_read_as_pydicom_reads_it() -> None:
    read = 0
    for case in views.synthetic_cases():
        if case.output is None:
            continue
        raw = read_raw(case.output)
        if syntax_of(case.output) in EXPLICIT_LITTLE_SYNTAXES:
            assert raw is not None, case.name  # real outputs take the reader
        if raw is None:
            continue
        read += 1
        for defer_size in (DEFER, 64, None):  # deferred values read, or left, alike
            raw = read_explicit_little(case.output, defer_size=defer_size)
            assert views.file_views(raw) == pydicom_views(case.output, defer_size), case.name
    assert read >= 10


def test_every_synthetic_input_is_read_as_pydicom_reads_it_or_refused() -> None:
    read = refused = 0
    for case in views.synthetic_cases():
        raw = read_raw(case.data)
        if raw is None:
            refused += 1
            continue
        read += 1
        assert views.file_views(raw) == pydicom_views(case.data), case.name
    assert read >= 15 and refused >= 8  # other syntaxes, hostile files


def _sample_outputs() -> list[tuple[str, bytes]]:
    """The smallest output in Explicit VR Little Endian (it has sequences) and the smallest
    with encapsulated pixel data."""
    outputs = [(c.name, c.output, syntax_of(c.output)) for c in views.synthetic_cases() if c.output]
    native = [(len(o), n, o) for n, o, syntax in outputs if syntax == "1.2.840.10008.1.2.1"]
    encapsulated = [
        (len(o), n, o) for n, o, syntax in outputs
        if syntax in EXPLICIT_LITTLE_SYNTAXES and syntax != "1.2.840.10008.1.2.1"
    ]  # fmt: skip
    return [min(native)[1:], min(encapsulated)[1:]]


def _read_alike_or_refused(data: bytes, what: str) -> bool:
    """The reader refuses ``data``, or pydicom reads it too and into the same views."""
    raw = read_raw(data, defer_size=64)
    if raw is None:
        return False
    assert views.file_views(raw) == pydicom_views(data, 64), what
    return True


def _header_end(data: bytes) -> int:
    """Where the last top-level element (pixel data) starts: the dataset before it holds the
    structure worth garbling."""
    raw = read_explicit_little(data)
    last = list(raw.elements.values())[-1]
    return last.start


def _element_ends(data: bytes) -> set[int]:
    """Offsets where a file meta or top-level element ends (after its value or delimiter)."""
    raw = read_explicit_little(data)
    assert raw.file_meta is not None
    elements = [*raw.file_meta.elements.values(), *raw.elements.values()]
    return {e.end + 8 if e.length == 0xFFFFFFFF else e.end for e in elements}


def test_truncated_outputs_are_refused_unless_cut_between_elements() -> None:
    for name, data in _sample_outputs():
        header = _header_end(data)
        cuts = [*range(0, header + 16), *range(header + 16, len(data), 997), len(data) - 1]
        accepted = {cut for cut in cuts if _read_alike_or_refused(data[:cut], f"{name}[:{cut}]")}
        assert accepted <= _element_ends(data), name  # a cut there leaves a well-formed file


def _value_bytes(ds: RawDataset) -> set[int]:
    """Offsets inside the values of ``ds``'s elements (not sequences), at every depth."""
    out: set[int] = set()
    for element in ds.elements.values():
        if element.items is not None:
            for item in element.items:
                out |= _value_bytes(item)
        else:
            out.update(range(element.start, element.end))
    return out


def test_garbled_outputs_are_refused_or_read_alike() -> None:
    """Every byte before the pixel data changed in turn (two ways): a change in the structure
    (tags, VRs, lengths, items) must be refused or read alike; a change inside a value, which
    keeps the file well formed, must be read alike (checked on a sample, pydicom is slow)."""
    for name, data in _sample_outputs():
        raw = read_explicit_little(data)
        values = _value_bytes(raw) | (_value_bytes(raw.file_meta) if raw.file_meta else set())
        value_checks = 0
        for pos in range(128, _header_end(data) + 16):
            for change in (0xFF, 0x01):
                garbled = bytearray(data)
                garbled[pos] ^= change
                what = f"{name} byte {pos} ^ {change:#x}"
                if pos not in values:
                    _read_alike_or_refused(bytes(garbled), what)
                elif read_raw(bytes(garbled), 64) is not None and pos % 29 == 0:
                    assert _read_alike_or_refused(bytes(garbled), what)
                    value_checks += 1
        assert value_checks > 10, name


def _item(**attributes: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _sequence(tag: int, items: list[Dataset], *, undefined: bool) -> DataElement:
    element = DataElement(tag, "SQ", Sequence(items))
    element.is_undefined_length = undefined
    return element


def nested_file(charset: str | tuple[str, ...] = ("", "ISO 2022 IR 100"), **extra: Any) -> bytes:
    """A JPEG Baseline file with what the synthetic outputs lack: sequences and items of
    undefined length (empty ones too) nesting ones of defined length and back, character sets
    in items, empty binary values, a UN value and encapsulated frames."""
    ds = Dataset()
    ds.SpecificCharacterSet = list(charset) if not isinstance(charset, str) else charset
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4"
    ds.PatientName = "Müller^Zoë"
    ds.add_new(0x00280034, "IS", None)
    ds.add_new(0x00280010, "US", None)
    ds.add_new(0x00209165, "AT", None)
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "UN", b"\x01\x02QUIXOTE")
    ds.add_new(0x00091002, "OB", b"")
    inner = _item(CodeValue="X1", CodingSchemeDesignator="99")
    inner.add(_sequence(0x00081140, [_item(ReferencedSOPInstanceUID="1.2.3.5"), Dataset()], undefined=True))
    first = _item(SpecificCharacterSet="ISO_IR 192", CodeMeaning="Zoë")
    first.add(_sequence(0x00082218, [inner], undefined=False))
    first.is_undefined_length_sequence_item = True
    empty = Dataset()
    empty.is_undefined_length_sequence_item = True
    ds.add(_sequence(0x00400275, [first, empty, _item(StudyID="7")], undefined=True))
    ds.add(_sequence(0x00081115, [], undefined=False))
    ds.add(_sequence(0x00081250, [], undefined=True))
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.PixelData = encapsulate([b"\xff\xd8frame one\xff\xd9", b"\xff\xd8frame two\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def test_undefined_lengths_nesting_and_empty_values_are_read_as_pydicom_reads_them() -> None:
    data = nested_file()
    assert data.count(b"\xfe\xff\xdd\xe0") == 4 and data.count(b"\xfe\xff\x0d\xe0") == 2
    for defer_size in (DEFER, 64, 20, None):
        raw = read_explicit_little(data, defer_size=defer_size)
        assert views.file_views(raw) == pydicom_views(data, defer_size), defer_size


def test_every_cut_and_every_changed_byte_of_a_nested_file_is_refused_or_read_alike() -> None:
    data = nested_file()
    accepted = {cut for cut in range(len(data)) if _read_alike_or_refused(data[:cut], f"[:{cut}]")}
    assert accepted <= _element_ends(data)
    for pos in range(128, len(data)):
        for change in (0xFF, 0x01, 0x20):
            garbled = bytearray(data)
            garbled[pos] ^= change
            _read_alike_or_refused(bytes(garbled), f"byte {pos} ^ {change:#x}")


@pytest.mark.parametrize(
    "data",
    [
        nested_file(charset="ISO_IR 999"),  # pydicom warns about it (raises in RAISE mode)
        nested_file(charset="ISO_IR 100\\x"),
        nested_file().replace(b"OB\x00\x00\x00\x00\x00\x00", b"UN\x00\x00\x00\x00\x00\x00"),  # empty UN
    ],
)
def test_values_pydicom_reads_its_own_way_are_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedInputError, match="raw reader"):
        read_explicit_little(data)


@pytest.mark.parametrize(
    "cut",
    [lambda d: d[:100], lambda d: d[:140], lambda d: d[:-3], lambda d: d + b"\x00\x01"],
)
def test_bytes_outside_the_subset_are_refused(cut: Callable[[bytes], bytes]) -> None:
    _name, data = _sample_outputs()[0]
    with pytest.raises(UnsupportedInputError, match="raw reader"):
        read_explicit_little(cut(data))


def _verdict(case: views.SynthCase, output: bytes) -> tuple[str, Any]:
    rules = views.synthetic_pipeline().verification
    assert case.identifiers is not None and case.file_name is not None
    try:
        return "pass", rules.verify(case.identifiers, output, case.file_name)
    except ResidualPHIError as exc:
        return "fail", exc.findings


def test_verification_gives_the_same_result_with_and_without_the_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = [c for c in views.synthetic_cases() if c.output is not None]
    variants: list[tuple[views.SynthCase, bytes]] = []
    for case in cases:
        assert case.output is not None
        data = case.output
        variants += [(case, data), (case, data[: len(data) // 2]), (case, data[:-1]), (case, data[:100])]
        variants += [(case, data[:cut]) for cut in (150, 300)]
        garbled = bytearray(data)
        garbled[140] ^= 0xFF
        variants.append((case, bytes(garbled)))
    with_reader = [_verdict(case, output) for case, output in variants]

    def refuse(*_args: object, **_kwargs: object) -> RawDataset:
        raise UnsupportedInputError("disabled", code=REFUSED)

    monkeypatch.setattr(verify, "read_explicit_little", refuse)
    without = [_verdict(case, output) for case, output in variants]
    assert with_reader == without
    assert sum(verdict == "pass" for verdict, _ in with_reader) >= 10
    assert any(
        verdict == "fail" and any("does not parse as DICOM" in f for f in findings)
        for verdict, findings in with_reader
    )
