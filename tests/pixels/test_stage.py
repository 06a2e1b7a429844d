"""The headless path's automatic pixel stage: device rules + OCR, then an OCR re-check."""

from __future__ import annotations

import pytest

from tftt.errors import RedactionError
from tftt.pixels.codecs import decode_frames
from tftt.pixels.stage import make_pixel_stage
from tftt.settings import DeidSettings, Settings
from tftt.synth.canaries import make_identity
from tftt.synth.studies import ct_series, us_cine


def _stage(ocr: bool = True):
    return make_pixel_stage(Settings(deid=DeidSettings(ocr=ocr)))


def test_text_found_is_blacked_out_on_every_frame():
    obj = us_cine(make_identity(51), frames=2)[0]
    result = _stage()(obj.dataset)
    assert result.cleaned and result.dataset.BurnedInAnnotation == "NO"
    frames = decode_frames(result.dataset).frames
    for box in obj.boxes:
        assert (frames[:, box.y : box.y + box.height, box.x : box.x + box.width] == 0).all()


def test_a_flagged_image_without_any_located_text_is_refused():
    """Regression: a flagged image in which OCR found nothing was released uncleaned."""
    obj = us_cine(make_identity(52), frames=1, burned_in=False)[0]  # an ultrasound sector, no text
    assert obj.boxes == ()
    with pytest.raises(RedactionError) as caught:
        _stage()(obj.dataset)
    assert caught.value.code == "burned-in-unconfirmed"


def test_a_flagged_image_cannot_pass_unchecked_with_ocr_off():
    with pytest.raises(RedactionError) as caught:
        _stage(ocr=False)(us_cine(make_identity(53), frames=1)[0].dataset)
    assert caught.value.code == "burned-in-unchecked"


def test_an_image_without_risk_is_passed_unchanged():
    ds = ct_series(make_identity(54), slices=1, size=32)[0].dataset
    result = _stage()(ds)
    assert result.cleaned is False and result.dataset is ds
