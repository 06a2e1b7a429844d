import copy
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset

from tftt.errors import UnsupportedInputError
from tftt.pixels.codecs import (
    DecodedPixels,
    Encapsulation,
    FrameFormat,
    OutputSyntax,
    attach_payload,
    check_decodable,
    copy_dataset,
    copy_without_pixel_data,
    decode_frames,
    encode_frame_list,
    encode_pixels,
    is_lossy,
    lossy_compression_attributes,
    pixel_header,
    strip_jpeg_text_segments,
    transform_frames,
)

from .images import dataset_bytes, in_syntax, make_dataset, reread

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(20240611)
GREY12 = RNG.integers(0, 4096, (3, 36, 40), dtype=np.uint16)
SIGNED = RNG.integers(-2048, 2048, (2, 36, 40), dtype=np.int16)
RGB = RNG.integers(0, 256, (2, 36, 40, 3), dtype=np.uint8)

LOSSLESS_INPUTS = [
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.RLELossless,
    uid.JPEGLSLossless,
    uid.JPEG2000Lossless,
]


def _smooth_rgb(frames: int, rows: int, cols: int) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:cols]
    base = np.stack([x * 255 // cols, y * 255 // rows, (x + y) * 255 // (rows + cols)], axis=-1)
    return np.stack([np.roll(base, i, axis=1) for i in range(frames)]).astype(np.uint8)


@pytest.mark.parametrize("ts", LOSSLESS_INPUTS, ids=lambda t: t.name)
@pytest.mark.parametrize("arr", [GREY12, SIGNED, RGB], ids=["grey12", "signed12", "rgb"])
def test_lossless_syntaxes_decode_exactly_with_a_frame_axis(ts, arr):
    bits = 8 if arr.dtype == np.uint8 else 12
    ds = in_syntax(make_dataset(arr, bits_stored=bits), ts, arr)
    decoded = decode_frames(ds)
    assert decoded.frames.shape == arr.shape
    assert decoded.frames.flags.writeable
    np.testing.assert_array_equal(decoded.frames, arr)
    assert decoded.bits_stored == bits
    assert decoded.pixel_representation == int(arr.dtype.kind == "i")


@pytest.mark.parametrize("ts", [uid.JPEGLosslessSV1, uid.JPEGLossless], ids=lambda t: t.name)
@pytest.mark.parametrize("arr", [GREY12, SIGNED], ids=["grey12", "signed12"])
def test_jpeg_lossless_decodes_exactly_when_a_decoder_is_installed(ts, arr):
    ds = in_syntax(make_dataset(arr, bits_stored=12), ts, arr)
    try:
        check_decodable(ds)
    except UnsupportedInputError as exc:
        assert exc.code == "unsupported-transfer-syntax"
        assert "python-gdcm" in str(exc)
        pytest.skip("no JPEG Lossless decoder installed (needs pylibjpeg-libjpeg or python-gdcm)")
    np.testing.assert_array_equal(decode_frames(ds).frames, arr)


def test_single_frame_keeps_a_frame_axis_and_one_index_decodes_one_frame():
    single = make_dataset(GREY12[:1], bits_stored=12, multiframe=False)
    assert decode_frames(single).frames.shape == (1, 36, 40)
    rle = in_syntax(make_dataset(GREY12, bits_stored=12), uid.RLELossless, GREY12)
    second = decode_frames(rle, index=1)
    assert second.frames.shape == (1, 36, 40)
    np.testing.assert_array_equal(second.frames[0], GREY12[1])
    with pytest.raises(UnsupportedInputError, match=r"frame index 3 is outside 0\.\.2"):
        decode_frames(rle, index=3)


def test_jpeg_baseline_ybr_decodes_to_rgb_with_the_header_values_for_rgb():
    arr = _smooth_rgb(3, 48, 64)
    ds = in_syntax(make_dataset(arr), uid.JPEGBaseline8Bit, arr)
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    decoded = decode_frames(ds)
    assert decoded.photometric_interpretation == "RGB"
    assert decoded.frames.shape == arr.shape
    assert np.abs(decoded.frames.astype(int) - arr).mean() < 3


def test_native_ybr_full_is_converted_to_rgb():
    arr = _smooth_rgb(2, 16, 16)
    ybr = pydicom.pixels.convert_color_space(arr, "RGB", "YBR_FULL")
    ds = make_dataset(ybr, photometric="YBR_FULL")
    decoded = decode_frames(ds)
    assert decoded.photometric_interpretation == "RGB"
    assert np.abs(decoded.frames.astype(int) - arr).max() <= 2


def test_palette_colour_is_expanded_to_rgb():
    indices = np.array([[[0, 1], [2, 3]]], dtype=np.uint8)
    ds = make_dataset(indices, photometric="PALETTE COLOR")
    for colour, values in zip(
        ("Red", "Green", "Blue"), ([0, 255, 0, 9], [0, 0, 255, 9], [0, 0, 0, 9]), strict=True
    ):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [4, 0, 8])
        setattr(ds, f"{colour}PaletteColorLookupTableData", bytes(values))
    decoded = decode_frames(ds)
    assert decoded.photometric_interpretation == "RGB" and decoded.frames.dtype == np.uint8
    assert decoded.frames[0, 0, 1].tolist() == [255, 0, 0]
    assert decoded.frames[0, 1, 1].tolist() == [9, 9, 9]
    encoded = encode_pixels(ds, decoded)
    assert "RedPaletteColorLookupTableData" not in encoded
    assert encoded.PhotometricInterpretation == "RGB"


@pytest.mark.parametrize(
    "ts",
    [uid.MPEG2MPML, uid.MPEG4HP41, uid.HEVCMP51, "1.2.3.4.5.6"],
    ids=["mpeg2", "h264", "hevc", "unknown"],
)
def test_unsupported_syntaxes_raise_a_typed_error_naming_the_syntax(ts):
    ds = make_dataset(GREY12, bits_stored=12)
    ds.file_meta.TransferSyntaxUID = ts
    with pytest.raises(UnsupportedInputError) as info:
        decode_frames(ds)
    assert info.value.code == "unsupported-transfer-syntax"
    assert str(ts) in str(info.value)
    assert "CANARY" not in str(info.value)


def test_missing_pixel_data_and_float_pixel_data_are_refused():
    ds = make_dataset(GREY12, bits_stored=12)
    del ds.PixelData
    with pytest.raises(UnsupportedInputError) as info:
        decode_frames(ds)
    assert info.value.code == "no-pixel-data"
    ds.FloatPixelData = b"\x00" * 8
    with pytest.raises(UnsupportedInputError) as info:
        check_decodable(ds)
    assert info.value.code == "unsupported-pixel-data"


def test_corrupt_compressed_data_names_the_failing_decoders_not_their_messages():
    ds = in_syntax(make_dataset(GREY12, bits_stored=12), uid.JPEGLSLossless, GREY12)
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 40] * 3)
    with pytest.raises(UnsupportedInputError, match=r"could not be decoded \(pyjpegls: \w+"):
        decode_frames(ds)


