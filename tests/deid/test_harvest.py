"""Harvesting identifiers from originals: what is collected, what is left alone."""

from __future__ import annotations

import copy
from io import BytesIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from tests.deid import verify_support as vs
from tftt.deid.harvest import (
    Identifiers,
    date_forms,
    dates_in_text,
    harvest_identifiers,
    name_needles,
    phone_needles,
)
from tftt.deid.rules import DescriptorPolicy, Profile


def harvest(
    profile: Profile | None = None, original: Dataset | None = None, **read: object
) -> Identifiers:
    data = vs.to_bytes(original if original is not None else vs.original())
    return harvest_identifiers(
        dcmread(BytesIO(data), **read),  # type: ignore[arg-type]
        profile or vs.second_pass(),
        vs.table(),
        keep_list=vs.keep_list(),
        vocabulary=vs.vocabulary(),
    )



def test_harvest_collects_each_kind_and_no_bare_year() -> None:
    identifiers = harvest()
    assert {"CANARYZELDA", "QUIXOTE", "MARMALADE", "WOMBATSON", "OPHELIA"} <= identifiers.names
    assert "QUIXOTE CANARYZELDA" in identifiers.names
    assert "DR" not in identifiers.names
    assert {vs.PATIENT_ID, vs.ACCESSION, "OPID556677", "RP20230517"} <= identifiers.ids
    assert {"19520314", "1952-03-14", "14/03/1952", "MARCH 14, 1952", "14-MAR-1952",
            "14 MAR 1952", "03/14/1952", "14.03.1952"} <= identifiers.dates  # fmt: skip
    assert "20230517" in identifiers.dates  # study date, reduced to the year by the profile
    every = set().union(*(getattr(identifiers, f) for f in ("names", "ids", "texts", "dates")))
    assert not {"1952", "2023"} & every
    assert {vs.SOP_UID, vs.STUDY_UID, vs.REF_UID} <= identifiers.uids
    assert "1.2.840.10008.5.1.4.1.1.2" not in identifiers.uids  # CT Image Storage
    assert {"PUMPERNICKEL", "NEBUCHADNEZZAR", "GLOOMSBURY", "ZANZIBAR"} <= identifiers.texts
    assert "CHEST" not in identifiers.texts  # kept by cleaning, in the vocabulary
    assert identifiers.emails == {"ZELDA.CANARY@EXAMPLE.ORG"}
    assert "555-867-5309" in identifiers.phones
    text = repr(identifiers)
    assert "CANARYZELDA" not in text and "names=" in text


def test_harvest_leaves_retained_attributes_of_first_pass() -> None:
    identifiers = harvest(vs.first_pass())
    assert not identifiers.uids  # UIDs are retained
    assert "ZANZIBAR MEMORIAL HOSPITAL" not in identifiers.texts
    assert "CTSTATION99" not in identifiers.ids | identifiers.texts
    assert "CANARYZELDA" in identifiers.names
    assert vs.BIRTH_DATE in identifiers.dates


def test_harvest_skips_january_first_under_year_policy_but_not_birth_date() -> None:
    original = vs.original()
    original.StudyDate = "20230101"
    original.PatientBirthDate = "19520101"
    identifiers = harvest(original=original)
    assert "20230101" not in identifiers.dates
    assert "19520101" in identifiers.dates


def test_harvest_does_not_convert_or_change_the_original() -> None:
    data = vs.to_bytes(vs.original())
    ds = dcmread(BytesIO(data))
    before = copy.deepcopy(ds)
    harvest_identifiers(
        ds, vs.second_pass(), vs.table(), keep_list=vs.keep_list(), vocabulary=vs.vocabulary()
    )
    assert isinstance(ds.get_item(0x00100010, keep_deferred=True), RawDataElement)
    assert isinstance(ds.get_item(0x0040A730, keep_deferred=True), RawDataElement)
    assert ds == before



def test_harvest_is_the_same_for_implicit_vr_and_deferred_reads() -> None:
    explicit = harvest()
    original = vs.original()
    original.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = harvest(original=original)
    assert implicit == explicit
    deferred = harvest(defer_size=8)
    assert deferred == explicit


def test_checked_descriptor_policy_keeps_cleaned_text_as_is() -> None:
    original = vs.original()
    original.StudyDescription = "CT CHEST ZEPPELINOS"
    vocabulary_policy = harvest(original=original)
    assert "ZEPPELINOS" in vocabulary_policy.texts
    checked = harvest(vs.second_pass(descriptors=DescriptorPolicy.CHECKED), original)
    assert "ZEPPELINOS" not in checked.texts


def test_name_needles_orders_and_noise() -> None:
    needles = name_needles("WOMBATSON-SMYTHE^OPHELIA^^DR^JR")
    assert {"WOMBATSON-SMYTHE", "WOMBATSON", "SMYTHE", "OPHELIA", "OPHELIA WOMBATSON-SMYTHE",
            "WOMBATSON-SMYTHE, OPHELIA"} <= needles  # fmt: skip
    assert not {"DR", "JR"} & needles
    assert name_needles("LI^XU") >= {"LI XU", "XU LI", "XU, LI", "LI^XU"}
    assert "LI" not in name_needles("LI^XU")


def test_dates_in_text_all_forms() -> None:
    day = next(iter(dates_in_text("19520314")))
    for form in date_forms(day):
        assert day in dates_in_text(f"seen {form.title()} here"), form
    assert not dates_in_text("in 1952, aged 71, 3 mm")


def test_phone_needles_layouts() -> None:
    needles = phone_needles("+1 (555) 867-5309")
    assert {"5558675309", "555-867-5309", "555.867.5309", "(555) 867-5309"} <= needles


def test_numbers_and_uids_in_private_text_are_not_text_identifiers() -> None:
    original = vs.original()
    block = original.private_block(0x0011, "ACME_NUMBERS", create=True)
    block.add_new(0x01, "LO", "-125.2345678")  # a copied slice position
    block.add_new(0x02, "LO", "1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    block.add_new(0x03, "LO", "1.2.826.0.1.3680043.8.498.77")  # an instance UID
    block.add_new(0x04, "LO", "20230101")
    block.add_new(0x05, "LO", "99887766")
    identifiers = harvest(original=original)
    every = identifiers.ids | identifiers.texts
    assert not {"-125.2345678", "2345678", "1.2.840.10008.5.1.4.1.1.2", "20230101"} & every
    assert "1.2.826.0.1.3680043.8.498.77" in identifiers.uids
    assert "1.2.840.10008.5.1.4.1.1.2" not in identifiers.uids
    assert "99887766" in identifiers.ids


def test_pixel_data_and_standard_binary_values_are_not_harvested_as_text() -> None:
    original = vs.original()
    original.PixelData = b"\x01ZXQWERTYUIOP\x02" * 2 + bytes(4)
    original.RedPaletteColorLookupTableData = b"\x01PLMOKNIJB\x02\x00"
    identifiers = harvest(original=original)
    every = identifiers.texts | identifiers.ids
    assert not any("ZXQWERTY" in t or "PLMOKNIJB" in t for t in every)
    assert "PUMPERNICKEL" in identifiers.texts  # private blobs still are
