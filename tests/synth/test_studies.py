from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import pydicom
import pytest
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

from tftt.synth.canaries import STANDARD_STUDIES, make_identity
from tftt.synth.modules import (
    PRIOR_STUDY,
    STUDY_CT,
    STUDY_MR,
    STUDY_RADIOGRAPHY,
    STUDY_US,
    STUDY_XA,
)
from tftt.synth.studies import (
    Sizes,
    SynthObject,
    cr_image,
    ct_series,
    dx_image,
    mr_series,
    patient_objects,
    screen_save,
    sizes_for_scale,
    text_report,
    us_cine,
    xa_run,
)
from tftt.synth.transfer import encode

WHO = make_identity(0)
SMALL = Sizes(ct_slices=2, us_frames=2, xa_frames=2)


def _read(obj: SynthObject) -> pydicom.FileDataset:
    return pydicom.dcmread(io.BytesIO(encode(obj.dataset)))


def test_ct_series_geometry_and_uids() -> None:
    series = ct_series(WHO, slices=3, size=64)
    assert [o.kind for o in series] == ["ct"] * 3
    first, second = (o.dataset for o in series[:2])
    assert first.SOPClassUID == CTImageStorage
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    assert first.StudyInstanceUID == second.StudyInstanceUID == WHO.uid(1)
    assert first.SeriesInstanceUID == second.SeriesInstanceUID == WHO.uid(1, 2)
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert second.ImagePositionPatient[2] - first.ImagePositionPatient[2] == first.SliceThickness
    assert list(first.ImageOrientationPatient) == [1, 0, 0, 0, 1, 0]
    assert first.PixelSpacing[0] * first.Columns == pytest.approx(350, abs=1)
    hu = first.pixel_array.astype(int) * int(first.RescaleSlope) + int(first.RescaleIntercept)
    assert hu.min() < -900 and hu.max() > 500  # air and bone
    assert first.ReferencedImageSequence[0].ReferencedSOPInstanceUID == second.SOPInstanceUID
    assert first.BitsStored == 12 and first.pixel_array.max() < 4096


def test_ct_only_builds_one_slice_of_the_same_series() -> None:
    whole = ct_series(WHO, slices=3, size=32)
    one = ct_series(WHO, slices=3, size=32, only=1)
    assert len(one) == 1
    assert encode(one[0].dataset) == encode(whole[1].dataset)
    with pytest.raises(ValueError):
        ct_series(WHO, slices=3, only=3)
    with pytest.raises(ValueError):
        ct_series(WHO, slices=0)


def test_modalities_and_photometrics() -> None:
    mr = mr_series(WHO, slices=1)[0].dataset
    assert (mr.SOPClassUID, mr.Modality) == (MRImageStorage, "MR")
    cr = cr_image(WHO)[0].dataset
    assert (cr.SOPClassUID, cr.PhotometricInterpretation) == (
        ComputedRadiographyImageStorage,
        "MONOCHROME1",
    )
    dx = dx_image(WHO)[0].dataset
    assert (dx.SOPClassUID, dx.BitsAllocated) == (DigitalXRayImageStorageForPresentation, 8)
    us = us_cine(WHO, frames=3)[0].dataset
    assert us.SOPClassUID == UltrasoundMultiFrameImageStorage
    assert (us.PhotometricInterpretation, us.SamplesPerPixel, us.NumberOfFrames) == ("RGB", 3, 3)
    region = us.SequenceOfUltrasoundRegions[0]
    assert 0 <= region.RegionLocationMinX0 < region.RegionLocationMaxX1 < us.Columns
    xa = xa_run(WHO, frames=3)[0].dataset
    assert (xa.SOPClassUID, xa.BitsAllocated, xa.NumberOfFrames) == (
        XRayAngiographicImageStorage,
        8,
        3,
    )
    assert xa.pixel_array.shape == (3, 256, 256)
    sc = screen_save(WHO)[0].dataset
    assert sc.SOPClassUID == SecondaryCaptureImageStorage
    assert list(sc.ImageType) == ["DERIVED", "SECONDARY", "SCREEN SAVE"]


