"""Pure builders of synthetic DICOM objects for one :class:`~tftt.synth.canaries.Identity`.

Every builder returns a list of :class:`SynthObject` (a ``FileDataset`` with file meta, plus the
ground-truth boxes of any burned-in text). Nothing is written here; see
:mod:`tftt.synth.corpus`. Canaries are planted by :mod:`tftt.synth.modules` in every place the
standard allows, plus references to other UIDs and burned-in text in the pixels.

UIDs: study ``root.S``, series ``root.S.N``, instance ``root.S.N.I``, frame of reference
``root.S.0``, prior study ``root.99`` (see :meth:`Identity.uid`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset, FileDataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import (
    BasicTextSRStorage,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    UltrasoundMultiFrameImageStorage,
    XRayAngiographicImageStorage,
)

from tftt.synth import phantoms
from tftt.synth.burnin import BurnedBox
from tftt.synth.canaries import Identity
from tftt.synth.modules import (
    MANUFACTURER,
    PRIOR_STUDY,
    STUDY_CT,
    STUDY_MR,
    STUDY_RADIOGRAPHY,
    STUDY_US,
    STUDY_XA,
    add_curve,
    add_general_image,
    add_icon,
    add_overlay,
    base_dataset,
    burn_text,
    coded,
    referenced_sop,
    set_pixels,
)
from tftt.synth.transfer import (
    as_big_endian,
    as_implicit_vr,
    with_j2k_lossless,
    with_jpeg_baseline,
    with_jpegls_lossless,
    with_rle,
)


@dataclass(frozen=True)
class SynthObject:
    """One generated DICOM object: its ``kind`` (e.g. ``"ct"``, ``"dx-jpeg"``), the dataset,
    and the burned-in text boxes in its pixels (empty when there are none)."""

    kind: str
    dataset: FileDataset
    boxes: tuple[BurnedBox, ...] = ()

    @property
    def outcome(self) -> Literal["ok", "burned-in"]:
        return "burned-in" if self.boxes else "ok"


# --------------------------------------------------------------------------- builders


def ct_series(
    who: Identity,
    *,
    study: int = STUDY_CT,
    series: int = 2,
    slices: int = 4,
    size: int = 64,
    only: int | None = None,
) -> list[SynthObject]:
    """An axial CT series: uint16, 12 bits stored, rescale to HU, MONOCHROME2, Explicit VR LE.

    Each slice has an overlay, the first also a curve group and an icon image; each slice
    references its neighbour in ReferencedImageSequence. ``only`` builds just that 0-based
    slice of the series (to stream a large series slice by slice).

    Raises:
        ValueError: ``slices`` < 1, ``size`` < 16, or ``only`` out of range.
    """
    if slices < 1 or size < 16:
        raise ValueError("a CT series needs at least one slice of at least 16×16")
    if only is not None and not 0 <= only < slices:
        raise ValueError("slice index out of range")
    spacing = round(350.0 / size, 4)
    thickness = 2.5
    out = []
    for k in range(slices) if only is None else (only,):
        instance = k + 1
        ds = base_dataset(
            who,
            sop_class=CTImageStorage,
            modality="CT",
            study=study,
            series=series,
            instance=instance,
            series_description="AXIAL CHEST",
            model="SYNTH CT 64",
        )
        add_general_image(ds, who, burned_in=False, image_type=["ORIGINAL", "PRIMARY", "AXIAL"])
        rng = phantoms.rng_for(who.seed, study, series, instance)
        arr = phantoms.ct_slice(size, k / max(1, slices - 1), rng)
        set_pixels(ds, arr[None], "MONOCHROME2", 12)
        z = -100.0 + k * thickness
        ds.PixelSpacing = [spacing, spacing]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-spacing * size / 2, -spacing * size / 2, z]
        ds.SliceThickness = thickness
        ds.SpacingBetweenSlices = thickness
        ds.SliceLocation = z
        ds.PatientPosition = "HFS"
        ds.KVP = 120
        ds.XRayTubeCurrent = 200
        ds.ConvolutionKernel = "STANDARD"
        ds.AcquisitionNumber = 1
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = [40, -600]
        ds.WindowWidth = [400, 1500]
        ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG"]
        neighbour = instance + 1 if instance < slices else max(1, instance - 1)
        ds.ReferencedImageSequence = Sequence(
            [referenced_sop(CTImageStorage, who.uid(study, series, neighbour))]
        )
        add_overlay(ds, who, size, size)
        if k == 0:
            add_curve(ds, who)
            add_icon(ds, arr)
        out.append(SynthObject("ct", ds))
    return out


def mr_series(
    who: Identity, *, study: int = STUDY_MR, series: int = 3, slices: int = 3, size: int = 64
) -> list[SynthObject]:
    """An axial T2 MR series: uint16, 12 bits stored, MONOCHROME2, Explicit VR LE, overlays.

    Raises:
        ValueError: ``slices`` < 1 or ``size`` < 16.
    """
    if slices < 1 or size < 16:
        raise ValueError("an MR series needs at least one slice of at least 16×16")
    spacing = round(230.0 / size, 4)
    thickness = 5.0
    out = []
    for k in range(slices):
        instance = k + 1
        ds = base_dataset(
            who,
            sop_class=MRImageStorage,
            modality="MR",
            study=study,
            series=series,
            instance=instance,
            series_description="AX T2",
            model="SYNTH MR 3T",
        )
        add_general_image(ds, who, burned_in=False, image_type=["ORIGINAL", "PRIMARY", "M", "ND"])
        rng = phantoms.rng_for(who.seed, study, series, instance)
        arr = phantoms.mr_slice(size, k / max(1, slices - 1), rng)
        set_pixels(ds, arr[None], "MONOCHROME2", 12)
        z = -20.0 + k * thickness
        ds.PixelSpacing = [spacing, spacing]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-spacing * size / 2, -spacing * size / 2, z]
        ds.SliceThickness = thickness
        ds.SpacingBetweenSlices = thickness
        ds.SliceLocation = z
        ds.PatientPosition = "HFS"
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "SK"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = 4000
        ds.EchoTime = 90
        ds.EchoTrainLength = 16
        ds.MagneticFieldStrength = 3
        ds.ImagingFrequency = 127.7
        ds.AcquisitionNumber = 1
        ds.WindowCenter = 1400
        ds.WindowWidth = 2800
        add_overlay(ds, who, size, size)
        out.append(SynthObject("mr", ds))
    return out


def cr_image(
    who: Identity,
    *,
    study: int = STUDY_RADIOGRAPHY,
    series: int = 1,
    size: int = 320,
    burned_in: bool = True,
) -> list[SynthObject]:
    """A PA chest CR, MONOCHROME1 (high stored value = dark), 12 bits, with burned-in text.

    The text box is black on display (maximum stored value) with white text (zero).
    """
    ds = base_dataset(
        who,
        sop_class=ComputedRadiographyImageStorage,
        modality="CR",
        study=study,
        series=series,
        instance=1,
        series_description="CHEST PA",
        model="SYNTH CR",
    )
    add_general_image(ds, who, burned_in=burned_in, image_type=["ORIGINAL", "PRIMARY"])
    rows, cols = size * 5 // 4, size
    rng = phantoms.rng_for(who.seed, study, series, 1)
    display = phantoms.radiograph(rows, cols, rng, 12)
    stored = (4095 - display)[None]  # MONOCHROME1
    boxes: tuple[BurnedBox, ...] = ()
    if burned_in:
        stored, box = burn_text(stored, who, background=4095, foreground=0)
        boxes = (box,)
    set_pixels(ds, stored, "MONOCHROME1", 12)
    spacing = round(430.0 / cols, 4)
    ds.PixelSpacing = [spacing, spacing]
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.ViewPosition = "PA"
    ds.BodyPartExamined = "CHEST"
    ds.PatientOrientation = ["L", "F"]
    ds.KVP = 125
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    add_overlay(ds, who, rows, cols)
    return [SynthObject("cr", ds, boxes)]


def dx_image(
    who: Identity,
    *,
    study: int = STUDY_RADIOGRAPHY,
    series: int = 2,
    size: int = 320,
    burned_in: bool = True,
) -> list[SynthObject]:
    """An AP chest DX For Presentation, 8-bit MONOCHROME2 (ready for JPEG Baseline)."""
    ds = base_dataset(
        who,
        sop_class=DigitalXRayImageStorageForPresentation,
        modality="DX",
        study=study,
        series=series,
        instance=1,
        series_description="CHEST AP PORTABLE",
        model="SYNTH DR",
    )
    add_general_image(ds, who, burned_in=burned_in, image_type=["ORIGINAL", "PRIMARY"])
    rows, cols = size * 5 // 4, size
    rng = phantoms.rng_for(who.seed, study, series, 1)
    arr = phantoms.radiograph(rows, cols, rng, 8).astype(np.uint8)[None]
    boxes: tuple[BurnedBox, ...] = ()
    if burned_in:
        arr, box = burn_text(arr, who, background=0, foreground=255)
        boxes = (box,)
    set_pixels(ds, arr, "MONOCHROME2", 8)
    spacing = round(430.0 / cols, 4)
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.DetectorType = "DIRECT"
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.PixelSpacing = [spacing, spacing]
    ds.ViewPosition = "AP"
    ds.BodyPartExamined = "CHEST"
    ds.PatientOrientation = ["R", "F"]
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.WindowCenter = 128
    ds.WindowWidth = 256
    return [SynthObject("dx", ds, boxes)]


def us_cine(
    who: Identity,
    *,
    study: int = STUDY_US,
    series: int = 1,
    instance: int = 1,
    frames: int = 4,
    size: int = 320,
    burned_in: bool = True,
) -> list[SynthObject]:
    """A US multi-frame RGB cine (``size`` wide, 3/4 as tall) with the name and ID burned into
    every frame and a SequenceOfUltrasoundRegions describing the sector.

    Raises:
        ValueError: ``frames`` < 1.
    """
    if frames < 1:
        raise ValueError("a cine needs at least one frame")
    ds = base_dataset(
        who,
        sop_class=UltrasoundMultiFrameImageStorage,
        modality="US",
        study=study,
        series=series,
        instance=instance,
        series_description="LIVER CINE",
        model="SYNTH US",
    )
    add_general_image(ds, who, burned_in=burned_in, image_type=["ORIGINAL", "PRIMARY", "ABDOMINAL"])
    rows, cols = size * 3 // 4, size
    rng = phantoms.rng_for(who.seed, study, series, instance)
    arr = phantoms.us_frames(frames, rows, cols, rng)
    boxes: tuple[BurnedBox, ...] = ()
    if burned_in:
        arr, box = burn_text(arr, who, background=0, foreground=(255, 255, 0))
        boxes = (box,)
    ds.NumberOfFrames = frames
    set_pixels(ds, arr, "RGB", 8)
    ds.FrameTime = 33.3
    ds.CineRate = 30
    ds.FrameIncrementPointer = 0x00181063
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0 = cols // 8
    region.RegionLocationMinY0 = rows // 10
    region.RegionLocationMaxX1 = cols - cols // 8
    region.RegionLocationMaxY1 = rows - 1
    region.PhysicalUnitsXDirection = 3
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = round(16.0 / cols, 5)
    region.PhysicalDeltaY = round(16.0 / cols, 5)
    region.ReferencePixelX0 = cols // 2
    region.ReferencePixelY0 = 0
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    ds.TransducerData = ["C5-1", "", ""]
    return [SynthObject("us", ds, boxes)]


def xa_run(
    who: Identity,
    *,
    study: int = STUDY_XA,
    series: int = 1,
    frames: int = 4,
    size: int = 256,
    burned_in: bool = True,
) -> list[SynthObject]:
    """An XA multi-frame run, 8-bit MONOCHROME2, name and ID burned into every frame.

    Raises:
        ValueError: ``frames`` < 1.
    """
    if frames < 1:
        raise ValueError("a run needs at least one frame")
    ds = base_dataset(
        who,
        sop_class=XRayAngiographicImageStorage,
        modality="XA",
        study=study,
        series=series,
        instance=1,
        series_description="LCA RAO 30",
        model="SYNTH ANGIO",
    )
    add_general_image(
        ds, who, burned_in=burned_in, image_type=["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    )
    rng = phantoms.rng_for(who.seed, study, series, 1)
    arr = phantoms.xa_frames(frames, size, size, rng)
    boxes: tuple[BurnedBox, ...] = ()
    if burned_in:
        arr, box = burn_text(arr, who, background=0, foreground=255)
        boxes = (box,)
    ds.NumberOfFrames = frames
    set_pixels(ds, arr, "MONOCHROME2", 8)
    ds.FrameTime = 66.7
    ds.CineRate = 15
    ds.FrameIncrementPointer = 0x00181063
    ds.PixelIntensityRelationship = "LIN"
    ds.PositionerMotion = "STATIC"
    ds.PositionerPrimaryAngle = -30
    ds.PositionerSecondaryAngle = 0
    ds.KVP = 80
    ds.XRayTubeCurrent = 600
    ds.ExposureTime = 7
    ds.RadiationSetting = "GR"
    ds.DistanceSourceToDetector = 1100
    ds.ImagerPixelSpacing = [0.2, 0.2]
    return [SynthObject("xa", ds, boxes)]


def screen_save(
    who: Identity,
    *,
    study: int = STUDY_CT,
    series: int = 90,
    size: int = 320,
    burned_in: bool = True,
    source: str | None = None,
) -> list[SynthObject]:
    """A Secondary Capture screen save (RGB, DERIVED\\SECONDARY\\SCREEN SAVE), text burned in,
    with an icon image; ``source`` is the SOP Instance UID of a CT slice it was made from."""
    ds = base_dataset(
        who,
        sop_class=SecondaryCaptureImageStorage,
        modality="OT",
        study=study,
        series=series,
        instance=1,
        series_description="SCREEN SAVE",
        model="SYNTH VIEWER",
    )
    add_general_image(
        ds, who, burned_in=burned_in, image_type=["DERIVED", "SECONDARY", "SCREEN SAVE"]
    )
    rows, cols = size * 3 // 4, size
    rng = phantoms.rng_for(who.seed, study, series, 1)
    arr = phantoms.screen(rows, cols, rng)[None]
    boxes: tuple[BurnedBox, ...] = ()
    if burned_in:
        arr, box = burn_text(arr, who, background=0, foreground=(255, 255, 255))
        boxes = (box,)
    set_pixels(ds, arr, "RGB", 8)
    ds.ConversionType = "WSD"
    ds.DerivationDescription = f"Screen capture of {who.patient_name} at {who.station_name}"
    ds.DateOfSecondaryCapture = who.study_date
    ds.TimeOfSecondaryCapture = who.study_time
    ds.SecondaryCaptureDeviceManufacturer = MANUFACTURER
    ds.SourceImageSequence = Sequence(
        [referenced_sop(CTImageStorage, source or who.uid(study, 2, 1))]
    )
    add_icon(ds, arr[0])
    return [SynthObject("sc", ds, boxes)]


def _content(relationship: str, value_type: str, concept: Code, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([coded(concept)])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def text_report(
    who: Identity, *, study: int = STUDY_CT, series: int = 91, evidence: tuple[str, ...] = ()
) -> list[SynthObject]:
    """A Basic Text SR report with nested ContentSequence: observer and subject PNAMEs, a DATE,
    a DATETIME, a UIDREF, and TEXT values naming the patient (depth 3 inside the tree).
    ``evidence`` lists CT SOP Instance UIDs the report refers to."""
    ds = base_dataset(
        who,
        sop_class=BasicTextSRStorage,
        modality="SR",
        study=study,
        series=series,
        instance=1,
        series_description="RADIOLOGY REPORT",
        model="SYNTH RIS",
    )
    for keyword in ("FrameOfReferenceUID", "PositionReferenceIndicator"):
        delattr(ds, keyword)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([coded(codes.LN.CTChestReport)])
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    verifier = Dataset()
    verifier.VerifyingObserverName = who.reading_physician
    verifier.VerifyingOrganization = who.institution_name
    verifier.VerificationDateTime = who.datetime(hours_after=2)
    verifier.VerifyingObserverIdentificationCodeSequence = Sequence([])
    ds.VerifyingObserverSequence = Sequence([verifier])

    uids = evidence or tuple(who.uid(study, 2, k) for k in (1, 2))
    referenced = Dataset()
    referenced.SeriesInstanceUID = who.uid(study, 2)
    referenced.ReferencedSOPSequence = Sequence([referenced_sop(CTImageStorage, u) for u in uids])
    evidence_study = Dataset()
    evidence_study.StudyInstanceUID = who.uid(study)
    evidence_study.ReferencedSeriesSequence = Sequence([referenced])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence_study])

    inference = _content(
        "INFERRED FROM",
        "TEXT",
        codes.DCM.Finding,
        TextValue=f"Compared with {who.prior_date} study of {who.patient_name} ({who.patient_id})",
    )
    seen_on = _content("INFERRED FROM", "DATE", codes.DCM.StudyDate, Date=who.prior_date)
    finding = _content(
        "CONTAINS",
        "TEXT",
        codes.DCM.Finding,
        TextValue=f"Patient {who.patient_name}, born {who.birth_date}: no acute findings.",
    )
    finding.ContentSequence = Sequence([inference, seen_on])  # depth 3
    findings = _content("CONTAINS", "CONTAINER", codes.DCM.Findings, ContinuityOfContent="SEPARATE")
    findings.ContentSequence = Sequence([finding])
    impression = _content(
        "CONTAINS",
        "TEXT",
        codes.DCM.Impressions,
        TextValue=f"Discussed with {who.referring_physician} at {who.phone}.",
    )
    ds.ContentSequence = Sequence(
        [
            _content(
                "HAS OBS CONTEXT",
                "PNAME",
                codes.DCM.PersonObserverName,
                PersonName=who.reading_physician,
            ),
            _content(
                "HAS OBS CONTEXT", "PNAME", codes.DCM.SubjectName, PersonName=who.patient_name
            ),
            _content("HAS OBS CONTEXT", "TEXT", codes.DCM.SubjectID, TextValue=who.patient_id),
            _content("HAS OBS CONTEXT", "DATE", codes.DCM.SubjectBirthDate, Date=who.birth_date),
            _content(
                "HAS OBS CONTEXT", "DATETIME", codes.DCM.DatetimeStarted, DateTime=who.datetime()
            ),
            _content(
                "HAS OBS CONTEXT", "UIDREF", codes.DCM.StudyInstanceUID, UID=who.uid(PRIOR_STUDY)
            ),
            findings,
            impression,
        ]
    )
    return [SynthObject("sr", ds)]


# --------------------------------------------------------------------------- whole patients


@dataclass(frozen=True)
class Sizes:
    """How big one patient's objects are (see :func:`sizes_for_scale`)."""

    ct_slices: int = 4
    ct_size: int = 64
    mr_slices: int = 3
    mr_size: int = 64
    radiograph_size: int = 320
    us_frames: int = 4
    us_size: int = 320
    xa_frames: int = 4
    xa_size: int = 256
    sc_size: int = 320


