"""tftt.pixels.burned_in: header risk flags and device-rule regions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydicom.dataset import Dataset, FileMetaDataset

from tftt.pixels.burned_in import (
    SECONDARY_CAPTURE_SOP_CLASSES,
    ProposedRegion,
    RiskReason,
    clip_region,
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
