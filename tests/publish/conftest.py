"""Synthetic second-pass files for publication tests: small DICOM objects made with pydicom
(new 2.25 UIDs, PatientIdentityRemoved = YES) and JPEGs made with Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from tftt.publish.base import PublishableCase, PublishableFrame, PublishableImage

CASE_ID = "c-5eed5eed5eed5eed"
STUDY = "2.25.11111111111111111111"


def write_dicom(
    path: Path,
    sop_uid: str,
    *,
    series: int = 1,
    instance: int = 1,
    frames: int = 1,
    deidentified: bool = True,
) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = f"2.25.2222222222222222222{series}"
    ds.SeriesNumber = series
    ds.InstanceNumber = instance
    ds.Modality = "OT"
    if deidentified:
        ds.PatientIdentityRemoved = "YES"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = bytes(64 * frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_jpeg(path: Path, shade: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((16, 16), shade, dtype=np.uint8)
    pixels[4:12, 4:12] = 255 - shade
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="JPEG", quality=90)
    path.write_bytes(out.getvalue())
    return path


def make_image(
    folder: Path,
    n: int,
    *,
    frames: int = 1,
    key_frames: list[int] | None = None,
    annotated: bool = False,
    series: int = 1,
) -> PublishableImage:
    sop = f"2.25.3333333333333333333{n}"
    dicom = write_dicom(
        folder / "second_pass" / f"{sop}.dcm", sop, series=series, instance=n, frames=frames
    )
    published = []
    for number in key_frames or list(range(1, frames + 1)):
        jpeg = write_jpeg(folder / "jpeg" / f"{n}-{number}.jpg", 10 * number)
        note = write_jpeg(folder / "jpeg" / f"{n}-{number}-a.jpg", 200) if annotated else None
        published.append(PublishableFrame(number=number, jpeg=jpeg, annotated_jpeg=note))
    return PublishableImage(dicom=dicom, frames=tuple(published))


@pytest.fixture
def sample_case(tmp_path: Path) -> PublishableCase:
    work = tmp_path / "work"
    return PublishableCase(
        case_id=CASE_ID,
        metadata={
            "title": "Pneumothorax after line placement",
            "history": "Dyspnoea after a central line.\nSecond line.",
            "findings": "Apical pleural line.",
            "diagnosis": "Pneumothorax",
            "keywords": ["chest", "pneumothorax"],
            "author": "Dr. Teacher",
            "abstract": "A classic case.",
        },
        images=(
            make_image(work, 1, series=1, annotated=True),
            make_image(work, 2, series=1, frames=5, key_frames=[1, 3, 5]),
            make_image(work, 3, series=2),
        ),
    )
