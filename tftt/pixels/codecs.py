"""Decode pixel data to numpy and encode it back, for every transfer syntax TFTT accepts.

Pure: datasets and arrays in, new datasets and arrays out; nothing here reads or writes files
or changes an input dataset. UIDs are never changed here (pydicom's ``set_pixel_data`` and
``compress`` would make a new SOP Instance UID; this module writes the Image Pixel module
itself instead).

Decoding (:func:`decode_frames`) returns every frame as one array shaped
``(frames, rows, columns[, samples])``, also for a single frame. Colour comes back as RGB with
the header values that describe it (YBR_FULL, YBR_FULL_422, YBR_ICT and YBR_RCT become RGB,
PlanarConfiguration 0; PALETTE COLOR is expanded through its lookup table to RGB).

Which decoder handles which syntax (measured with pydicom 3.0.2; ``available`` = installed):

=============================  ==================================================================
transfer syntax                decoders tried, in this order
=============================  ==================================================================
implicit / explicit VR LE,     pydicom (native)
explicit VR BE, deflated
RLE Lossless                   pylibjpeg-rle, then pydicom's own RLE decoder
JPEG Baseline (8-bit)          Pillow (libjpeg-turbo, fastest), then pylibjpeg-libjpeg, then GDCM
JPEG Extended (.51)            Pillow for 8-bit data; 12-bit data need pylibjpeg-libjpeg
                               (Pillow and python-gdcm fail on 12-bit)
JPEG Lossless (.57, .70)       pylibjpeg-libjpeg (GPL-3.0) or python-gdcm (Apache-2.0) only
JPEG-LS (.80, .81)             pyjpegls, then pylibjpeg-libjpeg, then GDCM
JPEG 2000 (.90, .91)           pylibjpeg-openjpeg, then Pillow (openjpeg), then GDCM
HTJ2K (.201-.203)              pylibjpeg-openjpeg
MPEG-2/4, HEVC, anything else  none: :class:`~tftt.errors.UnsupportedInputError`
=============================  ==================================================================

TFTT's required dependencies are the MIT/BSD/HPND ones (pylibjpeg, pylibjpeg-openjpeg,
pylibjpeg-rle, pyjpegls, Pillow). ``pylibjpeg-libjpeg`` is GPL-3.0 and is *not* required; when a
site installs it, JPEG Lossless and 12-bit JPEG Extended become decodable with no code change
(python-gdcm adds JPEG Lossless only). Without them, those inputs raise
``UnsupportedInputError`` with code ``unsupported-transfer-syntax``; a test checks this by
hiding the GPL package from a subprocess.

Encoding (:func:`encode_pixels`) writes Explicit VR Little Endian by default, or RLE Lossless,
JPEG-LS Lossless or JPEG 2000 Lossless (which needs at least 32x32 pixels). Frames can be
encoded (and decoded) in parallel over processes (``workers``), which pays off for JPEG 2000:
it is codec-bound and about 5-10x slower than the others.
"""

from __future__ import annotations

import copy
import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from pydicom import uid as dcm_uid
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.pixels import get_decoder, get_encoder
from pydicom.pixels.processing import apply_color_lut
from pydicom.tag import Tag
from pydicom.uid import UID

from tftt.errors import UnsupportedInputError

PIXEL_DATA = Tag(0x7FE0, 0x0010)
EXTENDED_OFFSET_TABLE = Tag(0x7FE0, 0x0001)
EXTENDED_OFFSET_TABLE_LENGTHS = Tag(0x7FE0, 0x0002)
FLOAT_PIXEL_DATA = Tag(0x7FE0, 0x0008)
DOUBLE_FLOAT_PIXEL_DATA = Tag(0x7FE0, 0x0009)
_PIXEL_TAGS = frozenset({PIXEL_DATA, EXTENDED_OFFSET_TABLE, EXTENDED_OFFSET_TABLE_LENGTHS})

#: Syntaxes whose pixel data are stored uncompressed.
NATIVE_SYNTAXES = frozenset(
    {
        dcm_uid.ImplicitVRLittleEndian,
        dcm_uid.ExplicitVRLittleEndian,
        dcm_uid.DeflatedExplicitVRLittleEndian,
        dcm_uid.ExplicitVRBigEndian,
    }
)

