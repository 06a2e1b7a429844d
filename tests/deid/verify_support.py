"""Small rules objects and synthetic canary datasets for the verification tests.

The rows below copy the real actions of PS3.15 Table E.1-1 (2024b) for the attributes the tests
use; the keep list is a small subset of the shipped one. Every identifier is a made-up canary.
"""

from __future__ import annotations

import copy
from io import BytesIO

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from tftt.deid.rules import (
    Action,
    ConfidentialityTable,
    DatePolicy,
    KeepEntry,
    KeepList,
    Option,
    PrivateTagPolicy,
    Profile,
    Provenance,
    SafePrivateTag,
    SafePrivateTags,
    TableRow,
    Vocabulary,
)

PROV = Provenance(source="tests/deid/verify_support.py", notes="test subset")

_DATES = {
    Option.RETAIN_LONG_FULL_DATES: Action.KEEP,
    Option.RETAIN_LONG_MODIFIED_DATES: Action.CLEAN,
}
_CLEAN = {Option.CLEAN_DESCRIPTORS: Action.CLEAN}
_UIDS = {Option.RETAIN_UIDS: Action.KEEP}

ROWS: list[tuple[str, str, str, dict[Option, Action]]] = [
    ("0008,0012", "InstanceCreationDate", "X/D", _DATES),
    ("0008,0013", "InstanceCreationTime", "X/Z/D", _DATES),
    ("0008,0018", "SOPInstanceUID", "U", _UIDS),
    ("0008,0020", "StudyDate", "Z", _DATES),
    ("0008,0023", "ContentDate", "Z/D", _DATES),
    ("0008,002A", "AcquisitionDateTime", "X/Z/D", _DATES),
    ("0008,0030", "StudyTime", "Z", _DATES),
    ("0008,0033", "ContentTime", "Z/D", _DATES),
    ("0008,0050", "AccessionNumber", "Z", {}),
    ("0008,0080", "InstitutionName", "X/Z/D", {Option.RETAIN_INSTITUTION_IDENTITY: Action.KEEP}),
    ("0008,0081", "InstitutionAddress", "X", {Option.RETAIN_INSTITUTION_IDENTITY: Action.KEEP}),
    ("0008,0090", "ReferringPhysicianName", "Z", {}),
    ("0008,1010", "StationName", "X/Z/D", {Option.RETAIN_DEVICE_IDENTITY: Action.KEEP}),
    ("0008,1030", "StudyDescription", "X", _CLEAN),
    ("0008,103E", "SeriesDescription", "X", _CLEAN),
    ("0008,1140", "ReferencedImageSequence", "X/Z/U*", _UIDS),
    ("0008,1155", "ReferencedSOPInstanceUID", "U", _UIDS),
    ("0008,2111", "DerivationDescription", "X", _CLEAN),
    ("0010,0010", "PatientName", "Z", {}),
    ("0010,0020", "PatientID", "Z/D", {}),
    ("0010,0030", "PatientBirthDate", "Z", {}),
    ("0010,0040", "PatientSex", "Z", {Option.RETAIN_PATIENT_CHARACTERISTICS: Action.KEEP}),
    ("0010,1000", "OtherPatientIDs", "X", {}),
    ("0010,1010", "PatientAge", "X", {Option.RETAIN_PATIENT_CHARACTERISTICS: Action.KEEP}),
    ("0010,1040", "PatientAddress", "X", {}),
    ("0010,21B0", "AdditionalPatientHistory", "X", _CLEAN),
    ("0010,4000", "PatientComments", "X", _CLEAN),
    ("0018,1000", "DeviceSerialNumber", "X/Z/D", {Option.RETAIN_DEVICE_IDENTITY: Action.KEEP}),
    ("0020,000D", "StudyInstanceUID", "U", _UIDS),
    ("0020,000E", "SeriesInstanceUID", "U", _UIDS),
    ("0020,0010", "StudyID", "Z", {}),
    ("0020,0052", "FrameOfReferenceUID", "U", _UIDS),
    ("0020,4000", "ImageComments", "X", _CLEAN),
    ("0032,1060", "RequestedProcedureDescription", "X/Z", _CLEAN),
    ("0040,0275", "RequestAttributesSequence", "X", _CLEAN),
    ("0040,1001", "RequestedProcedureID", "X", {}),
    ("0040,A730", "ContentSequence", "D", {Option.CLEAN_STRUCTURED_CONTENT: Action.CLEAN}),
    ("50xx,xxxx", "", "X", {Option.CLEAN_GRAPHICS: Action.CLEAN}),
    ("60xx,3000", "", "X", {Option.CLEAN_GRAPHICS: Action.CLEAN}),
    ("60xx,4000", "", "X", {Option.CLEAN_GRAPHICS: Action.CLEAN}),
] + [
    (f"xxx{d},xxxx", "", "X", {Option.RETAIN_SAFE_PRIVATE: Action.CLEAN}) for d in "13579BDF"
]

