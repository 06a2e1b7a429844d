"""Retrieval and the first pass of a case.

Retrieval reads the case's source study from the one place that holds it (the source link in
TFTT's database) and writes the files into ``incoming/``. The first pass de-identifies every
incoming file into ``first_pass/<published SOP UID>.dcm``; ``first_pass/sources.json`` maps each
published UID to its incoming file (inside the workspace, a PHI zone, never in Prefect).
Every step is idempotent: a finished step is recognised by its marker file and not redone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tftt.case.runtime import CaseRuntime
from tftt.deid.engine import DeidContext, deidentify, serialize
from tftt.deid.pipeline import parse
from tftt.deid.uids import map_uid
from tftt.errors import TfttError
from tftt.pacs.registry import make_source
from tftt.store.cases import get_source_link, record_quarantine, set_status
from tftt.store.db import CaseStatus, PipelineStage, transact
from tftt.store.quarantine import quarantine
from tftt.store.workspace import Area, CaseWorkspace

RETRIEVED_MARKER = ".retrieved"
SOURCES_FILE = "sources.json"


@dataclass(frozen=True)
class StepCount:
    """What a step did, as counts only (safe for Prefect results and logs)."""

    done: int
    quarantined: int = 0


def retrieve_case(rt: CaseRuntime, case_id: str) -> StepCount:
    """Fetch the case's study from the configured source into ``incoming/``.

    Raises:
        TargetUnavailableError: the source cannot be reached (retryable).
        TargetRejectedError: the study is refused or missing.
    """
    ws = rt.workspace(case_id)
    marker = ws.file(Area.INCOMING, RETRIEVED_MARKER)
    if marker.exists():
        return StepCount(done=len(_dicom_files(ws.incoming)))
    link = transact(rt.engine, lambda s: get_source_link(s, case_id))
    study_uid, series = link.study_uid, list(link.series_uids or [])
    transact(rt.engine, lambda s: set_status(s, case_id, CaseStatus.RETRIEVING))
    result = make_source(rt.settings).retrieve_study(study_uid, series or None, ws.incoming)
    ws.write_bytes(Area.INCOMING, RETRIEVED_MARKER, b"")
    return StepCount(done=result.count)


def _dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def quarantine_input(rt: CaseRuntime, ws: CaseWorkspace, case_id: str, data: bytes,
                     stage: PipelineStage, error: TfttError, *, new_uid: str | None = None) -> None:
    """Keep the bytes in the case's quarantine and record why (no value in the message)."""
    record = quarantine(ws.quarantine, data, stage=stage.value, code=error.code, message=error.message)
    relative = ws.relative(ws.quarantine / f"{record.sha256}.bin")
    transact(rt.engine, lambda s: record_quarantine(
        s, case_id, stage, error.code, error.message, file_path=relative, sop_instance_uid=new_uid))


def first_pass_case(rt: CaseRuntime, case_id: str) -> StepCount:
    """De-identify every incoming file with the first-pass profile."""
    ws = rt.workspace(case_id)
    sources_path = ws.file(Area.FIRST_PASS, SOURCES_FILE)
    if sources_path.exists():
        return StepCount(done=len(json.loads(sources_path.read_text())))
    sources: dict[str, str] = {}
    quarantined = 0
    context = DeidContext(rules=rt.pipeline.first, key=rt.key)
    for path in _dicom_files(ws.incoming):
        data = path.read_bytes()
        try:
            result = deidentify(parse(data), context)
            published = map_uid(rt.key, str(result.dataset.SOPInstanceUID))
            if published in sources:
                raise TfttError("another file of the case has the same SOP Instance UID",
                                code="duplicate-sop-instance")
            output = serialize(result.dataset)
        except TfttError as exc:
            quarantine_input(rt, ws, case_id, data, PipelineStage.FIRST_PASS, exc)
            quarantined += 1
            continue
        ws.write_bytes(Area.FIRST_PASS, f"{published}.dcm", output)
        sources[published] = ws.relative(path)
    ws.write_bytes(Area.FIRST_PASS, SOURCES_FILE, json.dumps(sources, indent=1, sort_keys=True).encode())
    return StepCount(done=len(sources), quarantined=quarantined)


def load_sources(ws: CaseWorkspace) -> dict[str, str]:
    """Published SOP UID -> incoming file (relative to the workspace)."""
    return dict(json.loads(ws.file(Area.FIRST_PASS, SOURCES_FILE).read_text()))
