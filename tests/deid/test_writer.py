"""The direct writer gives pydicom's bytes exactly, or steps aside.

Every comparison is against ``save_as(..., enforce_file_format=True)`` with the arguments
:func:`~tftt.deid.engine.serialize` used before the writer existed. ``save_as`` converts
elements of the dataset it writes, so the writer always runs first on a dataset.
"""

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from tftt.deid.engine import DeidContext, deidentify, serialize
from tftt.deid.pipeline import parse
from tftt.deid.writer import encode_file
from tftt.errors import DeidentificationError, TfttError
from tftt.headless import build_pipeline, iter_inputs
from tftt.pixels.stage import make_pixel_stage
from tftt.settings import DeidSettings, Settings
from tftt.synth.corpus import write_corpus

KEY = b"writer-test-key-0123456789abcdef"
FAST_SYNTAXES = {ExplicitVRLittleEndian, JPEGLSLossless, JPEG2000Lossless, RLELossless, JPEGBaseline8Bit}


def pydicom_bytes(ds: Dataset) -> bytes:
    """What ``serialize`` wrote before the direct writer (changes ``ds``, as save_as does)."""
    syntax = str(ds.file_meta.TransferSyntaxUID)
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=syntax == ImplicitVRLittleEndian,
               little_endian=syntax != ExplicitVRBigEndian, enforce_file_format=True)
    return buffer.getvalue()


def assert_same(ds: Dataset) -> bytes:
    fast = encode_file(ds)
    assert fast is not None, "the writer fell back"
    assert fast == pydicom_bytes(ds)
    return fast


def assert_falls_back(ds: Dataset) -> None:
    assert encode_file(ds) is None
    try:
        expected: bytes | None = pydicom_bytes(ds)
    except Exception:
        expected = None
    if expected is None:
        with pytest.raises(DeidentificationError):
            serialize(ds)
    else:
        assert serialize(ds) == expected


# -- every synthetic object, through the real first and second pass -----------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("writer")
    write_corpus(root / "src", seed=5, patients=1)  # every kind and syntax, hostile inputs too
    return root


@pytest.mark.parametrize("deid", [DeidSettings(ocr=False),
                                  DeidSettings(ocr=False, retain_safe_private=True, shift_dates=True)],
                         ids=["default", "safe-private-shifted-dates"])
def test_both_passes_of_every_synthetic_object_encode_as_pydicom_does(corpus, deid):
    settings = Settings(data_dir=corpus / "data", deid=deid)
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    fast_count = fallback_syntaxes = 0
    seen: set[str] = set()
    for path in iter_inputs(corpus / "src"):
        if path.name == "manifest.json":
            continue
        try:
            original = parse(path.read_bytes())
            first = deidentify(original, DeidContext(rules=pipeline.first, key=KEY)).dataset
        except TfttError:
            continue  # hostile inputs the pipeline quarantines before any output exists
        datasets = [first]
        try:
            pixels = pipeline.pixel_stage(first)
            datasets.append(deidentify(pixels.dataset, DeidContext(rules=pipeline.second, key=KEY,
                                                                   pixels_cleaned=pixels.cleaned)).dataset)
        except TfttError:
            pass
        fast = [encode_file(ds) for ds in datasets]
        expected = [pydicom_bytes(ds) for ds in reversed(datasets)][::-1]  # second pass first
        for ds, got, want in zip(datasets, fast, expected, strict=True):
            syntax = str(ds.file_meta.TransferSyntaxUID)
            seen.add(syntax)
            if syntax in FAST_SYNTAXES:
                assert got is not None, f"{path.name} fell back ({syntax})"
                assert got == want, f"{path.name} differs ({syntax})"
                fast_count += 1
            else:
                assert got is None, f"{path.name} was written directly in {syntax}"
                fallback_syntaxes += 1
    assert fast_count >= 20 and fallback_syntaxes >= 4
    assert {ImplicitVRLittleEndian, ExplicitVRBigEndian} <= seen
    assert FAST_SYNTAXES <= seen