#: Decoding plugins in the order tried, per compressed syntax (only installed ones are used).
PLUGIN_ORDER: dict[str, tuple[str, ...]] = {
    dcm_uid.RLELossless: ("pylibjpeg", "pydicom"),
    dcm_uid.JPEGBaseline8Bit: ("pillow", "pylibjpeg", "gdcm"),
    dcm_uid.JPEGExtended12Bit: ("pillow", "pylibjpeg", "gdcm"),
    dcm_uid.JPEGLossless: ("pylibjpeg", "gdcm"),
    dcm_uid.JPEGLosslessSV1: ("pylibjpeg", "gdcm"),
    dcm_uid.JPEGLSLossless: ("pyjpegls", "pylibjpeg", "gdcm"),
    dcm_uid.JPEGLSNearLossless: ("pyjpegls", "pylibjpeg", "gdcm"),
    dcm_uid.JPEG2000Lossless: ("pylibjpeg", "pillow", "gdcm"),
    dcm_uid.JPEG2000: ("pylibjpeg", "pillow", "gdcm"),
    dcm_uid.HTJ2KLossless: ("pylibjpeg",),
    dcm_uid.HTJ2KLosslessRPCL: ("pylibjpeg",),
    dcm_uid.HTJ2K: ("pylibjpeg",),
}

#: Syntaxes that are (or may be) lossy, with the LossyImageCompressionMethod code of each.
LOSSY_METHODS: dict[str, str] = {
    dcm_uid.JPEGBaseline8Bit: "ISO_10918_1",
    dcm_uid.JPEGExtended12Bit: "ISO_10918_1",
    dcm_uid.JPEGLSNearLossless: "ISO_14495_1",
    dcm_uid.JPEG2000: "ISO_15444_1",
    dcm_uid.HTJ2K: "ISO_15444_15",
    dcm_uid.MPEG2MPML: "ISO_13818_2",
    dcm_uid.MPEG2MPHL: "ISO_13818_2",
    dcm_uid.MPEG4HP41: "ISO_14496_10",
    dcm_uid.MPEG4HP41BD: "ISO_14496_10",
    dcm_uid.HEVCMP51: "ISO_23008_2",
    dcm_uid.HEVCM10P51: "ISO_23008_2",
}


class OutputSyntax(StrEnum):
    """The lossless transfer syntaxes an edited image can be written in."""

    EXPLICIT_VR_LITTLE_ENDIAN = "explicit"
    RLE_LOSSLESS = "rle"
    JPEG_LS_LOSSLESS = "jpeg-ls"
    JPEG_2000_LOSSLESS = "jpeg-2000"

    @property
    def uid(self) -> UID:
        return {
            OutputSyntax.EXPLICIT_VR_LITTLE_ENDIAN: dcm_uid.ExplicitVRLittleEndian,
            OutputSyntax.RLE_LOSSLESS: dcm_uid.RLELossless,
            OutputSyntax.JPEG_LS_LOSSLESS: dcm_uid.JPEGLSLossless,
            OutputSyntax.JPEG_2000_LOSSLESS: dcm_uid.JPEG2000Lossless,
        }[self]


@dataclass(frozen=True)
class DecodedPixels:
    """All frames of an image and the Image Pixel values that describe them.

    ``frames`` is ``(frames, rows, columns)`` or ``(frames, rows, columns, 3)`` and writeable.
    """

    frames: np.ndarray
    photometric_interpretation: str
    bits_stored: int
    pixel_representation: int

    @property
    def samples_per_pixel(self) -> int:
        return 3 if self.frames.ndim == 4 else 1


# --- inspection ------------------------------------------------------------------------------


def transfer_syntax_of(ds: Dataset) -> UID:
    """The dataset's Transfer Syntax UID (from its file meta information).

    Raises:
        UnsupportedInputError: code ``unsupported-transfer-syntax`` when it is missing.
    """
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if not ts:
        raise UnsupportedInputError(
            "the dataset has no Transfer Syntax UID (0002,0010)", code="unsupported-transfer-syntax"
        )
    return UID(str(ts))


