"""Tasks around the review: previews and proposals, the form's data, the run artifact."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task
from prefect.artifacts import create_markdown_artifact

from tftt.case.review_prep import ReviewSummary, load_index, prepare_review
from tftt.case.runtime import runtime
from tftt.redaction_spec import ImageGeometry, RedactionSpec


@dataclass(frozen=True)
class ReviewForm:
    """What the review step needs: geometry to check a decision and the proposed spec.
    Published UIDs and sizes only, no identifiers."""

    geometry: dict[str, ImageGeometry]
    proposed_spec: RedactionSpec


@task(name="prepare-review", persist_result=True)
def prepare(case_id: str) -> ReviewSummary:
    """Previews, burned-in flags and proposed blackouts for the reviewer."""
    return prepare_review(runtime(), case_id)


@task(name="review-form", persist_result=True)
def review_form(case_id: str) -> ReviewForm:
    index = load_index(runtime().workspace(case_id))
    geometry = {
        image.sop_instance_uid: ImageGeometry(image.rows, image.columns, image.frames, image.series_uid)
        for image in index.images
    }
    return ReviewForm(geometry=geometry, proposed_spec=index.proposed_spec)


def review_page_url(case_id: str) -> str:
    web = runtime().settings.web
    return f"http://{web.host}:{web.port}/review/cases/{case_id}"


@task(name="review-artifact")
def review_artifact(case_id: str, summary: ReviewSummary) -> None:
    """A markdown artifact with the case's series, counts and flags (no PHI, no images)."""
    index = load_index(runtime().workspace(case_id))
    rows = ["| series | modality | images | frames | flagged | proposed blackouts |",
            "|---:|---|---:|---:|---:|---:|"]
    by_series: dict[str, list] = {}
    for image in index.images:
        by_series.setdefault(image.series_uid, []).append(image)
    for number, (_, images) in enumerate(by_series.items(), start=1):
        rows.append(
            f"| {images[0].series_number or number} | {images[0].modality or '-'} | {len(images)} "
            f"| {sum(i.frames for i in images)} | {sum(1 for i in images if i.risk_flags)} "
            f"| {sum(len(i.proposed) for i in images)} |"
        )
    markdown = "\n".join([
        f"## Case `{case_id}` awaits review",
        "",
        f"{summary.images} images in {summary.series} series, {summary.frames} frames; "
        f"{summary.flagged} flagged for burned-in text, {summary.proposed_blackouts} proposed blackouts; "
        f"{summary.quarantined} quarantined.",
        "",
        *rows,
        "",
        f"Previews (reviewers only, login required): [{review_page_url(case_id)}]({review_page_url(case_id)})",
    ])
    create_markdown_artifact(key=f"review-{case_id}", markdown=markdown, description="Case review summary")