@pytest.mark.parametrize("syntax", list(OutputSyntax), ids=lambda s: s.value)
@pytest.mark.parametrize("arr", [GREY12, SIGNED, RGB], ids=["grey12", "signed12", "rgb"])
def test_encode_round_trips_losslessly_and_keeps_uids(syntax, arr):
    bits = 8 if arr.dtype == np.uint8 else 12
    source = make_dataset(arr, bits_stored=bits)
    pixels = decode_frames(source)
    out = reread(encode_pixels(source, pixels, syntax))
    assert out.file_meta.TransferSyntaxUID == syntax.uid
    assert out.SOPInstanceUID == source.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID
    assert out.NumberOfFrames == len(arr) and out.BitsStored == bits
    np.testing.assert_array_equal(decode_frames(out).frames, arr)


def test_parallel_encode_and_decode_give_the_same_bytes_and_values():
    arr = RNG.integers(0, 4096, (5, 40, 48), dtype=np.uint16)
    pixels = DecodedPixels(arr, "MONOCHROME2", 12, 0)
    serial = encode_frame_list(arr, pixels, OutputSyntax.JPEG_2000_LOSSLESS)
    parallel = encode_frame_list(arr, pixels, OutputSyntax.JPEG_2000_LOSSLESS, workers=2)
    assert serial == parallel
    ds = encode_pixels(make_dataset(arr, bits_stored=12), pixels, OutputSyntax.JPEG_2000_LOSSLESS)
    np.testing.assert_array_equal(decode_frames(ds, workers=2).frames, arr)


