"""tftt.pixels.burned_in: header risk flags and device-rule regions."""

from __future__ import annotations

import copy
import io
import itertools
import warnings
from functools import partial

import pytest
from pydantic import ValidationError
from pydicom import config as pydicom_config
from pydicom.charset import TEXT_VR_DELIMS, decode_bytes, encode_string, python_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian

from tftt.deid.engine import DeidContext, deidentify
from tftt.deid.pipeline import Pipeline, parse
from tftt.errors import TfttError
from tftt.headless import build_pipeline, iter_inputs
from tftt.pixels import burned_in
from tftt.pixels.burned_in import (
    SECONDARY_CAPTURE_SOP_CLASSES,
    ProposedRegion,
    RiskReason,
    clip_region,
    converted_element_text,
    device_rule_regions,
    element_text,
    evaluate_condition,
    header_risk,
    matching_rules,
)
from tftt.pixels.pixel_rules import (
    Comparison,
    Method,
    PixelRegion,
    PixelRule,
    PixelRules,
    RulesProvenance,
    load_pixel_rules,
)
from tftt.pixels.stage import make_pixel_stage
from tftt.settings import DeidSettings, Settings
from tftt.synth.corpus import write_corpus

CANARY = "CANARY^PATIENT^7731"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _header(**attributes: object) -> Dataset:
    """A plain, low-risk CT header, changed by ``attributes``."""
    ds = Dataset()
    ds.PatientName = CANARY
    ds.PatientID = "ID-7731"
    ds.SOPClassUID = CT_IMAGE
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Manufacturer = "ACME"
    ds.Rows = 512
    ds.Columns = 512
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def test_plain_ct_header_is_not_flagged() -> None:
    risk = header_risk(_header())
    assert risk.reasons == ()
    assert not risk.flagged


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (
            {"BurnedInAnnotation": "YES"},
            {RiskReason.BURNED_IN_ANNOTATION, RiskReason.CTP_BURNED_IN_FILTER},
        ),
        ({"BurnedInAnnotation": "yes "}, {RiskReason.BURNED_IN_ANNOTATION}),
        ({"Modality": "US"}, {RiskReason.RISKY_MODALITY}),
        ({"Modality": "XA"}, {RiskReason.RISKY_MODALITY}),
        ({"Modality": "ES"}, {RiskReason.RISKY_MODALITY}),
        ({"Modality": "OT"}, {RiskReason.RISKY_MODALITY}),
        ({"ImageType": ["DERIVED", "SECONDARY"]}, {RiskReason.SECONDARY_IMAGE_TYPE}),
        (
            {"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]},
            {
                RiskReason.SECONDARY_IMAGE_TYPE,
                RiskReason.SCREEN_SAVE_IMAGE_TYPE,
                RiskReason.CTP_BURNED_IN_FILTER,
            },
        ),
        ({"DateOfSecondaryCapture": "20240101"}, {RiskReason.CTP_BURNED_IN_FILTER}),
        ({"SecondaryCaptureDeviceManufacturer": "X"}, {RiskReason.CTP_BURNED_IN_FILTER}),
        ({"SeriesDescription": "SCREEN SAVE 1"}, {RiskReason.CTP_BURNED_IN_FILTER}),
    ],
)
def test_each_header_condition_gives_its_reason(
    attributes: dict[str, object], expected: set[RiskReason]
) -> None:
    risk = header_risk(_header(**attributes))
    assert expected <= set(risk.reasons)
    assert risk.flagged


@pytest.mark.parametrize("sop_class", sorted(SECONDARY_CAPTURE_SOP_CLASSES))
def test_secondary_capture_sop_classes_are_flagged(sop_class: str) -> None:
    assert (
        RiskReason.SECONDARY_CAPTURE_SOP_CLASS
        in header_risk(_header(SOPClassUID=sop_class)).reasons
    )


def test_sop_class_from_file_meta_when_the_data_set_lacks_it() -> None:
    ds = _header()
    del ds.SOPClassUID
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    assert RiskReason.SECONDARY_CAPTURE_SOP_CLASS in header_risk(ds).reasons


def test_reasons_are_codes_in_a_fixed_order_and_hold_no_header_values() -> None:
    ds = _header(
        BurnedInAnnotation="YES",
        Modality="US",
        ImageType=["DERIVED", "SECONDARY"],
        SeriesDescription=CANARY,
    )
    before = ds.to_json_dict()
    risk = header_risk(ds)
    assert list(risk.reasons) == [reason for reason in RiskReason if reason in risk.reasons]
    assert CANARY not in risk.model_dump_json()
    assert ds.to_json_dict() == before  # input unchanged


