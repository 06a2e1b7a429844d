"""Image import: a JPEG, PNG or GIF becomes a DICOM Secondary Capture of the case (pure).

Only the decoded pixels are used: Pillow opens the bytes, the frames are turned into arrays,
and nothing else of the file reaches the output: no EXIF, XMP or ICC data, no PNG text chunks,
no GIF or JPEG comments, no file name, no timestamps.

Decisions:

- **Formats**: JPEG (also a camera's MPO, first image only), PNG, GIF. Anything else, or bytes
  that do not decode, raise :class:`~tftt.errors.UnsupportedInputError`.
- **Pixels**: 8-bit grayscale -> MONOCHROME2 8 bit; 16-bit grayscale PNG -> MONOCHROME2 16 bit
  (lossless); everything else (palette, colour, CMYK) -> RGB 8 bit. Transparency is flattened
  onto black, so colour hidden under fully transparent pixels is not carried over; opaque
  pixels are unchanged. EXIF orientation is not applied (it is metadata; the pixels are stored
  as encoded).
- **Animation**: an animated GIF (or PNG) keeps **all** its frames as a Multi-frame Secondary
  Capture (True Color for GIF; Grayscale Byte/Word when every frame is grayscale) with a fixed
  ``FrameTime`` (``frame_time_ms``, 100 ms by default: the file's own frame delays are metadata
  and are not read). A GIF is always RGB (its palette may hold colour). A single-frame image is a
  plain Secondary Capture (1.2.840.10008.5.1.4.1.1.7).
- **Header**: the Patient, General Study and Patient Study modules (and Specific Character Set)
  are copied from a data set of the case; the series and instance get the UIDs passed in;
  Modality OT, ConversionType WSD, ImageType DERIVED\\SECONDARY, BurnedInAnnotation YES
  (unknown, so assumed: imported pictures are reviewed for text), LossyImageCompression 01 for
  JPEG sources (ISO_10918_1), 00 otherwise. Explicit VR Little Endian, uncompressed.
- Same bytes, case data set and arguments give the same data set (no clock, no random UIDs).
"""

from __future__ import annotations

import io
import warnings
from copy import deepcopy

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from tftt.errors import UnsupportedInputError

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MULTIFRAME_GRAYSCALE_BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"
MULTIFRAME_GRAYSCALE_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
MULTIFRAME_TRUE_COLOR_SC = "1.2.840.10008.5.1.4.1.1.7.4"

_FORMATS = ("JPEG", "PNG", "GIF")  # a camera MPO opens through the JPEG plugin
_ANIMATED_FORMATS = {"GIF", "PNG"}
_UID_PATTERN = r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$"
_FRAME_TIME_TAG = 0x00181063

# PS3.3 C.7.1.1 Patient, C.7.2.1 General Study, C.7.2.2 Patient Study.
PATIENT_MODULE: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "TypeOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "QualityControlSubject",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "EthnicGroup",
    "PatientComments",
    "PatientSpeciesDescription",
    "PatientSpeciesCodeSequence",
    "PatientBreedDescription",
    "PatientBreedCodeSequence",
    "BreedRegistrationSequence",
    "StrainDescription",
    "StrainNomenclature",
    "StrainStockSequence",
    "StrainAdditionalInformation",
    "StrainCodeSequence",
    "GeneticModificationsSequence",
    "ResponsiblePerson",
    "ResponsiblePersonRole",
    "ResponsibleOrganization",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "ReferencedPatientPhotoSequence",
    "ReferencedPatientSequence",
    "SourcePatientGroupIdentificationSequence",
    "GroupOfPatientsIdentificationSequence",
)
GENERAL_STUDY_MODULE: tuple[str, ...] = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "ReferringPhysicianIdentificationSequence",
    "ConsultingPhysicianName",
    "ConsultingPhysicianIdentificationSequence",
    "StudyID",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "StudyDescription",
    "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence",
    "RequestingServiceCodeSequence",
    "ReferencedStudySequence",
    "ProcedureCodeSequence",
    "ReasonForPerformedProcedureCodeSequence",
)
PATIENT_STUDY_MODULE: tuple[str, ...] = (
    "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientBodyMassIndex",
    "MeasuredAPDimension",
    "MeasuredLateralDimension",
    "PatientSizeCodeSequence",
    "MedicalAlerts",
    "Allergies",
    "SmokingStatus",
    "PregnancyStatus",
    "LastMenstrualDate",
    "PatientState",
    "Occupation",
    "AdditionalPatientHistory",
    "AdmissionID",
    "IssuerOfAdmissionIDSequence",
    "ServiceEpisodeID",
    "IssuerOfServiceEpisodeIDSequence",
    "ServiceEpisodeDescription",
    "PatientSexNeutered",
    "ReasonForVisit",
    "ReasonForVisitCodeSequence",
)
COPIED_KEYWORDS: tuple[str, ...] = (
    "SpecificCharacterSet",
    *PATIENT_MODULE,
    *GENERAL_STUDY_MODULE,
    *PATIENT_STUDY_MODULE,
)
# Type 2 attributes of those modules: present, empty when the case has no value.
_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


