"""Find burned-in text in pixels with Tesseract: the OCR safety net.

Tesseract runs as a child process that reads one image on stdin and writes TSV word boxes on
stdout (``tesseract stdin stdout -l eng --psm 11 tsv``): no temporary files, no network, no
model downloads (the ``eng`` traineddata of the Debian package ships with it).

Pipeline for one frame: colour -> per-pixel channel maximum (coloured overlays stay bright);
any bit depth -> 8 bit by the frame's min..max; a uniform frame is skipped; a dark frame is
inverted (Tesseract reads dark text on light best); a frame whose smaller side is under
``upscale_below`` (1024) pixels is enlarged x2 (up to x4 for tiny images), because Tesseract
misses the 10-14 px text of ultrasound and CT overlays at x1. Measured here (Tesseract CPU
time per 512x512 frame): 0.12 s (plain background) to 0.18 s (speckle) at x1; 0.16 s to
0.8 s at x2. Wall time on the 2 shared cores was 1.5-2.5x that under load.

Each image is also read a second time as its *brightest levels* only (the top 12 of 255 grey
levels, white on black, at x1; skipped when they cover more than 5 % of the image): burned-in
text is usually drawn at the top of the range, and over dense full-frame speckle Tesseract
reads it there (0.1 s) when it reads nothing from the frame itself (measured on synthetic
gamma speckle: 0 words of 3 from the frame, 3 of 3 from the brightest levels).

Which words count as text (speckle makes Tesseract report short, low-confidence "words"):

- a *seed* has at least 2 alphanumeric characters and a confidence of at least
  ``min_confidence`` (3-4 characters), ``min_confidence + 25`` (2 characters),
  ``2/3 * min_confidence`` (5 or more), or ``1/3 * min_confidence`` for 4 or more characters
  that are upper case or digits (how names, IDs and dates are burned in); and unless its
  confidence is at least 90 it must sit on a plain background (>= 40 % of its box within
  +-10 grey levels of one level: text on a plain background scores about 0.45-0.75);
- any other word box on the same text line as an accepted word, and close to it, joins it
  (a name with ``^`` is often read with low confidence next to a confidently read ID);
- a box that is more than 95 % one grey level is never text (Tesseract "reads" words on the
  flat edge of a blacked-out rectangle).

Accepted boxes are padded (vertically ``max(padding, padding_fraction * box height)`` pixels,
horizontally at least three quarters of the box height, about one character, because Tesseract
often drops a character at the end of a word touching other content), clipped to the image and
merged where they touch. On a cine, ``sample`` frames are read (first, last,
evenly spaced) at x1 plus one *static composite* (pixels equal on all sampled frames, the
rest set to the minimum: overlays without the moving anatomy), enlarged as above; a region
found on any of them is proposed for every frame, since burned-in overlays are static.

OCR is a safety net, not a guarantee: text over dense noise that is not drawn at the top of the
range can still be missed, and reading a frame full of speckle stays slow (3-5 s at x2), which
is why device rules and review come first.

Word text read by OCR may be PHI: it never leaves this module (regions carry coordinates only)
and is never logged.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from tftt.errors import ConfigurationError, RedactionError, UnsupportedInputError
from tftt.pixels.burned_in import ProposedRegion

DEFAULT_EXECUTABLE = "tesseract"
DEFAULT_SAMPLE = 5
DEFAULT_MIN_CONFIDENCE = 60.0
DEFAULT_PADDING = 4
DEFAULT_PADDING_FRACTION = 0.15
DEFAULT_UPSCALE_BELOW = 1024
DEFAULT_TIMEOUT_SECONDS = 60.0
_MAX_UPSCALE = 4
_SURE_CONFIDENCE = 90.0  # seeds this confident need no plain background
_UNIFORM_SHARE = 0.4
_BLANK_SHARE = 0.95
_CHARACTER_WIDTH = 0.75  # of the word height: horizontal padding
_STATIC_TOLERANCE = 0.03  # of the cine's value range: absorbs lossy-compression noise
_BRIGHT_LEVELS = 12  # of 255: the top grey levels read again on their own (see brightest_levels)
_BRIGHT_MAX_SHARE = 0.05
# One OpenMP thread: faster on 2 shared cores (measured: a noisy US frame 2.5 s -> 1.15 s).
_CHILD_ENV = {"OMP_THREAD_LIMIT": "1", "LC_ALL": "C"}


class WordBox(BaseModel):
    """One word found by OCR, in the frame's pixel coordinates. ``text`` may be PHI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    confidence: float
    text: str = Field(repr=False)


