from tftt.case.review_rounds import reopen_for_review, round_key
from tftt.case.runtime import runtime
from tftt.settings import Settings
from tftt.store.cases import create_or_get_case_for_study, get_case
from tftt.store.db import transact


def test_each_round_starts_its_own_run(tmp_path):
    rt = runtime(Settings(data_dir=tmp_path, secret_key="review-rounds-secret-0123456789abcdef"))
    case, _ = transact(rt.engine, lambda s: create_or_get_case_for_study(s, "1.2.3.4", None, "t", None))
    started: list[tuple[str, str]] = []

    def start_run(case_id: str, *, idempotency_key: str) -> str:
        started.append((case_id, idempotency_key))
        return f"run-{len(started)}"

    assert reopen_for_review(rt, case.id, start_run) == "run-1"
    assert reopen_for_review(rt, case.id, start_run) == "run-2"
    assert started == [(case.id, round_key(case.id, 1)), (case.id, round_key(case.id, 2))]
    stored = transact(rt.engine, lambda s: get_case(s, case.id))
    assert stored.review_round == 2 and stored.flow_run_id == "run-2"