def test_basic_text_sr_content_tree() -> None:
    sr = _read(text_report(WHO)[0])
    assert sr.SOPClassUID == BasicTextSRStorage and "PixelData" not in sr
    items = sr.ContentSequence
    types = [i.ValueType for i in items]
    assert {"PNAME", "DATE", "DATETIME", "UIDREF", "CONTAINER", "TEXT"} <= set(types)
    subject = next(i for i in items if i.ValueType == "PNAME" and i.PersonName == WHO.patient_name)
    assert subject.ConceptNameCodeSequence[0].CodeValue == "121029"
    assert next(i for i in items if i.ValueType == "DATE").Date == WHO.birth_date
    assert next(i for i in items if i.ValueType == "DATETIME").DateTime.startswith(WHO.study_date)
    assert next(i for i in items if i.ValueType == "UIDREF").UID.startswith(WHO.uid_prefix)
    findings = next(i for i in items if i.ValueType == "CONTAINER")
    finding = findings.ContentSequence[0]
    assert WHO.patient_name in finding.TextValue
    deep = finding.ContentSequence  # depth 3
    assert WHO.patient_name in deep[0].TextValue
    assert deep[1].Date == WHO.prior_date
    refs = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert refs.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == WHO.uid(1, 2, 1)


@pytest.mark.parametrize(
    "build",
    [
        lambda burned: cr_image(WHO, burned_in=burned),
        lambda burned: dx_image(WHO, burned_in=burned),
        lambda burned: us_cine(WHO, frames=2, burned_in=burned),
        lambda burned: xa_run(WHO, frames=2, burned_in=burned),
        lambda burned: screen_save(WHO, burned_in=burned),
    ],
)
def test_burned_in_boxes_are_exactly_where_pixels_changed(
    build: Callable[[bool], list[SynthObject]],
) -> None:
    burned, clean = build(True)[0], build(False)[0]
    assert clean.boxes == () and clean.outcome == "ok"
    assert burned.outcome == "burned-in" and burned.dataset.BurnedInAnnotation == "YES"
    (box,) = burned.boxes
    ds = burned.dataset
    frames = int(ds.get("NumberOfFrames", 1))
    assert box.frames == tuple(range(frames))
    assert 0 <= box.x and box.x + box.width <= ds.Columns
    assert 0 <= box.y and box.y + box.height <= ds.Rows
    a = burned.dataset.pixel_array.astype(int).reshape(frames, ds.Rows, ds.Columns, -1)
    b = clean.dataset.pixel_array.astype(int).reshape(frames, ds.Rows, ds.Columns, -1)
    diff = np.argwhere((a != b).any(axis=-1))
    assert set(diff[:, 0]) == set(box.frames)
    assert diff[:, 1].min() >= box.y and diff[:, 1].max() < box.y + box.height
    assert diff[:, 2].min() >= box.x and diff[:, 2].max() < box.x + box.width
    inside = a[0, box.y : box.y + box.height, box.x : box.x + box.width]
    assert inside.max() - inside.min() >= 250  # high contrast text in the box


def test_every_patient_object_decodes() -> None:
    objects = patient_objects(WHO, SMALL)
    kinds = {o.kind for o in objects}
    assert kinds == {
        "ct", "ct-implicit", "ct-jpegls", "sc", "sr", "mr-j2k", "mr-big-endian",
        "cr-rle", "dx-jpeg", "us", "xa",
    }  # fmt: skip
    for obj in objects:
        back = _read(obj)
        if obj.kind == "sr":
            continue
        arr = back.pixel_array
        frames = int(back.get("NumberOfFrames", 1))
        assert arr.shape[: 3 if frames > 1 else 2] == (
            (frames, back.Rows, back.Columns) if frames > 1 else (back.Rows, back.Columns)
        )
        assert arr.std() > 0


def test_objects_are_deterministic_and_warning_free() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # values respect VR lengths and keywords exist
        for seed in (0, 1, 8, 14):
            a = [encode(o.dataset) for o in patient_objects(make_identity(seed), SMALL)]
            if seed == 0:
                b = [encode(o.dataset) for o in patient_objects(make_identity(seed), SMALL)]
                assert a == b


def test_study_numbers_match_the_canary_list() -> None:
    assert (STUDY_CT, STUDY_MR, STUDY_RADIOGRAPHY, STUDY_US, STUDY_XA, PRIOR_STUDY) == (
        STANDARD_STUDIES
    )


def test_sizes_for_scale() -> None:
    assert sizes_for_scale(1.0) == Sizes()
    big = sizes_for_scale(16)
    assert big.ct_slices == 64 and big.ct_size == 256 and big.us_size == 1024
    small = sizes_for_scale(0.1)
    assert small.ct_slices == 1 and small.ct_size == 64 and small.xa_size == 256
    with pytest.raises(ValueError):
        sizes_for_scale(0)
