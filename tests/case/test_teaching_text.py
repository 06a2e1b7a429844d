"""The reviewer's teaching text is checked against the case's identifiers before publication."""

from __future__ import annotations

import pytest

from tftt.case.finishing import finish_case
from tftt.case.review_prep import load_index
from tftt.case.teaching_text import case_identifiers, teaching_text_problems
from tftt.errors import ResidualPHIError
from tftt.redaction_spec import RedactionSpec, TeachingMetadata
from tftt.review_decision import ReviewDecision
from tftt.store.workspace import Area


def test_identifiers_in_the_teaching_text_are_named_by_field_and_kind(prepared_case):
    rt, case_id, who = prepared_case
    identifiers = case_identifiers(rt, case_id)
    assert len(identifiers) == 2  # one original per series
    metadata = TeachingMetadata(
        title="Incidental adrenal nodule",
        history=f"Seen for {who.family_name.title()} in clinic.",
        findings="A 2 cm nodule of the left adrenal gland.",
        keywords=["adrenal", who.patient_id],
        author=f"Dr. {who.family_name.title()}",  # the author's name is published on purpose
    )
    problems = teaching_text_problems(metadata, identifiers)
    assert problems == ["teaching_metadata.history: contains the patient's person name (from the images)",
                        "teaching_metadata.keywords[1]: contains the patient's identifier (from the images)"]
    assert not any(who.family_name.lower() in p.lower() or who.patient_id in p for p in problems)
    clean = TeachingMetadata(title="Incidental adrenal nodule", findings="A 2 cm nodule of the left adrenal gland.")
    assert teaching_text_problems(clean, identifiers) == []
    index = load_index(rt.workspace(case_id))
    labelled = RedactionSpec.model_validate({"instances": [{
        "sop_instance_uid": index.images[0].sop_instance_uid,
        "annotations": [{"kind": "text", "x": 1, "y": 1, "text": "nodule"},
                        {"kind": "text", "x": 1, "y": 20, "text": f"{who.given_name} {who.family_name}"}]}]})
    assert teaching_text_problems(clean, identifiers, labelled) == [
        "spec.instances[0].annotations[1].text: contains the patient's person name (from the images)"]


def test_finishing_refuses_teaching_text_with_an_identifier_and_writes_nothing(prepared_case):
    rt, case_id, who = prepared_case
    index = load_index(rt.workspace(case_id))
    decision = ReviewDecision(approved=True, reviewer="Dr. R", spec=index.proposed_spec,
                              teaching_metadata={"title": f"Case of {who.patient_id}"})
    with pytest.raises(ResidualPHIError) as caught:
        finish_case(rt, case_id, decision)
    assert caught.value.code == "phi-in-teaching-text"
    assert caught.value.findings == ("teaching_metadata.title: contains the patient's identifier (from the images)",)
    assert who.patient_id not in str(caught.value)
    assert not any(rt.workspace(case_id).area(Area.SECOND_PASS).iterdir())
