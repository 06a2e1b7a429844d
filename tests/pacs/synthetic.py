"""Small synthetic DICOM studies for the PACS adapter tests (fake values only).

:func:`build_study` writes a study of a few small instances in several transfer syntaxes and
SOP classes (so retrieves must keep each instance's stored syntax). :func:`write_large_instance`
writes one big uncompressed multi-frame fast, from one repeated buffer, without holding the
pixel data in memory.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    RLELossless,
    SecondaryCaptureImageStorage,
    XRayAngiographicImageStorage,
    generate_uid,
)

PATIENT_ID = "TFTT-SYN-0001"
PATIENT_NAME = "SYNTHETIC^PATIENT"


@dataclass(frozen=True)
class InstanceSpec:
    sop_class: UID
    transfer_syntax: UID
    modality: str
    bits: int = 16
    size: int = 64


@dataclass(frozen=True)
class SyntheticInstance:
    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    transfer_syntax: str
    pixel_data: bytes


@dataclass(frozen=True)
class SyntheticStudy:
    study_uid: str
    series_uids: tuple[str, ...]
    instances: tuple[SyntheticInstance, ...]

    @property
    def files(self) -> list[Path]:
        return [i.path for i in self.instances]

    def by_sop(self) -> dict[str, SyntheticInstance]:
        return {i.sop_instance_uid: i for i in self.instances}

    def in_series(self, series_uid: str) -> list[SyntheticInstance]:
        return [i for i in self.instances if i.series_uid == series_uid]


DEFAULT_SERIES: tuple[tuple[InstanceSpec, ...], ...] = (
    (
        InstanceSpec(CTImageStorage, ExplicitVRLittleEndian, "CT"),
        InstanceSpec(CTImageStorage, ExplicitVRLittleEndian, "CT"),
        InstanceSpec(CTImageStorage, ImplicitVRLittleEndian, "CT"),
    ),
    (
        InstanceSpec(MRImageStorage, RLELossless, "MR"),
        InstanceSpec(MRImageStorage, RLELossless, "MR"),
    ),
    (InstanceSpec(SecondaryCaptureImageStorage, JPEG2000Lossless, "OT", bits=8),),
)


def _base_dataset(study_uid: str, series_uid: str, spec: InstanceSpec, number: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = spec.sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101010"
    ds.AccessionNumber = "TFTTACC01"
    ds.StudyID = "1"
    ds.StudyDescription = "SYNTHETIC STUDY"
    ds.Modality = spec.modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.ReferringPhysicianName = ""
    return ds


def build_study(
    dest: Path,
    series: Sequence[Sequence[InstanceSpec]] = DEFAULT_SERIES,
    *,
    seed: int = 0,
) -> SyntheticStudy:
    """Write a study into ``dest`` (one file per instance) and describe it.

    Pixel values come from ``seed``, so each instance's pixel data is distinct.
    """
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    study_uid = generate_uid()
    series_uids: list[str] = []
    instances: list[SyntheticInstance] = []
    for series_number, specs in enumerate(series, start=1):
        series_uid = generate_uid()
        series_uids.append(series_uid)
        for number, spec in enumerate(specs, start=1):
            ds = _base_dataset(study_uid, series_uid, spec, number)
            ds.SeriesNumber = series_number
            dtype = np.uint16 if spec.bits > 8 else np.uint8
            high = 4096 if spec.bits > 8 else 256
            pixels = rng.integers(0, high, (spec.size, spec.size), dtype=dtype)
            bits_stored = 12 if spec.bits > 8 else 8
            ds.set_pixel_data(pixels, "MONOCHROME2", bits_stored, generate_instance_uid=False)
            if spec.transfer_syntax in (RLELossless, JPEG2000Lossless):
                ds.compress(spec.transfer_syntax, generate_instance_uid=False)
            else:
                ds.file_meta.TransferSyntaxUID = spec.transfer_syntax
            path = dest / f"{len(instances):04d}.dcm"
            ds.save_as(
                path,
                enforce_file_format=True,
                implicit_vr=spec.transfer_syntax == ImplicitVRLittleEndian,
            )
            instances.append(
                SyntheticInstance(
                    path=path,
                    sop_instance_uid=str(ds.SOPInstanceUID),
                    sop_class_uid=str(ds.SOPClassUID),
                    series_uid=series_uid,
                    transfer_syntax=str(spec.transfer_syntax),
                    pixel_data=bytes(ds.PixelData),
                )
            )
    return SyntheticStudy(study_uid, tuple(series_uids), tuple(instances))


@dataclass(frozen=True)
class LargeInstance:
    path: Path
    sop_instance_uid: str
    pixel_bytes: int
    pixel_sha256: str


def write_large_instance(
    path: Path,
    study_uid: str,
    series_uid: str,
    *,
    frames: int,
    rows: int = 512,
    columns: int = 512,
    seed: int = 0,
) -> LargeInstance:
    """Write an uncompressed 16-bit XA multi-frame of ``frames`` frames to ``path``.

    The header is written by pydicom; the Pixel Data element (always the last element) is
    appended by hand from one repeated frame-sized buffer, so writing 1 GB takes seconds and
    little memory. Returns the pixel data's size and SHA-256 for comparisons.
    """
    ds = _base_dataset(
        study_uid, series_uid, InstanceSpec(XRayAngiographicImageStorage,
                                            ExplicitVRLittleEndian, "XA"), 1
    )
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063
    ds.FrameTime = 33.3
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    frame = np.random.default_rng(seed).integers(0, 4096, (rows, columns), dtype="<u2").tobytes()
    length = len(frame) * frames
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        pydicom.dcmwrite(handle, ds, enforce_file_format=True)
        handle.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        for index in range(frames):
            # Stamp the frame number so a reordered or repeated frame changes the hash.
            stamped = struct.pack("<I", index) + frame[4:]
            handle.write(stamped)
            digest.update(stamped)
    return LargeInstance(path, str(ds.SOPInstanceUID), length, digest.hexdigest())