def test_serialize_of_a_second_pass_output_is_what_pydicom_wrote(corpus):
    settings = Settings(data_dir=corpus / "data", deid=DeidSettings(ocr=False))
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    compared = 0
    for path in iter_inputs(corpus / "src"):
        if path.name == "manifest.json":
            continue
        try:
            original = parse(path.read_bytes())
            first = deidentify(original, DeidContext(rules=pipeline.first, key=KEY)).dataset
            pixels = pipeline.pixel_stage(first)
            second = deidentify(pixels.dataset, DeidContext(rules=pipeline.second, key=KEY,
                                                            pixels_cleaned=pixels.cleaned)).dataset
        except TfttError:
            continue
        assert serialize(second) == pydicom_bytes(second)
        compared += 1
    assert compared >= 10


def test_the_writer_changes_nothing_in_its_input(corpus):
    settings = Settings(data_dir=corpus / "data", deid=DeidSettings(ocr=False))
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    path = next(p for p in iter_inputs(corpus / "src") if p.name != "manifest.json")
    ds = deidentify(parse(path.read_bytes()), DeidContext(rules=pipeline.first, key=KEY)).dataset

    def snapshot(dataset: Dataset) -> list[tuple[int, int, object]]:
        out: list[tuple[int, int, object]] = []
        for tag, elem in dataset._dict.items():
            out.append((int(tag), id(elem), getattr(elem, "is_undefined_length", None)))
            if isinstance(elem, DataElement) and elem.VR == "SQ":
                for item in elem.value:
                    out.extend(snapshot(item))
        return out

    before = snapshot(ds)
    assert encode_file(ds) is not None
    assert snapshot(ds) == before


# -- hand-built datasets --------------------------------------------------------------------------

def new_dataset(charset: str | list[str] | None = None, syntax: str = ExplicitVRLittleEndian) -> Dataset:
    """A dataset the way the engine builds one: read-encoding recorded, rebuilt file meta."""
    ds = Dataset()
    ds.set_original_encoding(False, True, convert_encodings(charset) if charset else default_encoding)
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.77"
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.8.498.77")
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
    meta.ImplementationVersionName = "TFTT_TEST"
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    return ds


def engine_item(root: Dataset) -> Dataset:
    """A sequence item as the engine builds it: the root's read encoding, no charset of its own
    (so pydicom re-encodes its raw elements when the root has a Specific Character Set)."""
    item = Dataset()
    item.set_original_encoding(False, True, root.original_character_set)
    return item


def raw(tag: int, vr: str, value: bytes, *, length: int | None = None) -> RawDataElement:
    return RawDataElement(BaseTag(tag), vr, len(value) if length is None else length, value, 0, False, True)


def put(ds: Dataset, element: RawDataElement) -> None:
    """Store a raw element as read (the engine's kept private elements stay raw this way too)."""
    ds._dict[element.tag] = element


def test_multi_valued_strings_and_numbers():
    ds = new_dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.OtherPatientIDs = ["A1", "B22", "C333"]
    ds.ReferencedSOPClassUIDInFile = CTImageStorage
    ds.add_new(0x00081150, "UI", ["1.2.3", "1.2.34"])
    ds.PixelSpacing = ["0.5", "0.75"]
    ds.ImagePositionPatient = [-125.0, 10, "3.25"]
    ds.add_new(0x00200012, "IS", ["1", "22", "333"])
    ds.add_new(0x00280030, "DS", ["1.5", "-2"])
    ds.WindowCenter = "40"
    ds.Rows = 512
    ds.add_new(0x00281050, "DS", "40.5")
    ds.add_new(0x00181310, "US", [0, 256, 256, 0])
    ds.add_new(0x00189327, "FD", 12.5)
    ds.add_new(0x00189328, "FD", [1.0, 2.5])
    ds.add_new(0x00189306, "FL", 0.25)
    ds.add_new(0x00209161, "SS", -3)
    ds.add_new(0x00209057, "UL", [1, 2, 3])
    ds.add_new(0x00209165, "AT", [0x00100010, 0x00100020])
    ds.add_new(0x00209164, "AT", 0x00080018)
    ds.add_new(0x00081030, "LO", ["ONE", "TWO"])
    assert_same(ds)


