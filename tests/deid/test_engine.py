import copy
import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence
from pydicom.uid import JPEGBaseline8Bit

from tftt.deid.engine import DeidContext, compile_profile, deidentify, serialize
from tftt.deid.rules import DatePolicy, load_profile
from tftt.errors import UnsupportedInputError

KEY = b"k" * 32
NAME = "CANARYZELDA^QUIXOTE"
PID = "CNRYID48213"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1111"
SERIES_UID = "1.2.826.0.1.3680043.8.498.2222"
SOP_UID = "1.2.826.0.1.3680043.8.498.3333"
FOR_UID = "1.2.826.0.1.3680043.8.498.4444"
REF_UID = "1.2.826.0.1.3680043.8.498.5555"


def make_ct(sop_uid: str = SOP_UID, *, age: str = "092Y") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.SourceApplicationEntityTitle = "CANARYAE"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = pydicom.uid.CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = FOR_UID
    ds.PatientName = NAME
    ds.PatientID = PID
    ds.PatientBirthDate = "19520314"
    ds.PatientSex = "F"
    ds.PatientAge = age
    ds.PatientWeight = "61"
    ds.StudyDate = "20230514"
    ds.StudyTime = "101112"
    ds.SeriesDate = "20230514"
    ds.ContentDate = "20230514"
    ds.AccessionNumber = "CNRYACC7731"
    ds.ReferringPhysicianName = "CANARYDOC^HENRIETTA"
    ds.InstitutionName = "CANARY MEMORIAL HOSPITAL"
    ds.StationName = "CNRYSTATION1"
    ds.DeviceSerialNumber = "CNRYSERIAL99"
    ds.Manufacturer = "ACME"
    ds.Modality = "CT"
    ds.StudyDescription = "CT HEAD WO CONTRAST CANARYZELDA"
    ds.SeriesDescription = "AX BRAIN 5MM CANARYZELDA"
    ds.ImageComments = "called zelda.canary@example.invalid"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = 8
    ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = "5"
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.RescaleSlope = "1"
    ds.RescaleIntercept = "-1024"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.KVP = "120"
    ds.PixelData = np.arange(64, dtype=np.uint16).tobytes()
    # nested identifiers, three levels deep
    inner = Dataset()
    inner.ScheduledPerformingPhysicianName = NAME
    inner.ScheduledProcedureStepStartDate = "20230514"
    mid = Dataset()
    mid.ScheduledProcedureStepSequence = Sequence([inner])
    mid.RequestedProcedureID = "CNRYRP1"
    outer = Dataset()
    outer.RequestAttributesSequence = Sequence([mid])
    ds.ReferencedStudySequence = Sequence([outer])
    ref = Dataset()
    ref.ReferencedSOPClassUID = pydicom.uid.CTImageStorage
    ref.ReferencedSOPInstanceUID = REF_UID
    ds.ReferencedImageSequence = Sequence([ref])
    code = Dataset()
    code.CodeValue = "T-A0100"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = f"Brain of {NAME}"
    ds.AnatomicRegionSequence = Sequence([code])
    # private blocks, overlay, icon, an unknown attribute
    block = ds.private_block(0x0009, "GEMS_IDEN_01", create=True)
    block.add_new(0x01, "LO", NAME)
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60004000, "LT", f"overlay of {NAME}")
    icon = Dataset()
    icon.Rows = 1
    ds.IconImageSequence = Sequence([icon])
    ds.add_new(0x00191001, "LO", "x")  # private without creator
    return ds


def _ctx(name: str, **kwargs) -> DeidContext:
    return DeidContext(rules=compile_profile(load_profile(name), **kwargs), key=KEY)


def _raw(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def second() -> DeidContext:
    return _ctx("second-pass")


@pytest.fixture(scope="module")
def first() -> DeidContext:
    return _ctx("first-pass")


def test_input_is_never_mutated(second):
    ds = make_ct()
    before = _raw(ds)
    snapshot = copy.deepcopy(ds)
    deidentify(ds, second)
    assert _raw(ds) == before
    assert ds == snapshot


def test_same_input_and_key_give_identical_bytes_and_other_key_other_uids(second):
    a = serialize(deidentify(make_ct(), second).dataset)
    b = serialize(deidentify(make_ct(), second).dataset)
    assert a == b
    other = DeidContext(rules=second.rules, key=b"z" * 32)
    c = deidentify(make_ct(), other).dataset
    assert c.SOPInstanceUID != pydicom.dcmread(io.BytesIO(a)).SOPInstanceUID


def test_second_pass_leaves_no_canary_in_the_bytes(second):
    out = serialize(deidentify(make_ct(), second).dataset)
    for canary in (b"CANARY", b"CNRY", b"19520314", b"20230514", b"101112", b"zelda",
                   STUDY_UID.encode(), SERIES_UID.encode(), SOP_UID.encode(), FOR_UID.encode(),
                   REF_UID.encode()):
        assert canary.lower() not in out.lower(), canary


def test_uids_are_keyed_hash_remapped_consistently(second):
    result = deidentify(make_ct(), second)
    ds = result.dataset
    for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID):
        assert uid.startswith("2.25.") and len(uid) <= 64
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage  # class UIDs are never remapped
    assert result.file_name == f"{ds.SOPInstanceUID}.dcm"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    # another object referring to the first gets the same mapping
    other = make_ct(sop_uid=REF_UID)
    other_out = deidentify(other, second).dataset
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == other_out.SOPInstanceUID
    assert other_out.StudyInstanceUID == ds.StudyInstanceUID


