from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tftt.synth.burnin import burned_lines, render_text, stamp
from tftt.synth.canaries import make_identity
from tftt.synth.studies import us_cine, xa_run

WHO = make_identity(0)


def test_burned_lines_name_the_patient() -> None:
    lines = burned_lines(WHO)
    assert lines[0] == f"{WHO.family_name}^{WHO.given_name}"
    assert WHO.patient_id in lines[1]
    assert WHO.birth_date in lines[2]


@pytest.mark.parametrize("width", [256, 320, 640, 1024])
def test_text_box_fits_and_has_ink(width: int) -> None:
    text = render_text(burned_lines(WHO), image_width=width, image_height=width * 3 // 4)
    assert text.x + text.width <= width
    assert text.y + text.height <= width * 3 // 4
    assert text.ink.shape == (text.height, text.width)
    coverage = float(text.ink.mean())
    assert 0.05 < coverage < 0.6
    assert text.height >= 3 * 12  # three lines, at least 12 px each


def test_text_that_cannot_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        render_text(burned_lines(WHO), image_width=100, image_height=100)
    with pytest.raises(ValueError, match="does not fit"):
        render_text(burned_lines(WHO), image_width=400, image_height=30)


def test_stamp_copies_and_marks_only_the_box_on_the_chosen_frames() -> None:
    frames = np.full((3, 200, 300), 100, dtype=np.uint8)
    text = render_text(("ID CNRY",), image_width=300, image_height=200, x=10, y=20)
    out, box = stamp(frames, text, frame_indices=(0, 2))
    assert (frames == 100).all()  # input untouched
    assert box.frames == (0, 2)
    assert (out[1] == 100).all()
    changed = np.argwhere(out[0] != 100)
    assert changed[:, 0].min() >= box.y and changed[:, 0].max() < box.y + box.height
    assert changed[:, 1].min() >= box.x and changed[:, 1].max() < box.x + box.width
    region = out[0, box.y : box.y + box.height, box.x : box.x + box.width]
    assert region.min() == 0 and region.max() == 255
    with pytest.raises(ValueError, match="out of range"):
        stamp(frames, text, frame_indices=(3,))
    with pytest.raises(ValueError):
        stamp(frames[0], text)


def test_stamp_colours_rgb_frames() -> None:
    frames = np.zeros((1, 100, 200, 3), dtype=np.uint8)
    text = render_text(("CNRY",), image_width=200, image_height=100)
    out, _ = stamp(frames, text, foreground=(255, 255, 0))
    assert out[..., 0].max() == 255 and out[..., 2].max() == 0


def _ocr(image: np.ndarray, tmp_path: Path) -> str:
    exe = shutil.which("tesseract")
    assert exe is not None
    picture = Image.fromarray(image)
    picture = picture.resize((picture.width * 2, picture.height * 2), Image.Resampling.LANCZOS)
    path = tmp_path / "frame.png"
    picture.save(path)
    result = subprocess.run(
        [exe, str(path), "-", "--psm", "11"],
        capture_output=True,
        text=True,
        check=True,
        env={"OMP_THREAD_LIMIT": "1"},
        timeout=60,
    )
    return "".join(result.stdout.split())


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
def test_tesseract_reads_the_burned_in_id(tmp_path: Path) -> None:
    who = make_identity(0)
    us = us_cine(who, frames=2)[0].dataset.pixel_array  # 320 wide, RGB over speckle
    assert who.patient_id in _ocr(us[1], tmp_path)
    other = make_identity(1)
    xa = xa_run(other, frames=1)[0].dataset.pixel_array  # 256 wide
    assert other.patient_id in _ocr(xa, tmp_path)