def test_odd_lengths_are_padded_as_pydicom_pads_and_raw_values_are_kept_as_read():
    ds = new_dataset()
    ds.Modality = "CTX"  # CS: space
    ds.add_new(0x00200052, "UI", "1.2.3")  # UI: NUL
    ds.StudyDescription = "odd"  # LO: space
    ds.add_new(0x00189361, "OB", b"\x01\x02\x03")  # OB: NUL
    ds.add_new(0x00131010, "UN", b"\x01\x02\x03")  # UN: not padded
    put(ds, raw(0x00081090, "LO", b"ABC"))  # raw: as read, odd length kept
    put(ds, raw(0x00181020, "LO", b"V1\\V2 "))
    put(ds, raw(0x00280010, "US", b"\x00\x02"))
    put(ds, raw(0x00180050, "DS", b"1.25"))
    ds.add_new(0x00080012, "DA", "2023051")
    ds.add_new(0x00080013, "TM", "10111")
    ds.add_new(0x0008002A, "DT", "2023051410")
    ds.add_new(0x00101010, "AS", "92Y")
    assert_same(ds)


def test_empty_values():
    ds = new_dataset()
    ds.PatientName = ""
    ds.PatientBirthDate = ""
    ds.StudyDescription = ""
    ds.add_new(0x00180050, "DS", None)
    ds.add_new(0x00200013, "IS", "")
    ds.add_new(0x00280010, "US", None)
    ds.add_new(0x00189361, "OB", b"")
    ds.add_new(0x00081140, "SQ", Sequence())
    put(ds, raw(0x00081090, "LO", b""))
    ds.add_new(0x00200012, "UI", "")
    assert_same(ds)


def test_nested_sequences_with_empty_sequences_and_empty_items():
    ds = new_dataset()
    inner = Dataset()
    inner.CodeValue = "113100"
    inner.CodingSchemeDesignator = "DCM"
    inner.CodeMeaning = "Basic Application Confidentiality Profile"
    inner.add_new(0x00400260, "SQ", Sequence())
    middle = engine_item(ds)
    middle.add_new(0x00081150, "UI", "1.2.840.10008.5.1.4.1.1.2")
    middle.add_new(0x00081199, "SQ", Sequence([inner, Dataset()]))
    put(middle, raw(0x00081155, "UI", b"1.2.3.4\x00"))
    ds.add_new(0x00081115, "SQ", Sequence([middle, Dataset()]))
    ds.add_new(0x00120064, "SQ", Sequence([Dataset()]))
    ds.add_new(0x00081140, "SQ", Sequence())
    assert_same(ds)


def test_person_names_with_components_and_groups():
    ds = new_dataset()
    ds.PatientName = "Doe^John^Q^Dr^Jr"
    ds.ReferringPhysicianName = "Smith^Anne"
    ds.add_new(0x00081060, "PN", ["One^A", "Two^B^C"])
    ds.PerformingPhysicianName = "Odd^Nam"
    ds.add_new(0x00081070, "PN", "Ide^Graphic=Pho^Netic")
    assert_same(ds)


@pytest.mark.parametrize("charset, name, text", [
    ("ISO_IR 100", "Müller^Jürgen", "Überweisung für Röntgen"),
    ("ISO_IR 192", "Γιάννης^Παπαδόπουλος", "Описание исследования ✓"),
])
def test_a_specific_character_set_applies_at_every_depth(charset, name, text):
    ds = new_dataset(charset)
    ds.PatientName = name
    ds.StudyDescription = text
    ds.ImageComments = text + "!"
    put(ds, raw(0x00081090, "LO", text.encode(convert_encodings(charset)[0])))
    item = engine_item(ds)  # inherits the charset: pydicom re-encodes it
    item.PatientName = name
    item.CodeMeaning = text
    put(item, raw(0x00081030, "LO", text.encode(convert_encodings(charset)[0])))
    put(item, raw(0x00100020, "LO", b"ODD"))
    plain = Dataset()  # a new item, no recorded encoding
    plain.CodeMeaning = text
    ds.add_new(0x00081032, "SQ", Sequence([item, plain]))
    fast = assert_same(ds)
    reread = pydicom.dcmread(io.BytesIO(fast))
    assert str(reread.PatientName) == name
    assert reread.ProcedureCodeSequence[0].CodeMeaning == text