class ImportUIDs(BaseModel):
    """The new UIDs of an imported image (derived deterministically by the caller)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    series_instance_uid: str = Field(max_length=64, pattern=_UID_PATTERN)
    sop_instance_uid: str = Field(max_length=64, pattern=_UID_PATTERN)


def _flatten_alpha(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite onto black; exact where alpha is 255."""
    weighted = color.astype(np.uint32) * alpha.astype(np.uint32)[..., np.newaxis]
    return ((weighted + 127) // 255).astype(np.uint8)


def _frame_pixels(image: Image.Image, force_rgb: bool) -> np.ndarray:
    """One decoded frame as (rows, columns) uint8/uint16 or (rows, columns, 3) uint8."""
    mode = image.mode
    if not force_rgb:
        if mode == "L":
            return np.array(image, dtype=np.uint8)
        if mode == "1":
            return np.array(image.convert("L"), dtype=np.uint8)
        if mode in {"I;16", "I;16L", "I;16B", "I"}:
            values = np.array(image)
            if values.min() < 0 or values.max() > 0xFFFF:
                raise UnsupportedInputError("image values exceed 16 bits", code="image-unsupported")
            return values.astype(np.uint16)
        if mode in {"LA", "La"}:
            gray_alpha = np.array(image.convert("LA"), dtype=np.uint8)
            return _flatten_alpha(gray_alpha[..., :1], gray_alpha[..., 1])[..., 0]
    if mode in {"I;16", "I;16L", "I;16B", "I", "F"}:
        raise UnsupportedInputError(
            "16-bit or float images cannot be mixed with colour frames", code="image-unsupported"
        )
    if mode in {"RGB", "L", "1", "CMYK", "YCbCr"}:
        return np.array(image.convert("RGB"), dtype=np.uint8)
    if mode in {"RGBA", "RGBa", "P", "PA", "LA", "La"}:
        rgba = np.array(image.convert("RGBA"), dtype=np.uint8)
        return _flatten_alpha(rgba[..., :3], rgba[..., 3])
    raise UnsupportedInputError("unsupported image mode", code="image-unsupported")


def decode_image(data: bytes) -> tuple[str, list[np.ndarray]]:
    """Decode JPEG/PNG/GIF bytes into (format, frames) following the module's decisions.

    Raises:
        UnsupportedInputError: not one of those formats, undecodable, too large, or with
            frames of different sizes or kinds.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=_FORMATS) as image:
                kind = str(image.format)
                count = int(getattr(image, "n_frames", 1)) if kind in _ANIMATED_FORMATS else 1
                force_rgb = kind == "GIF"
                frames = []
                for index in range(count):
                    image.seek(index)
                    frames.append(_frame_pixels(image, force_rgb))
    except UnsupportedInputError:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
    ) as exc:
        raise UnsupportedInputError(
            "image could not be decoded as JPEG, PNG or GIF", code="image-undecodable"
        ) from exc
    if kind == "MPO":
        kind = "JPEG"
    if any(frame.ndim == 3 for frame in frames) and any(frame.ndim == 2 for frame in frames):
        if any(frame.dtype != np.uint8 for frame in frames):
            raise UnsupportedInputError(
                "16-bit frames mixed with colour frames", code="image-unsupported"
            )
        frames = [np.repeat(f[..., np.newaxis], 3, axis=2) if f.ndim == 2 else f for f in frames]
    if len({(frame.shape, frame.dtype) for frame in frames}) != 1:
        raise UnsupportedInputError("frames differ in size or depth", code="image-unsupported")
    return kind, frames


def _copy_case_modules(target: Dataset, case: Dataset) -> None:
    for keyword in COPIED_KEYWORDS:
        if keyword in case:
            target[keyword] = deepcopy(case[keyword])
    for keyword in _TYPE2:
        if keyword not in target:
            setattr(target, keyword, "")


def image_to_secondary_capture(
    data: bytes,
    *,
    patient_study: Dataset,
    uids: ImportUIDs,
    instance_number: int,
    series_number: int | None = None,
    series_description: str = "Imported image",
    frame_time_ms: float = 100.0,
) -> Dataset:
    """A Secondary Capture data set (with file meta) holding the image's pixels.

    ``patient_study`` is any data set of the case: its Patient, General Study and Patient
    Study modules are copied (deep copies; it is not changed).

    Raises:
        UnsupportedInputError: the bytes are not a decodable JPEG, PNG or GIF, or the case data
            set has no StudyInstanceUID.
        ValueError: ``instance_number`` is below 1 or ``frame_time_ms`` is not positive.
    """
    if instance_number < 1:
        raise ValueError("instance_number must be at least 1")
    if not frame_time_ms > 0:
        raise ValueError("frame_time_ms must be positive")
    if not str(patient_study.get("StudyInstanceUID", "") or ""):
        raise UnsupportedInputError(
            "the case data set has no StudyInstanceUID", code="import-no-study"
        )
    kind, frames = decode_image(data)
    pixels = np.stack(frames)  # (frames, rows, columns[, 3])
    count, rows, columns = pixels.shape[:3]
    color = pixels.ndim == 4
    bits = 16 if pixels.dtype == np.uint16 else 8

    if count == 1:
        sop_class = SECONDARY_CAPTURE
    elif color:
        sop_class = MULTIFRAME_TRUE_COLOR_SC
    else:
        sop_class = MULTIFRAME_GRAYSCALE_WORD_SC if bits == 16 else MULTIFRAME_GRAYSCALE_BYTE_SC

    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(uids.sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta

    _copy_case_modules(ds, patient_study)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uids.sop_instance_uid
    # General Series, General Equipment, SC Equipment
    ds.Modality = "OT"
    ds.SeriesInstanceUID = uids.series_instance_uid
    ds.SeriesNumber = "" if series_number is None else series_number
    ds.SeriesDescription = series_description
    ds.Manufacturer = ""
    ds.ConversionType = "WSD"
    ds.SecondaryCaptureDeviceManufacturer = "TFTT"
    # General Image
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ""
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "YES"
    if kind == "JPEG":
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        ds.LossyImageCompression = "00"
    # Image Pixel
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = "RGB" if color else "MONOCHROME2"
    if color:
        ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if count > 1:  # Multi-frame, Cine, SC Multi-frame Image
        ds.NumberOfFrames = count
        ds.FrameIncrementPointer = _FRAME_TIME_TAG
        ds.FrameTime = f"{frame_time_ms:g}"
        if not color:
            ds.PresentationLUTShape = "IDENTITY"
            ds.RescaleIntercept = "0"
            ds.RescaleSlope = "1"
            ds.RescaleType = "US"
    raw = np.ascontiguousarray(pixels, dtype="<u2" if bits == 16 else np.uint8).tobytes()
    if len(raw) % 2:
        raw += b"\x00"
    ds.add_new(0x7FE00010, "OW" if bits == 16 else "OB", raw)
    return ds