def test_jpeg_2000_refuses_images_smaller_than_32_pixels():
    arr = RNG.integers(0, 255, (1, 20, 64), dtype=np.uint8)
    with pytest.raises(UnsupportedInputError, match="at least 32x32") as info:
        encode_pixels(
            make_dataset(arr), decode_frames(make_dataset(arr)), OutputSyntax.JPEG_2000_LOSSLESS
        )
    assert info.value.code == "unsupported-output-syntax"


def test_jpeg_ls_cannot_hold_32_bit_data():
    arr = RNG.integers(0, 2**20, (1, 8, 8), dtype=np.uint32)
    ds = make_dataset(arr, bits_stored=24)
    with pytest.raises(UnsupportedInputError) as info:
        encode_pixels(ds, decode_frames(ds), OutputSyntax.JPEG_LS_LOSSLESS)
    assert info.value.code == "unsupported-output-syntax"


def test_lossy_sources_are_recognised_and_their_history_kept():
    arr = _smooth_rgb(2, 32, 32)
    baseline = in_syntax(make_dataset(arr), uid.JPEGBaseline8Bit, arr)
    assert is_lossy(baseline)
    attrs = lossy_compression_attributes(baseline)
    assert attrs.LossyImageCompression == "01"
    assert attrs.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(attrs.LossyImageCompressionRatio) > 1

    baseline.LossyImageCompressionMethod = ["ISO_14495_1", "ISO_10918_1"]
    baseline.LossyImageCompressionRatio = ["2.5", "8"]
    kept = lossy_compression_attributes(baseline)
    assert list(kept.LossyImageCompressionMethod) == ["ISO_14495_1", "ISO_10918_1"]
    assert [str(v) for v in kept.LossyImageCompressionRatio] == ["2.5", "8"]

    earlier = make_dataset(GREY12, bits_stored=12)
    earlier.LossyImageCompression = "01"
    earlier.LossyImageCompressionMethod = "ISO_10918_1"
    earlier.LossyImageCompressionRatio = "10"
    rle = in_syntax(earlier, uid.RLELossless, GREY12)
    assert is_lossy(rle)
    carried = lossy_compression_attributes(rle)
    assert carried.LossyImageCompression == "01"
    assert carried.LossyImageCompressionMethod == "ISO_10918_1"

    assert not is_lossy(make_dataset(GREY12, bits_stored=12))
    assert len(lossy_compression_attributes(make_dataset(GREY12, bits_stored=12))) == 0


def test_copies_leave_the_input_untouched_and_keep_pixel_bytes():
    source = reread(in_syntax(make_dataset(GREY12, bits_stored=12), uid.RLELossless, GREY12))
    before = dataset_bytes(source)
    snapshot = copy.deepcopy(source)
    without = copy_without_pixel_data(source)
    same = copy_dataset(source)
    assert "PixelData" not in without and without.PatientName == "CANARY^PIXEL"
    assert same.PixelData == source.PixelData
    without.PatientName = "CHANGED"
    same.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    assert dataset_bytes(source) == before
    assert source == snapshot


