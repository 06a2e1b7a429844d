"""The automatic pixel stage of the headless path (``tftt deidentify``).

For an image whose header says it may carry burned-in text (BurnedInAnnotation, modality,
ImageType, CTP's filter), the stage proposes regions from CTP's device rules and from OCR,
blacks them out on every frame, and runs OCR again on the result. Text still found, a risky
image that cannot be checked (OCR off and no device rule), or a risky image in which no text was
located at all, is a :class:`RedactionError`, so the image is quarantined instead of passed
through. Pure apart from running the Tesseract binary.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from tftt.deid.pipeline import PixelStage, PixelStageResult
from tftt.errors import RedactionError
from tftt.pixels.burned_in import ProposedRegion, device_rule_regions, header_risk
from tftt.pixels.codecs import decode_frames, frame_count
from tftt.pixels.ocr import detect_text_regions, residual_text
from tftt.pixels.pixel_rules import BurnedInFilter, PixelRules, load_burned_in_filter, load_pixel_rules
from tftt.pixels.redact import apply_edits
from tftt.redaction_spec import FrameRange, ImageEdits, Rectangle
from tftt.settings import Settings

_PIXEL_DATA = 0x7FE00010


def to_rectangle(region: ProposedRegion, frames: int) -> Rectangle:
    """A proposed region (0-based frames) as a spec rectangle (1-based frame range)."""
    frame_range = None
    if region.first_frame is not None or region.last_frame is not None:
        first = (region.first_frame or 0) + 1
        last = (region.last_frame if region.last_frame is not None else frames - 1) + 1
        frame_range = FrameRange(first=first, last=min(last, frames))
    return Rectangle(x=region.x, y=region.y, width=region.width, height=region.height,
                     frames=frame_range, source=region.source)


@dataclass(frozen=True)
class AutomaticCleaner:
    """Device rules + OCR proposals applied automatically, then an OCR re-check."""

    rules: PixelRules
    burned_in_filter: BurnedInFilter
    ocr: bool = True

    def propose(self, ds: Dataset) -> list[ProposedRegion]:
        """Regions that probably hold burned-in text ([] when the header shows no risk).

        Raises:
            RedactionError: a risky image that cannot be checked (no OCR, no device rule).
        """
        if ds.get_item(_PIXEL_DATA) is None:
            return []
        if not header_risk(ds, burned_in_filter=self.burned_in_filter).flagged:
            return []
        regions = device_rule_regions(ds, self.rules)
        if self.ocr:
            regions += detect_text_regions(decode_frames(ds).frames)
        elif not regions:
            raise RedactionError("image may carry burned-in text and OCR is disabled",
                                 code="burned-in-unchecked")
        if not regions:
            # Flagged, yet neither a device rule nor OCR located any text: more likely text OCR
            # cannot read (speckle, small or stylised fonts) than a clean image. No reviewer
            # sees a headless output, so a person must decide.
            raise RedactionError("image may carry burned-in text that neither a device rule nor OCR located",
                                 code="burned-in-unconfirmed")
        return regions

    def __call__(self, ds: Dataset) -> PixelStageResult:
        regions = self.propose(ds)
        if not regions:
            return PixelStageResult(dataset=ds, cleaned=False)
        frames = frame_count(ds)
        edits = ImageEdits(blackouts=tuple(to_rectangle(r, frames) for r in regions))
        cleaned = apply_edits(ds, edits)
        if self.ocr:
            left = residual_text(decode_frames(cleaned).frames, regions)
            if left:
                raise RedactionError(f"burned-in text remains in {len(left)} region(s) after cleaning",
                                     code="residual-burned-in-text")
        cleaned.BurnedInAnnotation = "NO"
        return PixelStageResult(dataset=cleaned, cleaned=True)


def make_pixel_stage(settings: Settings) -> PixelStage:
    """The pixel stage the settings ask for.

    Raises:
        RuleError: the pixel rule files are missing or invalid.
    """
    rules_dir = settings.deid.rules_dir
    kwargs = {"rules_dir": rules_dir} if rules_dir else {}
    return AutomaticCleaner(rules=load_pixel_rules(**kwargs),
                            burned_in_filter=load_burned_in_filter(**kwargs), ocr=settings.deid.ocr)