def frame_count(ds: Dataset) -> int:
    """NumberOfFrames, or 1 when absent or empty."""
    value = ds.get("NumberOfFrames")
    try:
        return max(int(value), 1) if value not in (None, "") else 1
    except (TypeError, ValueError):
        return 1


def check_decodable(ds: Dataset) -> None:
    """Raise unless this installation can decode the dataset's pixel data.

    Raises:
        UnsupportedInputError: ``no-pixel-data``, ``unsupported-pixel-data`` (float pixel data,
            bit depths other than 1, 8, 16, 32) or ``unsupported-transfer-syntax`` (naming the
            syntax UID and what would add support).
    """
    if FLOAT_PIXEL_DATA in ds or DOUBLE_FLOAT_PIXEL_DATA in ds:
        raise UnsupportedInputError(
            "float pixel data (7FE0,0008/0009) cannot be edited", code="unsupported-pixel-data"
        )
    if PIXEL_DATA not in ds:
        raise UnsupportedInputError(
            "the dataset has no Pixel Data (7FE0,0010)", code="no-pixel-data"
        )
    bits = ds.get("BitsAllocated")
    if bits not in (1, 8, 16, 32):
        raise UnsupportedInputError(
            f"BitsAllocated {bits!r} is not supported", code="unsupported-pixel-data"
        )
    ts = transfer_syntax_of(ds)
    if ts in NATIVE_SYNTAXES:
        return
    if ts not in PLUGIN_ORDER:
        raise UnsupportedInputError(
            f"transfer syntax {ts} ({ts.name}) cannot be decoded by TFTT",
            code="unsupported-transfer-syntax",
        )
    if not _plugins_for(ts):
        raise UnsupportedInputError(
            f"transfer syntax {ts} ({ts.name}) needs a decoder that is not installed "
            f"({_missing_hint(ts)})",
            code="unsupported-transfer-syntax",
        )


def is_lossy(ds: Dataset) -> bool:
    """True when the pixel data have been, or may have been, compressed lossily.

    Near-lossless JPEG-LS (.81), JPEG 2000 (.91) and HTJ2K (.203) count as lossy: their
    header does not prove the stream was reversible.
    """
    if str(ds.get("LossyImageCompression", "")).strip() == "01":
        return True
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return bool(ts) and str(ts) in LOSSY_METHODS


def _plugins_for(ts: UID) -> list[str]:
    decoder = get_decoder(ts)
    available = set(decoder.available_plugins)
    return [p for p in PLUGIN_ORDER.get(ts, ()) if p in available]


def _missing_hint(ts: UID) -> str:
    if ts in (dcm_uid.JPEGLossless, dcm_uid.JPEGLosslessSV1, dcm_uid.JPEGExtended12Bit):
        return "install python-gdcm, or pylibjpeg-libjpeg (GPL-3.0)"
    if ts in (dcm_uid.JPEGLSLossless, dcm_uid.JPEGLSNearLossless):
        return "install pyjpegls"
    if ts in (dcm_uid.RLELossless,):
        return "install pylibjpeg-rle"
    return "install pylibjpeg-openjpeg"


# --- decoding --------------------------------------------------------------------------------


