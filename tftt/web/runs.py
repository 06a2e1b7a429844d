"""Starting the ``process-case`` Prefect deployment for a case.

The run gets the opaque case id as its only parameter (no PHI reaches Prefect) and an
idempotency key derived from it, so a re-sent webhook, a reconcile pass and a retry after a
crash all land on the same flow run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

import httpx

from tftt.errors import ConfigurationError, TargetRejectedError, TargetUnavailableError
from tftt.store.case_ids import check_case_id

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

log = logging.getLogger(__name__)

PROCESS_CASE_DEPLOYMENT = "process-case/process-case"


def case_run_idempotency_key(case_id: str) -> str:
    """The idempotency key of the (first) flow run of ``case_id``."""
    return f"case-{check_case_id(case_id)}"


def start_case_run(case_id: str, *, idempotency_key: str | None = None) -> str:
    """Create (or find) the ``process-case`` flow run of ``case_id``; return its id.

    Does not wait for the run (``timeout=0``). ``idempotency_key`` defaults to
    ``case-<case_id>``; pass another one to start a genuinely new run (e.g. re-publication after
    a corrected review). Uses the Prefect API of the process's Prefect settings
    (``prefect.toml`` / ``PREFECT_API_URL``); the Prefect client itself retries 429/502/503.

    Raises:
        UnsupportedInputError: ``case_id`` is not a case id.
        ConfigurationError: the deployment does not exist (is ``tftt serve`` running?).
        TargetUnavailableError: the Prefect API cannot be reached or keeps failing.
    """
    key = idempotency_key or case_run_idempotency_key(case_id)
    check_case_id(case_id)
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    try:
        flow_run = run_deployment(
            name=PROCESS_CASE_DEPLOYMENT,
            parameters={"case_id": case_id},
            timeout=0,
            idempotency_key=key,
            as_subflow=False,
            _sync=True,  # type: ignore[call-arg]  # never hand back a coroutine
        )
    except ObjectNotFound:
        raise ConfigurationError(
            f"Prefect has no deployment {PROCESS_CASE_DEPLOYMENT!r}; start `tftt serve`",
            code="deployment-missing",
        ) from None
    except PrefectHTTPStatusError as exc:
        status = exc.response.status_code
        error = TargetUnavailableError if status >= 500 or status == 429 else TargetRejectedError
        raise error(
            f"the Prefect API answered HTTP {status} when starting case {case_id}",
            code="prefect-unavailable" if error is TargetUnavailableError else "prefect-rejected",
        ) from None
    except (httpx.TransportError, OSError) as exc:
        raise TargetUnavailableError(
            f"the Prefect API cannot be reached ({type(exc).__name__})",
            code="prefect-unavailable",
        ) from None
    run_id = str(cast("FlowRun", flow_run).id)
    log.info("case %s: flow run %s", case_id, run_id)
    return run_id