def test_risky_modalities_can_be_chosen() -> None:
    assert (
        RiskReason.RISKY_MODALITY
        in header_risk(_header(Modality="RF"), risky_modalities={"RF"}).reasons
    )
    assert (
        RiskReason.RISKY_MODALITY
        not in header_risk(_header(Modality="US"), risky_modalities=()).reasons
    )


def test_element_text_reads_like_ctp() -> None:
    ds = _header(ImageType=["DERIVED", "SECONDARY"], WindowWidth="1")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.ImplementationVersionName = "MINDRAY_1"
    assert element_text(ds, 0x00080008) == "DERIVED\\SECONDARY"
    assert element_text(ds, 0x00281051) == "1"
    assert element_text(ds, 0x00280010) == "512"
    assert element_text(ds, 0x00181012) == ""  # absent
    assert element_text(ds, 0x00020013) == "MINDRAY_1"  # file meta
    ds.add_new(0x00091010, "OB", b"\x01\x02")
    assert element_text(ds, 0x00091010) == ""  # binary


# --------------------------------------------------------------------------- raw values read fast

TEXT_VRS = ("LO", "SH", "UC", "ST", "LT", "UT")  # decoded in the data set's character set
CHARSETS = (None, "ISO_IR 100", "ISO_IR 192", "GB18030", ["", "ISO 2022 IR 87"], "ISO_IR 13")
CASES = [(vr, None) for vr in ("CS", "AS", "DA", "DT", "TM", "UI", "AE")] + [
    (vr, charset) for vr in TEXT_VRS for charset in CHARSETS
]
_TAG = BaseTag(0x00181016)


def _raw_values() -> list[bytes]:
    """Values of both cases, single and multi-valued, with every padding pydicom strips (or
    not): trailing and leading spaces and NULs, empty values, inner spaces, non-ASCII (Latin-1
    and UTF-8), control characters and an ISO 2022 escape."""
    words = ["", "A", "ab", "CT", "YES", "no", "SCREEN SAVE", "1.2.840.10008.5.1.4.1.1.7", "20240101"]
    contents = set(words)
    for first, second in itertools.product(words[:5], repeat=2):
        contents |= {f"{first}\\{second}", f"{first} \\ {second}", f"{first}\\\\{second}"}
    values = set()
    for content in sorted(contents):
        for lead, tail in itertools.product(("", " ", "\0"), ("", " ", "  ", "\0", " \0", "\0 ")):
            values.add((lead + content + tail).encode("ascii"))
    values |= {b"\xc4XIAL", b"SAVE\xc3\x84 ", b"A\tB ", b"A\r\nB ", b"\x1b(BAB", b"\x7f ", b"SAVE\x00X "}
    return sorted(values)


def _with_raw(vr: str, value: bytes, charset: object) -> Dataset:
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds._dict[_TAG] = RawDataElement(_TAG, vr, len(value), value, 0, False, True)
    return ds


@pytest.mark.parametrize(("vr", "charset"), CASES, ids=str)
def test_raw_values_read_as_pydicom_converts_them(vr: str, charset: object) -> None:
    """Every value reads exactly as through pydicom's conversion; the canonical ones (written
    back as the same bytes) without converting, so they stay raw in the data set."""
    untouched = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's validation warnings on odd values
        for value in _raw_values():
            fast, reference = _with_raw(vr, value, charset), _with_raw(vr, value, charset)
            text = element_text(fast, _TAG)
            assert text == converted_element_text(reference, _TAG), value
            assert type(reference._dict[_TAG]) is DataElement  # the reference converts...
            if type(fast._dict[_TAG]) is RawDataElement:  # ...the fast path need not
                untouched += 1
                assert fast._dict[_TAG].value == value
                assert reference[_TAG].VR == vr and reference[_TAG].value is not None
            assert element_text(fast, _TAG) == text  # and a second read agrees
    shift_jis = vr in TEXT_VRS and charset == "ISO_IR 13"
    assert (untouched == 0) if shift_jis else (untouched > 20)