def decode_frames(
    ds: Dataset,
    *,
    index: int | None = None,
    workers: int = 1,
    executor: Executor | None = None,
) -> DecodedPixels:
    """Decode every frame of ``ds`` (or only frame ``index``, counted from 0).

    ``workers`` > 1 (or an ``executor``) decodes compressed frames in parallel processes.
    The result always has a frame axis.

    Raises:
        UnsupportedInputError: see :func:`check_decodable`; also ``unsupported-transfer-syntax``
            when every installed decoder fails on the data (the message names the syntax and
            the decoders' error types, not their messages).
    """
    check_decodable(ds)
    ts = transfer_syntax_of(ds)
    n_frames = frame_count(ds)
    if index is not None and not 0 <= index < n_frames:
        raise UnsupportedInputError(
            f"frame index {index} is outside 0..{n_frames - 1}", code="frame-out-of-range"
        )
    parallel = (workers > 1 or executor is not None) and index is None and n_frames > 1
    if parallel and ts not in NATIVE_SYNTAXES:
        arr, meta = _decode_parallel(ds, ts, n_frames, workers, executor)
    else:
        arr, meta = _decode(ds, ts, index)
    if arr.ndim == (3 if meta["samples"] == 3 else 2):
        arr = arr[np.newaxis]
    if not arr.flags.writeable:
        arr = arr.copy()
    pi = str(meta["photometric_interpretation"])
    bits_stored = int(meta["bits_stored"])
    representation = int(meta["pixel_representation"])
    if pi == "PALETTE COLOR":
        arr = np.ascontiguousarray(apply_color_lut(arr, ds))
        pi, representation = "RGB", 0
        bits_stored = 16 if arr.dtype.itemsize == 2 else 8
    return DecodedPixels(
        frames=arr,
        photometric_interpretation=pi,
        bits_stored=bits_stored,
        pixel_representation=representation,
    )


_RGB: dict[str, Any] = {"as_rgb": True}


def _decode(ds: Dataset, ts: UID, index: int | None) -> tuple[np.ndarray, dict[str, Any]]:
    decoder = get_decoder(ts)
    if ts in NATIVE_SYNTAXES:
        arr, meta = decoder.as_array(ds, index=index, **_RGB)
        return arr, _meta(meta)
    failures: list[str] = []
    for plugin in _plugins_for(ts):
        try:
            if index is not None:
                arr, meta = decoder.as_array(ds, index=index, decoding_plugin=plugin, **_RGB)
            else:
                arr, meta = _decode_frame_by_frame(decoder, ds, plugin)
        except Exception as exc:  # a plugin failing: try the next one
            failures.append(f"{plugin}: {type(exc).__name__}")
            continue
        return arr, _meta(meta)
    if not failures:
        raise UnsupportedInputError(
            f"transfer syntax {ts} ({ts.name}) needs a decoder that is not installed "
            f"({_missing_hint(ts)})",
            code="unsupported-transfer-syntax",
        )
    raise UnsupportedInputError(
        f"pixel data in transfer syntax {ts} ({ts.name}) could not be decoded "
        f"({'; '.join(failures)})",
        code="unsupported-transfer-syntax",
    )


def _decode_frame_by_frame(
    decoder: Any, ds: Dataset, plugin: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """All frames into one array, converting colour one frame at a time.

    pydicom converts YBR to RGB in floating point; doing it per frame keeps that temporary at
    one frame instead of eight times the whole cine.
    """
    n_frames = frame_count(ds)
    out: np.ndarray | None = None
    meta: dict[str, Any] = {}
    count = 0
    for frame, properties in decoder.iter_array(ds, decoding_plugin=plugin, **_RGB):
        if count == n_frames:
            break
        meta = properties
        if out is None:
            out = np.empty((n_frames, *frame.shape), dtype=frame.dtype)
        out[count] = frame
        count += 1
    if out is None or count != n_frames:
        raise ValueError(f"found {count} of {n_frames} frames")
    return out, meta


def _meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "photometric_interpretation": str(meta["photometric_interpretation"]),
        "bits_stored": int(meta["bits_stored"]),
        "pixel_representation": int(meta["pixel_representation"]),
        "samples": int(meta["samples_per_pixel"]),
    }


_PIXEL_MODULE_KEYWORDS = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
)


# Small chunks keep few frames in flight between processes (pickled copies), at a small cost.
_CHUNKS_PER_WORKER = 8


def _chunk_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i + 1] > edges[i]]


