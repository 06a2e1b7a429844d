"""Synthetic DICOM images for the pixel tests, built from small numpy arrays.

Every syntax the pixel core decodes can be produced here: native ones through pydicom's writer,
RLE / JPEG-LS / JPEG 2000 through pydicom's encoders, JPEG Baseline through Pillow, and JPEG
Lossless (process 14, selection value 1) through the small encoder below.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pydicom
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder

US_MULTIFRAME = uid.UltrasoundMultiFrameImageStorage
CT_IMAGE = uid.CTImageStorage
XA_IMAGE = uid.XRayAngiographicImageStorage
ENHANCED_CT = uid.EnhancedCTImageStorage


def make_dataset(
    frames: np.ndarray,
    *,
    photometric: str | None = None,
    bits_stored: int | None = None,
    sop_class: str = US_MULTIFRAME,
    multiframe: bool = True,
    sop_uid: str = "1.2.826.0.1.3680043.10.1.1",
    series_uid: str = "1.2.826.0.1.3680043.10.1.2",
) -> Dataset:
    """An Explicit VR Little Endian dataset holding ``frames`` ``(n, rows, cols[, 3])``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.1.3"
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = "CANARY^PIXEL"
    ds.PatientID = "CANARY-ID-1"
    ds.Modality = "US"
    colour = frames.ndim == 4
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric or ("RGB" if colour else "MONOCHROME2")
    if colour:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
    if multiframe:
        ds.NumberOfFrames = frames.shape[0]
    elif frames.shape[0] != 1:
        raise ValueError("a single-frame dataset needs exactly one frame")
    ds.BitsAllocated = frames.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if frames.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(frames, dtype=frames.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    return ds


def reread(ds: Dataset) -> Dataset:
    """``ds`` written to bytes in its own transfer syntax and read back, as from a file."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def dataset_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def in_syntax(ds: Dataset, ts: str, frames: np.ndarray | None = None) -> Dataset:
    """A copy of the Explicit VR LE dataset ``ds`` in transfer syntax ``ts`` (read back)."""
    out = pydicom.dcmread(io.BytesIO(dataset_bytes(ds)))
    ts = uid.UID(ts)
    arr = frames if frames is not None else _frames_of(out)
    if ts == uid.ExplicitVRLittleEndian:
        pass
    elif ts in (uid.ImplicitVRLittleEndian, uid.DeflatedExplicitVRLittleEndian):
        out.file_meta.TransferSyntaxUID = ts
    elif ts == uid.ExplicitVRBigEndian:
        out.file_meta.TransferSyntaxUID = ts
        out.PixelData = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder(">")).tobytes()
    elif ts in (uid.RLELossless, uid.JPEGLSLossless, uid.JPEG2000Lossless, uid.JPEGLSNearLossless):
        encoder = get_encoder(ts)
        opts = _pixel_options(out)
        fragments = [encoder.encode(np.ascontiguousarray(f), **opts) for f in arr]
        _store(out, fragments, ts)
    elif ts == uid.JPEG2000:
        encoder = get_encoder(ts)
        opts = _pixel_options(out)
        fragments = [encoder.encode(np.ascontiguousarray(f), j2k_cr=[5], **opts) for f in arr]
        _store(out, fragments, ts)
        out.LossyImageCompression = "01"
    elif ts in (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit):
        fragments = [_pillow_jpeg(f) for f in arr]
        _store(out, fragments, ts)
        if arr.ndim == 4:
            out.PhotometricInterpretation = "YBR_FULL_422"
    elif ts in (uid.JPEGLossless, uid.JPEGLosslessSV1):
        fragments = [encode_jpeg_lossless(f, int(out.BitsStored)) for f in arr]
        _store(out, fragments, ts)
    else:
        raise ValueError(f"no test encoder for {ts}")
    return reread(out)


def _frames_of(ds: Dataset) -> np.ndarray:
    arr = ds.pixel_array
    single = arr.ndim == (3 if ds.SamplesPerPixel == 3 else 2)
    return arr[None] if single else arr


def _pixel_options(ds: Dataset) -> dict[str, object]:
    return {
        "rows": ds.Rows,
        "columns": ds.Columns,
        "samples_per_pixel": ds.SamplesPerPixel,
        "bits_allocated": ds.BitsAllocated,
        "bits_stored": ds.BitsStored,
        "pixel_representation": ds.PixelRepresentation,
        "photometric_interpretation": ds.PhotometricInterpretation,
        "number_of_frames": 1,
        "planar_configuration": 0,
    }


def _store(ds: Dataset, fragments: Sequence[bytes], ts: str) -> None:
    ds.PixelData = encapsulate(list(fragments))
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = ts


def _pillow_jpeg(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=95, subsampling=1)
    return buffer.getvalue()


# --- a minimal JPEG Lossless (process 14, SV1) encoder ------------------------------------------


def encode_jpeg_lossless(frame: np.ndarray, precision: int) -> bytes:
    """One greyscale frame as a JPEG Lossless codestream, predictor 1, point transform 0."""
    if frame.ndim != 2:
        raise ValueError("greyscale only")
    x = frame.astype(np.int64) & ((1 << precision) - 1)
    pred = np.empty_like(x)
    pred[0, 0] = 1 << (precision - 1)
    pred[0, 1:] = x[0, :-1]
    pred[1:, 0] = x[:-1, 0]
    pred[1:, 1:] = x[1:, :-1]
    diff = ((x - pred + 32768) % 65536) - 32768
    bits: list[tuple[int, int]] = []
    for d in diff.ravel().tolist():
        if d == -32768:
            bits.append((16, 5))
            continue
        size = abs(d).bit_length()
        bits.append((size, 5))  # canonical code of symbol `size` (all codes 5 bits long)
        if size and size < 16:
            bits.append((d if d > 0 else d + (1 << size) - 1, size))
    acc, nacc, out = 0, 0, bytearray()
    for value, length in bits:
        acc = (acc << length) | (value & ((1 << length) - 1))
        nacc += length
        while nacc >= 8:
            nacc -= 8
            byte = (acc >> nacc) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0x00)
    if nacc:
        byte = ((acc << (8 - nacc)) | ((1 << (8 - nacc)) - 1)) & 0xFF
        out.append(byte)
        if byte == 0xFF:
            out.append(0x00)
    rows, cols = frame.shape
    sof = bytes([0xFF, 0xC3, 0, 11, precision]) + rows.to_bytes(2, "big")
    sof += cols.to_bytes(2, "big") + bytes([1, 1, 0x11, 0])
    counts = [0] * 16
    counts[4] = 17
    dht = bytes([0xFF, 0xC4]) + (3 + 16 + 17).to_bytes(2, "big") + bytes([0x00])
    dht += bytes(counts) + bytes(range(17))
    sos = bytes([0xFF, 0xDA, 0, 8, 1, 1, 0x00, 1, 0, 0])
    return b"\xff\xd8" + sof + dht + sos + bytes(out) + b"\xff\xd9"