def test_patient_pseudonym_is_stable_per_patient(second):
    a = deidentify(make_ct(), second).dataset
    b = deidentify(make_ct(sop_uid=REF_UID), second).dataset
    assert a.PatientName == b.PatientName and a.PatientID == b.PatientID
    assert str(a.PatientID).startswith("TFTT-")
    stranger = make_ct()
    stranger.PatientID = "SOMEONEELSE1"
    assert deidentify(stranger, second).dataset.PatientID != a.PatientID


def test_dates_year_only_times_gone_birth_date_gone_age_capped(second):
    ds = deidentify(make_ct(), second).dataset
    assert ds.StudyDate == "20230101"
    assert ds.get("StudyTime", "") == ""
    assert ds.get("PatientBirthDate", "") == ""
    assert ds.PatientAge == "090Y"
    assert ds.PatientSex == "F"
    young = deidentify(make_ct(age="045Y"), second).dataset
    assert young.PatientAge == "045Y"


def test_date_shift_is_per_patient_and_keeps_intervals():
    ctx = DeidContext(rules=compile_profile(load_profile("second-pass"), dates=DatePolicy.SHIFT), key=KEY)
    a = make_ct()
    a.StudyDate, a.SeriesDate = "20230514", "20230520"
    out = deidentify(a, ctx).dataset
    import datetime as dt

    def d(v: str) -> dt.date:
        return dt.datetime.strptime(v, "%Y%m%d").date()

    assert out.StudyDate != "20230514"
    assert (d(out.SeriesDate) - d(out.StudyDate)).days == 6
    b = make_ct(sop_uid=REF_UID)
    assert deidentify(b, ctx).dataset.StudyDate == out.StudyDate
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_descriptors_keep_only_vocabulary_words(second):
    ds = deidentify(make_ct(), second).dataset
    assert "CANARY" not in str(ds.get("SeriesDescription", ""))
    assert "AX" in str(ds.get("SeriesDescription", "")) and "BRAIN" in str(ds.SeriesDescription)


def test_private_overlay_icon_unknown_nested_removed(second):
    result = deidentify(make_ct(), second)
    ds = result.dataset
    assert not any(elem.tag.is_private for elem in ds.iterall())
    assert not any(0x6000 <= elem.tag.group <= 0x60FF for elem in ds.iterall())
    assert "IconImageSequence" not in ds
    assert result.report.removed_private >= 3
    for elem in ds.iterall():
        assert elem.keyword not in ("ScheduledPerformingPhysicianName", "RequestedProcedureID")


def test_teaching_attributes_survive_second_pass(second):
    ds = deidentify(make_ct(), second).dataset
    for keyword in ("PixelSpacing", "SliceThickness", "ImagePositionPatient", "ImageOrientationPatient",
                    "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth", "KVP", "Rows",
                    "Columns", "BitsAllocated", "PhotometricInterpretation", "Modality", "SOPClassUID",
                    "PixelData", "PatientSex", "PatientWeight"):
        assert keyword in ds, keyword
    assert ds.PixelData == make_ct().PixelData


def test_marks_and_rebuilt_file_meta(second):
    ds = deidentify(make_ct(), second).dataset
    assert ds.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert {"113100", "113105", "113108"} <= codes
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    out = serialize(ds)
    assert out[:128] == b"\x00" * 128 and out[128:132] == b"DICM"


def test_first_pass_keeps_uids_station_and_institution(first):
    ds = deidentify(make_ct(), first).dataset
    assert ds.SOPInstanceUID == SOP_UID and ds.StudyInstanceUID == STUDY_UID
    assert ds.StationName == "CNRYSTATION1"
    assert ds.InstitutionName == "CANARY MEMORIAL HOSPITAL"
    assert ds.PatientName != NAME and "CANARY" not in str(ds.PatientName)


def _jpeg_ct() -> Dataset:
    ds = make_ct()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    frames = []
    for i in range(2):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(buf, "JPEG", comment=NAME.encode())
        frames.append(buf.getvalue())
    ds.NumberOfFrames = 2
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    return ds


