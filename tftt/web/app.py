"""TFTT's HTTP service: the authenticated PACS webhook, a health check and the review pages.

``POST /hooks/pacs`` is how a PACS (an Orthanc Lua ``OnStableStudy`` script, or any HTTP client)
asks for a teaching-file case. The request must carry a valid ``X-TFTT-Signature`` (HMAC-SHA256
of the raw body) or ``Authorization: Bearer`` token; otherwise the answer is 401 and nothing is
read further, stored or started. A valid request records the case (idempotent by study and
series selection) and starts its ``process-case`` flow run once.

The study UID goes into TFTT's database only: no response body, log line, or error message of
this module carries it, and validation errors name fields, never their values.

Answers of ``POST /hooks/pacs``:

=====  ==========================================================================
202    a flow run was started by this request: ``{case_id, flow_run_id, created, status}``
200    the case exists and already has its run (a re-sent webhook): same body
401    missing or bad signature/token (``WWW-Authenticate: Bearer``)
413    body larger than 64 KiB
422    the payload is not valid: ``{detail, errors: [{loc, type, msg}]}``
503    the database is unavailable, or the case was recorded but its run could not be started
       (``{detail, case_id, error}``); sending the webhook again is safe
=====  ==========================================================================

The reviewer pages (``/review/...``, :mod:`tftt.web.review_pages`) are mounted when a session
secret or reviewer accounts are configured; otherwise ``/review`` answers 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from tftt.errors import TfttError, UnsupportedInputError
from tftt.settings import Settings
from tftt.store import cases
from tftt.store.cases import PHIGuardError
from tftt.store.db import (
    REQUESTER_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    AuditKind,
    Clock,
    DatabaseUnavailableError,
    check_db,
    transact,
    utc_now,
)
from tftt.store.uid_syntax import LENIENT_UID_PATTERN, UID_MAX_LENGTH
from tftt.web.auth import AuthMethod, authenticate_webhook, check_webhook_settings
from tftt.web.review_pages import ResumeFn, RunStateFn, create_review_router
from tftt.web.review_resume import read_run_state, resume_review

log = logging.getLogger(__name__)

MAX_WEBHOOK_BODY = 64 * 1024
MAX_SERIES = 1000
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

Uid = Annotated[
    str, StringConstraints(min_length=1, max_length=UID_MAX_LENGTH, pattern=LENIENT_UID_PATTERN)
]


class PacsWebhook(BaseModel):
    """What a PACS sends to ``POST /hooks/pacs``. Unknown fields are refused (so a PACS that
    sends patient data, e.g. a PatientID, is told so and nothing is stored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    study_uid: Uid = Field(description="Study Instance UID at the PACS")
    series: list[Uid] | None = Field(
        None, max_length=MAX_SERIES, description="Series to include; none or empty = all"
    )
    requester: str = Field(
        min_length=1,
        max_length=REQUESTER_MAX_LENGTH,
        pattern=_PRINTABLE,
        description="Who asked for the case (a user or the PACS itself)",
    )
    calling_aet: str | None = Field(
        None, min_length=1, max_length=16, pattern=_PRINTABLE, title="Calling AE title"
    )
    title: str | None = Field(
        None, max_length=TITLE_MAX_LENGTH, pattern=_PRINTABLE, title="Case title (no PHI)"
    )


class CaseAccepted(BaseModel):
    case_id: str
    flow_run_id: str
    created: bool
    status: str


def _safe_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Validation errors without input values, and without field names we did not define."""
    known = set(PacsWebhook.model_fields)
    errors = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = [
            part if isinstance(part, int) or part in known else "<field>" for part in error["loc"]
        ]
        errors.append({"loc": loc, "type": error["type"], "msg": error["msg"]})
    return errors


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    settings: Settings,
    *,
    engine: Engine,
    start_case_run: Callable[[str], str],
    clock: Clock = utc_now,
    resume: ResumeFn = resume_review,
    run_state: RunStateFn = read_run_state,
) -> FastAPI:
    """The FastAPI application of the TFTT service.

    ``start_case_run(case_id) -> flow_run_id`` starts the case's flow run; production passes
    :func:`tftt.web.runs.start_case_run`. It is called from a worker thread, must be idempotent
    for a case id, and should raise a :class:`~tftt.errors.TfttError` on failure.
    ``resume`` and ``run_state`` are handed to the review pages
    (:func:`tftt.web.review_pages.create_review_router`), which are mounted under ``/review``
    when ``web.session_secret`` or ``web.reviewers`` is set.
    ``app.state`` holds ``settings`` and ``engine``.

    Raises:
        ConfigurationError: no webhook secret or token is configured, or one is too short;
            reviewers are configured without a session secret of at least 32 characters, or
            a reviewer entry is not an argon2 hash.
    """
    check_webhook_settings(settings.web)
    app = FastAPI(title="TFTT", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine
    if settings.web.session_secret is not None or settings.web.reviewers:
        app.include_router(
            create_review_router(settings, engine, resume=resume, run_state=run_state, clock=clock)
        )
        if not settings.web.reviewers:
            log.warning("review pages: no reviewer accounts configured, nobody can log in")
    else:
        log.warning("review pages off: set TFTT_WEB__SESSION_SECRET and TFTT_WEB__REVIEWERS")

        @app.get("/review")
        @app.get("/review/{rest:path}")
        async def review_off(rest: str = "") -> PlainTextResponse:
            return PlainTextResponse(
                "the review pages are not configured (no session secret, no reviewers)",
                status_code=503,
            )

    def accept(payload: PacsWebhook, method: AuthMethod) -> JSONResponse:
        series = payload.series or []

        def record(session: Any) -> tuple[cases.Case, bool]:
            case, created = cases.create_or_get_case_for_study(
                session,
                payload.study_uid,
                series,
                payload.requester,
                payload.title,
                calling_aet=payload.calling_aet,
                clock=clock,
            )
            cases.record_audit(
                session,
                case.id,
                AuditKind.WEBHOOK_RECEIVED,
                actor=payload.requester,
                details={
                    "created": created,
                    "series_count": len(set(series)),
                    "auth": method.value,
                },
                clock=clock,
            )
            return case, created

        case, created = transact(engine, record)
        run_id = case.flow_run_id
        started = False
        if run_id is None:
            try:
                new_run = start_case_run(case.id)
            except TfttError as exc:
                log.error("case %s: flow run not started (%s)", case.id, exc.code)
                return JSONResponse(
                    {
                        "detail": "case recorded, but its flow run could not be started; "
                        "send the webhook again later",
                        "case_id": case.id,
                        "error": exc.code,
                    },
                    status_code=503,
                )
            transact(engine, lambda s: cases.set_flow_run(s, case.id, new_run, clock=clock))
            run_id, started = new_run, True
        log.info(
            "webhook (%s): case %s %s, flow run %s%s",
            method.value,
            case.id,
            "created" if created else "exists",
            run_id,
            " started" if started else "",
        )
        body = CaseAccepted(
            case_id=case.id, flow_run_id=run_id, created=created, status=case.status.value
        )
        return JSONResponse(body.model_dump(), status_code=202 if started else 200)

    @app.post("/hooks/pacs")
    async def pacs_hook(request: Request) -> JSONResponse:
        body = await _read_capped(request, MAX_WEBHOOK_BODY)
        if body is None:
            return JSONResponse({"detail": "request body too large"}, status_code=413)
        method = authenticate_webhook(body, request.headers, settings.web)
        if method is None:
            log.warning("webhook refused: missing or bad signature/token")
            return JSONResponse(
                {"detail": "unauthorized"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            payload = PacsWebhook.model_validate_json(body)
        except ValidationError as exc:
            errors = _safe_errors(exc)
            log.warning("webhook refused: invalid payload at %s", [e["loc"] for e in errors])
            return JSONResponse({"detail": "invalid payload", "errors": errors}, status_code=422)
        try:
            return await run_in_threadpool(accept, payload, method)
        except DatabaseUnavailableError as exc:
            log.error("webhook: database unavailable (%s)", exc.code)
            return JSONResponse({"detail": "database unavailable"}, status_code=503)
        except (UnsupportedInputError, PHIGuardError) as exc:
            # TFTT's error messages carry no PHI by contract; they name the field, not its value
            log.warning("webhook refused: %s", exc.code)
            return JSONResponse(
                {"detail": "invalid payload", "errors": [{"type": exc.code, "msg": exc.message}]},
                status_code=422,
            )

    @app.get("/health")
    async def health() -> JSONResponse:
        try:
            await run_in_threadpool(check_db, engine)
        except DatabaseUnavailableError:
            return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return app
