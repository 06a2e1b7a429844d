"""Benchmark the case pipeline on Prefect: webhook to published, and the nightly batch.

    python benchmarks/case.py [--ct-images 300] [--nightly 50]

Runs against a real Prefect server (Prefect's test harness, SQLite) in this process:

1. A 300-image CT case and a mixed case (CT, ultrasound cine, screen capture) go from the signed
   PACS webhook (TFTT's FastAPI app) through the ``process-case`` flow with an automatic review
   (the proposed spec, resumed from another thread as soon as the run pauses) to a case folder.
   Wall time is split by step from the task runs' own start and end times.
2. The same core work is timed directly (the case steps without Prefect) on a copy of the case:
   Prefect's share = (flow wall time - review wait - core time) / (flow wall time - review wait).
3. ``publish-ready-cases`` publishes 50 READY cases in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

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
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    from tftt.demo import example_decision

    index = settings.cases_dir / case_id / "previews" / "index.json"
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
            if runs and index.exists():
                paused_at = runs[0].state.timestamp.timestamp()
                decision = example_decision(settings, case_id)
                decision["publish_now"] = publish_now
                resume_flow_run(runs[0].id, run_input=decision)
                waited["review"] = time.time() - paused_at
                return
            time.sleep(0.05)


def _task_times(flow_run_id) -> dict[str, float]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    times: dict[str, float] = {}
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        for run in runs:
            if run.start_time and run.end_time:
                name = run.name.rsplit("-", 1)[0]
                times[name] = times.get(name, 0.0) + (run.end_time - run.start_time).total_seconds()
    return times


def _core(settings, study_uid: str) -> float:
    """The same work without Prefect: the case steps called directly on a new case."""
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
    start = time.perf_counter()
    retrieve_case(rt, case.id)
    first_pass_case(rt, case.id)
    prepare_review(rt, case.id)
    decision = ReviewDecision.model_validate(example_decision(settings, case.id))
    finish_case(rt, case.id, decision)
    publish_case(rt, case.id)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ct-images", type=int, default=300)
    parser.add_argument("--nightly", type=int, default=50)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tftt-case-bench-"))
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
    with prefect_test_harness(server_startup_timeout=180):
        from tftt.service import ensure_pacs_limit

        ensure_pacs_limit()  # as `tftt serve` does: the global "pacs" limit exists in production
        print(f"{'case':8} {'images':>7} {'wall s':>8} {'review wait':>12} {'core s':>8} {'Prefect share':>14}  steps")
        for seed, kind in enumerate(("ct", "mixed"), start=100):
            study_uid = _write_study(scratch / "import", seed, kind, args.ct_images)
            t0 = time.perf_counter()
            case_id = _webhook(app, secret, study_uid)
            waited: dict[str, float] = {}
            reviewer = threading.Thread(target=_auto_review, args=(settings, case_id, waited), daemon=True)
            reviewer.start()
            state = process_case(case_id, return_state=True)
            wall = time.perf_counter() - t0
            reviewer.join(5)
            steps = _task_times(state.state_details.flow_run_id)
            images = len(list((settings.publish.folder or settings.data_dir / "published").glob(f"{case_id}/dicom/*")))
            core = _core(settings, _write_study(scratch / "import", seed + 50, kind, args.ct_images))
            work = wall - waited.get("review", 0.0)
            share = max(0.0, work - core) / work
            step_text = ", ".join(f"{k} {v:.1f}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1]))
            review_wait = waited.get("review", 0.0)
            print(f"{kind:8} {images:7d} {wall:8.1f} {review_wait:12.1f} {core:8.1f} {share:13.1%}  {step_text}")

        # the nightly batch: N small cases marked READY, published in one run
        ids = []
        for n in range(args.nightly):
            study_uid = _write_study(scratch / "import", 1000 + n, "small", 2)
            case_id = _webhook(app, secret, study_uid)
            transact(rt.engine, lambda s, c=case_id: set_publish_mode(s, c, PublishMode.NIGHTLY))
            waited = {}
            threading.Thread(target=_auto_review, args=(settings, case_id, waited, None), daemon=True).start()
            ids.append(case_id)
            process_case(case_id)
        t0 = time.perf_counter()
        counts = publish_ready_cases()
        print(f"nightly batch: {counts} of {len(ids)} READY cases in {time.perf_counter() - t0:.1f} s (one run)")


if __name__ == "__main__":
    main()
