"""``publish-ready-cases``: the nightly batch (cron ``0 2 * * *`` by default).

Publishes every READY case, each on its own (one failure does not stop the rest), expires
reviews that waited longer than the review timeout, deletes the identified files of cases
finished longer ago than ``workspace.keep_identified_days`` (see
:mod:`tftt.case.workspace_purge`), and ends with a summary artifact.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from tasks.publish import expire_stale, publish, purge_workspaces, ready_cases


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
    purge = purge_workspaces()
    rows += [{"case": case.case_id, "outcome": "identified files deleted"} for case in purge.purged]
    rows += [{"case": case_id, "outcome": "identified files NOT deleted (tried again next run)"}
             for case_id in purge.failed]
    summary = (f"{published} published, {failed} failed, {len(expired)} expired, {len(purge.purged)} purged, "
               f"{len(purge.failed)} could not be purged")
    create_table_artifact(key="nightly-publication", table=rows or [{"case": "-", "outcome": "nothing to do"}],
                          description=summary)
    logger.info("nightly batch: %s", summary)
    return {"published": published, "failed": failed, "expired": len(expired), "purged": len(purge.purged),
            "purge_failed": len(purge.failed)}
