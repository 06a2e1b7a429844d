import io

import numpy as np
import pytest
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tftt.errors import UnsupportedInputError
from tftt.pixels.codecs import DecodedPixels, decode_frames
from tftt.pixels.preview import (
    CT_WINDOW_PRESETS,
    Window,
    display_frames,
    encode_jpeg,
    percentile_window,
    render_frame,
    render_previews,
    sample_frame_numbers,
)
from tftt.redaction_spec import ArrowAnnotation, EllipseAnnotation, FrameRange

from .images import CT_IMAGE, ENHANCED_CT, dataset_bytes, in_syntax, make_dataset


def _ct(values: list[int]) -> Dataset:
    """A 1-frame CT whose columns hold ``values`` (stored), rescaled by -1024."""
    row = np.array(values, dtype=np.uint16)
    arr = np.tile(row, (8, 1))[None]
    ds = make_dataset(arr, bits_stored=12, sop_class=CT_IMAGE, multiframe=False)
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    return ds


def _display(ds: Dataset, **kwargs) -> np.ndarray:
    return display_frames(decode_frames(ds), ds, **kwargs)


def test_modality_lut_and_header_window_give_the_linear_voi_values():
    # stored 1064 -> 40 HU (window centre), 864 -> -160 HU (lower edge), 1264 -> 240 HU (upper edge)
    ds = _ct([0, 864, 1064, 1264, 4095])
    ds.WindowCenter, ds.WindowWidth = 40, 400
    row = _display(ds)[0, 0]
    assert row[0] == 0 and row[-1] == 255
    assert row[2] == 128
    assert row[1] <= 1 and row[3] >= 254


def test_multi_valued_window_uses_the_first_and_an_override_wins():
    ds = _ct([1024, 1424])
    ds.WindowCenter, ds.WindowWidth = [0, 400], [200, 2000]
    assert _display(ds)[0, 0].tolist() == [128, 255]
    bone = _display(ds, window=Window(center=400, width=1000))[0, 0]
    assert bone.tolist()[1] == 128


def test_without_a_header_window_a_percentile_window_is_used():
    values = list(range(1000, 1100))
    ds = _ct(values)
    out = _display(ds)[0, 0]
    assert out[0] == 0 and out[-1] == 255 and 100 < out[50] < 155
    window = percentile_window(decode_frames(ds).frames, ds, 1.0, -1024.0)
    assert window.width == pytest.approx(98.0 + 1, abs=1.0)


def test_monochrome1_is_inverted():
    ds = _ct([864, 1264])
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert _display(ds)[0, 0].tolist() == [255, 0]


def test_enhanced_multiframe_takes_window_and_rescale_from_the_functional_groups():
    arr = np.array([[[100, 300]], [[100, 300]]], dtype=np.uint16)
    ds = make_dataset(arr, bits_stored=12, sop_class=ENHANCED_CT)
    groups = []
    for center in (100, 300):
        group, voi, rescale = Dataset(), Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = center, 200
        rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = 1, 0, "HU"
        group.FrameVOILUTSequence = Sequence([voi])
        group.PixelValueTransformationSequence = Sequence([rescale])
        groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(groups)
    out = _display(ds)
    assert out[0, 0].tolist() == [128, 255]
    assert out[1, 0].tolist() == [0, 128]


def test_colour_passes_through():
    arr = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    ds = make_dataset(arr)
    np.testing.assert_array_equal(_display(ds), arr)
    wide = DecodedPixels(arr.astype(np.uint16) << 4, "RGB", 12, 0)
    np.testing.assert_array_equal(display_frames(wide, ds), arr)


def test_sampling_keeps_first_and_last_and_is_even():
    assert sample_frame_numbers(5, 16) == [1, 2, 3, 4, 5]
    picks = sample_frame_numbers(500, 8)
    assert picks[0] == 1 and picks[-1] == 500 and len(picks) == 8
    gaps = np.diff(picks)
    assert gaps.max() - gaps.min() <= 1
    assert sample_frame_numbers(500, 1) == [1]
    assert sample_frame_numbers(0, 4) == []


def test_render_previews_of_a_long_cine_decodes_only_the_sampled_frames():
    frames = np.stack([np.full((40, 48), 100 * i, dtype=np.uint16) for i in range(30)])
    ds = in_syntax(make_dataset(frames, bits_stored=12), uid.RLELossless, frames)
    ds.WindowCenter, ds.WindowWidth = 1500, 3000
    before = dataset_bytes(ds)
    previews = render_previews(ds, max_frames=4, thumbnail_size=16)
    assert dataset_bytes(ds) == before
    assert [p.frame_number for p in previews] == [1, 11, 20, 30]
    for preview in previews:
        image = Image.open(io.BytesIO(preview.jpeg))
        assert image.format == "JPEG" and image.size == (48, 40) == (preview.width, preview.height)
        thumb = Image.open(io.BytesIO(preview.thumbnail))
        assert max(thumb.size) == 16
    levels = [np.asarray(Image.open(io.BytesIO(p.jpeg))).mean() for p in previews]
    assert levels == sorted(levels) and levels[-1] - levels[0] > 100