@pytest.mark.parametrize(
    ("vr", "value", "expected"),
    [
        ("CS", b"ORIGINAL\\PRIMARY\\AXIAL", "ORIGINAL\\PRIMARY\\AXIAL"),
        ("CS", b"DERIVED\\SECONDARY ", "DERIVED\\SECONDARY"),
        ("CS", b"YES ", "YES"),
        ("CS", b"A \\B", "A \\B"),  # convert_string strips the whole value only...
        ("CS", b" CT ", " CT"),  # ...and only on the right
        ("UI", b"1.2.840.10008.5.1.4.1.1.7\0", "1.2.840.10008.5.1.4.1.1.7"),
        ("LO", b"SCREEN SAVE ", "SCREEN SAVE"),
        ("DA", b"20240101", "20240101"),
    ],
)
def test_canonical_raw_values_are_read_without_converting(vr: str, value: bytes, expected: str) -> None:
    ds = _with_raw(vr, value, None)
    raw = ds._dict[_TAG]
    assert element_text(ds, _TAG) == expected
    assert ds._dict[_TAG] is raw


@pytest.mark.parametrize("value", [b"CT  ", b"CT\0\0", b"CT \0", b"\xc4X", b"A\tB ", b"  "])
def test_other_raw_values_are_converted_as_before(value: bytes) -> None:
    """Not written back as read: the fallback converts (and pydicom stores the conversion), as
    reading through ``ds[tag]`` always did, so the second pass sees what it saw before."""
    fast, reference = _with_raw("CS", value, None), _with_raw("CS", value, None)
    assert element_text(fast, _TAG) == converted_element_text(reference, _TAG)
    assert type(fast._dict[_TAG]) is DataElement
    assert fast._dict[_TAG].value == reference._dict[_TAG].value


def test_pydicom_settings_that_change_conversion_turn_the_fast_path_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pydicom_config, "datetime_conversion", True)
    ds = _with_raw("DA", b"20240101", None)
    assert element_text(ds, _TAG) == "20240101"
    assert type(ds._dict[_TAG]) is DataElement  # DA objects: pydicom's conversion
    monkeypatch.setattr(pydicom_config, "data_element_callback", lambda raw, **kwargs: raw)
    ds = _with_raw("CS", b"CT", None)
    assert element_text(ds, _TAG) == "CT"
    assert type(ds._dict[_TAG]) is DataElement


def test_ascii_charsets_decode_and_encode_printable_ascii_unchanged() -> None:
    """What the fast path assumes of each character set it accepts as the first one: printable
    ASCII decodes to itself (whatever follows in the list) and pydicom encodes it back to the
    same bytes."""
    printable = bytes(range(0x20, 0x7F))
    assert burned_in._ASCII_CHARSETS <= set(python_encoding.values())
    for codec in burned_in._ASCII_CHARSETS:
        for encodings in ([codec], [codec, "iso2022_jp"], [codec, "iso_ir_58"]):
            assert decode_bytes(printable, encodings, TEXT_VR_DELIMS) == printable.decode()
            assert encode_string(printable.decode(), encodings) == printable


# --------------------------------------------------------------------------- unchanged results


def _as_file(ds: Dataset) -> bytes:
    """``ds`` as the bytes of a file (to be read back with raw elements)."""
    ds = copy.deepcopy(ds)
    ds.SOPInstanceUID = "1.2.3.4"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = bytes(ds.Rows * ds.Columns)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _corpus_headers(inputs: list[bytes], pipeline: Pipeline) -> list[Dataset]:
    headers: list[Dataset] = []
    for data in inputs:
        try:
            original = parse(data)
        except Exception:
            continue  # hostile inputs that do not parse
        headers.append(original)
        try:
            headers.append(deidentify(original, DeidContext(rules=pipeline.first, key=pipeline.key)).dataset)
        except TfttError:
            continue  # e.g. a transfer syntax the engine does not write
    return headers