def test_encapsulated_pixel_data_with_several_fragments():
    ds = new_dataset(syntax=JPEGBaseline8Bit)
    frames = [b"\xff\xd8" + bytes(range(200)) + b"\xff\xd9", b"\xff\xd8" + b"\x07" * 301 + b"\xff\xd9"]
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated = 8
    ds.NumberOfFrames = 2
    pixels = DataElement(0x7FE00010, "OB", encapsulate(frames, fragments_per_frame=3, has_bot=True))
    pixels.is_undefined_length = True
    ds[0x7FE00010] = pixels
    assert_same(ds)


def test_encapsulated_pixel_data_kept_raw_with_undefined_length():
    ds = new_dataset(syntax=RLELossless)
    value = encapsulate([b"\x01\x00\x00\x00" + b"\x00" * 60 + b"\x02\x7f", b"\x03" * 5], has_bot=False)
    put(ds, raw(0x7FE00010, "OB", value, length=0xFFFFFFFF))
    assert_same(ds)


def test_native_pixel_data_kept_raw_with_an_odd_length_is_padded():
    ds = new_dataset()
    ds.BitsAllocated = 8
    put(ds, raw(0x7FE00010, "OB", b"\x01\x02\x03"))
    put(ds, raw(0x00080018, "UI", b"1.2.826.0.1.3680043.8.498.77 "))  # converted by dcmwrite
    assert_same(ds)


def test_private_elements_kept_raw():
    ds = new_dataset("ISO_IR 100")
    put(ds, raw(0x00090010, "LO", b"GEMS_IDEN_01"))
    put(ds, raw(0x00091002, "SH", b"ODD"))
    put(ds, raw(0x00091030, "UN", b"\x01\x02\x03"))
    put(ds, raw(0x00110010, "LO", b"ACME 1.0"))
    ds[0x00111011] = raw(0x00111011, "LO", b"converted when set")  # pydicom converts it on setting
    # a private sequence kept as read (defined length, one item of defined length)
    item = raw(0x00100010, "PN", b"Doe^J ").value
    elem = b"\x10\x00\x10\x00PN" + len(item).to_bytes(2, "little") + item
    sq_value = b"\xfe\xff\x00\xe0" + len(elem).to_bytes(4, "little") + elem
    put(ds, raw(0x00111014, "SQ", sq_value))
    assert_same(ds)


def test_raw_sequences_below_a_re_encoded_item_are_parsed_as_pydicom_does():
    ds = new_dataset("ISO_IR 100")
    item = engine_item(ds)  # re-encoded by pydicom: its raw sequence is parsed
    inner = b"\x08\x00\x04\x01LO\x04\x00Abc "
    value = b"\xfe\xff\x00\xe0" + len(inner).to_bytes(4, "little") + inner
    put(item, raw(0x00400275, "SQ", value))
    ds.add_new(0x00081032, "SQ", Sequence([item]))
    assert_same(ds)