KEEP = [
    ("SOPClassUID", "0008,0016"), ("SpecificCharacterSet", "0008,0005"),
    ("PatientIdentityRemoved", "0012,0062"), ("DeidentificationMethod", "0012,0063"),
    ("DeidentificationMethodCodeSequence", "0012,0064"),
    ("LongitudinalTemporalInformationModified", "0028,0303"), ("Modality", "0008,0060"),
    ("Manufacturer", "0008,0070"), ("ImageType", "0008,0008"), ("SeriesNumber", "0020,0011"),
    ("InstanceNumber", "0020,0013"), ("BodyPartExamined", "0018,0015"),
    ("SamplesPerPixel", "0028,0002"), ("PhotometricInterpretation", "0028,0004"),
    ("Rows", "0028,0010"), ("Columns", "0028,0011"), ("PixelSpacing", "0028,0030"),
    ("BitsAllocated", "0028,0100"), ("BitsStored", "0028,0101"), ("HighBit", "0028,0102"),
    ("PixelRepresentation", "0028,0103"), ("NumberOfFrames", "0028,0008"),
    ("PlanarConfiguration", "0028,0006"), ("PixelData", "7FE0,0010"),
    ("ReferencedSOPClassUID", "0008,1150"), ("CodeValue", "0008,0100"),
    ("CodingSchemeDesignator", "0008,0102"), ("CodeMeaning", "0008,0104"),
    ("SharedFunctionalGroupsSequence", "5200,9229"), ("FrameAnatomySequence", "0020,9071"),
    ("AnatomicRegionSequence", "0008,2218"), ("FrameLaterality", "0020,9072"),
    ("LossyImageCompression", "0028,2110"), ("ICCProfile", "0028,2000"),
]  # fmt: skip


def table() -> ConfidentialityTable:
    rows = tuple(
        TableRow(
            tag=tag,
            name=keyword or tag,
            keyword=keyword or None,
            in_std_comp_iod=True,
            basic=Action(basic),
            options=options,
        )
        for tag, keyword, basic, options in ROWS
    )
    return ConfidentialityTable(provenance=PROV, rows=rows)


def keep_list() -> KeepList:
    return KeepList(
        provenance=PROV,
        attributes=tuple(KeepEntry(keyword=k, tag=t, module="test") for k, t in KEEP),
    )


def vocabulary() -> Vocabulary:
    words = ("CT", "CHEST", "ABDOMEN", "AXIAL", "WITH", "CONTRAST", "BRAIN", "ROUTINE", "LEFT")
    return Vocabulary(provenance=PROV, words=words)


