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


def _annotated_decision(rt, case_id: str):
    from tftt.case.review_prep import load_index
    from tftt.review_decision import ReviewDecision

    index = load_index(rt.workspace(case_id))
    spec = index.proposed_spec.model_copy(update={"burn_in_annotations": True})
    spec = spec.model_validate({**spec.model_dump(mode="json"), "instances": [{
        "sop_instance_uid": index.images[0].sop_instance_uid,
        "annotations": [{"kind": "arrow", "tail_x": 5, "tail_y": 5, "head_x": 30, "head_y": 30}]}]})
    return ReviewDecision(approved=True, reviewer="Dr. R", spec=spec, teaching_metadata={"title": "Annotated"})


def test_the_annotated_series_is_derived_and_verified(prepared_case):
    from tftt.case.finishing import finish_case

    rt, case_id, _ = prepared_case
    summary = finish_case(rt, case_id, _annotated_decision(rt, case_id))
    # the two CT slices and the derived object; the cine's proposed blackouts leave text readable
    # (the OCR re-check quarantines it: residual-burned-in-text)
    assert summary.derived == 1 and summary.written == 3 and summary.quarantined == 1


def test_a_derived_object_that_fails_is_quarantined_and_the_case_goes_on(prepared_case, monkeypatch):
    """Regression: a failure while deriving the annotated series failed the whole case.
    (Fault injected: the real derivation does not fail on synthetic data.)"""
    import tftt.case.finishing as finishing
    from tftt.errors import RedactionError
    from tftt.store.cases import list_quarantine
    from tftt.store.db import transact

    def broken(*args, **kwargs):
        raise RedactionError("injected failure", code="injected")

    monkeypatch.setattr(finishing, "derive_annotated_series", broken)
    rt, case_id, _ = prepared_case
    summary = finishing.finish_case(rt, case_id, _annotated_decision(rt, case_id))
    assert summary.derived == 0 and summary.written == 2 and summary.quarantined == 2
    records = transact(rt.engine, lambda s: list_quarantine(s, case_id))
    assert sorted(r.reason_code for r in records) == ["injected", "residual-burned-in-text"]

