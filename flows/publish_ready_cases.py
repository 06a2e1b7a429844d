"""``publish-ready-cases``: the nightly batch (cron ``0 2 * * *`` by default).

Publishes every READY case, each on its own (one failure does not stop the rest), expires
reviews that waited longer than the review timeout, and ends with a summary artifact.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from tasks.publish import expire_stale, publish, ready_cases


@flow(name="publish-ready-cases", persist_result=True)
def publish_ready_cases() -> dict[str, int]:
    """Publish all READY cases; returns counts (the artifact lists cases by opaque id)."""
    logger = get_run_logger()
    expired = expire_stale()
    rows: list[dict[str, str]] = []
    for case_id in ready_cases():
        state = publish(case_id, return_state=True)
        outcome = "published" if state.is_completed() else f"failed ({state.type.value.lower()})"
        rows.append({"case": case_id, "outcome": outcome})
    rows += [{"case": case_id, "outcome": "expired (review timed out)"} for case_id in expired]
    published = sum(1 for row in rows if row["outcome"] == "published")
    failed = sum(1 for row in rows if row["outcome"].startswith("failed"))
    create_table_artifact(key="nightly-publication", table=rows or [{"case": "-", "outcome": "nothing ready"}],
                          description=f"{published} published, {failed} failed, {len(expired)} expired")
    logger.info("nightly batch: %d published, %d failed, %d expired", published, failed, len(expired))
    return {"published": published, "failed": failed, "expired": len(expired)}