def second_pass(**changes: object) -> Profile:
    fields: dict[str, object] = {
        "name": "second-pass",
        "description": "test second pass",
        "provenance": PROV,
        "table": "table.json",
        "keep_list": "keep.json",
        "options": (Option.CLEAN_DESCRIPTORS, Option.RETAIN_PATIENT_CHARACTERISTICS),
        "dates": DatePolicy.YEAR,
        "remap_uids": True,
        "method_description": "TFTT second pass\\PS3.15 Basic Profile",
    }
    fields.update(changes)
    return Profile.model_validate(fields)


def first_pass() -> Profile:
    return second_pass(
        name="first-pass",
        options=(
            Option.RETAIN_UIDS,
            Option.RETAIN_DEVICE_IDENTITY,
            Option.RETAIN_INSTITUTION_IDENTITY,
        ),
        dates=DatePolicy.TABLE,
        remap_uids=False,
    )


def safe_private_profile() -> Profile:
    return second_pass(private_tags=PrivateTagPolicy.KEEP_SAFE)


def safe_private_tags() -> SafePrivateTags:
    return SafePrivateTags(
        provenance=PROV,
        tags=(
            SafePrivateTag(creator="ACME_SAFE", group="0009", element="xx01"),
            SafePrivateTag(creator="ACME_SAFE", group="0009", element="xx02"),
        ),
    )


# ----- canaries -------------------------------------------------------------------------

PATIENT_NAME = "CANARYZELDA^QUIXOTE^MARMALADE"
PATIENT_ID = "MRN88112233"
BIRTH_DATE = "19520314"
ACCESSION = "ACC7781234"
REFERRING = "WOMBATSON^OPHELIA^^DR"
INSTITUTION = "ZANZIBAR MEMORIAL HOSPITAL"
STATION = "CTSTATION99"
SOP_UID = "1.2.826.0.1.3680043.8.498.10000000001"
STUDY_UID = "1.2.826.0.1.3680043.8.498.10000000002"
SERIES_UID = "1.2.826.0.1.3680043.8.498.10000000003"
FRAME_UID = "1.2.826.0.1.3680043.8.498.10000000004"
REF_UID = "1.2.826.0.1.3680043.8.498.10000000005"

NEW_SOP_UID = "2.25.301234567890123456789012345678901234"
NEW_STUDY_UID = "2.25.301234567890123456789012345678901235"
NEW_SERIES_UID = "2.25.301234567890123456789012345678901236"
NEW_FRAME_UID = "2.25.301234567890123456789012345678901237"
NEW_REF_UID = "2.25.301234567890123456789012345678901238"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _meta(sop_uid: str, **extra: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    for keyword, value in extra.items():
        setattr(meta, keyword, value)
    return meta


def _image(ds: Dataset) -> None:
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 4
    ds.Columns = 4
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.5, 0.5]
    ds.PixelData = bytes(range(32))


