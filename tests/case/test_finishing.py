from tftt.case.finishing import still_readable
from tftt.pixels.burned_in import ProposedRegion
from tftt.redaction_spec import CropBox, Rectangle


def _found(x: int, y: int) -> ProposedRegion:
    return ProposedRegion(x=x, y=y, width=20, height=10, source="ocr")


def test_text_found_again_where_it_was_detected_is_still_readable():
    detected = (Rectangle(x=10, y=10, width=100, height=20),)
    assert still_readable([_found(50, 15)], detected, None) == [_found(50, 15)]


def test_noise_where_no_text_was_detected_does_not_count():
    detected = (Rectangle(x=10, y=10, width=100, height=20),)
    assert still_readable([_found(200, 150)], detected, None) == []


def test_detected_regions_follow_the_crop():
    detected = (Rectangle(x=110, y=60, width=50, height=20),)
    crop = CropBox(x=100, y=50, width=200, height=100)
    assert still_readable([_found(15, 12)], detected, crop) == [_found(15, 12)]
    assert still_readable([_found(115, 62)], detected, crop) == []
