"""The reviewer's answer that a paused or suspended case flow waits for.

:class:`ReviewDecision` subclasses :class:`prefect.input.RunInput`, so
``suspend_flow_run(wait_for_input=ReviewDecision, ...)`` returns an instance of this class, and
the Prefect UI renders its resume form from the JSON Schema (nested lists of rectangles and
annotations are editable there; that is why the spec uses lists, see
:mod:`tftt.redaction_spec`). The Prefect server checks a submitted form only against the JSON
Schema; Python-side checks (a frame range's order, unique UIDs, the geometry checks of
:func:`tftt.redaction_spec.validate_against_geometry`) run after the flow resumes, and the flow
asks again when they fail.

The teaching metadata field is called ``teaching_metadata``: a field named ``metadata`` would
shadow :attr:`RunInput.metadata` (Prefect's own input metadata) and lose its schema.

Optional fields carry ``Field(title=...)``: without a title the form labels them
"Field (Optional)".
"""

from __future__ import annotations

from prefect.input import RunInput
from pydantic import ConfigDict, Field

from tftt.redaction_spec import RedactionSpec, TeachingMetadata


class ReviewDecision(RunInput):
    """Approve or reject a case, with the pixel edits and the teaching metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approved: bool = Field(description="Approve the case for publication")
    reviewer: str = Field(min_length=1, max_length=200, description="Your name, as entered")
    spec: RedactionSpec = Field(
        description="Pixel edits (blackouts, crops, annotations, exclusions)"
    )
    teaching_metadata: TeachingMetadata = Field(
        title="Teaching metadata", description="Title, history, findings, diagnosis, keywords"
    )
    publish_now: bool | None = Field(
        None,
        title="Publish now",
        description="Publish at once; empty follows the site's setting (immediate or nightly)",
    )
    notes: str | None = Field(None, title="Notes", max_length=5000, description="Review notes")