def _decode_parallel(
    ds: Dataset, ts: UID, n_frames: int, workers: int, executor: Executor | None
) -> tuple[np.ndarray, dict[str, Any]]:
    frames = list(iter_frame_bytes(ds))
    chunks: list[Dataset] = []
    for start, stop in _chunk_bounds(n_frames, max(workers, 2) * _CHUNKS_PER_WORKER):
        part = Dataset()
        part.file_meta = FileMetaDataset()
        part.file_meta.TransferSyntaxUID = ts
        for keyword in _PIXEL_MODULE_KEYWORDS:
            if keyword in ds:
                setattr(part, keyword, copy.deepcopy(ds[keyword].value))
        part.NumberOfFrames = stop - start
        part.PixelData = encapsulate(frames[start:stop])
        part["PixelData"].VR = "OB"
        chunks.append(part)
    del frames
    out: np.ndarray | None = None
    meta: dict[str, Any] = {}
    position = 0
    with _pool(workers, executor) as pool:
        for arr, chunk_meta in pool.map(_decode_chunk, chunks):  # in order; copied as they come
            if out is None:
                out = np.empty((n_frames, *arr.shape[1:]), dtype=arr.dtype)
                meta = chunk_meta
            out[position : position + len(arr)] = arr
            position += len(arr)
    if out is None or position != n_frames:
        raise UnsupportedInputError(
            f"decoded {position} of {n_frames} frames", code="unsupported-transfer-syntax"
        )
    return out, meta


def _decode_chunk(part: Dataset) -> tuple[np.ndarray, dict[str, Any]]:
    ts = transfer_syntax_of(part)
    arr, meta = _decode(part, ts, None)
    if arr.ndim == (3 if meta["samples"] == 3 else 2):
        arr = arr[np.newaxis]
    return arr, meta


class _pool:
    """An executor for one call: the caller's, or a short-lived process pool."""

    def __init__(self, workers: int, executor: Executor | None) -> None:
        self._given = executor
        self._own: ProcessPoolExecutor | None = None
        self._workers = max(workers, 1)

    def __enter__(self) -> Executor:
        if self._given is not None:
            return self._given
        # forkserver: safe in a process that runs threads (Prefect). The server imports the
        # codecs once, so each worker is a cheap fork of it rather than a fresh interpreter.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._own = ProcessPoolExecutor(max_workers=self._workers, mp_context=context)
        return self._own

    def __exit__(self, *exc: object) -> None:
        if self._own is not None:
            self._own.shutdown(wait=True)


# --- encoding --------------------------------------------------------------------------------


def copy_without_pixel_data(ds: Dataset) -> Dataset:
    """A deep copy of ``ds`` (and its file meta) without Pixel Data and its offset tables.

    Unparsed (raw) elements are shared, not parsed: they are immutable. The original encoding
    is recorded so pydicom can re-encode raw elements when the output syntax differs.
    """
    new = Dataset()
    implicit, little = ds.original_encoding
    new.set_original_encoding(implicit, little, ds.original_character_set)
    for elem in ds.elements():
        if elem.tag in _PIXEL_TAGS:
            continue
        if isinstance(elem, RawDataElement):
            new[elem.tag] = elem
        else:
            new[elem.tag] = copy.deepcopy(elem)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        new.file_meta = copy.deepcopy(meta)
    preamble = getattr(ds, "preamble", None)
    if preamble is not None:
        new.preamble = preamble
    return new


def copy_dataset(ds: Dataset) -> Dataset:
    """A deep copy of ``ds`` whose Pixel Data bytes are the same (not re-encoded) bytes."""
    new = copy_without_pixel_data(ds)
    for tag in (EXTENDED_OFFSET_TABLE, EXTENDED_OFFSET_TABLE_LENGTHS, PIXEL_DATA):
        if tag in ds:
            elem = ds.get_item(tag)
            new[tag] = elem if isinstance(elem, RawDataElement) else copy.copy(elem)
    return new


