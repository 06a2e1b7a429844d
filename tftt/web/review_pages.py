"""The reviewer's web pages: log in, see the cases awaiting review, review one, approve it.

Mounted under ``/review`` by :func:`tftt.web.app.create_app` (or on its own with
:func:`create_review_router`). Routes:

=======================================================  ===============================================
``GET  /review/login``                                   login form (sets a pre-login session for CSRF)
``POST /review/login``                                   form ``username``, ``password``, ``csrf_token``
``POST /review/logout``                                  form ``csrf_token``
``GET  /review/cases``                                   cases awaiting review, newest first
``GET  /review/cases/{case_id}``                         the case page (viewer, tools, metadata form)
``GET  /review/cases/{case_id}/images/{uid}/thumb.jpg``  thumbnail of a listed image
``GET  /review/cases/{case_id}/images/{uid}/frames/{n}.jpg``  preview of a listed frame;
                                                         ``?window=<preset>``: re-rendered (CT only)
``POST /review/cases/{case_id}/images/{uid}/after.jpg?frame=N[&window=<preset>]``
                                                         the frame after the edits of the
                                                         RedactionSpec JSON in the body, header
                                                         ``X-CSRF-Token``
``POST /review/cases/{case_id}/decision``                ReviewDecision JSON, header ``X-CSRF-Token``
``GET  /review/cases/{case_id}/status``                  case status and flow run state (JSON)
``GET  /review/static/{review.js,review.css}``           the page's script and style
=======================================================  ===============================================

Pages ask an anonymous visitor to log in (303 to the login form); images and JSON answer 401.
Every POST needs the session's CSRF token (403 otherwise). URLs carry case ids and published
UIDs only. Previews (which may show identifiers before redaction) are sent with
``Cache-Control: no-store``, like every page.

A frame without ``window`` is the stored preview file, byte for byte. With ``window`` (a name
of :data:`tftt.pixels.preview.CT_WINDOW_PRESETS`) the frame is rendered from the first-pass
DICOM with that VOI window: 422 ``{"errors": [...]}`` for an unknown preset or an image that is
not CT, 404 for an image, frame or first-pass file the case does not have.

``POST .../after.jpg`` renders the frame as it will be published (see
:mod:`tftt.web.review_renders`): 200 JPEG; 422 with field errors named as in a decision
(``spec.instances[0].crop``) for an invalid spec or preset, a malformed ``frame``, or an
excluded image; 413 when the body exceeds 2 MiB; 404 for an unknown case, image or frame; 409
when the case is not awaiting review; 401/403 as above. Rendering runs in a worker thread.

``POST .../decision`` records who submitted it (``review_submitted``, the login as actor)
before it resumes the run, and records a run that did not take it (``review_not_resumed``, with
the error code). It answers 200 ``{"status": "resumed"}``; 422 ``{"errors": [{field,
message}]}`` when the decision is invalid (nothing is resumed or recorded) or Prefect refuses
it; 409 when the case or its run is not waiting for a review; 503 when Prefect cannot be reached
or the decision cannot be recorded (then nothing is resumed); 401/403 as above.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from tftt.errors import TargetRejectedError, TargetUnavailableError, TfttError, UnsupportedInputError
from tftt.pixels.preview import CT_WINDOW_PRESETS
from tftt.review_decision import ReviewDecision
from tftt.review_index import ReviewIndex
from tftt.settings import Settings
from tftt.store import cases
from tftt.store.case_ids import is_case_id
from tftt.store.cases import CaseNotFoundError
from tftt.store.db import (
    AuditKind,
    Case,
    CaseStatus,
    Clock,
    DatabaseUnavailableError,
    transact,
    utc_now,
)
from tftt.store.workspace import CaseWorkspace
from tftt.web.review_accounts import (
    PASSWORD_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    LoginLimiter,
    ReviewerAccounts,
    check_review_settings,
)
from tftt.web.review_cases import (
    MAX_DECISION_BYTES,
    FieldError,
    IndexCache,
    awaiting_review,
    check_decision,
    decision_summary,
    image_flags,
    listed_image,
    preview_file,
)
from tftt.web.review_renders import (
    MAX_SPEC_BYTES,
    check_after_spec,
    render_after,
    render_target,
    render_window,
    window_preset,
)
from tftt.web.review_resume import (
    ResumeRejectedError,
    RunNotWaitingError,
    RunState,
    prefect_run_url,
    read_run_state,
    resume_review,
)
from tftt.web.review_sessions import (
    COOKIE_NAME,
    CSRF_FIELD,
    CSRF_HEADER,
    ReviewSession,
    SessionCodec,
    csrf_matches,
)

log = logging.getLogger(__name__)

PREFIX = "/review"
HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = {"review.js": "text/javascript", "review.css": "text/css"}
MAX_FORM_BYTES = 8 * 1024
DONE_STATUSES = frozenset(
    {
        CaseStatus.PUBLISHED,
        CaseStatus.READY,
        CaseStatus.QUARANTINED,
        CaseStatus.FAILED,
        CaseStatus.EXPIRED,
        CaseStatus.TAKEN_DOWN,
    }
)
_NEXT = re.compile(r"^/review/cases(/c-[0-9a-f]{16})?$")
_FRAME = re.compile(r"^[0-9]{1,6}$")

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

ResumeFn = Callable[[str, ReviewDecision], None]
RunStateFn = Callable[[str], "RunState | None"]


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M UTC")
    return env


def _secured(response: Response) -> Response:
    for name, value in PAGE_HEADERS.items():
        response.headers[name] = value
    return response


def _json(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return _secured(JSONResponse(body, status_code=status_code, headers=headers))


def _errors(errors: list[FieldError], status_code: int) -> Response:
    return _json({"errors": [{"field": e.field, "message": e.message} for e in errors]}, status_code)


def _unavailable_page() -> Response:
    html = "<!doctype html><title>Unavailable</title><p>The database is unavailable; try again shortly.</p>"
    return _secured(HTMLResponse(html, status_code=503))


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def _read_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form of at most 8 KiB, one value per field; ``None`` when too large."""
    body = await _read_body(request, MAX_FORM_BYTES)
    if body is None:
        return None
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items() if values}


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_review_router(
    settings: Settings,
    engine: Engine,
    *,
    resume: ResumeFn = resume_review,
    run_state: RunStateFn = read_run_state,
    limiter: LoginLimiter | None = None,
    clock: Clock = utc_now,
) -> APIRouter:
    """The review pages as a router to include in the service's FastAPI app.

    ``resume(flow_run_id, decision)`` hands a decision to the case's waiting flow run
    (default :func:`tftt.web.review_resume.resume_review`); ``run_state(flow_run_id)`` reads its
    state (default :func:`~tftt.web.review_resume.read_run_state`). Both are called from worker
    threads. ``limiter`` defaults to one built from ``settings.web``.

    Raises:
        ConfigurationError: no (or a short) session secret, or a reviewer entry that is not an
            argon2 hash.
    """
    web = settings.web
    check_review_settings(web)
    assert web.session_secret is not None  # checked above
    codec = SessionCodec(
        web.session_secret,
        max_age_seconds=web.session_max_age_seconds,
        secure=web.session_cookie_secure,
    )
    accounts = ReviewerAccounts(web.reviewers)
    login_limiter = limiter or LoginLimiter.for_settings(web)
    indexes = IndexCache()
    env = _templates()
    router = APIRouter(prefix=PREFIX)

    # ----------------------------------------------------------------- sessions and pages

    def session_of(request: Request) -> ReviewSession | None:
        return codec.loads(request.cookies.get(COOKIE_NAME))

    def user_of(session: ReviewSession | None) -> str | None:
        if session is None or session.username is None or session.username not in accounts:
            return None
        current = accounts.fingerprint(session.username).encode()
        if not hmac.compare_digest(current, (session.fingerprint or "").encode()):
            return None  # the password changed since this session began
        return session.username

    def page(name: str, status_code: int = 200, **context: Any) -> Response:
        html = env.get_template(name).render(prefix=PREFIX, **context)
        return _secured(HTMLResponse(html, status_code=status_code))

    def to_login(request: Request) -> Response:
        target = request.url.path
        location = f"{PREFIX}/login"
        if _NEXT.match(target):
            location += f"?next={quote(target, safe='/')}"
        return _secured(RedirectResponse(location, status_code=303))

    def login_page(
        session: ReviewSession | None,
        *,
        message: str | None = None,
        status_code: int = 200,
        next_path: str = "",
        headers: dict[str, str] | None = None,
    ) -> Response:
        fresh = session if session is not None and session.username is None else codec.anonymous()
        response = page(
            "login.html",
            status_code,
            csrf=fresh.csrf_token,
            message=message,
            next_path=next_path if _NEXT.match(next_path) else "",
            csrf_field=CSRF_FIELD,
        )
        for name, value in (headers or {}).items():
            response.headers[name] = value
        codec.set_cookie(response, fresh)
        return response

    def db(work: Callable[[Session], Any]) -> Any:
        return transact(engine, work)

    # ----------------------------------------------------------------- login and logout

    @router.get("")
    async def root() -> Response:
        return _secured(RedirectResponse(f"{PREFIX}/cases", status_code=303))

    @router.get("/login")
    async def login_form(request: Request, next: str = "") -> Response:
        session = session_of(request)
        if user_of(session) is not None:
            return _secured(RedirectResponse(f"{PREFIX}/cases", status_code=303))
        return login_page(session, next_path=next)

    @router.post("/login")
    async def login(request: Request) -> Response:
        session = session_of(request)
        form = await _read_form(request)
        if form is None:
            return login_page(None, message="The form was too large.", status_code=413)
        next_path = form.get("next", "")
        if session is None or not csrf_matches(session.csrf_token, form.get(CSRF_FIELD)):
            return login_page(
                None,
                message="Your login form expired. Please try again.",
                status_code=403,
                next_path=next_path,
            )
        username = form.get("username", "").strip()[:USERNAME_MAX_LENGTH]
        password = form.get("password", "")
        address = _client_address(request)
        verdict = login_limiter.check(username, address)
        if not verdict.allowed:
            log.warning("review login refused: too many failures (rate limit)")
            return login_page(
                session,
                message="Too many failed logins. Please wait before trying again.",
                status_code=429,
                next_path=next_path,
                headers={"Retry-After": str(verdict.retry_after_seconds)},
            )
        ok = bool(username) and len(password) <= PASSWORD_MAX_LENGTH
        ok = ok and await run_in_threadpool(accounts.authenticate, username, password)
        if not ok:
            login_limiter.record_failure(username, address)
            log.warning("review login failed")
            return login_page(
                session,
                message="Wrong username or password.",
                status_code=401,
                next_path=next_path,
            )
        login_limiter.record_success(username)
        log.info("reviewer %s logged in", username)
        target = next_path if _NEXT.match(next_path) else f"{PREFIX}/cases"
        response = _secured(RedirectResponse(target, status_code=303))
        codec.set_cookie(response, codec.logged_in(username, accounts.fingerprint(username)))
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = session_of(request)
        form = await _read_form(request)
        if session is None or form is None or not csrf_matches(session.csrf_token, form.get(CSRF_FIELD)):
            return _json({"detail": "missing or bad CSRF token"}, 403)
        response = _secured(RedirectResponse(f"{PREFIX}/login", status_code=303))
        codec.clear_cookie(response)
        return response

    # ----------------------------------------------------------------- cases

    @router.get("/cases")
    async def case_list(request: Request) -> Response:
        session = session_of(request)
        user = user_of(session)
        if user is None or session is None:
            return to_login(request)
        try:
            rows = await run_in_threadpool(db, awaiting_review)
        except DatabaseUnavailableError:
            return _unavailable_page()
        return page(
            "cases.html",
            user=user,
            csrf=session.csrf_token,
            csrf_field=CSRF_FIELD,
            rows=rows,
            run_urls={r.case_id: prefect_run_url(web, r.flow_run_id) for r in rows},
        )

    def load_case(case_id: str) -> tuple[Case, ReviewIndex | None, list[Any]]:
        def work(session: Session) -> tuple[Case, list[Any]]:
            return cases.get_case(session, case_id), cases.list_quarantine(session, case_id)

        case, quarantine = db(work)
        try:
            index = indexes.load(CaseWorkspace.for_settings(settings, case_id))
        except UnsupportedInputError as exc:
            log.error("case %s: review index not usable (%s)", case_id, exc.code)
            index = None
        return case, index, quarantine

    @router.get("/cases/{case_id}")
    async def case_page(request: Request, case_id: str) -> Response:
        session = session_of(request)
        user = user_of(session)
        if user is None or session is None:
            return to_login(request)
        if not is_case_id(case_id):
            return page("missing.html", 404, user=user, csrf=session.csrf_token, csrf_field=CSRF_FIELD)
        try:
            case, index, quarantine = await run_in_threadpool(load_case, case_id)
        except DatabaseUnavailableError:
            return _unavailable_page()
        except CaseNotFoundError:
            return page("missing.html", 404, user=user, csrf=session.csrf_token, csrf_field=CSRF_FIELD)
        images = []
        series: dict[str, dict[str, Any]] = {}
        if index is not None:
            for position, image in enumerate(index.images):
                flags = image_flags(image, quarantine)
                entry = series.setdefault(
                    image.series_uid,
                    {
                        "uid": image.series_uid,
                        "number": image.series_number,
                        "description": image.series_description or "",
                        "modality": image.modality,
                        "images": [],
                        "flagged": 0,
                    },
                )
                entry["images"].append(position)
                entry["flagged"] += 1 if flags.labels else 0
                images.append(
                    {
                        "uid": image.sop_instance_uid,
                        "series_uid": image.series_uid,
                        "number": image.instance_number,
                        "modality": image.modality,
                        "rows": image.rows,
                        "columns": image.columns,
                        "frames": image.frames,
                        "preview_frames": list(image.preview_frames),
                        "flags": flags.labels,
                        "risk": list(flags.burned_in_risk),
                        "quarantine": list(flags.quarantine),
                    }
                )
        known = {i["uid"] for i in images}
        case_quarantine = [
            f"{q.reason_code}: {q.message}"
            for q in quarantine
            if q.sop_instance_uid is None or q.sop_instance_uid not in known
        ]
        base = f"{PREFIX}/cases/{case.id}"
        data = {
            "case_id": case.id,
            "status": case.status.value,
            "reviewer": user,
            "images": images,
            "series": list(series.values()),
            "proposed_spec": index.proposed_spec.model_dump(mode="json") if index else None,
            "window_presets": list(CT_WINDOW_PRESETS),
            "urls": {
                "decision": f"{base}/decision",
                "status": f"{base}/status",
                "images": f"{base}/images",
            },
        }
        return page(
            "case.html",
            user=user,
            csrf=session.csrf_token,
            csrf_field=CSRF_FIELD,
            case=case,
            has_index=index is not None,
            awaiting=case.status == CaseStatus.AWAITING_REVIEW,
            series=list(series.values()),
            images=images,
            case_quarantine=case_quarantine,
            run_url=prefect_run_url(web, case.flow_run_id),
            window_presets=list(CT_WINDOW_PRESETS.items()),
            data=data,
        )

    async def reviewed_index(request: Request, case_id: str) -> Response | tuple[CaseWorkspace, ReviewIndex | None]:
        """Login and case id checked, the case's workspace and review index; or the error response."""
        if user_of(session_of(request)) is None:
            return _json({"detail": "log in first"}, 401)
        if not is_case_id(case_id):
            return _json({"detail": "not found"}, 404)
        workspace = CaseWorkspace.for_settings(settings, case_id)
        try:
            return workspace, await run_in_threadpool(indexes.load, workspace)
        except TfttError:
            return _json({"detail": "not found"}, 404)

    async def preview(request: Request, case_id: str, uid: str, frame: int | None) -> Response:
        found = await reviewed_index(request, case_id)
        if isinstance(found, Response):
            return found
        workspace, index = found
        path = None if index is None else preview_file(workspace, index, uid, frame)
        if path is None:
            return _json({"detail": "not found"}, 404)
        return _secured(FileResponse(path, media_type="image/jpeg"))

    @router.get("/cases/{case_id}/images/{uid}/thumb.jpg")
    async def thumbnail(request: Request, case_id: str, uid: str) -> Response:
        return await preview(request, case_id, uid, None)

    @router.get("/cases/{case_id}/images/{uid}/frames/{number}.jpg")
    async def frame(request: Request, case_id: str, uid: str, number: str) -> Response:
        if not _FRAME.match(number):
            if user_of(session_of(request)) is None:
                return _json({"detail": "log in first"}, 401)
            return _json({"detail": "not found"}, 404)
        preset = request.query_params.get("window")
        if preset is None:
            return await preview(request, case_id, uid, int(number))
        return await windowed(request, case_id, uid, int(number), preset)

    async def windowed(request: Request, case_id: str, uid: str, number: int, preset: str) -> Response:
        found = await reviewed_index(request, case_id)
        if isinstance(found, Response):
            return found
        workspace, index = found
        image = None if index is None else listed_image(index, uid)
        if image is None or number not in image.preview_frames:
            return _json({"detail": "not found"}, 404)
        window, problems = window_preset(preset, image)
        if window is None:
            return _errors(problems, 422)
        target = render_target(workspace, image)
        if target is None:
            return _json({"detail": "not found"}, 404)
        try:
            jpeg = await run_in_threadpool(render_window, target, number, window)
        except TfttError as exc:
            log.error("case %s: a windowed frame cannot be rendered (%s)", case_id, exc.code)
            return _errors([FieldError("(image)", exc.message)], 422)
        return _secured(Response(jpeg, media_type="image/jpeg"))

    def not_waiting(case: Case) -> Response:
        message = f"the case is not awaiting review (it is {case.status.value})"
        return _errors([FieldError("(case)", message)], 409)

    async def posted_to_waiting_case(
        request: Request, case_id: str, limit: int, too_large: FieldError
    ) -> Response | tuple[str, bytes, Case, ReviewIndex | None]:
        """The checks every POST about a waiting case makes: login, CSRF token, case id, body size,
        the case awaiting review. Returns the error response, or (user, body, case, index)."""
        session = session_of(request)
        user = user_of(session)
        if user is None or session is None:
            return _json({"detail": "log in first"}, 401)
        if not csrf_matches(session.csrf_token, request.headers.get(CSRF_HEADER)):
            return _json({"detail": "missing or bad CSRF token"}, 403)
        if not is_case_id(case_id):
            return _json({"detail": "not found"}, 404)
        body = await _read_body(request, limit)
        if body is None:
            return _errors([too_large], 413)
        try:
            case, index, _ = await run_in_threadpool(load_case, case_id)
        except DatabaseUnavailableError:
            return _errors([FieldError("(server)", "the database is unavailable; try again")], 503)
        except CaseNotFoundError:
            return _json({"detail": "not found"}, 404)
        if case.status != CaseStatus.AWAITING_REVIEW:
            return not_waiting(case)
        return user, body, case, index

    @router.post("/cases/{case_id}/images/{uid}/after.jpg")
    async def after(request: Request, case_id: str, uid: str) -> Response:
        posted = await posted_to_waiting_case(request, case_id, MAX_SPEC_BYTES,
                                              FieldError("spec", "the spec is too large"))
        if isinstance(posted, Response):
            return posted
        _user, body, _case, index = posted
        image = None if index is None else listed_image(index, uid)
        if index is None or image is None:
            return _json({"detail": "not found"}, 404)
        number = request.query_params.get("frame", "")
        if not _FRAME.match(number):
            return _errors([FieldError("frame", "frame must be a frame number")], 422)
        if int(number) not in image.preview_frames:
            return _json({"detail": "not found"}, 404)
        window, problems = window_preset(request.query_params.get("window"), image)
        edits, spec_problems = await run_in_threadpool(check_after_spec, body, index, image)
        problems += spec_problems
        if problems or edits is None:
            return _errors(problems, 422)
        target = render_target(CaseWorkspace.for_settings(settings, case_id), image)
        if target is None:
            return _json({"detail": "not found"}, 404)
        try:
            jpeg = await run_in_threadpool(render_after, target, edits, int(number), window)
        except TfttError as exc:
            log.error("case %s: an after view cannot be rendered (%s)", case_id, exc.code)
            return _errors([FieldError("(image)", exc.message)], 422)
        return _secured(Response(jpeg, media_type="image/jpeg"))

    # ----------------------------------------------------------------- decision and status

    @router.post("/cases/{case_id}/decision")
    async def submit(request: Request, case_id: str) -> Response:
        posted = await posted_to_waiting_case(request, case_id, MAX_DECISION_BYTES,
                                              FieldError("(decision)", "the decision is too large"))
        if isinstance(posted, Response):
            return posted
        user, body, case, index = posted
        run_id = case.flow_run_id
        if not run_id:
            return not_waiting(case)
        if index is None:
            return _errors([FieldError("(case)", "the case has no previews yet")], 409)
        decision, problems = check_decision(body, index)
        if decision is None:
            return _errors(problems, 422)
        # Who approved is recorded first: a decision that cannot be audited resumes nothing.
        details: dict[str, Any] = {
            **decision_summary(decision),
            "flow_run_id": run_id,
            "review_round": case.review_round,
        }

        def audit(kind: AuditKind, facts: dict[str, Any]) -> None:
            db(lambda s: cases.record_audit(s, case_id, kind, actor=user, details=facts, clock=clock))

        try:
            await run_in_threadpool(audit, AuditKind.REVIEW_SUBMITTED, details)
        except TfttError as exc:
            log.error("case %s: review by %s not audited (%s); nothing resumed", case_id, user, exc.code)
            return _errors([FieldError("(server)", "the decision could not be recorded; nothing was resumed; "
                                                   "try again")], 503)
        error: TfttError | None = None
        try:
            await run_in_threadpool(resume, run_id, decision)
        except (ResumeRejectedError, RunNotWaitingError, TargetUnavailableError, TargetRejectedError) as exc:
            error = exc
        if error is not None:
            try:
                await run_in_threadpool(audit, AuditKind.REVIEW_NOT_RESUMED,
                                        {"flow_run_id": run_id, "error": error.code})
            except TfttError as exc:
                log.error("case %s: a failed resume not audited (%s)", case_id, exc.code)
        if isinstance(error, ResumeRejectedError):
            return _errors([FieldError(error.field or "(decision)", error.message)], 422)
        if isinstance(error, RunNotWaitingError):
            return _errors([FieldError("(run)", error.message)], 409)
        if error is not None:
            log.error("case %s: resume failed (%s)", case_id, error.code)
            return _errors([FieldError("(run)", error.message)], 503)
        log.info("case %s: review submitted by %s, run %s resumed", case_id, user, run_id)
        return _json(
            {
                "status": "resumed",
                "audited": True,
                "status_url": f"{PREFIX}/cases/{case_id}/status",
            }
        )

    @router.get("/cases/{case_id}/status")
    async def status(request: Request, case_id: str) -> Response:
        if user_of(session_of(request)) is None:
            return _json({"detail": "log in first"}, 401)
        if not is_case_id(case_id):
            return _json({"detail": "not found"}, 404)
        try:
            case = await run_in_threadpool(db, lambda s: cases.get_case(s, case_id))
        except DatabaseUnavailableError:
            return _json({"detail": "database unavailable"}, 503)
        except CaseNotFoundError:
            return _json({"detail": "not found"}, 404)
        state: RunState | None = None
        run_error = None
        if case.flow_run_id:
            try:
                state = await run_in_threadpool(run_state, case.flow_run_id)
            except TfttError as exc:
                run_error = exc.code
        done = case.status in DONE_STATUSES or (state is not None and state.is_final)
        return _json(
            {
                "case_id": case.id,
                "status": case.status.value,
                "run": None
                if state is None
                else {"type": state.type, "name": state.name, "pause_key": state.pause_key},
                "run_error": run_error,
                "done": done,
            }
        )

    # ----------------------------------------------------------------- static files

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        media_type = STATIC.get(name)
        if media_type is None:
            return _json({"detail": "not found"}, 404)
        response = FileResponse(HERE / "static" / name, media_type=media_type)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return router