@pytest.fixture(scope="module")
def corpus_headers(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Dataset], list[Dataset]]:
    """The synthetic corpus's parsed files and their first-pass data sets (what the pixel stage
    sees), plus three headers that device rules match; twice, read separately, one list for
    the fast reading and one for the reference."""
    root = tmp_path_factory.mktemp("risk")
    write_corpus(root / "src", seed=5, patients=2)
    settings = Settings(data_dir=root / "data", deid=DeidSettings(ocr=False))
    pipeline = build_pipeline(settings, b"burned-in-test-key-0123456789abc", make_pixel_stage(settings))
    devices = [
        _header(BurnedInAnnotation="YES", Manufacturer="GE MEDICAL SYSTEMS", Rows=1024, Columns=1024),
        _header(Manufacturer="ADAC", Rows=832, Columns=1024, ProtocolName="DUAL DETECTOR "),
        _header(Modality="US", ImageType=["DERIVED", "SECONDARY"], SeriesDescription="SCREEN SAVE"),
    ]
    inputs = [path.read_bytes() for path in iter_inputs(root / "src")] + [_as_file(ds) for ds in devices]
    return _corpus_headers(inputs, pipeline), _corpus_headers(inputs, pipeline)


def _raw_elements(headers: list[Dataset]) -> int:
    return sum(type(element) is RawDataElement for ds in headers for element in ds._dict.values())


