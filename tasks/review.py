"""The task before the review: previews and proposals, the form's data, the artifact's text.

One task (it was three): every task run costs the Prefect client about 10 ms and the Prefect
server about 35 ms of CPU (recording its states), which a 2-core machine takes from the case.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task

from tftt.case.review_prep import ReviewSummary, load_index, prepare_review
from tftt.case.runtime import runtime
from tftt.case.teaching_text import check_teaching_text
from tftt.redaction_spec import ImageGeometry, RedactionSpec, TeachingMetadata
from tftt.review_index import ReviewImage, ReviewIndex


@dataclass(frozen=True)
class ReviewForm:
    """What the review step needs: geometry to check a decision and the proposed spec.
    Published UIDs and sizes only, no identifiers."""

    geometry: dict[str, ImageGeometry]
    proposed_spec: RedactionSpec


@dataclass(frozen=True)
class PreparedReview:
    """What ``prepare-review`` hands to the flow: counts, the form's data and the review
    artifact's markdown (counts and the review page's address, no identifiers)."""

    summary: ReviewSummary
    form: ReviewForm
    artifact: str


def review_page_url(case_id: str) -> str:
    web = runtime().settings.web
    return f"http://{web.host}:{web.port}/review/cases/{case_id}"


def _form(index: ReviewIndex) -> ReviewForm:
    geometry = {
        image.sop_instance_uid: ImageGeometry(image.rows, image.columns, image.frames, image.series_uid)
        for image in index.images
    }
    return ReviewForm(geometry=geometry, proposed_spec=index.proposed_spec)


def _artifact(case_id: str, summary: ReviewSummary, index: ReviewIndex) -> str:
    """The case's series, counts and flags as markdown (no PHI, no images)."""
    rows = ["| series | modality | images | frames | flagged | proposed blackouts |",
            "|---:|---|---:|---:|---:|---:|"]
    by_series: dict[str, list[ReviewImage]] = {}
    for image in index.images:
        by_series.setdefault(image.series_uid, []).append(image)
    for number, (_, images) in enumerate(by_series.items(), start=1):
        rows.append(
            f"| {images[0].series_number or number} | {images[0].modality or '-'} | {len(images)} "
            f"| {sum(i.frames for i in images)} | {sum(1 for i in images if i.risk_flags)} "
            f"| {sum(len(i.proposed) for i in images)} |"
        )
    return "\n".join([
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


@task(name="prepare-review", persist_result=True)
def prepare(case_id: str) -> PreparedReview:
    """Previews, burned-in flags and proposed blackouts for the reviewer; the form's data and
    the review artifact's text, from the review index just written."""
    rt = runtime()
    summary = prepare_review(rt, case_id)
    index = load_index(rt.workspace(case_id))
    return PreparedReview(summary=summary, form=_form(index), artifact=_artifact(case_id, summary, index))


@task(name="check-teaching-text")
def teaching_text_problems(case_id: str, metadata: TeachingMetadata, spec: RedactionSpec) -> list[str]:
    """Where the reviewer's teaching text or text labels hold an identifier of the case (field and
    kind only)."""
    return check_teaching_text(runtime(), case_id, metadata, spec)
