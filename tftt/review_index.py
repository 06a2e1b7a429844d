"""What a reviewer sees of a case: the review index written next to the previews.

The case flow writes ``<workspace>/previews/index.json`` (a :class:`ReviewIndex`) after the first
pass, with one JPEG per previewed frame and a thumbnail per image under
``<workspace>/previews/<sop_instance_uid>/``. The review page and the Prefect artifact read it.

Images are named by their **published** UIDs (the keyed-hash UIDs the second pass will give
them), never by their source UIDs, so a review decision that refers to them can be stored in
Prefect and in the audit trail without carrying an identifier. The proposed redactions
(device rules and OCR) pre-fill the reviewer's spec.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tftt.redaction_spec import Rectangle, RedactionSpec

INDEX_FILE = "index.json"
THUMBNAIL_FILE = "thumb.jpg"


def frame_file(number: int) -> str:
    """The preview JPEG name of frame ``number`` (1-based)."""
    return f"frame-{number:04d}.jpg"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReviewImage(_Frozen):
    sop_instance_uid: str = Field(description="Published (second-pass) SOP Instance UID")
    series_uid: str = Field(description="Published (second-pass) Series Instance UID")
    series_number: int | None = None
    series_description: str | None = Field(None, description="As cleaned by the first pass")
    instance_number: int | None = None
    modality: str = ""
    rows: int
    columns: int
    frames: int = 1
    preview_frames: tuple[int, ...] = Field(description="1-based numbers of the previewed frames")
    risk_flags: tuple[str, ...] = Field((), description="Burned-in text risk reason codes")
    proposed: tuple[Rectangle, ...] = Field((), description="Proposed blackouts (device rules, OCR)")


class ReviewIndex(_Frozen):
    case_id: str
    images: tuple[ReviewImage, ...] = Field(description="In reading order: series, instance")
    documents: tuple[str, ...] = Field(
        (), description="Published SOP UIDs of objects without pixels (e.g. reports)"
    )
    proposed_spec: RedactionSpec = Field(description="The spec that pre-fills the review form")