def test_a_file_read_with_undefined_lengths_is_written_as_pydicom_writes_it():
    """Undefined-length sequences and items (kept as read) keep their delimiters."""
    def element(tag: int, vr: str, value: bytes) -> bytes:
        return tag.to_bytes(4, "little")[2:] + tag.to_bytes(4, "little")[:2] + vr.encode() + \
            len(value).to_bytes(2, "little") + value

    def tag_bytes(group: int, elem: int) -> bytes:
        return group.to_bytes(2, "little") + elem.to_bytes(2, "little")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    head = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(pydicom.filebase.DicomFileLike(head), meta)
    item = element(0x00080100, "SH", b"113100") + element(0x00080104, "LO", b"Odd")
    body = (
        element(0x00080005, "CS", b"ISO_IR 100")
        + element(0x00080016, "UI", CTImageStorage.encode() + b"\x00")
        + element(0x00080018, "UI", b"1.2.3.4\x00")
        + tag_bytes(0x0008, 0x1032) + b"SQ\x00\x00" + b"\xff\xff\xff\xff"
        + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + item + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
        + b"\xfe\xff\x00\xe0" + len(item).to_bytes(4, "little") + item
        + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
        + element(0x00100010, "PN", b"Doe^Jane")
    )
    ds = pydicom.dcmread(io.BytesIO(b"\x00" * 128 + b"DICM" + head.getvalue() + body))
    assert ds.ProcedureCodeSequence[0].is_undefined_length_sequence_item
    ds.file_meta = new_dataset().file_meta  # rebuilt, as the engine does (a read one is raw)
    fast = assert_same(ds)
    assert b"\xfe\xff\x0d\xe0" in fast and b"\xfe\xff\xdd\xe0" in fast


def test_serialize_does_not_call_pydicom_when_the_writer_can(monkeypatch):
    ds = new_dataset()
    ds.PatientName = "Doe^John"
    expected = encode_file(ds)

    def refuse(*args, **kwargs):
        raise AssertionError("save_as was called")

    monkeypatch.setattr(Dataset, "save_as", refuse)
    assert serialize(ds) == expected


def test_file_meta_follows_the_dataset_sop_uids():
    ds = new_dataset()
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.999"
    ds.file_meta.SourceApplicationEntityTitle = "TFTT"
    assert_same(ds)


# -- what must be left to pydicom -----------------------------------------------------------------

@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
                                    "1.2.826.0.1.3680043.8.498.12345"])
def test_other_transfer_syntaxes_fall_back(syntax):
    ds = new_dataset(syntax=syntax)
    ds.PatientName = "Doe^John"
    assert_falls_back(ds)


def test_raw_elements_without_an_explicit_vr_fall_back():
    ds = new_dataset()
    ds.set_original_encoding(True, True, default_encoding)  # read as implicit VR
    ds._dict[BaseTag(0x00100010)] = RawDataElement(BaseTag(0x00100010), None, 4, b"Doe ", 0, True, True)
    assert_falls_back(ds)


def test_deferred_values_fall_back():
    ds = new_dataset()
    ds._dict[BaseTag(0x00100010)] = RawDataElement(BaseTag(0x00100010), "PN", 4, None, 0, False, True)
    assert encode_file(ds) is None


def test_ambiguous_vrs_fall_back():
    ds = new_dataset()
    ds.PixelRepresentation = 0
    ds.add_new(0x00280106, "US or SS", 0)
    assert_falls_back(ds)


def test_buffered_values_fall_back():
    ds = new_dataset()
    ds.add_new(0x00189361, "OB", io.BufferedReader(io.BytesIO(b"\x01\x02\x03")))
    assert_falls_back(ds)


def test_a_value_too_long_for_a_two_byte_length_falls_back():
    ds = new_dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.StudyDescription = "x" * 70000
        assert_falls_back(ds)  # pydicom writes it as UN


def test_a_value_pydicom_cannot_encode_falls_back_and_serialize_raises():
    ds = new_dataset()
    ds.Modality = "ÇT\u20ac"  # CS is written as ISO 8859-1 whatever the character set
    assert_falls_back(ds)


def test_unexpected_types_fall_back():
    ds = new_dataset()
    ds._dict[BaseTag(0x00100010)] = "not an element"  # type: ignore[assignment]
    assert encode_file(ds) is None


def test_file_meta_that_pydicom_would_complete_falls_back():
    ds = new_dataset()
    del ds.file_meta.ImplementationVersionName
    assert_falls_back(ds)
    ds = new_dataset()
    ds.preamble = b"\x00" * 64
    assert_falls_back(ds)
