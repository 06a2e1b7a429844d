"""Benchmark the case pipeline on Prefect: webhook to published, and the nightly batch.

    python benchmarks/case.py [--ct-images 300] [--nightly 50] [--keep]

Runs against a real Prefect server (Prefect's test harness, SQLite) in this process:

1. A 300-image CT case and a mixed case (40 CT images, a 30-frame ultrasound cine, a screen
   capture) go from the signed PACS webhook (TFTT's FastAPI app) through the ``process-case``
   flow with an automatic review to a case folder. Wall time runs from before the webhook until
   the flow call returns, and is split by step from the task runs' own start and end times.
2. The same core work is timed directly (the case steps without Prefect) on other studies of
   the same kind: Prefect's share = (flow wall - review wait - core) / (flow wall - review wait).
3. ``publish-ready-cases`` publishes 50 READY cases in one run.

Fair comparison:

* Warm-up, untimed: a small case with the images of the timed ones (2 CT slices, the cine, the
  screen capture) goes once through the core and once through the flow, so imports, codec and
  rule caches and Prefect's client are equally warm for both sides.
* The core runs right before AND right after each flow run (each time on a study of its own);
  ``core`` is the mean of the two, so a change in the load of the (shared) machine during the
  run affects both sides alike. Both core times are printed.
* Review wait is the reviewer's time only: from the moment the run is PAUSED to the moment the
  automatic reviewer submits. It submits as soon as a person could: the run is paused, the
  review previews exist and the form (schema and description) is stored; until the previews
  exist it watches the file, not the Prefect API. Submitting (the resume API call) and the run
  noticing it (pause polling) count as Prefect's.
* The Prefect columns split the rest from the server's timestamps: ``start`` = webhook to the
  flow run RUNNING, ``resume`` = submission to the start of the first task after the review,
  ``end`` = the flow run's end time to the call returning. (``process-case`` is an async flow:
  Prefect 3.9's sync engine joins the run's heartbeat thread there, which sleeps in 1 s steps and
  rounded every run up to a whole second; the async engine does not wait for it.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _write_study(folder: Path, seed: int, kind: str, ct_images: int) -> str:
    from tftt.synth.canaries import make_identity
    from tftt.synth.studies import ct_series, screen_save, us_cine
    from tftt.synth.transfer import encode

    who = make_identity(seed)
    if kind == "ct":
        objects = ct_series(who, study=3, series=1, slices=ct_images, size=512)
    elif kind == "mixed":
        objects = (ct_series(who, study=3, series=1, slices=40, size=512) + us_cine(who, study=3, series=2, frames=30)
                   + screen_save(who, study=3, series=90))
    elif kind == "warm-up":  # the images of the mixed case, with 2 CT slices
        objects = (ct_series(who, study=3, series=1, slices=2, size=512) + us_cine(who, study=3, series=2, frames=30)
                   + screen_save(who, study=3, series=90))
    else:
        objects = ct_series(who, study=3, series=1, slices=2, size=64)
    target = folder / f"{kind}-{seed}"
    target.mkdir(parents=True)
    for number, obj in enumerate(objects):
        (target / f"{number:05d}").write_bytes(encode(obj.dataset))
    return str(objects[0].dataset.StudyInstanceUID)


def _webhook(app_client, secret: str, study_uid: str) -> str:
    from tftt.pacs.webhook_signature import sign

    body = json.dumps({"study_uid": study_uid, "requester": "benchmark"}).encode()
    answer = app_client.post("/hooks/pacs", content=body, headers={
        "content-type": "application/json", "x-tftt-signature": sign(body, secret.encode())})
    answer.raise_for_status()
    return str(answer.json()["case_id"])


def _auto_review(settings, case_id: str, waited: dict[str, float], publish_now: bool | None = True) -> None:
    """Submit the proposed spec once a reviewer could: the run is paused, the previews exist and
    the form (schema and description) is stored. Records the review wait and the submission time."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    from tftt.demo import example_decision

    index = settings.cases_dir / case_id / "previews" / "index.json"
    while not index.exists():  # a file check: no load on the Prefect server while the case runs
        time.sleep(0.02)
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[f"case-{case_id}"]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
            if runs:
                run = runs[0]
                try:  # stored after the schema: the form is complete
                    client.read_flow_run_input(run.id, f"paused-{run.state.state_details.pause_key}-description")
                except httpx.HTTPStatusError as exc:  # 404 until the run has stored the form
                    if exc.response.status_code != 404:
                        raise
                    time.sleep(0.05)
                    continue
                paused_at = run.state.timestamp.timestamp()
                decision = example_decision(settings, case_id)
                decision["publish_now"] = publish_now
                waited["submitted"] = time.time()
                waited["review"] = waited["submitted"] - paused_at
                resume_flow_run(run.id, run_input=decision)
                return
            time.sleep(0.05)


