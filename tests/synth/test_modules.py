"""Where the canaries are planted, checked on datasets read back from their encoded bytes."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pydicom
from pydicom.dataset import Dataset

from tftt.synth.canaries import make_identity
from tftt.synth.modules import (
    KNOWN_PRIVATE_CREATOR,
    UNKNOWN_PRIVATE_CREATOR,
    UNKNOWN_PUBLIC_TAG,
)
from tftt.synth.studies import ct_series, screen_save
from tftt.synth.transfer import encode

WHO = make_identity(0)


def _ct() -> pydicom.FileDataset:
    return pydicom.dcmread(io.BytesIO(encode(ct_series(WHO, slices=1, size=32)[0].dataset)))


def _walk(ds: Dataset, depth: int = 0) -> Iterator[tuple[int, pydicom.DataElement]]:
    """Every element with its sequence depth (0 = top level)."""
    for elem in ds:
        yield depth, elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item, depth + 1)


def test_patient_and_study_attributes() -> None:
    ds = _ct()
    assert ds.PatientName == WHO.patient_name
    assert ds.PatientID == WHO.patient_id
    assert ds.PatientAge == "092Y"
    assert ds.PatientBirthDate == WHO.birth_date
    assert list(ds.OtherPatientNames) == list(WHO.other_patient_names)
    assert ds.PatientAddress == WHO.address
    assert ds.PatientTelephoneNumbers == WHO.phone
    assert WHO.email in ds.PatientComments
    assert ds.AccessionNumber == WHO.accession_number
    assert ds.StationName == WHO.station_name
    assert ds.DeviceSerialNumber == WHO.device_serial_number
    assert ds.InstitutionName == WHO.institution_name
    assert ds.InstanceCreationDate == ds.ContentDate == WHO.study_date
    assert ds.AcquisitionDateTime.startswith(WHO.study_date)
    assert ds.OtherPatientIDsSequence[0].PatientID == WHO.other_patient_id
    assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == WHO.uid(99)


def test_free_text_and_code_meanings_name_the_patient() -> None:
    ds = _ct()
    assert WHO.patient_name in ds.StudyDescription
    assert WHO.patient_name in ds.AdmittingDiagnosesDescription
    assert WHO.requesting_physician in ds.RequestedProcedureDescription
    assert WHO.patient_id in ds.RequestAttributesSequence[0].ReasonForTheRequestedProcedure
    assert WHO.family_name in ds.SeriesDescription
    assert WHO.phone in ds.ImageComments
    assert WHO.address in ds.AdditionalPatientHistory
    assert WHO.patient_name in ds.ProcedureCodeSequence[0].CodeMeaning
    assert WHO.family_name in ds.AnatomicRegionSequence[0].CodeMeaning


def test_nested_sequences_hold_names_and_dates_at_depth_three() -> None:
    deep = [(d, e) for d, e in _walk(_ct()) if d >= 3]
    names = {str(e.value) for _, e in deep if e.VR == "PN"}
    dates = {str(e.value) for _, e in deep if e.VR == "DA"}
    assert WHO.patient_name in names and WHO.requesting_physician in names
    assert WHO.birth_date in dates and WHO.prior_date in dates
    assert any(e.value == WHO.issuer_of_patient_id for _, e in deep)


def test_private_blocks_of_known_and_unknown_creators() -> None:
    ds = _ct()
    known = ds.private_block(0x0009, KNOWN_PRIVATE_CREATOR)
    assert known[0x02].value == WHO.station_name
    assert WHO.patient_name in known[0x17].value
    unknown = ds.private_block(0x0011, UNKNOWN_PRIVATE_CREATOR)
    assert unknown[0x10].VR == "LO" and unknown[0x10].value == WHO.patient_name
    assert unknown[0x11].VR == "SH" and unknown[0x11].value == WHO.patient_id
    assert unknown[0x12].VR == "UN" and WHO.email.encode() in unknown[0x12].value
    assert unknown[0x14].value[0].PatientName == WHO.patient_name
    nested = ds.RequestAttributesSequence[0].private_block(0x0029, UNKNOWN_PRIVATE_CREATOR)
    assert WHO.patient_name in nested[0x10].value


def test_overlay_curve_icon_retired_and_unknown_attributes() -> None:
    ds = _ct()
    assert WHO.patient_name in ds[0x60000022].value  # OverlayDescription
    assert ds.overlay_array(0x6000).sum() > 0
    assert WHO.patient_name in ds[0x50000022].value  # CurveDescription (retired)
    assert ds.IconImageSequence[0].Rows <= 64
    assert WHO.patient_name in ds.AcquisitionComments  # retired
    assert ds.OtherPatientIDs == WHO.other_patient_id  # retired
    assert WHO.patient_id in ds.ReasonForStudy  # retired
    unknown = ds[UNKNOWN_PUBLIC_TAG]
    assert unknown.tag.group % 2 == 0 and WHO.patient_id in unknown.value
    sc = screen_save(WHO)[0].dataset
    assert "IconImageSequence" in sc and WHO.patient_name in sc.DerivationDescription