def test_jpeg_comments_stripped_from_every_frame_without_reencoding(second):
    ds = _jpeg_ct()
    result = deidentify(ds, second)
    out = serialize(result.dataset)
    assert NAME.encode() not in out
    assert result.report.frames_stripped == 2
    back = pydicom.dcmread(io.BytesIO(out))
    frames = list(generate_frames(back.PixelData, number_of_frames=2))
    originals = list(generate_frames(ds.PixelData, number_of_frames=2))
    for new, old in zip(frames, originals, strict=True):
        decoded_new = np.asarray(Image.open(io.BytesIO(new)))
        assert np.array_equal(decoded_new, np.asarray(Image.open(io.BytesIO(old))))


def test_unsupported_transfer_syntax_is_refused(second):
    ds = make_ct()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"
    with pytest.raises(UnsupportedInputError) as info:
        deidentify(ds, second)
    assert info.value.code == "unsupported-transfer-syntax"


def test_implicit_and_big_endian_inputs_round_trip(second):
    for syntax in (pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.ExplicitVRBigEndian):
        ds = make_ct()
        ds.file_meta.TransferSyntaxUID = syntax
        buf = io.BytesIO()
        ds.save_as(buf, implicit_vr=syntax == pydicom.uid.ImplicitVRLittleEndian,
                   little_endian=syntax != pydicom.uid.ExplicitVRBigEndian, enforce_file_format=True)
        read = pydicom.dcmread(io.BytesIO(buf.getvalue()))
        out = serialize(deidentify(read, second).dataset)
        back = pydicom.dcmread(io.BytesIO(out))
        assert back.file_meta.TransferSyntaxUID == syntax
        np.testing.assert_array_equal(back.pixel_array, read.pixel_array)
        assert b"CANARY" not in out



@pytest.mark.parametrize(
    ("vr", "value", "passes"),
    [
        ("DS", b"0.5\\0.5 ", True),
        ("DS", b"-1.5e-3", True),
        ("DS", b"DOE^JOHN", False),  # not a number: the converting path decides
        ("IS", b" 12 ", True),
        ("IS", b"1.0", False),
        ("US", b"\x01\x00", True),
        ("US", b"\x01\x00\x02", False),  # a length that does not fit the VR's size
        ("CS", b"ORIGINAL\\PRIMARY", True),
        ("LO", b"HEAD", False),  # free text is always checked
        (None, b"\x01\x00", False),  # implicit VR: needs the dictionary
    ],
)
def test_only_well_formed_kept_numbers_and_codes_pass_as_read(vr, value, passes):
    from pydicom.dataelem import RawDataElement

    from tftt.deid import engine

    raw = RawDataElement(pydicom.tag.BaseTag(0x00280030), vr, len(value), value, 0, False, True)
    assert engine._passes_as_read(raw) is passes


@pytest.mark.parametrize("name", ["first-pass", "second-pass"])
def test_pass_through_of_kept_values_gives_the_same_bytes_as_converting(name, monkeypatch):
    from tftt.deid import engine

    ds = pydicom.dcmread(io.BytesIO(_raw(make_ct())), force=True)  # raw elements, as read from a file
    fast = serialize(deidentify(ds, _ctx(name)).dataset)
    monkeypatch.setattr(engine, "_passes_as_read", lambda raw: False)
    slow = serialize(deidentify(ds, _ctx(name)).dataset)
    assert fast == slow


def test_a_date_revealing_an_age_over_89_goes_even_as_a_year(second):
    """Safe Harbor removes dates, year included, that tell an age over 89: a structured report's
    DATE item holding a 1933 birth date in a 2023 study said "90" after being cut to 19330101."""
    ds = make_ct()  # StudyDate 20230514
    old, young = Dataset(), Dataset()
    old.ValueType = young.ValueType = "DATE"
    old.Date, young.Date = "19330214", "19340214"  # 90 and 89 years before the study
    ds.ContentSequence = Sequence([old, young])
    result = deidentify(ds, second)
    items = result.dataset.ContentSequence
    assert items[0].get("Date", "") == ""
    assert items[1].Date == "19340101"
    assert dict(result.report.removed_not_allowed)["date-revealing-age-over-cap"] == 1
    assert b"1933" not in serialize(result.dataset)


def test_the_input_read_from_bytes_keeps_its_elements_as_read(second):
    """Reading the patient's identifying values (for the kept-text check) once converted and
    stored them in the input (``ds.get``): a change to the input, and elements the memo could
    no longer serve."""
    from pydicom.dataelem import RawDataElement

    from tftt.deid.pipeline import parse

    ds = parse(_raw(make_ct()))
    as_read = {tag for tag, element in ds._dict.items() if type(element) is RawDataElement}
    assert {0x00080050, 0x00080090} <= as_read  # AccessionNumber, ReferringPhysicianName
    deidentify(ds, second)
    assert as_read == {tag for tag, element in ds._dict.items() if type(element) is RawDataElement}