def test_header_risk_and_device_rules_are_unchanged_on_the_corpus(
    corpus_headers: tuple[list[Dataset], list[Dataset]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old reading (every comparison through ``ds[tag]``, nothing cached) gives the same
    reasons and rule matches; the new one leaves the canonical raw elements raw."""
    fast, reference = corpus_headers
    raw_before = _raw_elements(fast)
    assert raw_before == _raw_elements(reference) > 0
    rules = load_pixel_rules()
    new = [(header_risk(ds), matching_rules(ds, rules), device_rule_regions(ds, rules)) for ds in fast]
    with monkeypatch.context() as patch:
        patch.setattr(burned_in, "_reader", lambda ds: partial(converted_element_text, ds))
        old = [(header_risk(ds), matching_rules(ds, rules), device_rule_regions(ds, rules)) for ds in reference]
    assert new == old
    assert any(risk.flagged for risk, _, _ in new) and any(not risk.flagged for risk, _, _ in new)
    assert sum(bool(regions) for _, _, regions in new) >= 2
    assert _raw_elements(reference) < _raw_elements(fast)  # the reference converted what the fast path read
    assert _raw_elements(fast) < raw_before  # the fallback still converts values that are not canonical


def _compare(keyword_tag: str, method: Method, value: str) -> Comparison:
    return Comparison(tag=keyword_tag, method=method, value=value)


@pytest.mark.parametrize(
    ("method", "value", "expected"),
    [
        (Method.EQUALS, "GE MEDICAL SYSTEMS", True),
        (Method.EQUALS, "ge medical systems", False),
        (Method.EQUALS_IGNORE_CASE, "ge medical systems", True),
        (Method.CONTAINS, "MEDICAL", True),
        (Method.CONTAINS, "medical", False),
        (Method.CONTAINS_IGNORE_CASE, "medical", True),
        (Method.STARTS_WITH, "GE ", True),
        (Method.STARTS_WITH_IGNORE_CASE, "ge ", True),
        (Method.ENDS_WITH, "SYSTEMS", True),
        (Method.ENDS_WITH_IGNORE_CASE, "systems", True),
        (Method.ENDS_WITH, "systems", False),
        (Method.MATCHES, "GE .*", True),
        (Method.MATCHES, "MEDICAL", False),  # whole value, as Java's String.matches
    ],
)
def test_comparison_methods(method: Method, value: str, expected: bool) -> None:
    ds = _header(Manufacturer="GE MEDICAL SYSTEMS")
    assert evaluate_condition(_compare("0008,0070", method, value), ds) is expected


def test_ge_512_screen_capture_rule_gives_the_top_band_clipped_to_the_image() -> None:
    rules = load_pixel_rules()
    ds = _header(BurnedInAnnotation="YES", Manufacturer="GE MEDICAL SYSTEMS", Rows=512, Columns=400)
    regions = device_rule_regions(ds, rules)
    matched = matching_rules(ds, rules)
    assert len(matched) == 1
    (rule,) = [rule for rule in rules.rules if rule.id == matched[0]]
    assert rule.group == "GE" and "512" in (rule.title or "")
    assert rule.regions == (PixelRegion(x=0, y=0, width=512, height=25),)
    assert regions == [
        ProposedRegion(x=0, y=0, width=400, height=25, source="device-rule", rule_id=rule.id)
    ]


def test_ge_1024_screen_capture_gives_both_corners() -> None:
    ds = _header(
        BurnedInAnnotation="YES", Manufacturer="GE MEDICAL SYSTEMS", Rows=1024, Columns=1024
    )
    boxes = [(r.x, r.y, r.width, r.height) for r in device_rule_regions(ds, load_pixel_rules())]
    assert boxes == [(0, 0, 300, 150), (724, 0, 300, 150)]


def test_mindray_rule_reads_the_file_meta() -> None:
    ds = _header(Modality="US", Rows=768, Columns=1024)
    rules = load_pixel_rules()
    assert device_rule_regions(ds, rules) == []
    ds.file_meta = FileMetaDataset()
    ds.file_meta.ImplementationVersionName = "MINDRAY_V1"
    regions = device_rule_regions(ds, rules)
    assert [(r.x, r.y, r.width, r.height) for r in regions] == [(0, 0, 1024, 69)]


def test_header_without_a_matching_rule_gives_nothing() -> None:
    assert device_rule_regions(_header(), load_pixel_rules()) == []


def test_all_matches_by_default_first_match_like_ctp_on_request() -> None:
    ds = _header(Manufacturer="ADAC", Rows=832, Columns=1024, ProtocolName="DUAL DETECTOR")
    rules = load_pixel_rules()
    assert len(matching_rules(ds, rules)) == 2
    every = device_rule_regions(ds, rules)
    first = device_rule_regions(ds, rules, first_match_only=True)
    assert {r.rule_id for r in first} == {matching_rules(ds, rules)[0]}
    assert set(first) < set(every)
    assert len({(r.x, r.y, r.width, r.height) for r in every}) == len(every)  # no duplicates


def _rules(*regions: PixelRegion) -> PixelRules:
    return PixelRules(
        provenance=RulesProvenance(
            source="t", repository="t", commit="0" * 40, sha256="0" * 64, generated_by="t"
        ),
        rules=(
            PixelRule(
                id="t-1",
                section="T",
                line=1,
                source_condition='Modality.equals("CT")',
                condition=Comparison(tag="0008,0060", method=Method.EQUALS, value="CT"),
                regions=regions,
            ),
        ),
    )


def test_negative_coordinates_count_from_the_far_edge_and_regions_are_clipped() -> None:
    ds = _header(Rows=600, Columns=512)
    rules = _rules(
        PixelRegion(x=-100, y=-20, width=50, height=10),  # from right / bottom
        PixelRegion(x=480, y=590, width=100, height=100),  # runs off the image
        PixelRegion(x=600, y=0, width=10, height=10),  # wholly outside
        PixelRegion(x=-1000, y=0, width=30, height=5),  # still negative: starts at 0
    )
    boxes = [(r.x, r.y, r.width, r.height) for r in device_rule_regions(ds, rules)]
    assert boxes == [(412, 580, 50, 10), (480, 590, 32, 10), (0, 0, 30, 5)]
    assert clip_region(0, 0, 10, 10, rows=0, columns=0) is None


def test_no_regions_without_image_size() -> None:
    ds = _header()
    del ds.Rows
    assert device_rule_regions(ds, _rules(PixelRegion(x=0, y=0, width=5, height=5))) == []


def test_proposed_region_validation() -> None:
    with pytest.raises(ValidationError):
        ProposedRegion(x=0, y=0, width=5, height=5, source="device-rule")  # no rule id
    with pytest.raises(ValidationError):
        ProposedRegion(x=0, y=0, width=5, height=5, source="ocr", rule_id="x")
    with pytest.raises(ValidationError):
        ProposedRegion(x=0, y=0, width=5, height=5, source="ocr", first_frame=3, last_frame=2)
    with pytest.raises(ValidationError):
        ProposedRegion(x=-1, y=0, width=5, height=5, source="ocr")
    region = ProposedRegion(x=1, y=2, width=3, height=4, source="ocr", first_frame=0, last_frame=0)
    assert ProposedRegion.model_validate_json(region.model_dump_json()) == region


def test_header_risk_reads_each_attribute_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter tests ImageType and BurnedInAnnotation again after header_risk's own checks."""
    reads: list[int] = []

    def counted(ds: Dataset, tag: int) -> str:
        reads.append(tag)
        return element_text(ds, tag)

    monkeypatch.setattr(burned_in, "element_text", counted)
    header_risk(_header(BurnedInAnnotation="NO", SOPClassUID=""))
    # its own 5 (the file meta's SOP class too, the data set's being empty) and 5 more of the filter's 7
    assert len(reads) == len(set(reads)) == 10
