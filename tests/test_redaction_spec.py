import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tftt.errors import ReviewError
from tftt.redaction_spec import (
    ArrowAnnotation,
    CropBox,
    EllipseAnnotation,
    FrameRange,
    ImageGeometry,
    InstanceEdits,
    Rectangle,
    RedactionSpec,
    SeriesEdits,
    TextAnnotation,
    check_against_geometry,
    schema_document,
    shift_annotations,
    validate_against_geometry,
)
from tftt.review_decision import ReviewDecision

ROOT = Path(__file__).resolve().parent.parent
SERIES = "1.2.826.0.1.3680043.10.543.1"
SOP_A = "1.2.826.0.1.3680043.10.543.1.1"
SOP_B = "1.2.826.0.1.3680043.10.543.1.2"


def test_schema_file_is_not_stale():
    expected = json.dumps(schema_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    current = (ROOT / "redaction_specs" / "schema.json").read_text(encoding="utf-8")
    assert current == expected, "run: python3 scripts/export_schema.py"


@pytest.mark.parametrize(
    "path", sorted((ROOT / "redaction_specs" / "examples").glob("*.json")), ids=lambda p: p.name
)
def test_examples_validate(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    model = ReviewDecision if "approved" in data else RedactionSpec
    parsed = model.model_validate(data)
    assert parsed.model_dump(mode="json", exclude_defaults=True)


def test_examples_cover_blackout_crop_annotations_and_exclusion():
    examples = ROOT / "redaction_specs" / "examples"
    specs = [
        RedactionSpec.model_validate_json(p.read_text())
        for p in examples.glob("*.json")
        if "approved" not in p.read_text()
    ]
    edits = [e for s in specs for e in (*s.series, *s.instances)]
    assert any(e.blackouts and all(r.frames is None for r in e.blackouts) for e in edits)
    assert any(e.crop is not None for e in edits)
    kinds = {a.kind for e in edits for a in e.annotations}
    assert kinds == {"arrow", "ellipse", "text"}
    assert any(e.exclude for e in edits)


def test_models_are_frozen_and_forbid_extra_fields():
    rect = Rectangle(x=0, y=0, width=1, height=1)
    with pytest.raises(ValidationError):
        rect.x = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Rectangle(x=0, y=0, width=1, height=1, colour="red")  # type: ignore[call-arg]


def test_field_constraints_give_clear_messages():
    with pytest.raises(ValidationError, match="greater than 0"):
        CropBox(x=0, y=0, width=0, height=10)
    with pytest.raises(ValidationError, match="'last' must not be before 'first'"):
        FrameRange(first=5, last=2)
    with pytest.raises(ValidationError, match="tail and head must differ"):
        ArrowAnnotation(tail_x=1, tail_y=1, head_x=1, head_y=1)
    with pytest.raises(ValidationError, match="String should match pattern"):
        SeriesEdits(series_uid="not-a-uid")
    with pytest.raises(ValidationError, match=r"series\[1\] repeats a UID"):
        RedactionSpec(series=[SeriesEdits(series_uid=SERIES), SeriesEdits(series_uid=SERIES)])


def test_annotations_are_a_discriminated_union():
    spec = InstanceEdits.model_validate(
        {
            "sop_instance_uid": SOP_A,
            "annotations": [
                {"kind": "ellipse", "center_x": 5, "center_y": 5, "radius_x": 3, "radius_y": 3},
                {"kind": "text", "x": 1, "y": 2, "text": "here"},
            ],
        }
    )
    assert isinstance(spec.annotations[0], EllipseAnnotation)
    assert isinstance(spec.annotations[1], TextAnnotation)
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        InstanceEdits.model_validate(
            {"sop_instance_uid": SOP_A, "annotations": [{"kind": "star", "x": 1}]}
        )


def test_instance_edits_add_to_and_override_series_edits():
    series_rect = Rectangle(x=0, y=0, width=10, height=10)
    instance_rect = Rectangle(x=20, y=20, width=5, height=5)
    arrow = ArrowAnnotation(tail_x=0, tail_y=0, head_x=5, head_y=5)
    spec = RedactionSpec(
        series=[
            SeriesEdits(
                series_uid=SERIES,
                blackouts=[series_rect],
                crop=CropBox(x=0, y=0, width=50, height=50),
                annotations=[arrow],
            )
        ],
        instances=[
            InstanceEdits(
                sop_instance_uid=SOP_A,
                blackouts=[instance_rect],
                crop=CropBox(x=1, y=1, width=30, height=30),
            ),
            InstanceEdits(sop_instance_uid=SOP_B, exclude=True),
        ],
    )
    a = spec.edits_for(SERIES, SOP_A)
    assert a.blackouts == (series_rect, instance_rect)
    assert a.crop == CropBox(x=1, y=1, width=30, height=30)
    assert a.annotations == (arrow,)
    assert not a.exclude and a.changes_pixels
    b = spec.edits_for(SERIES, SOP_B)
    assert b.exclude and b.crop == CropBox(x=0, y=0, width=50, height=50)
    other = spec.edits_for("1.2.3", "1.2.3.4")
    assert not other.changes_pixels and not other.exclude and other.annotations == ()


def test_series_exclusion_excludes_every_instance():
    spec = RedactionSpec(series=[SeriesEdits(series_uid=SERIES, exclude=True)])
    assert spec.edits_for(SERIES, SOP_A).exclude


def test_validate_against_geometry_reports_every_misfit():
    spec = RedactionSpec(
        series=[
            SeriesEdits(
                series_uid=SERIES,
                blackouts=[
                    Rectangle(x=600, y=0, width=50, height=10),
                    Rectangle(x=0, y=0, width=10, height=10, frames=FrameRange(first=1, last=40)),
                ],
            )
        ],
        instances=[
            InstanceEdits(
                sop_instance_uid=SOP_B,
                crop=CropBox(x=0, y=400, width=100, height=100),
                annotations=[TextAnnotation(x=5, y=5, text="outside crop")],
            ),
            InstanceEdits(sop_instance_uid="1.2.3.4.5", exclude=True),
        ],
    )
    geometry = {
        SOP_A: ImageGeometry(rows=480, columns=640, frames=30, series_uid=SERIES),
        SOP_B: (480, 640, 1),
    }
    problems = validate_against_geometry(spec, geometry, series_of={SOP_B: SERIES})
    text = "\n".join(problems)
    assert (
        "series[0] (image 1 of 2, 640x480, 30 frames): blackouts[0]: rectangle spans columns"
        in text
    )
    assert "600..649, but the image has columns 0..639" in text
    assert "frames 1..40 requested, but the image has frames 1..30" in text
    assert "image 2 of 2, 640x480, 1 frame)" in text
    assert "instances[0] (640x480, 1 frame): crop: crop box spans rows 400..499" in text
    assert "annotations[0] lies outside the crop box" in text
    assert "instances[1]: no image of the case has this SOP Instance UID" in text
    assert SOP_A not in text and SOP_B not in text and SERIES not in text  # no UIDs in messages
    assert len(problems) == 7


def test_validate_against_geometry_accepts_a_fitting_spec_and_check_raises_otherwise():
    good = RedactionSpec(
        instances=[
            InstanceEdits(
                sop_instance_uid=SOP_A,
                blackouts=[Rectangle(x=0, y=0, width=640, height=480)],
                crop=CropBox(x=0, y=0, width=640, height=480),
            )
        ]
    )
    assert validate_against_geometry(good, {SOP_A: (480, 640, 1)}) == []
    check_against_geometry(good, {SOP_A: (480, 640, 1)})
    with pytest.raises(ReviewError, match=r"rows 0\.\.239") as info:
        check_against_geometry(good, {SOP_A: (240, 640, 1)})
    assert info.value.code == "invalid-redaction-spec"


def test_series_edits_without_any_image_are_reported():
    spec = RedactionSpec(series=[SeriesEdits(series_uid=SERIES, exclude=True)])
    assert validate_against_geometry(spec, {SOP_A: (10, 10, 1)}) == [
        "series[0]: no image of the case belongs to this series"
    ]


def test_shift_annotations_moves_every_kind():
    moved = shift_annotations(
        [
            ArrowAnnotation(tail_x=10, tail_y=20, head_x=30, head_y=40),
            EllipseAnnotation(center_x=50, center_y=60, radius_x=5, radius_y=6),
            TextAnnotation(x=7, y=8, text="t"),
        ],
        -5,
        -10,
    )
    assert (moved[0].tail_x, moved[0].tail_y, moved[0].head_x, moved[0].head_y) == (5, 10, 25, 30)
    assert (moved[1].center_x, moved[1].center_y, moved[1].radius_x) == (45, 50, 5)
    assert (moved[2].x, moved[2].y) == (2, -2)


def test_annotations_after_crop_are_in_the_cropped_image_coordinates():
    text = TextAnnotation(x=50, y=60, text="t")
    uncropped = RedactionSpec(instances=[InstanceEdits(sop_instance_uid=SOP_A, annotations=[text])])
    assert uncropped.edits_for(SERIES, SOP_A).annotations_after_crop() == (text,)
    cropped = RedactionSpec(
        instances=[
            InstanceEdits(
                sop_instance_uid=SOP_A,
                annotations=[text],
                crop=CropBox(x=10, y=20, width=100, height=100),
            )
        ]
    )
    (moved,) = cropped.edits_for(SERIES, SOP_A).annotations_after_crop()
    assert (moved.x, moved.y) == (40, 40)