def test_render_previews_scales_down_and_draws_annotations():
    arr = np.zeros((1, 100, 200), dtype=np.uint8)
    ds = make_dataset(arr, multiframe=False)
    ring = EllipseAnnotation(center_x=100, center_y=50, radius_x=30, radius_y=30, color="#00FF00")
    (preview,) = render_previews(ds, max_size=100, annotations=[ring])
    assert (preview.width, preview.height) == (100, 50)
    image = np.asarray(Image.open(io.BytesIO(preview.jpeg)).convert("RGB")).astype(int)
    assert image[25, 35, 1] > 100 and image[25, 35, 0] < 100  # green ring, left edge
    assert image[25, 50].max() < 40  # centre stays black


def test_encode_jpeg_gives_decodable_bytes():
    data = encode_jpeg(np.full((8, 8, 3), 200, dtype=np.uint8), quality=80)
    assert data[:2] == b"\xff\xd8"
    assert np.asarray(Image.open(io.BytesIO(data))).mean() == pytest.approx(200, abs=2)


def test_every_frame_of_a_12_bit_ct_becomes_a_decodable_512_jpeg():
    """Speed is not asserted here (a timed test fails on a busy machine): previews are timed in
    benchmarks/case.py's prepare-review step, about 0.9 s for a 300-image CT case."""
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 4096, (10, 512, 512), dtype=np.uint16)
    ds = make_dataset(frames, bits_stored=12, sop_class=CT_IMAGE)
    ds.RescaleSlope, ds.RescaleIntercept, ds.WindowCenter, ds.WindowWidth = 1, -1024, 40, 400
    pixels = decode_frames(ds)
    for i in range(10):
        one = DecodedPixels(pixels.frames[i : i + 1], "MONOCHROME2", 12, 0)
        data = encode_jpeg(display_frames(one, ds, frame_numbers=[i + 1])[0])
        assert Image.open(io.BytesIO(data)).size == (512, 512)


def _cine(n: int, *, windowed: bool) -> Dataset:
    """A greyscale RLE cine whose frames differ, with or without a header window."""
    rng = np.random.default_rng(11)
    frames = np.stack([rng.integers(100 * i, 100 * i + 900, (40, 48), dtype=np.uint16) for i in range(n)])
    ds = in_syntax(make_dataset(frames, bits_stored=12), uid.RLELossless, frames)
    if windowed:
        ds.WindowCenter, ds.WindowWidth = 1500, 3000
    return ds


@pytest.mark.parametrize("windowed", [True, False])
def test_render_frame_equals_the_preview_of_that_frame(windowed: bool) -> None:
    ds = _cine(30, windowed=windowed)
    before = dataset_bytes(ds)
    arrow = ArrowAnnotation(tail_x=2, tail_y=2, head_x=30, head_y=20, frames=FrameRange(first=11, last=30))
    previews = render_previews(ds, max_frames=4, annotations=[arrow])
    for preview in previews:
        assert render_frame(ds, preview.frame_number, max_frames=4, annotations=[arrow]) == preview.jpeg
    plain = render_previews(ds, max_frames=4)
    assert render_frame(ds, 20, max_frames=4) == plain[2].jpeg != previews[2].jpeg
    assert dataset_bytes(ds) == before
    # a frame that is not sampled is windowed as the sampled ones are
    assert Image.open(io.BytesIO(render_frame(ds, 5, max_frames=4))).size == (48, 40)


def test_render_frame_of_colour_and_of_a_single_frame():
    arr = np.arange(3 * 4 * 6 * 3, dtype=np.uint8).reshape(3, 4, 6, 3)
    ds = make_dataset(arr)
    assert [render_frame(ds, n) for n in (1, 2, 3)] == [p.jpeg for p in render_previews(ds)]
    single = _ct([0, 864, 1064, 1264, 4095])
    assert render_frame(single, 1) == render_previews(single)[0].jpeg
    with pytest.raises(UnsupportedInputError, match="outside"):
        render_frame(single, 2)


def test_ct_window_presets_change_the_rendering_and_the_default_is_the_header_window():
    ds = _ct([24, 424, 624, 1064, 1464, 2024, 4095])  # -1000, -600, -400, 40, 440, 1000, 3071 HU
    ds.WindowCenter, ds.WindowWidth = 40, 400
    default = render_frame(ds, 1)
    assert render_frame(ds, 1, window=CT_WINDOW_PRESETS["soft-tissue"]) == default
    lung = render_frame(ds, 1, window=CT_WINDOW_PRESETS["lung"])
    assert lung != default
    row = np.asarray(Image.open(io.BytesIO(lung)).convert("L"))[4].astype(int)
    assert abs(int(row[1]) - 128) < 20  # -600 HU is the lung window's centre
    assert set(CT_WINDOW_PRESETS) == {"soft-tissue", "lung", "bone", "brain"}
