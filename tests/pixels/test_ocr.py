"""tftt.pixels.ocr: Tesseract finds burned-in text, and finds none once it is blacked out.

OCR calls cost 0.3-1 s each on this machine; the tests that run Tesseract are few.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from tftt.errors import ConfigurationError, UnsupportedInputError
from tftt.pixels import ocr
from tftt.pixels.burned_in import ProposedRegion

needs_tesseract = pytest.mark.skipif(
    not ocr.is_available(), reason="tesseract with eng data is not installed"
)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _us_frame(rng: np.random.Generator, rows: int = 512, columns: int = 512) -> np.ndarray:
    """A synthetic ultrasound frame: dark margins, a speckled sector fanning out below."""
    frame = rng.normal(12, 4, (rows, columns))
    yy, xx = np.mgrid[0:rows, 0:columns]
    apex = 60
    sector = ((xx - columns / 2) ** 2 + (yy - apex) ** 2 < (rows - 70) ** 2) & (
        np.abs(xx - columns / 2) < (yy - apex) * 0.9
    )
    speckle = np.kron(rng.gamma(1.5, 40, (rows // 2, columns // 2)), np.ones((2, 2)))
    frame[sector] = speckle[sector]
    return frame.clip(0, 255).astype(np.uint8)


def _draw(
    frame: np.ndarray, lines: list[tuple[tuple[int, int], str]]
) -> tuple[np.ndarray, list[Box]]:
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=24)
    boxes = []
    for origin, text in lines:
        draw.text(origin, text, fill=255, font=font)
        left, top, right, bottom = draw.textbbox(origin, text, font=font)
        boxes.append((int(left), int(top), int(right), int(bottom)))
    return np.asarray(image), boxes


def _covered(box: Box, regions: list[ProposedRegion]) -> bool:
    x0, y0, x1, y1 = box
    return any(
        r.x <= x0 and r.y <= y0 and r.x + r.width >= x1 and r.y + r.height >= y1 for r in regions
    )


def _black_out(frames: np.ndarray, regions: list[ProposedRegion]) -> np.ndarray:
    out = frames.copy()
    for r in regions:
        out[..., r.y : r.y + r.height, r.x : r.x + r.width] = 0
    return out


TEXT = [((12, 8), "DOE^JANE"), ((300, 8), "MRN 48213377"), ((12, 470), "03/11/2024")]


@needs_tesseract
def test_finds_text_on_a_noisy_us_frame_and_nothing_after_blackout() -> None:
    frame, boxes = _draw(_us_frame(np.random.default_rng(1)), TEXT)
    regions = ocr.detect_text_regions(frame)
    assert regions
    assert all(
        r.source == "ocr" and r.first_frame is None and r.last_frame is None for r in regions
    )
    for box in boxes:
        assert _covered(box, regions), box
    # regions stay near the text: padded, not the whole image
    assert sum(r.width * r.height for r in regions) < 0.15 * frame.size

    # the ID line still visible: the post-check reports it
    id_box = boxes[1]
    partial = _black_out(frame, [r for r in regions if not _covered(id_box, [r])])
    left = ocr.residual_text(partial, [r for r in regions if not _covered(id_box, [r])])
    assert left and any(_covered(id_box, [r]) for r in left)
    assert all(r.first_frame == 0 and r.last_frame == 0 for r in left)

    assert ocr.residual_text(_black_out(frame, regions), regions) == []


@needs_tesseract
def test_cine_regions_found_on_sampled_frames_apply_to_every_frame() -> None:
    rng = np.random.default_rng(2)
    frames = []
    for _ in range(3):  # the speckle moves, the overlay does not (smaller frames: faster OCR)
        frame, boxes = _draw(
            _us_frame(rng, 256, 320), [((8, 6), "DOE^JANE"), ((150, 6), "ID 4821")]
        )
        frames.append(frame)
    cine = np.stack(frames)
    regions = ocr.detect_text_regions(cine)
    for box in boxes:
        assert _covered(box, regions), box
    assert all(r.first_frame is None and r.last_frame is None for r in regions)
    cleaned = _black_out(cine, regions)
    assert ocr.residual_text(cleaned, regions) == []


@needs_tesseract
def test_speckle_without_text_gives_no_region() -> None:
    assert ocr.detect_text_regions(_us_frame(np.random.default_rng(3))) == []


def test_uniform_frames_are_not_sent_to_ocr() -> None:
    blank = np.full((4, 64, 64), 1000, dtype=np.uint16)
    assert ocr.to_ocr_image(blank[0]) is None
    if ocr.is_available():
        assert ocr.detect_text_regions(blank) == []


def test_missing_tesseract_is_a_configuration_error_not_a_pass() -> None:
    missing = "/nonexistent/tesseract"
    assert not ocr.is_available(missing)
    frame = np.zeros((32, 32), dtype=np.uint8)
    frame[10:20, 10:20] = 255
    for call in (
        lambda: ocr.detect_text_regions(frame, executable=missing),
        lambda: ocr.residual_text(frame, [], executable=missing),
        lambda: ocr.recognize_words(frame, executable=missing),
    ):
        with pytest.raises(ConfigurationError) as caught:
            call()
        assert caught.value.code == "ocr-unavailable"


def test_any_bit_depth_and_colour_become_8_bit_grayscale() -> None:
    signed = np.array([[-1000, 0], [1000, 3000]], dtype=np.int16)
    assert ocr.to_ocr_image(signed).tolist() == [[0, 64], [128, 255]]
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (0, 0, 200)  # blue text stays bright (channel maximum)
    rgb[1, 1] = (255, 255, 0)
    assert ocr.to_ocr_image(rgb).tolist() == [[200, 0], [0, 255]]
    with pytest.raises(UnsupportedInputError):
        ocr.to_ocr_image(np.zeros((2, 2, 2, 2), dtype=np.uint8))


@pytest.mark.parametrize(
    ("shape", "color", "expected"),
    [
        ((64, 48), None, (1, 64, 48)),
        ((64, 48, 3), None, (1, 64, 48, 3)),
        ((5, 64, 48), None, (5, 64, 48)),
        ((5, 64, 48, 3), None, (5, 64, 48, 3)),
        ((64, 48, 3), False, (64, 48, 3)),  # a 64-frame grayscale cine of 48x3 pixels
    ],
)
def test_frame_shapes(
    shape: tuple[int, ...], color: bool | None, expected: tuple[int, ...]
) -> None:
    assert ocr.as_frames(np.zeros(shape, dtype=np.uint8), color=color).shape == expected


def test_unsupported_shape_is_refused() -> None:
    with pytest.raises(UnsupportedInputError):
        ocr.as_frames(np.zeros((2, 3, 4, 5), dtype=np.uint8))


def test_sampling_takes_first_middle_last() -> None:
    assert ocr.sample_indices(3, 5) == [0, 1, 2]
    picks = ocr.sample_indices(500, 5)
    assert picks[0] == 0 and picks[-1] == 499
    assert 249 in picks or 250 in picks
    assert len(picks) == 5
    assert ocr.sample_indices(0, 5) == []


def test_static_composite_keeps_only_what_does_not_move() -> None:
    rng = np.random.default_rng(4)
    cine = rng.integers(0, 200, (6, 40, 40), dtype=np.uint8)
    cine[:, 5:10, 5:30] = 255  # static overlay
    composite = ocr.static_composite(cine, ocr.sample_indices(6, 5))
    assert composite is not None
    assert (composite[5:10, 5:30] == 255).all()
    assert (composite[20:, :] == cine.min()).mean() > 0.9
    assert ocr.static_composite(np.repeat(cine[:1], 4, axis=0), [0, 1, 2, 3]) is None


def test_merge_rects_joins_touching_boxes_only() -> None:
    merged = ocr.merge_rects([(0, 0, 10, 10), (10, 0, 20, 10), (50, 50, 60, 60), (5, 5, 12, 30)])
    assert merged == [(0, 0, 20, 30), (50, 50, 60, 60)]


def test_word_selection_needs_confidence_and_two_characters() -> None:
    plain = np.zeros((40, 200), dtype=np.uint8)
    plain[:, ::4] = 255  # "strokes" on a plain background
    words = [
        ocr.WordBox(x=10, y=10, width=40, height=14, confidence=92.0, text="MRN"),
        ocr.WordBox(x=56, y=10, width=60, height=14, confidence=5.0, text="S^MITH"),  # same line
        ocr.WordBox(x=150, y=10, width=10, height=14, confidence=99.0, text="4"),  # 1 char, far
        ocr.WordBox(x=10, y=30, width=14, height=8, confidence=70.0, text="ae"),  # 2 chars, weak
    ]
    chosen = ocr.select_text_words(words, plain, min_confidence=60)
    assert [word.text for word in chosen] == ["MRN", "S^MITH"]
    flat = np.zeros((40, 200), dtype=np.uint8)  # no strokes: Tesseract imagined these words
    assert ocr.select_text_words(words, flat, min_confidence=60) == []


@needs_tesseract
def test_text_over_dense_full_frame_speckle_is_found_from_the_brightest_levels() -> None:
    rng = np.random.default_rng(4)
    speckle = rng.gamma(2.0, 30.0, (256, 320)).clip(0, 255).astype(np.uint8)
    frame, boxes = _draw(speckle, [((8, 10), "DOE^JANE"), ((150, 10), "ID 48213377")])
    regions = ocr.detect_text_regions(frame)
    for box in boxes:
        assert _covered(box, regions), box
    assert sum(r.width * r.height for r in regions) < 0.25 * frame.size
    assert ocr.residual_text(_black_out(frame, regions), regions) == []


def test_brightest_levels_are_strokes_or_nothing() -> None:
    image = np.full((40, 40), 30, dtype=np.uint8)
    image[10:12, 5:30] = 250
    image[0, 0] = 240  # within the top levels too
    bright = ocr.brightest_levels(image)
    assert bright is not None and bright.dtype == np.uint8
    assert set(np.unique(bright).tolist()) == {0, 255}
    assert bright[10:12, 5:30].all() and bright[0, 0] == 255 and bright[20, 20] == 0
    assert ocr.brightest_levels(np.full((8, 8), 200, dtype=np.uint8)) is None  # uniform
    wide = image.copy()
    wide[20:40] = 250  # half the image at the top: anatomy or background, not strokes
    assert ocr.brightest_levels(wide) is None
