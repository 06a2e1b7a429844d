"""The reviewer's teaching text checked against the case's identifiers before anything is published.

The title, history, findings, diagnosis, keywords and abstract that a reviewer types go into the
published manifest, the case page and the MIRC document, and the text labels of the annotations
are drawn into published pixels: the DICOM verification reads none of them. A patient's name,
ID, a date of the study in any written form, an e-mail address, a phone number or a UID of the
case typed there would be published as is. They are searched for with the verifier's own
needles, harvested from the original files: one file per series, as names, IDs and study dates
are the same throughout a series.

``author`` is not checked: it names the teaching file's author on purpose. Words of removed free
text (the ``removed text`` kind) are not checked either: the clinical vocabulary a reviewer uses
is the same as in the removed descriptions, and would be refused again and again.

Problems name the field and the kind of identifier, never the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tftt.case.intake import load_sources
from tftt.case.review_prep import load_index
from tftt.case.runtime import CaseRuntime
from tftt.deid.harvest import Identifiers
from tftt.deid.pipeline import parse
from tftt.deid.scan import Category
from tftt.errors import ResidualPHIError
from tftt.redaction_spec import RedactionSpec, TeachingMetadata, TextAnnotation

CHECKED_FIELDS = ("title", "history", "findings", "diagnosis", "keywords", "abstract")
FLAGGED = frozenset({Category.NAME, Category.ID, Category.DATE, Category.EMAIL, Category.PHONE, Category.UID})


def _texts(metadata: TeachingMetadata, spec: RedactionSpec | None) -> Iterable[tuple[str, str]]:
    for name in CHECKED_FIELDS:
        value = getattr(metadata, name)
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield f"teaching_metadata.{name}[{index}]", item
        elif value:
            yield f"teaching_metadata.{name}", value
    if spec is None:
        return
    # Text labels are drawn into the annotated JPEGs and the derived series: pixels that the
    # DICOM verification cannot read.
    for kind, groups in (("series", spec.series), ("instances", spec.instances)):
        for index, edits in enumerate(groups):
            for number, annotation in enumerate(edits.annotations):
                if isinstance(annotation, TextAnnotation):
                    yield f"spec.{kind}[{index}].annotations[{number}].text", annotation.text


def teaching_text_problems(metadata: TeachingMetadata, identifiers: Sequence[Identifiers],
                           spec: RedactionSpec | None = None) -> list[str]:
    """Where the teaching text (and the text labels of ``spec``) hold one of ``identifiers``
    (field and kind only). Pure."""
    problems: list[str] = []
    for where, text in _texts(metadata, spec):
        data = text.encode("utf-8")
        kinds = sorted({hit.category.value for ids in identifiers for hit in ids.needles.search(data)
                        if hit.category in FLAGGED})
        problems += [f"{where}: contains the patient's {kind} (from the images)" for kind in kinds]
    return problems


def case_identifiers(rt: CaseRuntime, case_id: str) -> list[Identifiers]:
    """The verifier's identifiers of one original file per series of the case.

    Raises:
        UnsupportedInputError: an original no longer parses (it did at the first pass).
        FileNotFoundError: the case's first pass is gone (a purged case must be retrieved again).
    """
    ws = rt.workspace(case_id)
    sources = load_sources(ws)
    firsts: dict[str, str] = {}
    for image in load_index(ws).images:
        firsts.setdefault(image.series_uid, image.sop_instance_uid)
    chosen = list(firsts.values()) or list(sources)[:1]
    rules = rt.pipeline.verification
    return [rules.harvest(parse(ws.resolve(sources[uid]).read_bytes())) for uid in chosen if uid in sources]


def check_teaching_text(rt: CaseRuntime, case_id: str, metadata: TeachingMetadata,
                        spec: RedactionSpec | None = None) -> list[str]:
    """:func:`teaching_text_problems` for the case's own identifiers."""
    return teaching_text_problems(metadata, case_identifiers(rt, case_id), spec)


def require_clean_teaching_text(rt: CaseRuntime, case_id: str, metadata: TeachingMetadata,
                                spec: RedactionSpec | None = None) -> None:
    """Raises:
        ResidualPHIError: the teaching text holds an identifier of the case (nothing is published).
    """
    problems = check_teaching_text(rt, case_id, metadata, spec)
    if problems:
        raise ResidualPHIError(f"the teaching text holds {len(problems)} identifier(s) of the case: {problems[0]}",
                               findings=tuple(problems), code="phi-in-teaching-text")