def original() -> Dataset:
    """An original CT object with canaries planted in many places."""
    ds = Dataset()
    ds.file_meta = _meta(SOP_UID, SourceApplicationEntityTitle="ZANZIBAR_CT")
    ds.SpecificCharacterSet = "ISO_IR 100"
    _image(ds)
    ds.SOPInstanceUID = SOP_UID
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = FRAME_UID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.OtherPatientIDs = ["OPID556677", "XK-9921"]
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientAge = "071Y"
    ds.PatientSex = "F"
    ds.PatientAddress = "12 Pelican Crescent, Gloomsbury"
    ds.AccessionNumber = ACCESSION
    ds.StudyID = "ST4471"
    ds.StudyDate = "20230517"
    ds.StudyTime = "101502"
    ds.ContentDate = "20230517"
    ds.ContentTime = "101733.250"
    ds.InstanceCreationDate = "20230518"
    ds.AcquisitionDateTime = "20230517101600"
    ds.ReferringPhysicianName = REFERRING
    ds.InstitutionName = INSTITUTION
    ds.InstitutionAddress = "1 Harbour Road, Zanzibar"
    ds.StationName = STATION
    ds.DeviceSerialNumber = "SN55501X"
    ds.StudyDescription = "CT CHEST WITH CONTRAST"
    ds.SeriesDescription = "AXIAL"
    ds.RequestedProcedureDescription = "CT CHEST ROUTINE"
    ds.ImageComments = (
        "Seen by Dr Wombatson; patient Quixote Canaryzelda born March 14, 1952. "
        "Call 555-867-5309 or zelda.canary@example.org"
    )
    ds.AdditionalPatientHistory = "Fell off a velocipede at Gloomsbury fair"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = REF_UID
    ds.ReferencedImageSequence = Sequence([ref])
    request = Dataset()
    request.RequestedProcedureID = "RP20230517"
    request.ScheduledProcedureStepDescription = "Nebuchadnezzar protocol"
    ds.RequestAttributesSequence = Sequence([request])
    # SR-like content three levels deep
    leaf = Dataset()
    leaf.ValueType = "TEXT"
    leaf.TextValue = "Discussed with Ophelia Wombatson"
    middle = Dataset()
    middle.ValueType = "CONTAINER"
    middle.ContentSequence = Sequence([leaf])
    top = Dataset()
    top.ValueType = "CONTAINER"
    top.ContentSequence = Sequence([middle])
    ds.ContentSequence = Sequence([top])
    # private block
    ds.private_block(0x0009, "ACME_PRIVATE", create=True).add_new(0x01, "LO", "CANARYZELDA")
    block = ds.private_block(0x0009, "ACME_PRIVATE")
    block.add_new(0x02, "OB", "Operator: Horatio Pumpernickel".encode("utf-16-le"))
    # overlay with a description
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000022, "LO", "CANARYZELDA overlay")
    ds.add_new(0x60003000, "OW", b"\x00" * 2)
    return ds


def clean_output() -> Dataset:
    """What a correct second pass makes of :func:`original` (hand-written, not the engine)."""
    ds = Dataset()
    ds.file_meta = _meta(NEW_SOP_UID, ImplementationVersionName="TFTT_0_1")
    ds.SpecificCharacterSet = "ISO_IR 100"
    _image(ds)
    ds.SOPInstanceUID = NEW_SOP_UID
    ds.StudyInstanceUID = NEW_STUDY_UID
    ds.SeriesInstanceUID = NEW_SERIES_UID
    ds.FrameOfReferenceUID = NEW_FRAME_UID
    ds.PatientName = "TFTT^P7F3A2B9C"
    ds.PatientID = "TFTT7F3A2B9C"
    ds.PatientBirthDate = ""
    ds.PatientAge = "071Y"
    ds.PatientSex = "F"
    ds.AccessionNumber = ""
    ds.StudyID = ""
    ds.StudyDate = "20230101"
    ds.StudyTime = ""
    ds.ContentDate = "20230101"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT CHEST WITH CONTRAST"
    ds.SeriesDescription = "AXIAL"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = NEW_REF_UID
    ds.ReferencedImageSequence = Sequence([ref])
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "TFTT second pass\\PS3.15 Basic Profile"
    ds.DeidentificationMethodCodeSequence = Sequence(
        [
            _code("113100", "DCM", "Basic Application Confidentiality Profile"),
            _code("113105", "DCM", "Clean Descriptors Option"),
            _code("113108", "DCM", "Retain Patient Characteristics Option"),
        ]
    )
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    return ds


def to_bytes(ds: Dataset, *, preamble: bytes | None = None) -> bytes:
    """The file bytes of ``ds`` with a preamble, writing its file meta exactly as it is."""
    buffer = BytesIO()
    ds = copy.deepcopy(ds)
    ds.preamble = preamble if preamble is not None else bytes(128)
    dcmwrite(buffer, ds, enforce_file_format=False)
    return buffer.getvalue()


def file_name_of(ds: Dataset) -> str:
    return f"{ds.SOPInstanceUID}.dcm"
