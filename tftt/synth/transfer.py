"""Transfer syntaxes for synthetic objects: pure functions from a dataset to a re-encoded copy.

Inputs are never changed. Lossless compression goes through pydicom's encoders (RLE: pydicom
or pylibjpeg-rle; JPEG-LS: pyjpegls; JPEG 2000: pylibjpeg-openjpeg). pydicom has no JPEG
Baseline encoder, so Baseline frames are encoded with Pillow, a COM segment is inserted right
after SOI, and the frames are encapsulated. Explicit VR Big Endian is written by pydicom's
``dcmwrite`` once the file meta says so and every OW value has been byte-swapped here.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

_SOI = b"\xff\xd8"
_COM = b"\xff\xfe"


def _copy(ds: FileDataset) -> FileDataset:
    return copy.deepcopy(ds)


def _compress(ds: FileDataset, uid: UID) -> FileDataset:
    out = _copy(ds)
    pydicom.pixels.compress(out, uid, generate_instance_uid=False)
    return out


def with_rle(ds: FileDataset) -> FileDataset:
    """A copy compressed with RLE Lossless."""
    return _compress(ds, RLELossless)


def with_jpegls_lossless(ds: FileDataset) -> FileDataset:
    """A copy compressed with JPEG-LS Lossless (needs pyjpegls)."""
    return _compress(ds, JPEGLSLossless)


def with_j2k_lossless(ds: FileDataset) -> FileDataset:
    """A copy compressed with JPEG 2000 Lossless (needs pylibjpeg-openjpeg)."""
    return _compress(ds, JPEG2000Lossless)


def jpeg_with_comment(frame: np.ndarray, comment: str, quality: int) -> bytes:
    """One 8-bit grayscale frame as a JPEG Baseline codestream with a COM segment after SOI.

    Raises:
        ValueError: the frame is not 2-D uint8, or the comment is too long for one segment.
    """
    if frame.ndim != 2 or frame.dtype != np.uint8:
        raise ValueError("JPEG Baseline needs a 2-D uint8 frame")
    payload = comment.encode("latin-1")
    if len(payload) > 65533:
        raise ValueError("JPEG comment too long")
    buffer = io.BytesIO()
    Image.fromarray(frame, mode="L").save(buffer, format="JPEG", quality=quality)
    stream = buffer.getvalue()
    if not stream.startswith(_SOI):
        raise ValueError("encoder did not produce a JPEG codestream")
    segment = _COM + (len(payload) + 2).to_bytes(2, "big") + payload
    return _SOI + segment + stream[2:]


def with_jpeg_baseline(ds: FileDataset, *, comment: str, quality: int = 90) -> FileDataset:
    """A copy encoded as JPEG Baseline (lossy) whose every frame carries ``comment`` in COM.

    Raises:
        ValueError: the image is not 8-bit single-sample native data.
    """
    compressed = ds.file_meta.TransferSyntaxUID.is_compressed
    if ds.SamplesPerPixel != 1 or ds.BitsAllocated != 8 or compressed:
        raise ValueError("JPEG Baseline here needs native 8-bit grayscale")
    out = _copy(ds)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    arr = np.frombuffer(ds.PixelData, dtype=np.uint8)[: frames * ds.Rows * ds.Columns]
    arr = arr.reshape(frames, ds.Rows, ds.Columns)
    encoded = [jpeg_with_comment(frame, comment, quality) for frame in arr]
    out.PixelData = encapsulate(encoded)
    out["PixelData"].VR = "OB"
    out["PixelData"].is_undefined_length = True
    out.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    out.LossyImageCompression = "01"
    ratio = arr.nbytes / max(1, sum(len(e) for e in encoded))
    out.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]
    out.LossyImageCompressionMethod = "ISO_10918_1"
    return out


def as_implicit_vr(ds: FileDataset) -> FileDataset:
    """A copy to be written as Implicit VR Little Endian.

    Raises:
        ValueError: the pixel data is compressed.
    """
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        raise ValueError("only native datasets can change to implicit VR")
    out = _copy(ds)
    out.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return out


def _swap_ow(ds: Dataset) -> None:
    for elem in ds:
        if elem.VR == "OW" and isinstance(elem.value, bytes):
            elem.value = np.frombuffer(elem.value, dtype="<u2").astype(">u2").tobytes()
        elif elem.VR == "SQ":
            for item in elem.value:
                _swap_ow(item)


def as_big_endian(ds: FileDataset) -> FileDataset:
    """A copy to be written as Explicit VR Big Endian (retired, still read by many systems).

    pydicom encodes numbers in the requested byte order but leaves OB/OW/UN bytes alone, so
    every OW value (pixel data with more than 8 bits, overlay and curve data) is swapped here.

    Raises:
        ValueError: the pixel data is compressed or 8-bit (its VR would be ambiguous).
    """
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        raise ValueError("only native datasets can change to big endian")
    if ds.BitsAllocated != 16:
        raise ValueError("big endian copies are made of 16-bit images only")
    out = _copy(ds)
    out["PixelData"].VR = "OW"
    _swap_ow(out)
    out.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    return out


def encode(ds: FileDataset) -> bytes:
    """The DICOM file (preamble, ``DICM``, file meta, dataset) for ``ds``, in its transfer syntax.

    Raises:
        ValueError: pydicom refuses the dataset (invalid file meta, bad VR, ...).
    """
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