def test_copy_of_a_big_endian_dataset_can_be_written_little_endian():
    source = in_syntax(make_dataset(GREY12, bits_stored=12), uid.ExplicitVRBigEndian, GREY12)
    source.PatientName  # noqa: B018 - parse one element, leave the rest raw
    out = encode_pixels(source, decode_frames(source))
    back = reread(out)
    assert back.file_meta.TransferSyntaxUID == uid.ExplicitVRLittleEndian
    assert back.Rows == 36 and back.PatientID == "CANARY-ID-1"
    np.testing.assert_array_equal(decode_frames(back).frames, GREY12)


def test_decoded_pixels_pickle_for_process_pools():
    pixels = decode_frames(make_dataset(GREY12, bits_stored=12))
    assert pickle.loads(pickle.dumps(pixels)).frames.shape == GREY12.shape


def test_without_gpl_decoders_jpeg_baseline_still_decodes_and_jpeg_lossless_is_refused(tmp_path):
    """Simulates a site without pylibjpeg-libjpeg (GPL-3.0): only MIT/BSD/HPND decoders."""
    site = Path(pydicom.__file__).resolve().parent.parent
    hidden = ("libjpeg", "_libjpeg", "pylibjpeg_libjpeg", "gdcm", "python_gdcm", "_gdcm")
    packages = tmp_path / "site"
    packages.mkdir()
    for entry in site.iterdir():
        if entry.name.split(".")[0].split("-")[0] in hidden or entry.suffix == ".pth":
            continue
        (packages / entry.name).symlink_to(entry)
    script = textwrap.dedent(
        """
        import numpy as np
        from pydicom import uid
        from tests.pixels.images import in_syntax, make_dataset
        from tftt.errors import UnsupportedInputError
        from tftt.pixels.codecs import decode_frames
        import importlib.util
        assert importlib.util.find_spec("libjpeg") is None
        y, x = np.mgrid[0:32, 0:48]
        rgb = np.stack([x * 5, y * 7, x + y], axis=-1).astype(np.uint8)[None]
        ds = in_syntax(make_dataset(rgb), uid.JPEGBaseline8Bit, rgb)
        out = decode_frames(ds)
        assert out.photometric_interpretation == "RGB"
        assert abs(out.frames.astype(int) - rgb).mean() < 3
        grey = (x * 50).astype(np.uint16)[None]
        lossless = make_dataset(grey, bits_stored=12)
        lossless = in_syntax(lossless, uid.JPEGLosslessSV1, grey)
        try:
            decode_frames(lossless)
        except UnsupportedInputError as exc:
            assert exc.code == "unsupported-transfer-syntax", exc.code
            assert "1.2.840.10008.1.2.4.70" in str(exc)
            print("OK")
        """
    )
    env = {**os.environ, "PYTHONPATH": f"{packages}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-S", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "OK"


def test_encode_pixels_writes_a_valid_image_pixel_module_after_a_crop():
    source = make_dataset(RGB, photometric="RGB")
    source.PlanarConfiguration = 0
    pixels = decode_frames(source)
    cropped = DecodedPixels(pixels.frames[:, 2:30, 4:20], "RGB", 8, 0)
    out = reread(encode_pixels(source, cropped, OutputSyntax.RLE_LOSSLESS))
    assert (out.Rows, out.Columns, out.NumberOfFrames) == (28, 16, 2)
    assert out.PlanarConfiguration == 0 and out.SamplesPerPixel == 3
    np.testing.assert_array_equal(decode_frames(out).frames, RGB[:, 2:30, 4:20])
    assert isinstance(out, Dataset)


def _with_comment(frame: bytes) -> bytes:
    text = b"CANARY^COMMENT"
    segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return frame[:2] + segment + frame[2:]


def test_jpeg_text_segments_are_stripped_from_unedited_frames_or_a_clear_error_is_raised():
    arr = _smooth_rgb(2, 32, 32)
    source = in_syntax(make_dataset(arr), uid.JPEGBaseline8Bit, arr)
    frames = [
        _with_comment(f)
        for f in pydicom.encaps.generate_frames(source.PixelData, number_of_frames=2)
    ]
    source.PixelData = pydicom.encaps.encapsulate(frames)
    source = reread(source)
    assert b"CANARY^COMMENT" in source.PixelData
    native = make_dataset(GREY12, bits_stored=12)
    assert strip_jpeg_text_segments(native).PixelData == native.PixelData
    try:
        import tftt.pixels.markers  # noqa: F401 - the lead's module, merged separately
    except ImportError:
        with pytest.raises(RuntimeError, match=r"tftt\.pixels\.markers is required"):
            strip_jpeg_text_segments(source)
        return
    stripped = strip_jpeg_text_segments(source)
    assert b"CANARY^COMMENT" not in stripped.PixelData
    np.testing.assert_array_equal(decode_frames(stripped).frames, decode_frames(source).frames)


def test_frames_behind_an_extended_offset_table_decode_in_parallel():
    arr = RNG.integers(0, 4096, (3, 36, 40), dtype=np.uint16)
    source = in_syntax(make_dataset(arr, bits_stored=12), uid.RLELossless, arr)
    frames = list(pydicom.encaps.generate_frames(source.PixelData, number_of_frames=3))
    data, offsets, lengths = pydicom.encaps.encapsulate_extended(frames)
    source.PixelData = data
    source.ExtendedOffsetTable, source.ExtendedOffsetTableLengths = offsets, lengths
    np.testing.assert_array_equal(decode_frames(reread(source), workers=2).frames, arr)


def test_encapsulation_gives_pydicoms_bytes_one_frame_at_a_time():
    frames = [b"\x01\x02\x03", b"\x04" * 8, b"\x05" * 5]
    items = Encapsulation(len(frames))
    for frame in frames:
        items.add(frame)
    data, extended = items.finish()
    assert type(data) is bytes and extended is None
    assert data == pydicom.encaps.encapsulate(frames, has_bot=True)


def test_encapsulation_moves_to_an_extended_offset_table_past_the_limit():
    frames = [b"\x01" * 11, b"\x02" * 20, b"\x03" * 7]
    items = Encapsulation(len(frames), offset_limit=46)  # 2 items of 8 + 11 + 20 bytes = 47
    for frame in frames:
        items.add(frame)
    data, extended = items.finish()
    assert extended is not None
    assert (data, *extended) == pydicom.encaps.encapsulate_extended(frames)
    at_limit = Encapsulation(len(frames), offset_limit=47)
    for frame in frames:
        at_limit.add(frame)
    assert at_limit.finish() == (pydicom.encaps.encapsulate(frames, has_bot=True), None)


def test_encapsulation_counts_its_frames():
    items = Encapsulation(2)
    items.add(b"ab")
    with pytest.raises(ValueError, match="1 of 2 frames"):
        items.finish()
    items.add(b"cd")
    with pytest.raises(ValueError, match="already added"):
        items.add(b"ef")


def _unchanged(frames: np.ndarray, first: int, fmt: FrameFormat) -> np.ndarray:
    return frames


def _stamp_index_and_crop(frames: np.ndarray, first: int, fmt: FrameFormat) -> np.ndarray:
    frames[:, 1, 1] = np.arange(first, first + len(frames)) + 100
    return frames[:, 1:, 1:]


def _attached(source: Dataset, done) -> Dataset:
    out = pixel_header(source, done.layout, source=source)
    attach_payload(out, done.payload, bits_allocated=done.layout.dtype.itemsize * 8)
    return out


@pytest.mark.parametrize("ts", LOSSLESS_INPUTS, ids=lambda t: t.name)
@pytest.mark.parametrize("syntax", [OutputSyntax.EXPLICIT_VR_LITTLE_ENDIAN, OutputSyntax.RLE_LOSSLESS],
                         ids=lambda s: s.value)
def test_transforming_frames_unchanged_equals_decoding_then_encoding(ts, syntax):
    source = in_syntax(make_dataset(GREY12, bits_stored=12), ts, GREY12)
    done = transform_frames(source, _unchanged, syntax, extremes=True)
    expected = encode_pixels(source, decode_frames(source), syntax)
    assert type(done.payload.data) is bytes
    assert dataset_bytes(_attached(source, done)) == dataset_bytes(expected)
    assert done.extremes == (int(GREY12.min()), int(GREY12.max()))


def test_transforming_frames_in_workers_gives_the_serial_bytes_and_frame_indices():
    arr = RNG.integers(0, 4096, (5, 36, 40), dtype=np.uint16)
    source = in_syntax(make_dataset(arr, bits_stored=12), uid.JPEG2000Lossless, arr)
    for syntax in (OutputSyntax.JPEG_2000_LOSSLESS, OutputSyntax.EXPLICIT_VR_LITTLE_ENDIAN):
        serial = transform_frames(source, _stamp_index_and_crop, syntax, extremes=True)
        parallel = transform_frames(source, _stamp_index_and_crop, syntax, extremes=True, workers=2)
        assert parallel == serial
        assert serial.layout.shape == (5, 35, 39)
        frames = decode_frames(_attached(source, serial)).frames
        assert frames[:, 0, 0].tolist() == [100, 101, 102, 103, 104]
        np.testing.assert_array_equal(frames[:, 1:, 1:], arr[:, 2:, 2:])


def test_transforming_palette_colour_expands_it_frame_by_frame():
    indices = np.array([[[0, 1], [2, 3]], [[3, 2], [1, 0]]], dtype=np.uint8)
    ds = make_dataset(indices, photometric="PALETTE COLOR")
    for colour, values in zip(
        ("Red", "Green", "Blue"), ([0, 255, 0, 9], [0, 0, 255, 9], [0, 0, 0, 9]), strict=True
    ):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [4, 0, 8])
        setattr(ds, f"{colour}PaletteColorLookupTableData", bytes(values))
    done = transform_frames(ds, _unchanged)
    assert done.layout.photometric_interpretation == "RGB" and done.layout.shape == (2, 2, 2, 3)
    np.testing.assert_array_equal(
        decode_frames(_attached(ds, done)).frames, decode_frames(ds).frames
    )