def encode_pixels(
    template: Dataset,
    pixels: DecodedPixels,
    syntax: OutputSyntax = OutputSyntax.EXPLICIT_VR_LITTLE_ENDIAN,
    *,
    source: Dataset | None = None,
    workers: int = 1,
    executor: Executor | None = None,
) -> Dataset:
    """A new dataset: ``template``'s attributes with ``pixels`` as its pixel data in ``syntax``.

    The Image Pixel module (Rows, Columns, NumberOfFrames, PhotometricInterpretation,
    PlanarConfiguration, Bits*, PixelRepresentation) is rewritten to describe ``pixels``;
    palette lookup tables are dropped when the result is not PALETTE COLOR. UIDs are kept.
    ``source`` (default ``template``) is the dataset the pixels came from: when it was lossy,
    LossyImageCompression stays "01" and its method and ratio are recorded (see
    :func:`lossy_compression_attributes`). ``workers`` > 1 (or ``executor``) encodes frames in
    parallel processes; the bytes are the same as a serial encode.

    Raises:
        UnsupportedInputError: code ``unsupported-output-syntax`` when ``syntax`` cannot hold
            these pixels (e.g. JPEG-LS of 32-bit data), or the encoder is not installed.
    """
    new = pixel_header(template, pixels, source=source)
    payload = encode_payload(pixels, syntax, workers=workers, executor=executor)
    attach_pixel_data(new, payload, syntax, bits_allocated=pixels.frames.dtype.itemsize * 8)
    return new


def pixel_header(
    template: Dataset, pixels: DecodedPixels, *, source: Dataset | None = None
) -> Dataset:
    """A copy of ``template`` without pixel data whose Image Pixel module describes ``pixels``.

    Also carries the lossy-compression history of ``source`` (default ``template``). Attach
    the pixel data with :func:`attach_pixel_data`. UIDs are kept.
    """
    new = copy_without_pixel_data(template)
    _write_pixel_module(new, pixels, template)
    new.update(lossy_compression_attributes(template if source is None else source))
    return new


def encode_payload(
    pixels: DecodedPixels,
    syntax: OutputSyntax,
    *,
    workers: int = 1,
    executor: Executor | None = None,
) -> bytes | list[bytes]:
    """Little-endian bytes (Explicit VR LE) or one encoded bytes object per frame.

    Raises:
        UnsupportedInputError: code ``unsupported-output-syntax``.
    """
    frames = pixels.frames
    if syntax is OutputSyntax.EXPLICIT_VR_LITTLE_ENDIAN:
        # tobytes() writes C order from a strided (cropped) view: one copy, not two.
        return np.asarray(frames, dtype=frames.dtype.newbyteorder("<")).tobytes()
    return encode_frame_list(frames, pixels, syntax, workers=workers, executor=executor)


def attach_pixel_data(
    ds: Dataset, payload: bytes | list[bytes], syntax: OutputSyntax, *, bits_allocated: int
) -> None:
    """Set Pixel Data (native bytes, or encoded frames to encapsulate) and the syntax, in place."""
    if isinstance(payload, bytes):
        if syntax is not OutputSyntax.EXPLICIT_VR_LITTLE_ENDIAN:
            raise ValueError("native bytes need the Explicit VR Little Endian syntax")
        set_native_pixel_data(ds, payload, bits_allocated)
    else:
        _set_encapsulated(ds, payload, syntax.uid)


