import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tftt.errors import RedactionError, UnsupportedInputError
from tftt.pixels.codecs import OutputSyntax, check_decodable, decode_frames
from tftt.pixels.redact import apply_edits, native_pixels, shifted_position
from tftt.redaction_spec import CropBox, FrameRange, ImageEdits, Rectangle

from .images import CT_IMAGE, ENHANCED_CT, XA_IMAGE, dataset_bytes, in_syntax, make_dataset, reread

RNG = np.random.default_rng(7)
GREY12 = RNG.integers(1, 4096, (3, 40, 48), dtype=np.uint16)
RECT = Rectangle(x=5, y=4, width=12, height=7)
BLACKOUT = ImageEdits(blackouts=(RECT,))

INPUTS = [
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.RLELossless,
    uid.JPEGLSLossless,
    uid.JPEG2000Lossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLossless,
]


def _smooth_rgb(frames: int, rows: int, cols: int) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:cols]
    base = np.stack([x * 255 // cols, y * 255 // rows, 255 - x * 255 // cols], axis=-1)
    return np.stack([np.roll(base, 3 * i, axis=1) for i in range(frames)]).astype(np.uint8)


def _inside(arr: np.ndarray, rect: Rectangle) -> np.ndarray:
    mask = np.zeros(arr.shape[1:3], dtype=bool)
    mask[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = True
    return mask


def _edit_unchanged_input(ds: Dataset, edits: ImageEdits, **kwargs) -> Dataset:
    """apply_edits, asserting the input's bytes are the same afterwards."""
    before = dataset_bytes(ds)
    out = apply_edits(ds, edits, **kwargs)
    assert dataset_bytes(ds) == before, "apply_edits changed its input"
    return reread(out)


@pytest.mark.parametrize("syntax", list(OutputSyntax), ids=lambda s: s.value)
@pytest.mark.parametrize("ts", INPUTS, ids=lambda t: t.name)
def test_every_syntax_round_trips_with_the_rectangle_black_in_every_frame(ts, syntax):
    source = in_syntax(make_dataset(GREY12, bits_stored=12), ts, GREY12)
    try:
        check_decodable(source)
    except UnsupportedInputError:
        pytest.skip(f"no decoder installed for {ts.name}")
    out = _edit_unchanged_input(source, BLACKOUT, syntax=syntax)
    assert out.file_meta.TransferSyntaxUID == syntax.uid
    assert out.SOPInstanceUID == source.SOPInstanceUID
    assert out.SeriesInstanceUID == source.SeriesInstanceUID
    result = decode_frames(out).frames
    inside = _inside(GREY12, RECT)
    assert (result[:, inside] == 0).all()
    np.testing.assert_array_equal(result[:, ~inside], GREY12[:, ~inside])
    assert "LossyImageCompression" not in out


@pytest.mark.parametrize(
    ("ts", "method"),
    [
        (uid.JPEGBaseline8Bit, "ISO_10918_1"),
        (uid.JPEG2000, "ISO_15444_1"),
    ],
    ids=["jpeg-baseline", "jpeg-2000-lossy"],
)
def test_lossy_sources_keep_their_decoded_values_outside_and_are_flagged(ts, method):
    arr = _smooth_rgb(4, 48, 64)
    source = in_syntax(make_dataset(arr), ts, arr)
    decoded_source = decode_frames(source).frames
    out = _edit_unchanged_input(source, BLACKOUT, syntax=OutputSyntax.JPEG_LS_LOSSLESS)
    result = decode_frames(out).frames
    inside = _inside(arr, RECT)
    assert (result[:, inside] == 0).all()
    np.testing.assert_array_equal(result[:, ~inside], decoded_source[:, ~inside])
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionMethod == method
    assert float(out.LossyImageCompressionRatio) > 1
    assert out.PhotometricInterpretation == "RGB" and out.PlanarConfiguration == 0


def test_monochrome1_black_is_the_maximum_of_the_stored_range():
    source = make_dataset(GREY12, bits_stored=12, sop_class=XA_IMAGE)
    source.PhotometricInterpretation = "MONOCHROME1"
    result = decode_frames(_edit_unchanged_input(source, BLACKOUT)).frames
    assert (result[:, _inside(GREY12, RECT)] == 4095).all()


def test_signed_data_black_is_the_minimum_of_the_stored_range():
    arr = RNG.integers(-2000, 2000, (2, 40, 48), dtype=np.int16)
    source = in_syntax(make_dataset(arr, bits_stored=12), uid.RLELossless, arr)
    out = _edit_unchanged_input(source, BLACKOUT, syntax=OutputSyntax.RLE_LOSSLESS)
    result = decode_frames(out).frames
    assert out.PixelRepresentation == 1
    assert (result[:, _inside(arr, RECT)] == -2048).all()
    np.testing.assert_array_equal(result[:, ~_inside(arr, RECT)], arr[:, ~_inside(arr, RECT)])


def test_rgb_blackout_zeroes_every_sample():
    arr = _smooth_rgb(3, 40, 48)
    out = _edit_unchanged_input(make_dataset(arr), BLACKOUT)
    result = decode_frames(out).frames
    assert (result[:, _inside(arr, RECT)] == 0).all()
    np.testing.assert_array_equal(result[:, ~_inside(arr, RECT)], arr[:, ~_inside(arr, RECT)])


def test_ybr_input_is_written_as_rgb_with_the_header_fixed():
    arr = _smooth_rgb(2, 40, 48)
    ybr = pydicom.pixels.convert_color_space(arr, "RGB", "YBR_FULL")
    source = make_dataset(ybr, photometric="YBR_FULL")
    out = _edit_unchanged_input(source, BLACKOUT)
    assert out.PhotometricInterpretation == "RGB" and out.PlanarConfiguration == 0
    result = decode_frames(out).frames
    assert (result[:, _inside(arr, RECT)] == 0).all()
    assert (
        np.abs(result[:, ~_inside(arr, RECT)].astype(int) - arr[:, ~_inside(arr, RECT)]).max() <= 2
    )


def test_frame_ranges_limit_the_blackout_to_those_frames():
    edits = ImageEdits(blackouts=(RECT.model_copy(update={"frames": FrameRange(first=2, last=3)}),))
    arr = RNG.integers(1, 4096, (4, 40, 48), dtype=np.uint16)
    result = decode_frames(_edit_unchanged_input(make_dataset(arr, bits_stored=12), edits)).frames
    inside = _inside(arr, RECT)
    np.testing.assert_array_equal(result[0], arr[0])
    np.testing.assert_array_equal(result[3], arr[3])
    assert (result[1:3][:, inside] == 0).all()


def test_without_blackout_or_crop_the_pixel_data_bytes_are_not_re_encoded():
    source = in_syntax(make_dataset(GREY12, bits_stored=12), uid.JPEGLSLossless, GREY12)
    out = apply_edits(source, ImageEdits())
    assert out.PixelData == source.PixelData
    assert out.file_meta.TransferSyntaxUID == uid.JPEGLSLossless
    assert out is not source


def test_edits_outside_the_image_are_refused_with_positions():
    source = make_dataset(GREY12, bits_stored=12)
    with pytest.raises(RedactionError, match=r"blackout 1 \(40,0 10x5\) exceeds the 48x40") as info:
        apply_edits(source, ImageEdits(blackouts=(Rectangle(x=40, y=0, width=10, height=5),)))
    assert info.value.code == "edit-outside-image"
    with pytest.raises(RedactionError, match=r"frames 1\.\.9 of 3"):
        apply_edits(
            source,
            ImageEdits(
                blackouts=(RECT.model_copy(update={"frames": FrameRange(first=1, last=9)}),)
            ),
        )
    with pytest.raises(RedactionError, match="crop"):
        apply_edits(source, ImageEdits(crop=CropBox(x=0, y=30, width=10, height=11)))


def test_crop_updates_rows_columns_and_keeps_the_right_pixels():
    crop = CropBox(x=6, y=3, width=30, height=20)
    result = _edit_unchanged_input(
        in_syntax(make_dataset(GREY12, bits_stored=12), uid.RLELossless, GREY12),
        ImageEdits(blackouts=(RECT,), crop=crop),
        syntax=OutputSyntax.RLE_LOSSLESS,
    )
    assert (result.Rows, result.Columns, result.NumberOfFrames) == (20, 30, 3)
    expected = GREY12.copy()
    expected[:, RECT.y : RECT.y + RECT.height, RECT.x : RECT.x + RECT.width] = 0
    np.testing.assert_array_equal(decode_frames(result).frames, expected[:, 3:23, 6:36])


def test_crop_shifts_image_position_along_an_oblique_orientation():
    source = make_dataset(GREY12[:1], bits_stored=12, sop_class=CT_IMAGE, multiframe=False)
    source.ImagePositionPatient = [10, 20, 30]
    source.ImageOrientationPatient = [0.6, 0.8, 0, 0, 0, -1]  # rows go along (0.6, 0.8, 0)
    source.PixelSpacing = [0.5, 0.25]  # row spacing 0.5 mm, column spacing 0.25 mm
    out = _edit_unchanged_input(source, ImageEdits(crop=CropBox(x=8, y=4, width=20, height=20)))
    # by hand: 10 + 0.6*0.25*8 = 11.2, 20 + 0.8*0.25*8 = 21.6, 30 - 1*0.5*4 = 28
    assert [float(v) for v in out.ImagePositionPatient] == pytest.approx([11.2, 21.6, 28.0])
    assert [float(v) for v in out.PixelSpacing] == [0.5, 0.25]
    assert "NumberOfFrames" not in out


def test_shifted_position_matches_the_pixel_to_patient_mapping():
    ipp, iop, spacing = [-120.5, 33.0, 7.25], [0.0, 0.866, -0.5, 0.2, 0.48, 0.8538], [0.7, 0.3]
    row_dir, col_dir = np.array(iop[:3]), np.array(iop[3:])
    for dx, dy in [(0, 0), (17, 0), (0, 9), (31, 12)]:
        mapped = np.array(ipp) + row_dir * spacing[1] * dx + col_dir * spacing[0] * dy
        assert shifted_position(ipp, iop, spacing, dx, dy) == pytest.approx(list(mapped))


def test_crop_shifts_positions_in_the_per_frame_functional_groups():
    arr = RNG.integers(0, 4096, (2, 40, 48), dtype=np.uint16)
    source = make_dataset(arr, bits_stored=12, sop_class=ENHANCED_CT)
    shared = Dataset()
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [0.5, 0.8]
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    source.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for z in (0.0, 2.5):
        group, position = Dataset(), Dataset()
        position.ImagePositionPatient = [-50, -60, z]
        group.PlanePositionSequence = Sequence([position])
        frames.append(group)
    source.PerFrameFunctionalGroupsSequence = Sequence(frames)
    out = _edit_unchanged_input(source, ImageEdits(crop=CropBox(x=10, y=4, width=20, height=20)))
    positions = [
        [float(v) for v in g.PlanePositionSequence[0].ImagePositionPatient]
        for g in out.PerFrameFunctionalGroupsSequence
    ]
    assert positions == [[-42.0, -58.0, 0.0], [-42.0, -58.0, 2.5]]
    assert [
        float(v)
        for v in source.PerFrameFunctionalGroupsSequence[0]
        .PlanePositionSequence[0]
        .ImagePositionPatient
    ] == [-50, -60, 0]


def _region(x0: int, y0: int, x1: int, y1: int, ref: tuple[int, int] | None = None) -> Dataset:
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = x0, y0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = x1, y1
    region.PhysicalDeltaX = 0.01
    if ref is not None:
        region.ReferencePixelX0, region.ReferencePixelY0 = ref
    return region


def test_crop_shifts_and_clips_ultrasound_regions_and_drops_those_outside():
    arr = _smooth_rgb(2, 40, 48)
    source = make_dataset(arr)
    source.SequenceOfUltrasoundRegions = Sequence(
        [
            _region(12, 10, 30, 25, ref=(5, 4)),  # inside the crop: shifted
            _region(2, 1, 20, 15, ref=(10, 8)),  # crosses the top-left edge: clipped
            _region(0, 0, 4, 3),  # outside the crop: dropped
        ]
    )
    out = _edit_unchanged_input(source, ImageEdits(crop=CropBox(x=6, y=5, width=34, height=30)))
    regions = out.SequenceOfUltrasoundRegions
    assert len(regions) == 2
    a, b = regions
    assert (
        a.RegionLocationMinX0,
        a.RegionLocationMinY0,
        a.RegionLocationMaxX1,
        a.RegionLocationMaxY1,
    ) == (6, 5, 24, 20)
    assert (a.ReferencePixelX0, a.ReferencePixelY0) == (5, 4)
    assert (
        b.RegionLocationMinX0,
        b.RegionLocationMinY0,
        b.RegionLocationMaxX1,
        b.RegionLocationMaxY1,
    ) == (0, 0, 14, 10)
    # the reference pixel stays on the same image point: 2 + 10 - 6 = 6 = 0 + 6
    assert (b.ReferencePixelX0, b.ReferencePixelY0) == (6, 4)
    assert len(source.SequenceOfUltrasoundRegions) == 3


def test_crop_removes_regions_entirely_when_none_remains():
    source = make_dataset(_smooth_rgb(1, 40, 48))
    source.SequenceOfUltrasoundRegions = Sequence([_region(0, 0, 4, 3)])
    out = _edit_unchanged_input(source, ImageEdits(crop=CropBox(x=10, y=10, width=20, height=20)))
    assert "SequenceOfUltrasoundRegions" not in out


def test_crop_shifts_display_shutters_and_drops_an_empty_rectangular_one():
    source = make_dataset(GREY12, bits_stored=12, sop_class=XA_IMAGE)
    source.ShutterShape = ["RECTANGULAR", "CIRCULAR", "POLYGONAL"]
    source.ShutterLeftVerticalEdge, source.ShutterRightVerticalEdge = 3, 45
    source.ShutterUpperHorizontalEdge, source.ShutterLowerHorizontalEdge = 2, 38
    source.CenterOfCircularShutter = [20, 24]
    source.RadiusOfCircularShutter = 15
    source.VerticesOfThePolygonalShutter = [5, 6, 5, 40, 35, 40]
    out = _edit_unchanged_input(source, ImageEdits(crop=CropBox(x=10, y=8, width=30, height=25)))
    assert list(out.ShutterShape) == ["RECTANGULAR", "CIRCULAR", "POLYGONAL"]
    edges = (
        out.ShutterLeftVerticalEdge,
        out.ShutterRightVerticalEdge,
        out.ShutterUpperHorizontalEdge,
        out.ShutterLowerHorizontalEdge,
    )
    assert edges == (1, 30, 1, 25)
    assert list(out.CenterOfCircularShutter) == [12, 14]
    assert out.RadiusOfCircularShutter == 15
    assert list(out.VerticesOfThePolygonalShutter) == [-3, -4, -3, 30, 27, 30]

    source.ShutterShape = "RECTANGULAR"
    for keyword in (
        "CenterOfCircularShutter",
        "RadiusOfCircularShutter",
        "VerticesOfThePolygonalShutter",
    ):
        delattr(source, keyword)
    source.ShutterLeftVerticalEdge, source.ShutterRightVerticalEdge = 1, 5
    gone = _edit_unchanged_input(source, ImageEdits(crop=CropBox(x=10, y=8, width=30, height=25)))
    assert "ShutterShape" not in gone and "ShutterLeftVerticalEdge" not in gone


def test_clean_up_drops_overlays_curves_icons_and_recomputes_extremes():
    source = make_dataset(GREY12, bits_stored=12, sop_class=XA_IMAGE)
    source.add_new(0x60000010, "US", 40)
    source.add_new(0x60003000, "OW", b"\xff" * 240)
    source.add_new(0x60004000, "LT", "overlay comment")
    source.add_new(0x50000005, "US", 2)
    icon = Dataset()
    icon.Rows = 2
    source.IconImageSequence = Sequence([icon])
    source.SmallestImagePixelValue = 1
    source.LargestImagePixelValue = 4095
    source.SmallestPixelValueInSeries = 0
    out = _edit_unchanged_input(source, BLACKOUT)
    assert not [t for t in out.keys() if (t >> 16) in (0x6000, 0x5000)]
    assert "IconImageSequence" not in out and "SmallestPixelValueInSeries" not in out
    assert out.SmallestImagePixelValue == 0
    assert out.LargestImagePixelValue == int(GREY12.max())
    assert out["SmallestImagePixelValue"].VR == "US"
    assert 0x60003000 in source and "IconImageSequence" in source


def test_colour_images_lose_the_extremes_instead():
    source = make_dataset(_smooth_rgb(1, 40, 48))
    source.SmallestImagePixelValue = 0
    source.LargestImagePixelValue = 255
    out = _edit_unchanged_input(source, BLACKOUT)
    assert "SmallestImagePixelValue" not in out and "LargestImagePixelValue" not in out


def test_high_bits_above_bits_stored_are_cleared_in_edited_images():
    arr = GREY12.copy()
    arr[:, 0, 0] |= 0xF000  # e.g. a retired overlay plane in the unused high bits
    source = make_dataset(arr, bits_stored=12)
    out = apply_edits(source, BLACKOUT)
    raw = np.frombuffer(out.PixelData, dtype="<u2")
    assert raw.max() < 4096


def test_parallel_workers_give_the_same_output_bytes():
    arr = RNG.integers(0, 4096, (4, 40, 48), dtype=np.uint16)
    source = in_syntax(make_dataset(arr, bits_stored=12), uid.JPEG2000Lossless, arr)
    serial = apply_edits(source, BLACKOUT, syntax=OutputSyntax.JPEG_2000_LOSSLESS)
    parallel = apply_edits(source, BLACKOUT, syntax=OutputSyntax.JPEG_2000_LOSSLESS, workers=2)
    assert dataset_bytes(serial) == dataset_bytes(parallel)


def test_workers_keep_frame_ranges_crop_and_extremes_as_the_serial_path_does():
    arr = RNG.integers(1, 4096, (6, 40, 48), dtype=np.uint16)
    native = make_dataset(arr, bits_stored=12, sop_class=XA_IMAGE)
    native.SmallestImagePixelValue, native.LargestImagePixelValue = 1, 4095
    source = in_syntax(native, uid.JPEG2000Lossless, arr)
    edits = ImageEdits(
        blackouts=(Rectangle(x=10, y=6, width=8, height=5, frames=FrameRange(first=2, last=4)),),
        crop=CropBox(x=2, y=3, width=40, height=34),
    )
    syntax = OutputSyntax.JPEG_2000_LOSSLESS
    serial = apply_edits(source, edits, syntax=syntax)
    parallel = apply_edits(source, edits, syntax=syntax, workers=2)
    assert dataset_bytes(parallel) == dataset_bytes(serial)
    frames = decode_frames(reread(parallel)).frames
    expected = arr.copy()
    expected[1:4, 6:11, 10:18] = 0
    np.testing.assert_array_equal(frames, expected[:, 3:37, 2:42])
    kept = expected[:, 3:37, 2:42]
    assert (serial.SmallestImagePixelValue, serial.LargestImagePixelValue) == (
        int(kept.min()), int(kept.max())
    )
    from_native = apply_edits(native, edits)
    assert (from_native.SmallestImagePixelValue, from_native.LargestImagePixelValue) == (
        serial.SmallestImagePixelValue, serial.LargestImagePixelValue
    )


def test_signed_extremes_are_recomputed_as_ss_on_every_path():
    arr = RNG.integers(-2048, 2048, (2, 36, 40), dtype=np.int16)
    native = make_dataset(arr, bits_stored=12)
    native.SmallestImagePixelValue, native.LargestImagePixelValue = -2048, 2047
    native["SmallestImagePixelValue"].VR = native["LargestImagePixelValue"].VR = "SS"
    for source in (native, in_syntax(native, uid.RLELossless, arr)):
        out = _edit_unchanged_input(source, BLACKOUT)
        assert out["SmallestImagePixelValue"].VR == "SS"
        kept = arr.copy()
        kept[:, RECT.y : RECT.y + RECT.height, RECT.x : RECT.x + RECT.width] = -2048
        assert out.SmallestImagePixelValue == -2048
        assert out.LargestImagePixelValue == int(kept.max())


def test_odd_length_output_is_padded_natively_and_encodes_as_rle():
    arr = RNG.integers(1, 256, (2, 10, 9), dtype=np.uint8)
    edits = ImageEdits(blackouts=(Rectangle(x=0, y=0, width=2, height=2),),
                       crop=CropBox(x=1, y=1, width=5, height=3))
    expected = arr[:, 1:4, 1:6].copy()
    expected[:, 0, 0] = 0
    native = make_dataset(arr)
    for source in (native, in_syntax(native, uid.RLELossless, arr)):
        out = apply_edits(source, edits)
        assert len(out.PixelData) == 30 and out.PixelData == expected.tobytes()
        single = apply_edits(make_dataset(arr[:1]), edits)
        assert len(single.PixelData) == 16 and single.PixelData == expected[:1].tobytes() + b"\0"
        rle = apply_edits(source, edits, syntax=OutputSyntax.RLE_LOSSLESS)
        np.testing.assert_array_equal(decode_frames(reread(rle)).frames, expected)


def test_same_input_and_edits_give_byte_identical_output():
    source = make_dataset(GREY12, bits_stored=12)
    edits = ImageEdits(blackouts=(RECT,), crop=CropBox(x=1, y=1, width=40, height=30))
    assert dataset_bytes(apply_edits(source, edits)) == dataset_bytes(apply_edits(source, edits))


@pytest.mark.parametrize("kind", ["unsigned12", "signed12", "rgb", "mono1"])
def test_the_one_pass_native_path_equals_the_general_decoder_path(kind):
    if kind == "rgb":
        arr, bits = _smooth_rgb(3, 40, 48), 8
    elif kind == "signed12":
        arr, bits = RNG.integers(-2048, 2048, (3, 40, 48), dtype=np.int16), 12
    else:
        arr, bits = RNG.integers(0, 4096, (3, 40, 48), dtype=np.uint16), 12
    native = make_dataset(arr, bits_stored=bits)
    if kind == "mono1":
        native.PhotometricInterpretation = "MONOCHROME1"
    if arr.dtype.itemsize == 2:  # junk in the unused high bits must not survive either path
        raw = np.frombuffer(native.PixelData, dtype="<u2").copy()
        raw[::7] |= 0xA000
        native.PixelData = raw.tobytes()
    big_endian = in_syntax(native, uid.ExplicitVRBigEndian, arr)
    assert native_pixels(native) is not None and native_pixels(big_endian) is None
    edits = ImageEdits(
        blackouts=(
            Rectangle(x=0, y=0, width=20, height=6),  # partly outside the crop
            Rectangle(x=30, y=20, width=10, height=10, frames=FrameRange(first=2, last=2)),
            Rectangle(x=44, y=36, width=4, height=4),  # wholly outside the crop
        ),
        crop=CropBox(x=4, y=3, width=38, height=30),
    )
    fast = decode_frames(_edit_unchanged_input(native, edits)).frames
    general = decode_frames(_edit_unchanged_input(big_endian, edits)).frames
    np.testing.assert_array_equal(fast, general)
    expected = arr.copy()
    black = {"unsigned12": 0, "signed12": -2048, "rgb": 0, "mono1": 4095}[kind]
    expected[:, 0:6, 0:20] = black
    expected[1, 20:30, 30:40] = black
    expected[:, 36:40, 44:48] = black
    np.testing.assert_array_equal(fast, expected[:, 3:33, 4:42])


def test_crop_shifts_frame_display_shutters_in_the_functional_groups():
    arr = RNG.integers(0, 4096, (2, 40, 48), dtype=np.uint16)
    source = make_dataset(arr, bits_stored=12, sop_class=ENHANCED_CT)
    groups = []
    for left in (3, 15):
        group, shutter = Dataset(), Dataset()
        shutter.ShutterShape = "RECTANGULAR"
        shutter.ShutterLeftVerticalEdge, shutter.ShutterRightVerticalEdge = left, 45
        shutter.ShutterUpperHorizontalEdge, shutter.ShutterLowerHorizontalEdge = 2, 38
        group.FrameDisplayShutterSequence = Sequence([shutter])
        groups.append(group)
    source.PerFrameFunctionalGroupsSequence = Sequence(groups)
    out = _edit_unchanged_input(source, ImageEdits(crop=CropBox(x=10, y=8, width=30, height=25)))
    edges = [
        (s.ShutterLeftVerticalEdge, s.ShutterRightVerticalEdge, s.ShutterUpperHorizontalEdge,
         s.ShutterLowerHorizontalEdge)
        for s in (g.FrameDisplayShutterSequence[0] for g in out.PerFrameFunctionalGroupsSequence)
    ]
    assert edges == [(1, 30, 1, 25), (5, 30, 1, 25)]
    assert source.PerFrameFunctionalGroupsSequence[0].FrameDisplayShutterSequence[0].ShutterLeftVerticalEdge == 3