class _Box(Protocol):
    """Anything with a pixel rectangle and an optional frame range (ProposedRegion, the
    redaction spec's Rectangle)."""

    @property
    def x(self) -> int: ...
    @property
    def y(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


# --------------------------------------------------------------------------- tesseract


@lru_cache(maxsize=8)
def _resolve(executable: str) -> str | None:
    path = shutil.which(executable)
    if path is None:
        return None
    try:
        listed = subprocess.run(
            [path, "--list-langs"], capture_output=True, timeout=30, env=_CHILD_ENV, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    languages = listed.stdout.decode("utf-8", "replace").split()
    return path if listed.returncode == 0 and "eng" in languages else None


def is_available(executable: str = DEFAULT_EXECUTABLE) -> bool:
    """True when ``executable`` runs and has the ``eng`` language data."""
    return _resolve(executable) is not None


def _require(executable: str) -> str:
    path = _resolve(executable)
    if path is None:
        raise ConfigurationError(
            "OCR is unavailable: tesseract with English language data was not found "
            "(install the Debian packages tesseract-ocr and tesseract-ocr-eng)",
            code="ocr-unavailable",
        )
    return path


def _pnm(image: np.ndarray) -> bytes:
    rows, columns = image.shape
    return b"P5\n%d %d\n255\n" % (columns, rows) + image.tobytes()


def _parse_tsv(text: str, scale: int, rows: int, columns: int) -> list[WordBox]:
    words: list[WordBox] = []
    for line in text.splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) != 12 or parts[0] != "5" or not parts[11].strip():
            continue
        left, top, width, height = (int(value) for value in parts[6:10])
        x0 = max(0, left // scale)
        y0 = max(0, top // scale)
        x1 = min(columns, math.ceil((left + width) / scale))
        y1 = min(rows, math.ceil((top + height) / scale))
        if x1 <= x0 or y1 <= y0:
            continue
        words.append(
            WordBox(
                x=x0,
                y=y0,
                width=x1 - x0,
                height=y1 - y0,
                confidence=float(parts[10]),
                text=parts[11].strip(),
            )
        )
    return words


def to_ocr_image(frame: np.ndarray) -> np.ndarray | None:
    """One frame (rows x columns, or rows x columns x samples) as 8-bit grayscale for OCR:
    the channel maximum for colour, the frame's min..max stretched to 0..255 for other than
    8-bit data. ``None`` for a uniform frame (it cannot hold text).

    Raises:
        UnsupportedInputError: not a 2-D or 3-D numeric array.
    """
    if frame.ndim == 3:
        frame = frame[..., :3].max(axis=-1)
    if frame.ndim != 2 or frame.size == 0 or not np.issubdtype(frame.dtype, np.number):
        raise UnsupportedInputError(
            "OCR needs a 2-D grayscale or 3-D colour frame", code="ocr-input"
        )
    if frame.dtype == np.uint8:
        return None if frame.min() == frame.max() else np.ascontiguousarray(frame)
    low = float(frame.min())
    high = float(frame.max())
    if not high > low:  # uniform (or NaN)
        return None
    scaled = (frame.astype(np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def recognize_words(
    frame: np.ndarray,
    *,
    executable: str = DEFAULT_EXECUTABLE,
    upscale_below: int = DEFAULT_UPSCALE_BELOW,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[WordBox]:
    """Every word Tesseract reports on one frame, in the frame's coordinates.

    Raises:
        ConfigurationError: tesseract is missing (code ``ocr-unavailable``).
        RedactionError: tesseract failed or timed out on this frame (codes ``ocr-failed``,
            ``ocr-timeout``); the image cannot be checked and must be quarantined.
        UnsupportedInputError: the frame is not a 2-D or 3-D numeric array.
    """
    path = _require(executable)
    image = to_ocr_image(frame)
    if image is None:
        return []
    return _recognize(image, path, upscale_below, timeout)


def _recognize(image: np.ndarray, path: str, upscale_below: int, timeout: float) -> list[WordBox]:
    rows, columns = image.shape
    if image.mean() < 128:  # Tesseract reads dark text on a light background best
        image = 255 - image
    scale = 1
    if min(rows, columns) < upscale_below:  # x2, more for tiny images (smaller side >= 512)
        scale = min(_MAX_UPSCALE, max(2, math.ceil(512 / min(rows, columns))))
        image = np.asarray(
            Image.fromarray(image).resize((columns * scale, rows * scale), Image.Resampling.BICUBIC)
        )
    command = [path, "stdin", "stdout", "-l", "eng", "--psm", "11", "tsv"]
    try:
        done = subprocess.run(
            command,
            input=_pnm(image),
            capture_output=True,
            timeout=timeout,
            env=_CHILD_ENV,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RedactionError(f"OCR timed out after {timeout:g} s", code="ocr-timeout") from exc
    except OSError as exc:
        raise ConfigurationError("OCR could not start tesseract", code="ocr-unavailable") from exc
    if done.returncode != 0:
        raise RedactionError(
            f"OCR failed: tesseract exit status {done.returncode}", code="ocr-failed"
        )
    return _parse_tsv(done.stdout.decode("utf-8", "replace"), scale, rows, columns)


# --------------------------------------------------------------------------- word selection


def _alnum(text: str) -> int:
    return sum(char.isalnum() for char in text)


def _is_seed(word: WordBox, image: np.ndarray, min_confidence: float) -> bool:
    count = _alnum(word.text)
    if count < 2:
        return False
    if count == 2:
        needed = min(min_confidence + 25.0, 95.0)
    elif count >= 5:
        needed = min_confidence * 2.0 / 3.0
    else:
        needed = min_confidence
    if count >= 4 and _looks_like_identifier(word.text):
        needed = min(needed, min_confidence / 3.0)
    if word.confidence < needed:
        return False
    return word.confidence >= _SURE_CONFIDENCE or _background_share(image, word) >= _UNIFORM_SHARE


def _is_blank(word: WordBox, image: np.ndarray) -> bool:
    """A box that is almost one grey level holds no strokes: Tesseract "reads" words on the
    flat edge of a blacked-out rectangle."""
    return _background_share(image, word) > _BLANK_SHARE


def _background_share(image: np.ndarray, word: WordBox) -> float:
    """Share of the box's pixels within +-10 grey levels of its commonest level: text on a
    plain background scores about 0.45-0.75, Tesseract's "words" in speckle mostly below 0.4."""
    box = image[word.y : word.y + word.height, word.x : word.x + word.width]
    if box.size == 0:
        return 0.0
    counts = np.concatenate(([0], np.cumsum(np.bincount(box.ravel(), minlength=256))))
    levels = np.arange(256)
    window = counts[np.minimum(levels + 11, 256)] - counts[np.maximum(levels - 10, 0)]
    return float(window.max()) / box.size


def _looks_like_identifier(text: str) -> bool:
    """Upper case and digits: how names (DICOM PN), IDs and dates are burned in, and what
    Tesseract's noise in speckle (short lower-case "words") rarely looks like."""
    letters_and_digits = [char for char in text if char.isalnum()]
    upper = sum(char.isupper() or char.isdigit() for char in letters_and_digits)
    return upper >= 0.75 * len(letters_and_digits)


def _same_line(a: WordBox, b: WordBox) -> bool:
    overlap = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if overlap < 0.5 * min(a.height, b.height):
        return False
    if max(a.height, b.height) > 2.5 * min(a.height, b.height):
        return False
    gap = max(a.x, b.x) - min(a.x + a.width, b.x + b.width)
    return gap <= 1.5 * max(a.height, b.height)


def select_text_words(
    words: Sequence[WordBox], image: np.ndarray, *, min_confidence: float
) -> list[WordBox]:
    """The words that count as text: seeds, plus words on the same line next to accepted ones.
    ``image`` is the frame as :func:`to_ocr_image` returns it (8-bit grayscale)."""
    words = [word for word in words if not _is_blank(word, image)]
    seeds = [_is_seed(word, image, min_confidence) for word in words]
    accepted = [word for word, seed in zip(words, seeds, strict=True) if seed]
    rest = [word for word, seed in zip(words, seeds, strict=True) if not seed]
    grown = True
    while grown and rest:
        grown = False
        for word in list(rest):
            if any(_same_line(word, other) for other in accepted):
                accepted.append(word)
                rest.remove(word)
                grown = True
    return accepted


# --------------------------------------------------------------------------- regions

_Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _pad(word: WordBox, padding: int, fraction: float, rows: int, columns: int) -> _Rect:
    vertical = max(padding, math.ceil(fraction * word.height))
    # Tesseract often drops a character at the end of a word that touches other content:
    # widen by about one character (three quarters of the text height) on each side.
    horizontal = max(vertical, math.ceil(_CHARACTER_WIDTH * word.height))
    return (
        max(0, word.x - horizontal),
        max(0, word.y - vertical),
        min(columns, word.x + word.width + horizontal),
        min(rows, word.y + word.height + vertical),
    )


def _touch(a: _Rect, b: _Rect) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _union(a: _Rect, b: _Rect) -> _Rect:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def merge_rects(rects: Sequence[_Rect]) -> list[_Rect]:
    """Union rectangles that overlap or touch, until none do; sorted top-to-bottom."""
    pending = list(rects)
    merged: list[_Rect] = []
    while pending:
        current = pending.pop()
        changed = True
        while changed:
            changed = False
            for other in list(pending):
                if _touch(current, other):
                    current = _union(current, other)
                    pending.remove(other)
                    changed = True
            for other in list(merged):
                if _touch(current, other):
                    current = _union(current, other)
                    merged.remove(other)
                    changed = True
        merged.append(current)
    return sorted(merged, key=lambda r: (r[1], r[0], r[3], r[2]))


def as_frames(frames: np.ndarray, *, color: bool | None = None) -> np.ndarray:
    """View ``frames`` as (frames, rows, columns[, samples]).

    Accepted shapes: (rows, columns); (rows, columns, 3|4) a colour frame; (n, rows, columns) a
    grayscale cine; (n, rows, columns, 3|4) a colour cine. ``color`` settles a 3-D array whose
    last axis has 3 or 4 entries (by default such an array is one colour frame).

    Raises:
        UnsupportedInputError: any other shape.
    """
    if frames.ndim == 2:
        return frames[np.newaxis]
    if frames.ndim == 3:
        is_color = frames.shape[-1] in (3, 4) if color is None else color
        if is_color and frames.shape[-1] in (3, 4):
            return frames[np.newaxis]
        if not is_color:
            return frames
    if frames.ndim == 4 and frames.shape[-1] in (3, 4) and color is not False:
        return frames
    raise UnsupportedInputError(f"unsupported pixel array shape {frames.shape}", code="ocr-input")


def sample_indices(count: int, sample: int) -> list[int]:
    """Frame indices to OCR: first, last and evenly spaced ones between (all if few)."""
    if count <= 0:
        return []
    if sample <= 0:
        raise ValueError("sample must be positive")
    if count <= sample:
        return list(range(count))
    picks = np.linspace(0, count - 1, num=sample)
    return sorted({int(value) for value in np.rint(picks)})


def static_composite(stack: np.ndarray, indices: Sequence[int]) -> np.ndarray | None:
    """One frame holding only what is the same on all sampled frames of a cine (overlays), the
    rest set to the minimum value; ``None`` when there is nothing to gain (fewer than 2 frames,
    or almost every pixel is static, so the frames themselves show the same)."""
    if len(indices) < 2:
        return None
    picked = stack[list(indices)]
    low = picked.min()
    spread = float(picked.max()) - float(low)
    if spread <= 0:
        return None
    ptp = np.ptp(picked, axis=0)
    if ptp.ndim == 3:  # colour: a pixel is static when every sample is
        ptp = ptp.max(axis=-1)
    static = ptp <= max(1.0, _STATIC_TOLERANCE * spread)
    if static.mean() > 0.95:
        return None
    mask = static[..., np.newaxis] if picked.ndim == 4 else static
    return np.where(mask, picked[0], low)


def _reads(
    stack: np.ndarray, sample: int, upscale_below: int
) -> list[tuple[np.ndarray, int | None, int]]:
    """What to OCR: (image, frame index or None for the composite, upscale_below).

    With a static composite, the sampled frames are read at x1 and only the composite (no
    speckle, so cheap to read) is enlarged: enlarging noisy frames costs 3-6x and reads noise.
    """
    indices = sample_indices(stack.shape[0], sample)
    composite = static_composite(stack, indices)
    if composite is None:
        return [(stack[index], index, upscale_below) for index in indices]
    reads: list[tuple[np.ndarray, int | None, int]] = [(stack[i], i, 0) for i in indices]
    reads.append((composite, None, upscale_below))
    return reads


def _frame_rects(
    frame: np.ndarray,
    *,
    min_confidence: float,
    padding: int,
    padding_fraction: float,
    executable: str,
    upscale_below: int,
    timeout: float,
    ignore: Sequence[_Rect] = (),
) -> list[_Rect]:
    rows, columns = frame.shape[:2]
    image = to_ocr_image(frame)
    if image is None:
        return []
    path = _require(executable)
    chosen: list[WordBox] = []
    reads = [(image, upscale_below)]
    bright = brightest_levels(image)
    if bright is not None:
        reads.append((bright, 0))  # clean strokes: x1 reads them best, and fast
    for picture, upscale in reads:
        words = _recognize(picture, path, upscale, timeout)
        if ignore:
            words = [word for word in words if not _inside_any(word, ignore)]
        chosen += select_text_words(words, picture, min_confidence=min_confidence)
    return merge_rects([_pad(word, padding, padding_fraction, rows, columns) for word in chosen])


def brightest_levels(image: np.ndarray) -> np.ndarray | None:
    """The pixels of an 8-bit OCR image within ``_BRIGHT_LEVELS`` of its maximum, as white on
    black; ``None`` when they are more than ``_BRIGHT_MAX_SHARE`` of the image (then they are
    anatomy or background, not strokes) or when the image has nothing else.

    Burned-in text is usually drawn at the top of the range; over dense speckle Tesseract reads
    it from this image (measured: 0.1 s per 512x512 frame) when it cannot from the frame.
    """
    level = int(image.max()) - _BRIGHT_LEVELS
    if int(image.min()) >= level:
        return None
    mask = image >= level
    if mask.mean() > _BRIGHT_MAX_SHARE:
        return None
    return np.where(mask, 255, 0).astype(np.uint8)


def _inside_any(word: WordBox, rects: Sequence[_Rect], tolerance: int = 1) -> bool:
    return any(
        word.x >= r[0] - tolerance
        and word.y >= r[1] - tolerance
        and word.x + word.width <= r[2] + tolerance
        and word.y + word.height <= r[3] + tolerance
        for r in rects
    )


def _to_region(rect: _Rect, first: int | None = None, last: int | None = None) -> ProposedRegion:
    x0, y0, x1, y1 = rect
    return ProposedRegion(
        x=x0, y=y0, width=x1 - x0, height=y1 - y0, first_frame=first, last_frame=last, source="ocr"
    )


def detect_text_regions(
    frames: np.ndarray,
    *,
    sample: int = DEFAULT_SAMPLE,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    padding: int = DEFAULT_PADDING,
    padding_fraction: float = DEFAULT_PADDING_FRACTION,
    color: bool | None = None,
    executable: str = DEFAULT_EXECUTABLE,
    upscale_below: int = DEFAULT_UPSCALE_BELOW,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[ProposedRegion]:
    """Padded regions around burned-in text, proposed for every frame.

    ``frames`` is one frame or a cine (see :func:`as_frames`), any numeric dtype. On a cine
    ``sample`` frames are read (first, last, evenly spaced) plus their static composite; a
    region found on any of them is proposed for all frames.

    Raises:
        ConfigurationError: tesseract is missing (code ``ocr-unavailable``).
        RedactionError: OCR failed on a frame (codes ``ocr-failed``, ``ocr-timeout``).
        UnsupportedInputError: the array shape is not a frame or a cine.
    """
    stack = as_frames(frames, color=color)
    _require(executable)
    rects: list[_Rect] = []
    for image, _, upscale in _reads(stack, sample, upscale_below):
        rects.extend(
            _frame_rects(
                image,
                min_confidence=min_confidence,
                padding=padding,
                padding_fraction=padding_fraction,
                executable=executable,
                upscale_below=upscale,
                timeout=timeout,
            )
        )
    return [_to_region(rect) for rect in merge_rects(rects)]


def _applies(region: _Box, frame: int) -> bool:
    first = getattr(region, "first_frame", None)
    last = getattr(region, "last_frame", None)
    return (first is None or frame >= first) and (last is None or frame <= last)


def _applies_to_all(region: _Box, indices: Sequence[int]) -> bool:
    return all(_applies(region, index) for index in indices)


def residual_text(
    frames: np.ndarray,
    regions_blacked: Sequence[_Box],
    *,
    sample: int = DEFAULT_SAMPLE,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    padding: int = DEFAULT_PADDING,
    padding_fraction: float = DEFAULT_PADDING_FRACTION,
    color: bool | None = None,
    executable: str = DEFAULT_EXECUTABLE,
    upscale_below: int = DEFAULT_UPSCALE_BELOW,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[ProposedRegion]:
    """Text still readable after redaction, as regions on the frame where it was read.

    ``frames`` are the redacted pixels; words lying wholly inside a blacked region that applies
    to the frame are ignored. An empty list means OCR found nothing; anything else means the
    caller must not release the image (quarantine). Same thresholds as
    :func:`detect_text_regions`.

    Raises:
        ConfigurationError: tesseract is missing (code ``ocr-unavailable``).
        RedactionError: OCR failed on a frame (codes ``ocr-failed``, ``ocr-timeout``).
        UnsupportedInputError: the array shape is not a frame or a cine.
    """
    stack = as_frames(frames, color=color)
    _require(executable)
    found: list[ProposedRegion] = []
    indices = sample_indices(stack.shape[0], sample)
    for image, index, upscale in _reads(stack, sample, upscale_below):
        ignore = [
            (r.x, r.y, r.x + r.width, r.y + r.height)
            for r in regions_blacked
            if (_applies(r, index) if index is not None else _applies_to_all(r, indices))
        ]
        rects = _frame_rects(
            image,
            min_confidence=min_confidence,
            padding=padding,
            padding_fraction=padding_fraction,
            executable=executable,
            upscale_below=upscale,
            timeout=timeout,
            ignore=ignore,
        )
        found.extend(_to_region(rect, index, index) for rect in rects)
    return found