def set_native_pixel_data(ds: Dataset, data: bytes | bytearray, bits_allocated: int) -> None:
    """Store uncompressed little-endian pixel bytes in ``ds`` (Explicit VR Little Endian)."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    for tag in (EXTENDED_OFFSET_TABLE, EXTENDED_OFFSET_TABLE_LENGTHS):
        if tag in ds:
            del ds[tag]
    ds[PIXEL_DATA] = DataElement(PIXEL_DATA, "OW" if bits_allocated > 8 else "OB", data)
    _set_syntax(ds, dcm_uid.ExplicitVRLittleEndian)


def _set_encapsulated(ds: Dataset, encoded: list[bytes], ts: UID) -> None:
    for tag in (EXTENDED_OFFSET_TABLE, EXTENDED_OFFSET_TABLE_LENGTHS):
        if tag in ds:
            del ds[tag]
    total = (len(encoded) - 1) * 8 + sum(len(f) for f in encoded[:-1])
    if total > 2**32 - 1:
        data, offsets, lengths = encapsulate_extended(encoded)
        ds[EXTENDED_OFFSET_TABLE] = DataElement(EXTENDED_OFFSET_TABLE, "OV", offsets)
        ds[EXTENDED_OFFSET_TABLE_LENGTHS] = DataElement(
            EXTENDED_OFFSET_TABLE_LENGTHS, "OV", lengths
        )
    else:
        data = encapsulate(encoded, has_bot=True)
    elem = DataElement(PIXEL_DATA, "OB", data)
    elem.is_undefined_length = True
    ds[PIXEL_DATA] = elem
    _set_syntax(ds, ts)


def _set_syntax(ds: Dataset, ts: UID) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    meta.TransferSyntaxUID = ts
    if "SOPClassUID" in ds and "MediaStorageSOPClassUID" not in meta:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds and "MediaStorageSOPInstanceUID" not in meta:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


_PALETTE_KEYWORDS = (
    *(k for k in _PIXEL_MODULE_KEYWORDS if "Palette" in k),
    "PaletteColorLookupTableUID",
)


def _write_pixel_module(new: Dataset, pixels: DecodedPixels, template: Dataset) -> None:
    frames = pixels.frames
    n, rows, cols = frames.shape[:3]
    new.Rows = rows
    new.Columns = cols
    if "NumberOfFrames" in template or n > 1:
        new.NumberOfFrames = n
    new.SamplesPerPixel = pixels.samples_per_pixel
    new.PhotometricInterpretation = pixels.photometric_interpretation
    if pixels.samples_per_pixel == 3:
        new.PlanarConfiguration = 0
    elif "PlanarConfiguration" in new:
        del new.PlanarConfiguration
    new.BitsAllocated = frames.dtype.itemsize * 8
    new.BitsStored = pixels.bits_stored
    new.HighBit = pixels.bits_stored - 1
    new.PixelRepresentation = pixels.pixel_representation
    if pixels.photometric_interpretation != "PALETTE COLOR":
        for keyword in _PALETTE_KEYWORDS:
            if keyword in new:
                delattr(new, keyword)


def encode_frame_list(
    frames: np.ndarray,
    pixels: DecodedPixels,
    syntax: OutputSyntax,
    *,
    workers: int = 1,
    executor: Executor | None = None,
) -> list[bytes]:
    """Encode each frame of ``frames`` (``(n, rows, cols[, 3])``) losslessly in ``syntax``.

    Raises:
        UnsupportedInputError: code ``unsupported-output-syntax``.
    """
    if syntax is OutputSyntax.EXPLICIT_VR_LITTLE_ENDIAN:
        raise ValueError("Explicit VR Little Endian is not an encapsulated syntax")
    encoder = get_encoder(syntax.uid)
    if not encoder.is_available:
        raise UnsupportedInputError(
            f"no encoder is installed for {syntax.uid} ({syntax.uid.name})",
            code="unsupported-output-syntax",
        )
    options = {
        "rows": frames.shape[1],
        "columns": frames.shape[2],
        "samples_per_pixel": pixels.samples_per_pixel,
        "bits_allocated": frames.dtype.itemsize * 8,
        "bits_stored": pixels.bits_stored,
        "pixel_representation": pixels.pixel_representation,
        "photometric_interpretation": pixels.photometric_interpretation,
        "number_of_frames": 1,
        "planar_configuration": 0,
    }
    if syntax is OutputSyntax.JPEG_2000_LOSSLESS and min(frames.shape[1:3]) < 32:
        raise UnsupportedInputError(
            "JPEG 2000 needs images of at least 32x32 pixels "
            f"(this one is {frames.shape[2]}x{frames.shape[1]})",
            code="unsupported-output-syntax",
        )
    n = frames.shape[0]
    if (workers > 1 or executor is not None) and n > 1:
        bounds = _chunk_bounds(n, max(workers, 2) * _CHUNKS_PER_WORKER)
        jobs = [(str(syntax.uid), frames[a:b], options) for a, b in bounds]
        with _pool(workers, executor) as pool:
            parts = list(pool.map(_encode_chunk, jobs))
        return [f for part in parts for f in part]
    return _encode_chunk((str(syntax.uid), frames, options))


def _encode_chunk(job: tuple[str, np.ndarray, dict[str, Any]]) -> list[bytes]:
    ts, frames, options = job
    encoder = get_encoder(UID(ts))
    out: list[bytes] = []
    for frame in frames:
        try:
            out.append(encoder.encode(np.ascontiguousarray(frame), **options))
        except (ValueError, RuntimeError, TypeError) as exc:
            raise UnsupportedInputError(
                f"these pixels cannot be encoded as {ts} ({UID(ts).name}): {type(exc).__name__}",
                code="unsupported-output-syntax",
            ) from None
    return out


# --- lossy compression attributes ----------------------------------------------------------


def lossy_compression_attributes(source: Dataset) -> Dataset:
    """LossyImageCompression, -Ratio and -Method for data decoded from ``source``.

    Empty when the source was never lossy. Otherwise LossyImageCompression is "01"; when the
    source's own syntax is lossy and its method is not yet the last recorded one, the method
    and the source's compression ratio (decoded size / encoded size) are appended.
    """
    out = Dataset()
    if not is_lossy(source):
        return out
    out.LossyImageCompression = "01"
    methods = [str(m) for m in _as_list(source.get("LossyImageCompressionMethod"))]
    ratios = [str(r) for r in _as_list(source.get("LossyImageCompressionRatio"))]
    meta = getattr(source, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    method = LOSSY_METHODS.get(ts)
    if method is not None and (not methods or methods[-1] != method):
        ratio = _compression_ratio(source)
        if ratio is not None and len(ratios) == len(methods):
            methods.append(method)
            ratios.append(ratio)
    if methods:
        out.LossyImageCompressionMethod = methods if len(methods) > 1 else methods[0]
    if ratios:
        out.LossyImageCompressionRatio = ratios if len(ratios) > 1 else ratios[0]
    return out


def _as_list(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _compression_ratio(ds: Dataset) -> str | None:
    try:
        encoded = len(ds.PixelData)
        decoded = (
            int(ds.Rows)
            * int(ds.Columns)
            * int(ds.get("SamplesPerPixel", 1))
            * frame_count(ds)
            * ((int(ds.BitsAllocated) + 7) // 8)
        )
    except (AttributeError, TypeError, ValueError):
        return None
    if encoded <= 0:
        return None
    return f"{decoded / encoded:.2f}"[:16]


def iter_frame_bytes(ds: Dataset) -> Iterator[bytes]:
    """The encoded frames of an encapsulated dataset (one bytes object per frame)."""
    extended = None
    if EXTENDED_OFFSET_TABLE in ds and EXTENDED_OFFSET_TABLE_LENGTHS in ds:
        extended = (ds[EXTENDED_OFFSET_TABLE].value, ds[EXTENDED_OFFSET_TABLE_LENGTHS].value)
    yield from generate_frames(
        ds.PixelData, number_of_frames=frame_count(ds), extended_offsets=extended
    )


# --- unedited images: JPEG text segments ---------------------------------------------------


def strip_jpeg_text_segments(ds: Dataset) -> Dataset:
    """A copy of an *unedited* compressed image whose frames carry no JPEG COM/APPn text.

    Pixel values are untouched (no re-encode): each frame's codestream goes through
    :func:`tftt.pixels.markers.strip_text_segments` and is re-encapsulated, one fragment per
    frame. Native (uncompressed) data are returned as an unchanged copy.

    Raises:
        UnsupportedInputError: see :func:`transfer_syntax_of`.
        RuntimeError: ``tftt.pixels.markers`` (the lead's module) is not installed yet.
    """
    ts = transfer_syntax_of(ds)
    if ts in NATIVE_SYNTAXES or PIXEL_DATA not in ds:
        return copy_dataset(ds)
    try:
        # CALL SITE for the lead's markers module (strip_text_segments(fragment, ts) -> bytes).
        from tftt.pixels.markers import strip_text_segments  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - until the lead's branch is merged
        raise RuntimeError("tftt.pixels.markers is required to strip JPEG text segments") from exc
    frames = [bytes(strip_text_segments(f, str(ts))) for f in iter_frame_bytes(ds)]
    new = copy_without_pixel_data(ds)
    _set_encapsulated(new, frames, ts)
    return new
