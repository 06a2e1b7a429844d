"""DICOM modules filled from an :class:`~tftt.synth.canaries.Identity`, canaries included.

Used by :mod:`tftt.synth.studies`; each function adds one module (or one hostile extra) to a
dataset in place while it is being built. Canaries go into every place the standard allows:
patient, study, series and equipment attributes, free text, code meanings, nested sequences
(PN and dates at depth 3), private blocks of a known and an unknown creator (LO, SH, UN and a
private SQ), overlays, a curve group, an icon image, retired attributes and an unknown
even-group attribute.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import UID, ExplicitVRLittleEndian

from tftt.synth.burnin import BurnedBox, burned_lines, render_text, stamp
from tftt.synth.canaries import Identity

KNOWN_PRIVATE_CREATOR = "GEMS_IDEN_01"
UNKNOWN_PRIVATE_CREATOR = "ACME_UNKNOWN_SYNTH 1.0"
UNKNOWN_PUBLIC_TAG = 0x00E21010
"""An even-group tag no DICOM dictionary knows (written as LO), holding a canary."""

STUDY_CT, STUDY_MR, STUDY_RADIOGRAPHY, STUDY_US, STUDY_XA = 1, 2, 3, 4, 5
PRIOR_STUDY = 99

STUDY_DESCRIPTIONS = {
    STUDY_CT: "CT CHEST",
    STUDY_MR: "MR BRAIN",
    STUDY_RADIOGRAPHY: "XR CHEST",
    STUDY_US: "US ABDOMEN",
    STUDY_XA: "XA CORONARY",
}
MANUFACTURER = "TFTT SYNTHETIC MODALITIES"

_Pixel = TypeVar("_Pixel", bound=np.generic)


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """A Code Sequence item."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def coded(code: Code) -> Dataset:
    """A Code Sequence item from a pydicom :class:`Code`."""
    return code_item(code.value, code.scheme_designator, code.meaning)


