"""``tftt serve``: one process that serves both deployments and TFTT's web endpoints.

* Prefect ``serve()`` of ``process-case`` (per-case flow runs, at most 4 at once) and
  ``publish-ready-cases`` (cron, 02:00 by default);
* the FastAPI app (PACS webhook, health, review pages) under uvicorn in a thread;
* when the source is an Orthanc (``source.dicomweb.rest_url`` set), a thread that reconciles from
  Orthanc's ``/changes`` feed, because Orthanc's Lua ``HttpPost`` never retries a lost webhook.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx
import uvicorn

from tftt.errors import TfttError
from tftt.observability import quiet_libraries
from tftt.settings import Settings, SourceKind
from tftt.store.db import init_db, make_engine
from tftt.store.keys import with_embedded_web_secrets
from tftt.web.app import create_app
from tftt.web.reconcile import reconcile_once
from tftt.web.runs import start_case_run

log = logging.getLogger(__name__)

PACS_LIMIT_NAME = "pacs"
PACS_LIMIT = 2
RECONCILE_SECONDS = 30.0


def ensure_pacs_limit(limit: int = PACS_LIMIT) -> None:
    """Create the global concurrency limit that protects the PACS, if it does not exist."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(PACS_LIMIT_NAME)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=PACS_LIMIT_NAME, limit=limit))


def _reconcile_forever(settings: Settings, stop: threading.Event) -> None:
    source = settings.source.dicomweb
    if not source.rest_url:
        return
    engine = make_engine(settings)
    auth = (source.username, source.password.get_secret_value()) if source.username and source.password else None
    with httpx.Client(auth=auth, timeout=source.timeout_seconds) as client:
        while not stop.wait(RECONCILE_SECONDS):
            try:
                reconcile_once(engine, client, source.rest_url, start_case_run)
            except TfttError as exc:
                log.warning("reconcile from Orthanc failed (%s); retrying in %.0f s", exc.code, RECONCILE_SECONDS)


def serve(settings: Settings, *, deployments: bool = True) -> None:
    """Run the service until interrupted: the webhook and review page, the reconciliation with
    Orthanc's changes feed, and (unless ``deployments`` is False) Prefect's ``serve`` of the
    process-case, nightly and take-down deployments.

    With ``deployments=False`` (several machines) the flows run on the workers of the ``tftt``
    work pool, deployed from ``prefect.yaml`` under the same names, and this process only starts
    their runs.

    Raises:
        ConfigurationError: the webhook or database is misconfigured.
    """
    from prefect import serve as prefect_serve

    from flows.process_case import process_case
    from flows.publish_ready_cases import publish_ready_cases
    from flows.take_down_case import take_down_flow

    quiet_libraries()
    settings = with_embedded_web_secrets(settings)
    engine = make_engine(settings)
    init_db(engine)
    ensure_pacs_limit()
    app = create_app(settings, engine=engine, start_case_run=start_case_run)
    web = uvicorn.Server(uvicorn.Config(app, host=settings.web.host, port=settings.web.port,
                                        log_level="warning", access_log=False))
    stop = threading.Event()
    if settings.source.kind is SourceKind.DICOMWEB:
        threading.Thread(target=_reconcile_forever, args=(settings, stop), name="tftt-reconcile",
                         daemon=True).start()
    if not deployments:
        try:
            web.run()
        finally:
            stop.set()
        return
    threading.Thread(target=web.run, name="tftt-web", daemon=True).start()
    deadline = time.monotonic() + 30
    while not web.started and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        served = [
            process_case.to_deployment(name="process-case", concurrency_limit=4),
            publish_ready_cases.to_deployment(name="publish-ready-cases", cron=settings.publish.nightly_cron),
            take_down_flow.to_deployment(name="take-down-case"),
        ]
        prefect_serve(*served, limit=4)  # type: ignore[arg-type]  # sync context: not coroutines
    finally:
        stop.set()
        web.should_exit = True
