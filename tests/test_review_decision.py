import json
from pathlib import Path

import jsonschema
import pytest
from prefect._internal.pydantic.v2_schema import create_v2_schema
from prefect.input import RunInput
from pydantic import ValidationError

from tftt.redaction_spec import RedactionSpec, TeachingMetadata
from tftt.review_decision import ReviewDecision

EXAMPLE = Path(__file__).resolve().parent.parent / "redaction_specs" / "examples"


def _ui_schema() -> dict:
    """The schema Prefect stores for the resume form, as the server validates it."""
    schema = create_v2_schema(ReviewDecision.__name__, model_base=ReviewDecision)
    return json.loads(json.dumps(schema))


def test_review_decision_is_a_prefect_run_input():
    assert issubclass(ReviewDecision, RunInput)
    decision = ReviewDecision(
        approved=False,
        reviewer="dr.x",
        spec=RedactionSpec(),
        teaching_metadata=TeachingMetadata(title="A case"),
    )
    assert decision.publish_now is None and decision.notes is None
    # a field called "metadata" would shadow Prefect's RunInput.metadata property
    assert "metadata" not in ReviewDecision.model_fields
    assert isinstance(ReviewDecision.metadata, property)


def test_optional_fields_have_titles_in_the_form_schema():
    schema = _ui_schema()
    props = schema["properties"]
    assert props["publish_now"]["title"] == "Publish now"
    assert props["notes"]["title"] == "Notes"
    assert set(schema["required"]) == {"approved", "reviewer", "spec", "teaching_metadata"}
    definitions = schema["definitions"]
    assert definitions["Rectangle"]["properties"]["frames"]["title"] == "Frames"
    assert definitions["RedactionSpec"]["properties"]["series"]["type"] == "array"
    assert definitions["TeachingMetadata"]["properties"]["abstract"]["title"] == "Abstract"


def test_example_passes_the_servers_json_schema_check_and_pydantic():
    data = json.loads((EXAMPLE / "review-decision.json").read_text())
    jsonschema.validate(data, _ui_schema())
    decision = ReviewDecision.model_validate(data)
    assert decision.spec.series[0].blackouts[0].width == 640


def test_json_schema_rejects_what_the_ui_must_not_submit():
    data = json.loads((EXAMPLE / "review-decision.json").read_text())
    data["spec"]["series"][0]["blackouts"][0]["width"] = -5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _ui_schema())
    data["spec"]["series"][0]["blackouts"][0] = {"x": 0, "y": 0, "width": 5, "height": 5, "z": 1}
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.validate(data, _ui_schema())


def test_reviewer_must_be_entered():
    with pytest.raises(ValidationError, match="at least 1 character"):
        ReviewDecision(
            approved=True,
            reviewer="",
            spec=RedactionSpec(),
            teaching_metadata=TeachingMetadata(title="t"),
        )