def _run_times(flow_run_id, t0: float, returned: float, submitted: float | None
               ) -> tuple[dict[str, float], dict[str, float]]:
    """Wall time per step (from the task runs) and the Prefect parts (see the module docstring);
    ``t0``, ``returned`` and ``submitted`` are ``time.time()`` values."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    times: dict[str, float] = {}
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    for run in runs:
        if run.start_time and run.end_time:
            name = run.name.rsplit("-", 1)[0]
            times[name] = times.get(name, 0.0) + (run.end_time - run.start_time).total_seconds()
    parts = {"start": flow_run.start_time.timestamp() - t0, "end": returned - flow_run.end_time.timestamp()}
    after = sorted(r.start_time.timestamp() for r in runs if r.start_time and submitted
                   and r.start_time.timestamp() > submitted)
    if after and submitted:
        parts["resume"] = after[0] - submitted
    return times, parts


#: The flow's task names, in the order ``_core`` runs the same steps.
STEP_NAMES = ("retrieve", "first-pass", "prepare-review", "finish", "publish-or-mark-ready")


def _core(settings, study_uid: str, steps: dict[str, float] | None = None) -> float:
    """The same work without Prefect: the case steps called directly on a new case. ``steps``,
    when given, receives each step's time under its task's name."""
    from tftt.case.finishing import finish_case
    from tftt.case.intake import first_pass_case, retrieve_case
    from tftt.case.publication import publish_case
    from tftt.case.review_prep import prepare_review
    from tftt.case.runtime import runtime
    from tftt.demo import example_decision
    from tftt.review_decision import ReviewDecision
    from tftt.store.cases import create_or_get_case_for_study
    from tftt.store.db import transact

    rt = runtime(settings)
    case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(s, study_uid, None, "direct", None))
    marks = [time.perf_counter()]
    retrieve_case(rt, case.id)
    marks.append(time.perf_counter())
    first_pass_case(rt, case.id)
    marks.append(time.perf_counter())
    prepare_review(rt, case.id)
    marks.append(time.perf_counter())
    decision = ReviewDecision.model_validate(example_decision(settings, case.id))
    finish_case(rt, case.id, decision)
    marks.append(time.perf_counter())
    publish_case(rt, case.id)
    marks.append(time.perf_counter())
    if steps is not None:
        for name, begin, end in zip(STEP_NAMES, marks[:-1], marks[1:], strict=True):
            steps[name] = steps.get(name, 0.0) + (end - begin) / 2  # the mean of two core runs
    return marks[-1] - marks[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ct-images", type=int, default=300)
    parser.add_argument("--nightly", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (about 3 GB)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tftt-case-bench-"))
    try:
        _run(args, scratch)
    finally:
        if args.keep:
            print(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _run(args: argparse.Namespace, scratch: Path) -> None:
    os.environ.update({
        "TFTT_DATA_DIR": str(scratch / "data"),
        "TFTT_SOURCE__FOLDER": str(scratch / "import"),
        "TFTT_REVIEW__MODE": "pause",
        "TFTT_SECRET_KEY": "case-benchmark-secret-key-0123456789ab",
        "TFTT_WEB__WEBHOOK_HMAC_SECRET": "case-benchmark-webhook-secret-0123",
    })
    from fastapi.testclient import TestClient
    from prefect.context import get_run_context  # noqa: F401  (import Prefect before the harness)
    from prefect.testing.utilities import prefect_test_harness

    from flows.process_case import process_case
    from flows.publish_ready_cases import publish_ready_cases
    from tftt.case.runtime import runtime
    from tftt.observability import quiet_libraries
    from tftt.settings import PublishMode, Settings
    from tftt.store.cases import set_publish_mode
    from tftt.store.db import transact
    from tftt.web.app import create_app

    quiet_libraries()
    settings = Settings()
    rt = runtime(settings)
    started: list[str] = []
    app = TestClient(create_app(settings, engine=rt.engine, start_case_run=lambda c: started.append(c) or c))
    secret = settings.web.webhook_hmac_secret.get_secret_value()  # type: ignore[union-attr]
    imports = scratch / "import"

    def run_flow(study_uid: str, publish_now: bool | None = True
                 ) -> tuple[str, Any, dict[str, float], tuple[float, float]]:
        """Webhook, flow run and automatic review of one study; ``time.time()`` before and after."""
        t0 = time.time()
        case_id = _webhook(app, secret, study_uid)
        if publish_now is None:
            transact(rt.engine, lambda s: set_publish_mode(s, case_id, PublishMode.NIGHTLY))
        waited: dict[str, float] = {}
        reviewer = threading.Thread(target=_auto_review, args=(settings, case_id, waited, publish_now), daemon=True)
        reviewer.start()
        state = asyncio.run(process_case(case_id, return_state=True))
        returned = time.time()
        reviewer.join(5)
        return case_id, state, waited, (t0, returned)

    with prefect_test_harness(server_startup_timeout=180):
        from tftt.service import ensure_pacs_limit

        ensure_pacs_limit()  # as `tftt serve` does: the global "pacs" limit exists in production
        _core(settings, _write_study(imports, 90, "warm-up", 0))  # warm-up, untimed: both sides
        run_flow(_write_study(imports, 91, "warm-up", 0))
        print(f"{'case':8} {'images':>7} {'wall s':>8} {'review wait':>12} {'core s (before/after)':>22} "
              f"{'Prefect share':>14}  Prefect parts; steps, flow/core s")
        for seed, kind in enumerate(("ct", "mixed"), start=100):
            core_steps: dict[str, float] = {}
            before = _core(settings, _write_study(imports, seed + 50, kind, args.ct_images), core_steps)
            case_id, state, waited, (t0, returned) = run_flow(_write_study(imports, seed, kind, args.ct_images))
            after = _core(settings, _write_study(imports, seed + 60, kind, args.ct_images), core_steps)
            wall = returned - t0
            steps, parts = _run_times(state.state_details.flow_run_id, t0, returned, waited.get("submitted"))
            images = len(list((settings.publish.folder or settings.data_dir / "published").glob(f"{case_id}/dicom/*")))
            core = (before + after) / 2
            review_wait = waited.get("review", 0.0)
            work = wall - review_wait
            share = max(0.0, work - core) / work
            part_text = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
            step_text = ", ".join(f"{k} {steps.get(k, 0.0):.2f}/{core_steps[k]:.2f}" for k in STEP_NAMES)
            print(f"{kind:8} {images:7d} {wall:8.1f} {review_wait:12.1f} {core:8.1f} ({before:.1f}/{after:.1f})"
                  f"{'':5} {share:13.1%}  {part_text}; {step_text}")

        # the nightly batch: N small cases marked READY, published in one run
        ids = []
        for n in range(args.nightly):
            case_id, *_ = run_flow(_write_study(imports, 1000 + n, "small", 2), publish_now=None)
            ids.append(case_id)
        t0 = time.perf_counter()
        counts = publish_ready_cases()
        print(f"nightly batch: {counts} of {len(ids)} READY cases in {time.perf_counter() - t0:.1f} s (one run)")

if __name__ == "__main__":
    main()
