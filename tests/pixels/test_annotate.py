import hashlib

import numpy as np
import pytest
from pydicom import uid

from tftt.pixels.annotate import (
    annotation_layer,
    burn_annotations,
    derive_annotated_series,
    draw_annotations,
)
from tftt.pixels.codecs import decode_frames
from tftt.redaction_spec import (
    ArrowAnnotation,
    EllipseAnnotation,
    FrameRange,
    TextAnnotation,
)

from .images import CT_IMAGE, dataset_bytes, make_dataset, reread

YELLOW = "#FFFF00"


def fake_uid(seed: str) -> str:
    """A deterministic UID from a seed, as the case flow's keyed function would give."""
    return "2.25." + str(int(hashlib.sha256(seed.encode()).hexdigest()[:30], 16))


def _grey_cine(frames: int = 3) -> np.ndarray:
    return np.full((frames, 64, 80), 1000, dtype=np.uint16)


def test_each_kind_of_annotation_draws_where_it_is_placed():
    arrow = ArrowAnnotation(tail_x=5, tail_y=5, head_x=60, head_y=40)
    ellipse = EllipseAnnotation(center_x=40, center_y=30, radius_x=20, radius_y=10)
    text = TextAnnotation(x=4, y=44, text="Mass", font_size=14)
    for annotation in (arrow, ellipse, text):
        rgb, alpha = annotation_layer([annotation], 64, 80)
        ys, xs = np.nonzero(alpha)
        assert ys.size > 20
        assert tuple(rgb[ys[0], xs[0]]) in {(255, 255, 0), (0, 0, 0)}
    _, ellipse_alpha = annotation_layer([ellipse], 64, 80)
    assert ellipse_alpha[30, 20] == 255 and ellipse_alpha[30, 40] == 0  # outline, hollow centre
    _, arrow_alpha = annotation_layer([arrow], 64, 80)
    assert arrow_alpha[39, 58] == 255  # the head is filled
    _, text_alpha = annotation_layer([text], 64, 80)
    assert np.nonzero(text_alpha)[0].min() >= 44 - 2


def test_burn_annotations_respects_frame_ranges_and_keeps_the_input():
    frames = np.zeros((4, 32, 40, 3), dtype=np.uint8)
    circle = EllipseAnnotation(
        center_x=20, center_y=16, radius_x=10, radius_y=10, frames=FrameRange(first=2, last=3)
    )
    out = burn_annotations(frames, [circle])
    assert frames.max() == 0
    drawn = [bool((f != 0).any()) for f in out]
    assert drawn == [False, True, True, False]
    assert tuple(out[1, 16, 10]) == (255, 255, 0)
    same = burn_annotations(frames, [circle], in_place=True)
    assert same is frames and frames.max() == 255
    with pytest.raises(ValueError, match="8-bit RGB"):
        burn_annotations(frames[..., 0], [circle])


def test_draw_annotations_on_a_greyscale_preview_gives_rgb():
    image = np.full((32, 40), 90, dtype=np.uint8)
    out = draw_annotations(image, [ArrowAnnotation(tail_x=2, tail_y=2, head_x=30, head_y=20)])
    assert out.shape == (32, 40, 3)
    assert (out == 90).sum() < out.size
    assert image.max() == 90


def test_derived_series_is_secondary_capture_with_new_uids_and_annotations_burned_in():
    source = make_dataset(_grey_cine(), bits_stored=12, sop_class=CT_IMAGE)
    source.SeriesDescription = "Abdomen"
    source.SeriesNumber = 3
    source.WindowCenter, source.WindowWidth = 1000, 400
    source.FrameTime = 33.3
    other = make_dataset(
        _grey_cine(1),
        bits_stored=12,
        sop_class=CT_IMAGE,
        multiframe=False,
        sop_uid="1.2.826.0.1.3680043.10.1.9",
    )
    before = [dataset_bytes(source), dataset_bytes(other)]
    arrow = ArrowAnnotation(tail_x=5, tail_y=5, head_x=60, head_y=40, color="#FF0000")

    derived = derive_annotated_series([source, other], {source.SOPInstanceUID: [arrow]}, fake_uid)

    assert [dataset_bytes(source), dataset_bytes(other)] == before
    assert len(derived) == 1  # the image without annotations gets no derived copy
    sc = reread(derived[0])
    assert sc.SOPClassUID == uid.MultiFrameTrueColorSecondaryCaptureImageStorage
    assert sc.SOPInstanceUID == fake_uid(f"annotated-instance:{source.SOPInstanceUID}")
    assert sc.SeriesInstanceUID == fake_uid(f"annotated-series:{source.SeriesInstanceUID}")
    assert sc.SOPInstanceUID != source.SOPInstanceUID
    assert sc.StudyInstanceUID == source.StudyInstanceUID
    assert sc.SeriesDescription == "ANNOTATED Abdomen" and sc.SeriesNumber == 1003
    assert sc.ConversionType == "WSD" and list(sc.ImageType) == ["DERIVED", "SECONDARY"]
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.FrameIncrementPointer == 0x00181063 and sc.NumberOfFrames == 3
    assert sc.PatientID == source.PatientID
    assert sc.PhotometricInterpretation == "RGB" and sc.BitsStored == 8
    assert sc.file_meta.TransferSyntaxUID == uid.ExplicitVRLittleEndian
    pixels = decode_frames(sc).frames
    assert pixels.shape == (3, 64, 80, 3)
    assert tuple(pixels[0, 39, 58]) == (255, 0, 0)  # arrow head, red
    assert tuple(pixels[0, 60, 5]) == (128, 128, 128)  # window centre -> mid grey
    # the original keeps its pixels: no annotation in the original-format image
    np.testing.assert_array_equal(decode_frames(source).frames, _grey_cine())


def test_derived_single_frame_is_plain_secondary_capture_and_deterministic():
    source = make_dataset(_grey_cine(1), bits_stored=12, multiframe=False)
    label = TextAnnotation(x=2, y=2, text="A")
    first = derive_annotated_series([source], {source.SOPInstanceUID: [label]}, fake_uid)
    second = derive_annotated_series([source], {source.SOPInstanceUID: [label]}, fake_uid)
    assert first[0].SOPClassUID == uid.SecondaryCaptureImageStorage
    assert "NumberOfFrames" not in first[0]
    assert first[0].SeriesDescription == "ANNOTATED"
    assert dataset_bytes(first[0]) == dataset_bytes(second[0])
