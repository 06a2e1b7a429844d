"""The shipped rules files in anonymization_rules/: they load, they are consistent with each
other, with pydicom's dictionary and with what a teaching file needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from tftt.deid.rules import (
    RULES_DIR,
    Action,
    AttributeTypes,
    ConfidentialityTable,
    KeepList,
    Option,
    Profile,
    SafePrivateTags,
    SiteOverrides,
    TableRow,
    Vocabulary,
    load_attribute_types,
    load_keep_list,
    load_profile,
    load_rules_file,
    load_safe_private_tags,
    load_table,
    load_vocabulary,
)
from tftt.errors import RuleError

EXPECTED_MODELS: dict[str, type] = {
    "ps3.15-table-e1-1-2024b.json": ConfidentialityTable,
    "ps3.15-table-e1-1-2023b.json": ConfidentialityTable,
    "safe-private-tags.json": SafePrivateTags,
    "keep-list.json": KeepList,
    "attribute-types.json": AttributeTypes,
    "descriptor-vocabulary.json": Vocabulary,
    "site-overrides.json": SiteOverrides,
    "profiles/first-pass.json": Profile,
    "profiles/second-pass.json": Profile,
}
DIFFERENCES = "table-differences-2023b-2024b.json"
HAND_CURATED = [
    "keep-list.json",
    "attribute-types.json",
    "descriptor-vocabulary.json",
    "site-overrides.json",
    "profiles/first-pass.json",
    "profiles/second-pass.json",
]
TABLE_2024B = "ps3.15-table-e1-1-2024b.json"
TABLE_2023B = "ps3.15-table-e1-1-2023b.json"
PRIVATE_ROW_TAGS = [f"xxx{digit},xxxx" for digit in "13579BDF"]

# What must reach a teaching file to read and measure images.
TEACHING_ATTRIBUTES = [
    "PixelSpacing",
    "SliceThickness",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "KVP",
    "SequenceOfUltrasoundRegions",
    "Rows",
    "Columns",
    "BitsAllocated",
    "PhotometricInterpretation",
    "Modality",
    "SOPClassUID",
    "PixelData",
    "NumberOfFrames",
]


def _rows(file_name: str) -> dict[str, TableRow]:
    return {row.tag: row for row in load_table(file_name).rows}


def _tag_of(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return f"{tag >> 16:04X},{tag & 0xFFFF:04X}"


def _pattern_matches(pattern: str, tag: str) -> bool:
    return all(p == "x" or p == t for p, t in zip(pattern, tag, strict=True))


def _effective_action(row: TableRow, options: tuple[Option, ...]) -> Action:
    """The action of a row under a profile: an option column the profile selects wins over the
    Basic Profile column (PS3.15 E.1.1)."""
    chosen = {row.options[option] for option in options if option in row.options}
    if not chosen:
        return row.basic
    if Action.KEEP in chosen and len(chosen) > 1:
        chosen.discard(Action.KEEP)  # a clean/replace option is stricter than a retain option
    assert len(chosen) == 1, (row.tag, chosen)
    return chosen.pop()


# ---------------------------------------------------------------------------------- loading


def test_every_rules_file_is_expected() -> None:
    found = {p.relative_to(RULES_DIR).as_posix() for p in RULES_DIR.rglob("*.json")}
    # the pixel rule files have their own models, tested in tests/pixels and tests/scripts
    pixel_rule_files = {"pixel-rules.json", "burned-in-filter.json"}
    assert found == set(EXPECTED_MODELS) | {DIFFERENCES} | pixel_rule_files


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_rules_file_loads_into_its_model_with_provenance(name: str) -> None:
    loaded = load_rules_file(RULES_DIR / name)
    assert type(loaded) is EXPECTED_MODELS[name]
    provenance = loaded.provenance  # type: ignore[attr-defined]
    assert provenance.source.strip()
    assert provenance.notes and provenance.notes.strip()


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_rules_models_reject_extra_keys(name: str, tmp_path: Path) -> None:
    raw = json.loads((RULES_DIR / name).read_text(encoding="utf-8"))
    raw["unexpected"] = 1
    target = tmp_path / Path(name).name
    target.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(RuleError, match="invalid"):
        load_rules_file(target)


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_rules_models_are_frozen(name: str) -> None:
    loaded = load_rules_file(RULES_DIR / name)
    with pytest.raises(ValidationError):
        loaded.provenance = loaded.provenance  # type: ignore[attr-defined]


def test_table_row_rejects_extra_keys_and_bad_tags() -> None:
    base = {"tag": "0010,0010", "name": "Patient's Name", "in_std_comp_iod": True, "basic": "Z"}
    TableRow.model_validate(base)
    with pytest.raises(ValidationError):
        TableRow.model_validate(base | {"comment": "x"})
    with pytest.raises(ValidationError):
        TableRow.model_validate(base | {"tag": "(0010,0010)"})
    with pytest.raises(ValidationError):
        TableRow.model_validate(base | {"basic": "Q"})


@pytest.mark.parametrize("name", HAND_CURATED)
def test_hand_curated_files_keep_the_shared_layout(name: str) -> None:
    text = (RULES_DIR / name).read_text(encoding="utf-8")
    canonical = json.dumps(json.loads(text), indent=1, sort_keys=True, ensure_ascii=True) + "\n"
    assert text == canonical, f"reformat with: python3 -m json.tool --indent 1 --sort-keys {name}"


# ---------------------------------------------------------------------------- Table E.1-1


def test_2024b_table_rows() -> None:
    table = load_table(TABLE_2024B)
    assert table.provenance.edition == "2024b"
    assert "confidentiality_profile_attributes-2024b.json" in table.provenance.source
    tags = [row.tag for row in table.rows]
    assert tags == sorted(set(tags))
    # 621 source rows: 620 single rows plus "(gggg,eeee) where gggg is odd" as 8 rows
    assert len(table.rows) == 621 - 1 + len(PRIVATE_ROW_TAGS)
    assert "621 source rows" in (table.provenance.notes or "")


def test_2024b_table_spot_checks() -> None:
    rows = _rows(TABLE_2024B)
    patient_name = rows["0010,0010"]
    assert (patient_name.keyword, patient_name.basic, patient_name.in_std_comp_iod) == (
        "PatientName",
        Action.ZERO,
        True,
    )
    assert rows["0010,0020"].keyword == "PatientID"
    assert rows["0010,0020"].basic == Action.ZERO_OR_DUMMY
    study_uid = rows["0020,000D"]
    assert study_uid.keyword == "StudyInstanceUID"
    assert study_uid.basic == Action.UID
    assert study_uid.options[Option.RETAIN_UIDS] == Action.KEEP
    assert rows["0008,1010"].keyword == "StationName"
    assert rows["0008,1010"].options[Option.RETAIN_DEVICE_IDENTITY] == Action.KEEP
    assert rows["0008,0080"].keyword == "InstitutionName"
    assert rows["0008,0080"].options[Option.RETAIN_INSTITUTION_IDENTITY] == Action.KEEP
    assert rows["0010,1010"].keyword == "PatientAge"
    assert rows["0010,1010"].options[Option.RETAIN_PATIENT_CHARACTERISTICS] == Action.KEEP
    study_date = rows["0008,0020"]
    assert study_date.keyword == "StudyDate"
    assert study_date.basic == Action.ZERO
    assert study_date.options[Option.RETAIN_LONG_FULL_DATES] == Action.KEEP
    assert study_date.options[Option.RETAIN_LONG_MODIFIED_DATES] == Action.CLEAN
    assert rows["0008,103E"].options[Option.CLEAN_DESCRIPTORS] == Action.CLEAN
    # AE titles: Retain Device Identity cleans them in 2024b
    assert rows["0008,0055"].options[Option.RETAIN_DEVICE_IDENTITY] == Action.CLEAN
    # retired attributes are flagged
    assert rows["0010,1000"].retired  # Other Patient IDs (retired since 2023)


def test_2024b_table_wildcard_rows() -> None:
    rows = _rows(TABLE_2024B)
    curve, overlay_data, overlay_comments = rows["50xx,xxxx"], rows["60xx,3000"], rows["60xx,4000"]
    for row in (curve, overlay_data, overlay_comments):
        assert row.is_pattern
        assert row.keyword is None
        assert row.basic == Action.REMOVE
        assert row.options == {Option.CLEAN_GRAPHICS: Action.CLEAN}
    assert curve.retired and overlay_comments.retired and not overlay_data.retired
    private = [rows[tag] for tag in PRIVATE_ROW_TAGS]
    assert all(row.name == "Private Attributes" for row in private)
    assert all(row.basic == Action.REMOVE for row in private)
    assert all(row.options == {Option.RETAIN_SAFE_PRIVATE: Action.CLEAN} for row in private)
    patterns = [row.tag for row in rows.values() if row.is_pattern]
    assert sorted(patterns) == sorted(["50xx,xxxx", "60xx,3000", "60xx,4000", *PRIVATE_ROW_TAGS])
    # the eight private rows match odd groups and no even group
    for group in range(0x0000, 0x10000, 0x0111):
        tag = f"{group:04X},0010"
        matched = any(_pattern_matches(pattern, tag) for pattern in PRIVATE_ROW_TAGS)
        assert matched == bool(group & 1), tag


@pytest.mark.parametrize("name", [TABLE_2024B, TABLE_2023B])
def test_table_rows_agree_with_pydicom(name: str) -> None:
    for row in load_table(name).rows:
        if row.is_pattern:
            continue
        value = int(row.tag.replace(",", ""), 16)
        assert row.keyword == keyword_for_tag(value), row.tag


def test_2023b_table() -> None:
    table = load_table(TABLE_2023B)
    assert table.provenance.edition == "2023b"
    assert "part15-2023b.xml" in table.provenance.source
    rows = {row.tag: row for row in table.rows}
    # 611 source rows, 3 listed twice, private row as 8
    assert len(rows) == 611 - 3 - 1 + len(PRIVATE_ROW_TAGS)
    assert rows["0010,0020"].basic == Action.ZERO
    for tag in ("0032,1021", "0040,0001", "0040,0241"):
        assert rows[tag].options[Option.RETAIN_DEVICE_IDENTITY] == Action.CLEAN


def test_table_differences_file() -> None:
    path = RULES_DIR / DIFFERENCES
    with pytest.raises(RuleError, match="unknown kind"):
        load_rules_file(path)
    diff = json.loads(path.read_text(encoding="utf-8"))
    assert diff["provenance"]["source"]
    assert diff["editions"] == ["2023b", "2024b"]
    assert diff["basic_changed"] == [
        {"tag": "0010,0020", "name": "Patient ID", "2023b": "Z", "2024b": "Z/D"}
    ]
    old, new = _rows(TABLE_2023B), _rows(TABLE_2024B)
    assert [row["tag"] for row in diff["only_in"]["2024b"]] == sorted(set(new) - set(old))
    assert diff["only_in"]["2023b"] == []
    changed = {(c["tag"], c["option"]) for c in diff["options_changed"]}
    expected = {
        (tag, option.value)
        for tag in set(old) & set(new)
        for option in Option
        if old[tag].options.get(option) != new[tag].options.get(option)
    }
    assert changed == expected
    assert len(diff["source_duplicates_merged"]["2023b"]) == 3
    readme = (RULES_DIR / "README.md").read_text(encoding="utf-8")
    assert "`0010,0020` Patient ID: Z → Z/D" in readme


# ------------------------------------------------------------------------------ keep list


def test_keep_list_agrees_with_pydicom() -> None:
    keep = load_keep_list("keep-list.json")
    assert 150 <= len(keep.attributes) <= 400
    for entry in keep.attributes:
        assert entry.tag == _tag_of(entry.keyword), entry.keyword
        assert entry.module.strip()
    keywords = [entry.keyword for entry in keep.attributes]
    assert len(keywords) == len(set(keywords))


@pytest.mark.parametrize("name", [TABLE_2024B, TABLE_2023B])
def test_keep_list_never_overrides_the_table(name: str) -> None:
    rows = _rows(name)
    patterns = [tag for tag in rows if "x" in tag]
    for entry in load_keep_list("keep-list.json").attributes:
        assert entry.tag not in rows, entry.keyword
        assert not any(_pattern_matches(p, entry.tag) for p in patterns), entry.keyword


def test_keep_list_holds_no_free_text() -> None:
    free_text_vrs = {"LO", "LT", "ST", "UT", "PN", "SH"}
    allowed_short_strings = {  # coded/technical LO and SH values
        "Manufacturer",
        "ManufacturerModelName",
        "SoftwareVersions",
        "ConvolutionKernel",
        "SequenceName",
        "ReceiveCoilName",
        "TransmitCoilName",
        "PulseSequenceName",
        "RescaleType",
        "ModalityLUTType",
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "CodeMeaning",
        "MappingResource",
        "DeidentificationMethod",
        "ColorSpace",
        "ContrastBolusIngredient",
        "StackID",
        "FilterType",
        "ImagedNucleus",
        "ExposureModulationType",
    }
    for entry in load_keep_list("keep-list.json").attributes:
        vr = dictionary_VR(entry.keyword)
        if vr in free_text_vrs:
            assert entry.keyword in allowed_short_strings, (entry.keyword, vr)
    keywords = {entry.keyword for entry in load_keep_list("keep-list.json").attributes}
    assert "TextValue" not in keywords


@pytest.mark.parametrize("keyword", TEACHING_ATTRIBUTES)
def test_teaching_attribute_survives_second_pass(keyword: str) -> None:
    profile = load_profile("second-pass")
    keep = {entry.keyword for entry in load_keep_list(profile.keep_list).attributes}
    rows = _rows(profile.table)
    tag = _tag_of(keyword)
    if keyword in keep:
        assert tag not in rows
        return
    assert tag in rows, f"{keyword} is neither kept nor in the table"
    assert _effective_action(rows[tag], profile.options) in {
        Action.KEEP,
        Action.CLEAN,
        Action.UID,
    }


def test_profile_action_resolution_is_tested_on_real_rows() -> None:
    rows = _rows(TABLE_2024B)
    second = load_profile("second-pass")
    first = load_profile("first-pass")
    assert _effective_action(rows["0008,103E"], second.options) == Action.CLEAN
    assert _effective_action(rows["0010,1010"], second.options) == Action.KEEP
    assert _effective_action(rows["0010,0010"], second.options) == Action.ZERO
    assert _effective_action(rows["0020,000D"], second.options) == Action.UID
    assert _effective_action(rows["0020,000D"], first.options) == Action.KEEP
    assert _effective_action(rows["0008,1010"], first.options) == Action.KEEP
    assert _effective_action(rows["0008,0055"], first.options) == Action.CLEAN


# ------------------------------------------------------------------------- attribute types


def test_attribute_types() -> None:
    types = load_attribute_types()
    type1, type2 = set(types.type1), set(types.type2)
    assert not type1 & type2
    assert list(types.type1) == sorted(type1) and list(types.type2) == sorted(type2)
    rows = _rows(TABLE_2024B)
    by_keyword = {row.keyword: row for row in rows.values() if row.keyword}
    for keyword in type1 | type2:
        assert keyword in by_keyword, f"{keyword} is not in Table E.1-1"
    assert {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"} <= type1
    assert {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
    } <= type2
    combined = {
        Action.REMOVE_OR_ZERO,
        Action.REMOVE_OR_DUMMY,
        Action.ZERO_OR_DUMMY,
        Action.REMOVE_OR_ZERO_OR_DUMMY,
        Action.REMOVE_OR_ZERO_OR_UID,
    }
    typed = [kw for kw in type1 | type2 if by_keyword[kw].basic in combined]
    assert len(typed) >= 10
    # Z/D, X/D and X/Z/D with D for Type 1; a Type 2 attribute must allow Z
    for keyword in type2:
        assert by_keyword[keyword].basic not in {Action.REMOVE_OR_DUMMY, Action.DUMMY}, keyword


# ------------------------------------------------------------------------------ vocabulary


def test_vocabulary_words() -> None:
    words = load_vocabulary().words
    assert len(words) >= 300
    assert len(words) == len(set(words))
    assert list(words) == sorted(words)
    for word in words:
        assert re.fullmatch(r"[A-Z0-9+\-]+", word), word
        assert not word.isdigit(), word
        assert len(word) > 1 or word == "W", word
    forbidden = {
        "HOSPITAL",
        "CLINIC",
        "CENTER",
        "CENTRE",
        "UNIVERSITY",
        "MEDICAL",
        "MEMORIAL",
        "GENERAL",
        "SAINT",
        "ST",
        "INSTITUTE",
        "MD",
        "JANUARY",
        "MONDAY",
        "MAY",
        "JUNE",
        "DOPPLER",
        "DIXON",
        "SMITH",
    }
    assert not (set(words) & forbidden)
    for required in ("HEAD", "CHEST", "AX", "T1", "FLAIR", "C+", "C-", "W", "WO", "NORMAL"):
        assert required in words


# ---------------------------------------------------------------------------------- others


def test_profiles() -> None:
    first, second = load_profile("first-pass"), load_profile("second-pass")
    assert set(first.options) == {
        Option.RETAIN_UIDS,
        Option.RETAIN_DEVICE_IDENTITY,
        Option.RETAIN_INSTITUTION_IDENTITY,
        # The second pass works on the first pass's output, so the first pass must retain
        # everything the second one keeps.
        Option.RETAIN_PATIENT_CHARACTERISTICS,
        Option.CLEAN_DESCRIPTORS,
    }
    assert set(second.options) <= set(first.options)
    assert (first.dates, first.private_tags, first.descriptors) == ("year", "remove", "vocabulary")
    assert first.pseudonymize_patient and not first.remap_uids
    assert set(second.options) == {
        Option.CLEAN_DESCRIPTORS,
        Option.RETAIN_PATIENT_CHARACTERISTICS,
    }
    assert (second.dates, second.max_age_years, second.private_tags) == ("year", 89, "remove")
    assert second.pseudonymize_patient and second.remap_uids
    assert second.descriptors == "vocabulary"
    for profile in (first, second):
        assert load_table(profile.table).provenance.edition == "2024b"
        assert load_keep_list(profile.keep_list).attributes
        assert profile.overrides == ()
        # DeidentificationMethod is LO: each backslash-separated value at most 64 characters
        for value in profile.method_description.split("\\"):
            assert 0 < len(value) <= 64
            assert value.isprintable()


def test_site_overrides_ship_empty() -> None:
    overrides = load_rules_file(RULES_DIR / "site-overrides.json")
    assert isinstance(overrides, SiteOverrides)
    assert overrides.overrides == ()


def test_safe_private_tags() -> None:
    safe = load_safe_private_tags()
    assert len(safe.tags) > 500
    keys = [(t.creator.upper(), t.group, t.element) for t in safe.tags]
    assert len(keys) == len(set(keys))
    for tag in safe.tags:
        assert re.fullmatch(r"[0-9A-F]{3}[13579BDF]", tag.group), tag
        assert re.fullmatch(r"xx[0-9A-F]{2}", tag.element), tag
        assert tag.keyword and re.search(r"\[(CTP|E\.3\.10-1|CTP; E\.3\.10-1)\]$", tag.keyword)
    by_key = {(t.creator.upper(), t.group, t.element): t for t in safe.tags}
    suv = by_key[("PHILIPS PET PRIVATE GROUP", "7053", "xx00")]
    assert suv.keyword is not None and suv.keyword.endswith("[E.3.10-1]")
    table_speed = by_key[("GEMS_ACQU_01", "0019", "xx23")]
    assert table_speed.keyword == "TableSpeed [CTP; E.3.10-1]"
    # a UID and private bulk data are listed as safe by PS3.15, but not kept by TFTT
    assert ("NQHEADER", "0099", "xx02") not in by_key
    assert ("PHILIPS IMAGING DD 001", "2001", "xx7D") not in by_key
    assert not any(t.creator.upper() == "CTP" for t in safe.tags)