def sizes_for_scale(scale: float) -> Sizes:
    """Default sizes with slice/frame counts multiplied by ``scale`` and CT/MR matrices grown
    with the square root of it (multiples of 16; CT/MR 64 to 512, others 256 to 1024 wide).

    Raises:
        ValueError: ``scale`` is not positive.
    """
    if scale <= 0:
        raise ValueError("scale must be positive")

    def count(n: int) -> int:
        return max(1, round(n * scale))

    def side(n: int, minimum: int, maximum: int = 1024) -> int:
        return min(maximum, max(minimum, round(n * math.sqrt(scale) / 16) * 16))

    base = Sizes()
    return Sizes(
        ct_slices=count(base.ct_slices),
        ct_size=side(base.ct_size, 64, 512),
        mr_slices=count(base.mr_slices),
        mr_size=side(base.mr_size, 64, 512),
        radiograph_size=side(base.radiograph_size, 256),
        us_frames=count(base.us_frames),
        us_size=side(base.us_size, 256),
        xa_frames=count(base.xa_frames),
        xa_size=side(base.xa_size, 256),
        sc_size=side(base.sc_size, 256),
    )


def iter_patient_objects(who: Identity, sizes: Sizes | None = None) -> Iterator[SynthObject]:
    """Every object of one patient, one at a time, in all transfer syntaxes the corpus covers.

    Kinds (and transfer syntaxes): ``ct`` (Explicit VR LE), ``ct-implicit`` (Implicit VR LE),
    ``ct-jpegls`` (JPEG-LS lossless), ``sc`` (screen save, burned in), ``sr`` (Basic Text SR),
    ``mr-j2k`` (JPEG 2000 lossless), ``mr-big-endian`` (Explicit VR BE), ``cr-rle`` (RLE,
    MONOCHROME1, burned in), ``dx-jpeg`` (JPEG Baseline with a COM segment naming the patient,
    burned in), ``us`` (RGB cine, burned in), ``xa`` (8-bit run, burned in).
    """
    s = sizes or Sizes()
    yield from ct_series(who, series=2, slices=s.ct_slices, size=s.ct_size)
    for o in ct_series(who, series=3, slices=max(1, s.ct_slices // 2), size=s.ct_size):
        yield SynthObject("ct-implicit", as_implicit_vr(o.dataset))
    for o in ct_series(who, series=4, slices=max(1, s.ct_slices // 2), size=s.ct_size):
        yield SynthObject("ct-jpegls", with_jpegls_lossless(o.dataset))
    yield from screen_save(who, size=s.sc_size, source=who.uid(STUDY_CT, 2, 1))
    yield from text_report(
        who, evidence=tuple(who.uid(STUDY_CT, 2, k + 1) for k in range(s.ct_slices))
    )
    for o in mr_series(who, series=1, slices=s.mr_slices, size=s.mr_size):
        yield SynthObject("mr-j2k", with_j2k_lossless(o.dataset))
    for o in mr_series(who, series=2, slices=1, size=s.mr_size):
        yield SynthObject("mr-big-endian", as_big_endian(o.dataset))
    cr = cr_image(who, size=s.radiograph_size)[0]
    yield SynthObject("cr-rle", with_rle(cr.dataset), cr.boxes)
    dx = dx_image(who, size=s.radiograph_size)[0]
    comment = f"{who.patient_name} {who.patient_id} {who.birth_date}"
    yield SynthObject("dx-jpeg", with_jpeg_baseline(dx.dataset, comment=comment), dx.boxes)
    yield from us_cine(who, frames=s.us_frames, size=s.us_size)
    yield from xa_run(who, frames=s.xa_frames, size=s.xa_size)


def patient_objects(who: Identity, sizes: Sizes | None = None) -> list[SynthObject]:
    """:func:`iter_patient_objects` as a list."""
    return list(iter_patient_objects(who, sizes))