def new_file(sop_class: UID, sop_instance: str) -> FileDataset:
    """An empty Part 10 dataset (Explicit VR LE file meta) with its SOP class and instance."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\x00" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    return ds


def add_patient(ds: Dataset, who: Identity) -> None:
    """Patient module, with other names/IDs (IDs nested to depth 3), contacts and retired IDs."""
    ds.PatientName = who.patient_name
    ds.PatientID = who.patient_id
    ds.IssuerOfPatientID = who.issuer_of_patient_id
    ds.PatientBirthDate = who.birth_date
    ds.PatientBirthTime = "071500"
    ds.PatientSex = who.sex
    ds.PatientAge = who.age
    ds.PatientSize = f"{who.size_m:.2f}"
    ds.PatientWeight = f"{who.weight_kg:.1f}"
    ds.PatientAddress = who.address
    ds.PatientTelephoneNumbers = who.phone
    ds.PatientTelecomInformation = f"mailto:{who.email}"
    ds.OtherPatientNames = list(who.other_patient_names)
    ds.PatientBirthName = who.patient_birth_name
    ds.PatientMotherBirthName = who.patient_mother_birth_name
    ds.Occupation = who.occupation
    ds.AdditionalPatientHistory = (
        f"Seen {who.prior_date} by {who.physician_of_record}; lives at {who.address}"
    )
    ds.PatientComments = f"Contact {who.email} or {who.phone}"
    ds.MedicalAlerts = f"ALLERGY NOTED FOR {who.family_name}"
    ds.OtherPatientIDs = who.other_patient_id  # retired (0010,1000)
    ds.InsurancePlanIdentification = f"PLAN {who.patient_id}"  # retired (0010,1050)

    facility = Dataset()
    facility.LocalNamespaceEntityID = who.issuer_of_patient_id
    facility.UniversalEntityID = who.uid(0, 3)
    facility.UniversalEntityIDType = "ISO"
    qualifiers = Dataset()
    qualifiers.UniversalEntityID = who.uid(0, 2)
    qualifiers.UniversalEntityIDType = "ISO"
    qualifiers.IdentifierTypeCode = "MR"
    qualifiers.AssigningFacilitySequence = Sequence([facility])  # depth 3
    other = Dataset()
    other.PatientID = who.other_patient_id
    other.IssuerOfPatientID = who.issuer_of_patient_id
    other.TypeOfPatientID = "TEXT"
    other.IssuerOfPatientIDQualifiersSequence = Sequence([qualifiers])
    ds.OtherPatientIDsSequence = Sequence([other])


def add_study(ds: Dataset, who: Identity, study: int) -> None:
    """General Study and Patient Study modules: IDs, physicians, free text, prior study."""
    description = STUDY_DESCRIPTIONS.get(study, "SYNTHETIC")
    ds.StudyInstanceUID = who.uid(study)
    ds.StudyDate = who.study_date
    ds.StudyTime = who.study_time
    accession = who.accession_number
    ds.AccessionNumber = accession if study == STUDY_CT else f"{accession}{study}"
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = who.institution_name
    ds.IssuerOfAccessionNumberSequence = Sequence([issuer])
    ds.StudyID = who.study_id
    ds.StudyDescription = f"{description} {who.patient_name} {who.patient_id}"
    ds.ReferringPhysicianName = who.referring_physician
    ds.PhysiciansOfRecord = who.physician_of_record
    ds.NameOfPhysiciansReadingStudy = who.reading_physician
    ds.RequestingPhysician = who.requesting_physician
    ds.RequestedProcedureDescription = f"{description} BY {who.requesting_physician}"
    ds.ReasonForStudy = f"FOLLOW-UP {who.patient_id}"  # retired (0032,1030)
    ds.AdmissionID = who.admission_id
    ds.AdmittingDiagnosesDescription = f"FOLLOW-UP {who.patient_name}"
    ds.ProcedureCodeSequence = Sequence(
        [code_item("TFTT-P1", "99TFTT", f"{description} {who.patient_name}")]
    )
    prior = Dataset()
    prior.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    prior.ReferencedSOPInstanceUID = who.uid(PRIOR_STUDY)
    ds.ReferencedStudySequence = Sequence([prior])


def request_attributes_item(who: Identity, study: int) -> Dataset:
    """Request Attributes item, with PN and DATE content items at depth 3."""
    description = STUDY_DESCRIPTIONS.get(study, "SYNTHETIC")
    requester = Dataset()  # content item in ProtocolContextSequence (depth 3)
    requester.ValueType = "PNAME"
    requester.ConceptNameCodeSequence = Sequence([coded(codes.DCM.PersonObserverName)])
    requester.PersonName = who.requesting_physician
    when = Dataset()
    when.ValueType = "DATE"
    when.ConceptNameCodeSequence = Sequence([coded(codes.DCM.StudyDate)])
    when.Date = who.prior_date
    birth = Dataset()
    birth.ValueType = "DATE"
    birth.ConceptNameCodeSequence = Sequence([coded(codes.DCM.SubjectBirthDate)])
    birth.Date = who.birth_date
    subject = Dataset()
    subject.ValueType = "PNAME"
    subject.ConceptNameCodeSequence = Sequence([coded(codes.DCM.SubjectName)])
    subject.PersonName = who.patient_name
    protocol = code_item("TFTT-PR1", "99TFTT", f"PROTOCOL OF {who.family_name}")
    protocol.ProtocolContextSequence = Sequence([requester, when, birth, subject])

    item = Dataset()
    item.StudyInstanceUID = who.uid(study)
    item.AccessionNumber = who.accession_number
    item.RequestedProcedureID = who.requested_procedure_id
    item.RequestedProcedureDescription = f"{description} {who.patient_name}"
    item.RequestedProcedureCodeSequence = Sequence(
        [code_item("TFTT-RP1", "99TFTT", f"{description} {who.patient_id}")]
    )
    item.ScheduledProcedureStepID = who.scheduled_step_id
    item.ScheduledProcedureStepDescription = f"{description} at {who.station_name}"
    item.ReasonForTheRequestedProcedure = f"Patient {who.patient_id} follow-up"
    item.ScheduledProtocolCodeSequence = Sequence([protocol])
    # a private element inside a nested item (unknown creator)
    block = item.private_block(0x0029, UNKNOWN_PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", f"NESTED {who.patient_name}")
    return item


def add_series(
    ds: Dataset, who: Identity, *, modality: str, study: int, series: int, description: str
) -> None:
    """General Series, performed procedure step, request attributes and frame of reference."""
    ds.Modality = modality
    ds.SeriesInstanceUID = who.uid(study, series)
    ds.SeriesNumber = series
    ds.SeriesDate = who.study_date
    ds.SeriesTime = who.study_time
    ds.SeriesDescription = f"{description} {who.family_name} DOB {who.birth_date}"
    ds.ProtocolName = f"{description} ({who.station_name})"
    ds.PerformingPhysicianName = who.performing_physician
    ds.OperatorsName = who.operator_name
    ds.PerformedProcedureStepID = who.scheduled_step_id
    ds.PerformedProcedureStepStartDate = who.study_date
    ds.PerformedProcedureStepStartTime = who.study_time
    ds.PerformedProcedureStepDescription = f"{description} {who.accession_number}"
    ds.RequestAttributesSequence = Sequence([request_attributes_item(who, study)])
    ds.FrameOfReferenceUID = who.uid(study, 0)
    ds.PositionReferenceIndicator = ""


def add_equipment(ds: Dataset, who: Identity, model: str) -> None:
    """General Equipment module: institution, station, serial number and device UID."""
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = model
    ds.SoftwareVersions = "1.0"
    ds.InstitutionName = who.institution_name
    ds.InstitutionAddress = who.institution_address
    ds.InstitutionalDepartmentName = who.institution_department
    ds.StationName = who.station_name
    ds.DeviceSerialNumber = who.device_serial_number
    ds.DeviceUID = who.uid(0, 7)


def add_instance_dates(ds: Dataset, who: Identity, instance: int) -> None:
    """Instance number, creation/content/acquisition dates and times (the study date)."""
    ds.InstanceNumber = instance
    ds.InstanceCreationDate = who.study_date
    ds.InstanceCreationTime = who.study_time
    ds.InstanceCreatorUID = who.uid(0, 8)
    ds.ContentDate = who.study_date
    ds.ContentTime = who.study_time
    ds.AcquisitionDate = who.study_date
    ds.AcquisitionTime = who.study_time
    ds.AcquisitionDateTime = who.datetime()
    ds.TimezoneOffsetFromUTC = "+0100"


def add_private_blocks(ds: Dataset, who: Identity) -> None:
    """A GEMS_IDEN_01 block (group 0009) and an unknown creator's block (group 0011) with LO,
    SH, UN, DA and SQ elements, all carrying canaries."""
    known = ds.private_block(0x0009, KNOWN_PRIVATE_CREATOR, create=True)
    known.add_new(0x02, "SH", who.station_name)  # "Suite id"
    known.add_new(0x04, "SH", who.patient_id[:16])  # "Product id"
    known.add_new(0x17, "LT", f"SERIES OF {who.patient_name}")  # "Series Description"
    known.add_new(0x30, "SH", who.device_serial_number)  # "Service id"
    known.add_new(0xE3, "UI", who.uid(0, 7))  # "Equipment UID"

    unknown = ds.private_block(0x0011, UNKNOWN_PRIVATE_CREATOR, create=True)
    unknown.add_new(0x10, "LO", who.patient_name)
    unknown.add_new(0x11, "SH", who.patient_id[:16])
    raw = f"{who.email}|{who.address}|{who.birth_date}".encode("ascii")
    unknown.add_new(0x12, "UN", raw + b"\x00" * (len(raw) % 2))
    unknown.add_new(0x13, "DA", who.study_date)
    person = Dataset()
    person.PatientName = who.patient_name
    person.PatientBirthDate = who.birth_date
    unknown.add_new(0x14, "SQ", Sequence([person]))


def add_retired_and_unknown(ds: Dataset, who: Identity) -> None:
    """A retired free-text attribute and an even-group tag no dictionary knows."""
    ds.AcquisitionComments = f"Acquired for {who.patient_name} by {who.operator_name}"  # retired
    ds.add(DataElement(UNKNOWN_PUBLIC_TAG, "LO", f"{who.patient_id} {who.family_name}"))


def add_general_image(
    ds: Dataset, who: Identity, *, burned_in: bool, image_type: list[str]
) -> None:
    """General Image module: image type, comments with contacts, burned-in flag, region code."""
    ds.ImageType = image_type
    ds.ImageComments = f"Call {who.phone} or {who.email}; operator {who.operator_name}"
    ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    ds.LossyImageCompression = "00"
    ds.AnatomicRegionSequence = Sequence(
        [code_item("51185008", "SCT", f"Thorax of {who.family_name}")]
    )


def base_dataset(
    who: Identity,
    *,
    sop_class: UID,
    modality: str,
    study: int,
    series: int,
    instance: int,
    series_description: str,
    model: str,
) -> FileDataset:
    """A new dataset with every module and canary shared by all synthetic objects."""
    ds = new_file(sop_class, who.uid(study, series, instance))
    add_instance_dates(ds, who, instance)
    add_patient(ds, who)
    add_study(ds, who, study)
    add_series(
        ds, who, modality=modality, study=study, series=series, description=series_description
    )
    add_equipment(ds, who, model)
    add_private_blocks(ds, who)
    add_retired_and_unknown(ds, who)
    return ds


def set_pixels(ds: Dataset, arr: NDArray[np.generic], photometric: str, bits_stored: int) -> None:
    """Set the Image Pixel module from ``arr`` (``(F, rows, cols[, 3])``, native little endian)."""
    frames, rows, cols = arr.shape[:3]
    samples = arr.shape[3] if arr.ndim == 4 else 1
    bits_allocated = arr.dtype.itemsize * 8
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if frames > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = frames
    data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    ds.PixelData = data + b"\x00" * (len(data) % 2)
    ds["PixelData"].VR = "OW" if bits_allocated > 8 else "OB"


def add_overlay(ds: Dataset, who: Identity, rows: int, cols: int) -> None:
    """Overlay group 6000: a bar, with the name in OverlayDescription and the ID in the label."""
    mask = np.zeros((rows, cols), dtype=np.uint8)
    mask[rows // 8 : rows // 8 + max(2, rows // 16), cols // 2 : cols - cols // 8] = 1
    data = pack_bits(mask)
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000022, "LO", f"Marked by {who.patient_name}")  # Overlay Description
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60001500, "LO", f"ID {who.patient_id}")  # Overlay Label
    ds.add_new(0x60003000, "OW", data + b"\x00" * (len(data) % 2))


def add_curve(ds: Dataset, who: Identity) -> None:
    """A retired curve (50xx) group: description with the name, 16-bit data points."""
    points = np.arange(0, 32, dtype="<u2")
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50000010, "US", len(points))
    ds.add_new(0x50000020, "CS", "TAC")
    ds.add_new(0x50000022, "LO", f"Curve of {who.patient_name}")
    ds.add_new(0x50000103, "US", 0)
    ds.add_new(0x50003000, "OW", points.tobytes())


def add_icon(ds: Dataset, image: NDArray[np.generic]) -> None:
    """IconImageSequence: an 8-bit, at most 64×64 thumbnail of ``image`` (2-D or RGB)."""
    grey = image.mean(axis=-1) if image.ndim == 3 else image.astype(np.float64)
    step = max(1, math.ceil(max(grey.shape) / 64))
    thumb = grey[::step, ::step]
    lo, hi = float(thumb.min()), float(thumb.max())
    scaled = ((thumb - lo) / (hi - lo or 1.0) * 255).astype(np.uint8)
    icon = Dataset()
    icon.SamplesPerPixel = 1
    icon.PhotometricInterpretation = "MONOCHROME2"
    icon.Rows, icon.Columns = scaled.shape
    icon.BitsAllocated = 8
    icon.BitsStored = 8
    icon.HighBit = 7
    icon.PixelRepresentation = 0
    data = scaled.tobytes()
    icon.PixelData = data + b"\x00" * (len(data) % 2)
    icon["PixelData"].VR = "OB"
    ds.IconImageSequence = Sequence([icon])


def referenced_sop(sop_class: str, sop_instance: str) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = sop_instance
    return ref


def burn_text(
    arr: NDArray[_Pixel], who: Identity, *, background: int, foreground: int | tuple[int, ...]
) -> tuple[NDArray[_Pixel], BurnedBox]:
    """Burn :func:`burned_lines` into every frame of ``arr`` at the top left; see :func:`stamp`.

    Raises:
        ValueError: the text does not fit the image.
    """
    text = render_text(burned_lines(who), image_width=arr.shape[2], image_height=arr.shape[1])
    return stamp(arr, text, background=background, foreground=foreground)