def test_a_corrupt_frame_part_way_names_the_failing_decoders_serially_and_in_workers():
    arr = RNG.integers(0, 4096, (4, 36, 40), dtype=np.uint16)
    ds = in_syntax(make_dataset(arr, bits_stored=12), uid.JPEG2000Lossless, arr)
    frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=4))
    frames[2] = b"\x00" * 40
    ds.PixelData = pydicom.encaps.encapsulate(frames)
    for workers in (1, 2):
        with pytest.raises(UnsupportedInputError, match=r"could not be decoded \(pylibjpeg: \w+") as info:
            transform_frames(ds, _unchanged, OutputSyntax.RLE_LOSSLESS, workers=workers)
        assert info.value.code == "unsupported-transfer-syntax"


def test_rle_frames_of_odd_byte_length_encode_without_aborting_the_process():
    # python-gdcm's RLE encoder aborts the interpreter on them, so this runs in a subprocess.
    script = textwrap.dedent(
        """
        import numpy as np
        from tftt.pixels.codecs import DecodedPixels, OutputSyntax, decode_frames, encode_pixels
        from tests.pixels.images import make_dataset
        for arr in (np.arange(2 * 9 * 9, dtype=np.uint8).reshape(2, 9, 9),
                    np.arange(3 * 5 * 3, dtype=np.uint8).reshape(1, 3, 5, 3)):
            source = make_dataset(arr)
            out = encode_pixels(source, decode_frames(source), OutputSyntax.RLE_LOSSLESS)
            assert (decode_frames(out).frames == arr).all()
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_encapsulated_data_that_cannot_be_split_into_frames_is_a_typed_error():
    ds = in_syntax(make_dataset(GREY12, bits_stored=12), uid.RLELossless, GREY12)
    ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\x12\x34\x56\x78" * 10  # no items
    for workers in (1, 2):
        with pytest.raises(UnsupportedInputError) as info:
            transform_frames(ds, _unchanged, OutputSyntax.RLE_LOSSLESS, workers=workers)
        assert info.value.code == "unsupported-transfer-syntax"
