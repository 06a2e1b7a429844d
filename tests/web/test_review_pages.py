"""The review pages through HTTP (Starlette's TestClient over httpx), on a real SQLite file.

Resuming uses a REAL Prefect server (the ``prefect_api`` fixture) and the stand-in review flow
of stand_in_flow.py, which pauses exactly as the case flow's review step does without a
deployment and returns the decision it receives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from tests.web.conftest import BEARER_TOKEN, RecordingStarter, TestClient
from tests.web.stand_in_flow import PausedFlow
from tests.web.synthetic_case import (
    PASSWORD,
    REVIEWER,
    SyntheticCase,
    make_case,
    review_settings,
)
from tftt.errors import ConfigurationError
from tftt.review_decision import ReviewDecision
from tftt.settings import Settings
from tftt.store import cases, db
from tftt.store.db import AuditKind, CaseStatus, transact
from tftt.store.workspace import Area
from tftt.web.app import create_app
from tftt.web.review_accounts import hash_password
from tftt.web.review_resume import resume_review

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
def rsettings(tmp_path: Path) -> Settings:
    return review_settings(
        tmp_path / "data",
        login_max_failures_per_user=3,
        login_max_failures_per_address=6,
        prefect_ui_url="http://prefect.test:4200",
    )


class RecordingResume:
    """Records the calls, then hands them to the REAL resume (Prefect)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ReviewDecision]] = []

    def __call__(self, flow_run_id: str, decision: ReviewDecision) -> None:
        self.calls.append((flow_run_id, decision))
        resume_review(flow_run_id, decision)


@pytest.fixture
def resume() -> RecordingResume:
    return RecordingResume()


@pytest.fixture
def client(rsettings: Settings, rengine: Engine, resume: RecordingResume) -> Iterator[TestClient]:
    app = create_app(rsettings, engine=rengine, start_case_run=RecordingStarter(), resume=resume)
    with TestClient(app) as test_client:
        yield test_client


def login(client: TestClient, username: str = REVIEWER, password: str = PASSWORD, **extra: str) -> Any:
    page = client.get("/review/login")
    assert page.status_code == 200
    token = _CSRF.search(page.text)
    assert token is not None
    form = {"username": username, "password": password, "csrf_token": token.group(1), **extra}
    return client.post("/review/login", data=form, follow_redirects=False)


def page_csrf(client: TestClient, case_id: str) -> str:
    page = client.get(f"/review/cases/{case_id}")
    assert page.status_code == 200
    found = _META.search(page.text)
    assert found is not None
    return found.group(1)


def decision_body(case: SyntheticCase, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "approved": True,
        "reviewer": "Dr. Entered Name",
        "spec": {
            "spec_version": 1,
            "series": [],
            "instances": [
                {
                    "sop_instance_uid": case.cine_uid,
                    "blackouts": [
                        {
                            "x": case.box.x,
                            "y": case.box.y,
                            "width": case.box.width,
                            "height": case.box.height,
                            "frames": None,
                            "source": "reviewer",
                        }
                    ],
                    "crop": {"x": 0, "y": 30, "width": case.columns, "height": case.rows - 30},
                    "annotations": [
                        {
                            "kind": "arrow",
                            "tail_x": 200,
                            "tail_y": 150,
                            "head_x": 160,
                            "head_y": 120,
                            "color": "#FFFF00",
                            "frames": {"first": 2, "last": 5},
                        }
                    ],
                    "exclude": False,
                }
            ],
            "burn_in_annotations": False,
        },
        "teaching_metadata": {
            "title": "Liver cine",
            "history": "Pain",
            "findings": "Normal",
            "diagnosis": "None",
            "keywords": ["liver", "us"],
            "author": "Team",
            "abstract": None,
            "public": None,
        },
        "publish_now": None,
        "notes": None,
    }
    body.update(changes)
    return body


def post_decision(client: TestClient, case_id: str, body: Any, token: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-CSRF-Token"] = token
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(f"/review/cases/{case_id}/decision", content=content, headers=headers)


def review_events(engine: Engine, case_id: str, kind: AuditKind = AuditKind.REVIEW_SUBMITTED) -> list[Any]:
    events = transact(engine, lambda s: cases.list_audit(s, case_id))
    return [e for e in events if e.kind == kind]


# ------------------------------------------------------------------------------ login


def test_login_success_and_failure(client: TestClient, rsettings: Settings, rengine: Engine) -> None:
    case = make_case(rsettings, rengine, title="</script><script>alert(1)</script> & co")
    wrong = login(client, password="not it")
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    unknown = login(client, username="dr.nobody")
    assert unknown.status_code == 401
    ok = login(client, next=f"/review/cases/{case.case_id}")
    assert ok.status_code == 303 and ok.headers["location"] == f"/review/cases/{case.case_id}"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/review" in cookie
    listing = client.get("/review/cases")
    assert listing.status_code == 200
    assert case.case_id in listing.text
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in listing.text
    assert "<script>alert(1)" not in listing.text
    assert "http://prefect.test:4200/runs/flow-run/" not in listing.text  # no run yet
    assert listing.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in listing.headers["content-security-policy"]
    page = client.get(f"/review/cases/{case.case_id}")
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text and "</script><script>" not in page.text
    assert 'loading="lazy"' in page.text
    # an open redirect is not followed
    client.cookies.clear()
    elsewhere = login(client, next="https://evil.example/")
    assert elsewhere.headers["location"] == "/review/cases"


def test_login_needs_the_forms_csrf_token(client: TestClient) -> None:
    client.get("/review/login")
    form = {"username": REVIEWER, "password": PASSWORD}
    assert client.post("/review/login", data=form, follow_redirects=False).status_code == 403
    bad = {**form, "csrf_token": "forged"}
    assert client.post("/review/login", data=bad, follow_redirects=False).status_code == 403
    client.cookies.clear()
    token = _CSRF.search(TestClient(client.app).get("/review/login").text)
    assert token is not None  # a token from another browser's session does not help
    other = {**form, "csrf_token": token.group(1)}
    assert client.post("/review/login", data=other, follow_redirects=False).status_code == 403


def test_login_is_rate_limited_per_username_and_per_address(client: TestClient) -> None:
    for _ in range(3):
        assert login(client, password="guess").status_code == 401
    limited = login(client)  # even the right password is not checked now
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "Too many failed logins" in limited.text
    # other usernames from the same address: 3 more failures reach the address limit of 6
    for name in ("dr.x", "dr.y", "dr.z"):
        assert login(client, username=name, password="guess").status_code == 401
    assert login(client, username="dr.other", password="guess").status_code == 429


def test_a_password_change_ends_older_sessions(rsettings: Settings, rengine: Engine) -> None:
    app = create_app(rsettings, engine=rengine, start_case_run=RecordingStarter())
    with TestClient(app) as first:
        assert login(first).status_code == 303
        cookies = dict(first.cookies)
    changed = rsettings.model_copy(
        update={
            "web": rsettings.web.model_copy(
                update={"reviewers": {REVIEWER: SecretStr(hash_password("new one"))}}
            )
        }
    )
    app2 = create_app(changed, engine=rengine, start_case_run=RecordingStarter())
    with TestClient(app2, cookies=cookies) as second:
        assert second.get("/review/cases", follow_redirects=False).status_code == 303


def test_logout_needs_csrf_and_ends_the_session(
    client: TestClient, rsettings: Settings, rengine: Engine
) -> None:
    case = make_case(rsettings, rengine)
    login(client)
    token = page_csrf(client, case.case_id)
    assert client.post("/review/logout", data={}, follow_redirects=False).status_code == 403
    out = client.post("/review/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/review/cases", follow_redirects=False).status_code == 303


# ------------------------------------------------------------------------------ access


def test_everything_needs_a_login(client: TestClient, rsettings: Settings, rengine: Engine) -> None:
    case = make_case(rsettings, rengine)
    base = f"/review/cases/{case.case_id}"
    listing = client.get("/review/cases", follow_redirects=False)
    assert listing.status_code == 303 and listing.headers["location"] == "/review/login?next=/review/cases"
    page = client.get(base, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == f"/review/login?next={base}"
    for path in (
        f"{base}/images/{case.cine_uid}/thumb.jpg",
        f"{base}/images/{case.cine_uid}/frames/1.jpg",
        f"{base}/images/{case.cine_uid}/frames/x.jpg",
        f"{base}/status",
    ):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 401, path
        assert response.headers["content-type"].startswith("application/json")
    assert post_decision(client, case.case_id, decision_body(case), "x").status_code == 401
    assert client.get("/review/static/review.js").status_code == 200  # the script is public


def test_decision_needs_the_sessions_csrf_token(
    client: TestClient, rsettings: Settings, rengine: Engine
) -> None:
    case = make_case(rsettings, rengine, flow_run_id="0b9a3c1e-0000-4000-8000-000000000001")
    login(client)
    page_csrf(client, case.case_id)
    assert post_decision(client, case.case_id, decision_body(case), None).status_code == 403
    assert post_decision(client, case.case_id, decision_body(case), "forged").status_code == 403
    assert review_events(rengine, case.case_id) == []


def test_previews_are_served_to_reviewers_only_by_listed_uid(
    client: TestClient, rsettings: Settings, rengine: Engine
) -> None:
    case = make_case(rsettings, rengine)
    other = make_case(rsettings, rengine)
    login(client)
    base = f"/review/cases/{case.case_id}"
    thumb = client.get(f"{base}/images/{case.cine_uid}/thumb.jpg")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["cache-control"] == "no-store"
    assert thumb.content[:2] == b"\xff\xd8"
    listed = case.index.images[0].preview_frames
    frame = client.get(f"{base}/images/{case.cine_uid}/frames/{listed[1]}.jpg")
    assert frame.status_code == 200 and frame.headers["cache-control"] == "no-store"
    unlisted = next(n for n in range(1, case.frames + 1) if n not in listed)
    # a stray file that is on disk but not in the index, and the index itself
    stray = case.workspace.file(Area.PREVIEWS, "2.25.999")
    stray.mkdir()
    (stray / "thumb.jpg").write_bytes(b"\xff\xd8stray")
    tricks = [
        f"{base}/images/{case.cine_uid}/frames/{unlisted}.jpg",
        f"{base}/images/2.25.999/thumb.jpg",
        f"{base}/images/../thumb.jpg",
        f"{base}/images/%2e%2e/thumb.jpg",
        f"{base}/images/..%2F..%2Fpreviews/thumb.jpg",
        f"{base}/images/{case.cine_uid}%2F..%2F..%2Findex.json/thumb.jpg",
        f"{base}/images/{case.cine_uid}/frames/..%2F..%2Findex.json.jpg",
        f"{base}/images/{case.cine_uid}/frames/-1.jpg",
        f"{base}/images/{case.cine_uid}/frames/1e3.jpg",
        f"{base}/images/{other.cine_uid}/thumb.jpg",  # another case's image
        f"/review/cases/c-..%2F{case.case_id}/images/{case.cine_uid}/thumb.jpg",
        f"/review/cases/C-{case.case_id[2:]}/images/{case.cine_uid}/thumb.jpg",
        "/review/static/..%2Freview_pages.py",
        "/review/static/index.json",
    ]
    for path in tricks:
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"stray" not in response.content and b"proposed_spec" not in response.content


def test_status_and_page_of_unknown_cases(client: TestClient) -> None:
    login(client)
    assert client.get("/review/cases/c-0000000000000000").status_code == 404
    assert client.get("/review/cases/not-a-case").status_code == 404
    assert client.get("/review/cases/c-0000000000000000/status").status_code == 404


# ------------------------------------------------------------------------------ submit (real Prefect)


@pytest.mark.integration
def test_invalid_decisions_are_shown_inline_and_resume_nothing(
    prefect_api: str, client: TestClient, rsettings: Settings, rengine: Engine, resume: RecordingResume
) -> None:
    run = PausedFlow("pages-invalid")
    case = make_case(rsettings, rengine, flow_run_id=run.run_id)
    login(client)
    token = page_csrf(client, case.case_id)

    no_title = decision_body(case, teaching_metadata={"title": "", "keywords": []})
    answer = post_decision(client, case.case_id, no_title, token)
    assert answer.status_code == 422
    assert {"field": "teaching_metadata.title", "message": "String should have at least 1 character"} in (
        answer.json()["errors"]
    )

    outside = decision_body(case)
    outside["spec"]["instances"][0]["blackouts"][0]["x"] = case.columns - 4
    answer = post_decision(client, case.case_id, outside, token)
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert [e["field"] for e in errors] == ["spec.instances[0].blackouts[0]"]
    assert "columns" in errors[0]["message"] and case.cine_uid not in answer.text

    assert post_decision(client, case.case_id, b"{not json", token).status_code == 422
    assert resume.calls == [] and review_events(rengine, case.case_id) == []
    assert run.state_type() == "PAUSED"

    good = decision_body(case)
    answer = post_decision(client, case.case_id, good, token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "resumed"
    received = run.result()
    assert received.model_dump(mode="json") == ReviewDecision.model_validate(good).model_dump(mode="json")
    assert received.model_dump(mode="json") == good  # nothing lost or added on the way
    [event] = review_events(rengine, case.case_id)
    assert event.actor == REVIEWER
    assert event.details["reviewer"] == "Dr. Entered Name"
    assert event.details["flow_run_id"] == run.run_id
    assert review_events(rengine, case.case_id, AuditKind.REVIEW_NOT_RESUMED) == []
    assert (event.details["blackouts"], event.details["crops"], event.details["annotations"]) == (1, 1, 1)
    assert [call[0] for call in resume.calls] == [run.run_id]

    status = client.get(f"/review/cases/{case.case_id}/status").json()
    assert status["run"]["type"] == "COMPLETED" and status["done"] is True
    assert status["status"] == "awaiting_review"  # the stand-in does not move the case on

    again = post_decision(client, case.case_id, good, token)
    assert again.status_code == 409  # the run no longer waits
    assert len(review_events(rengine, case.case_id)) == 2  # every submission is recorded
    [refused] = review_events(rengine, case.case_id, AuditKind.REVIEW_NOT_RESUMED)
    assert refused.details["error"] == "run-not-paused" and refused.actor == REVIEWER


@pytest.mark.integration
def test_a_decision_prefect_rejects_is_shown_inline(
    prefect_api: str, client: TestClient, rsettings: Settings, rengine: Engine
) -> None:
    run = PausedFlow("pages-rejected", strict=True)
    case = make_case(rsettings, rengine, flow_run_id=run.run_id)
    login(client)
    token = page_csrf(client, case.case_id)
    answer = post_decision(client, case.case_id, decision_body(case), token)
    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert "second_opinion" in error["message"]
    assert run.state_type() == "PAUSED"
    [event] = review_events(rengine, case.case_id)
    assert event.actor == REVIEWER
    [refused] = review_events(rengine, case.case_id, AuditKind.REVIEW_NOT_RESUMED)
    assert refused.details["error"] == "run-input-rejected"
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run.run_id, run_input={**decision_body(case), "second_opinion": "ok"})  # type: ignore[arg-type]
    run.result()


def test_a_case_that_is_not_awaiting_review_takes_no_decision(
    client: TestClient, rsettings: Settings, rengine: Engine, resume: RecordingResume
) -> None:
    case = make_case(rsettings, rengine, flow_run_id="0b9a3c1e-0000-4000-8000-000000000001")
    no_run = make_case(rsettings, rengine)
    transact(rengine, lambda s: cases.set_status(s, case.case_id, CaseStatus.PROCESSING))
    login(client)
    token = page_csrf(client, case.case_id)
    page = client.get(f"/review/cases/{case.case_id}")
    assert "not awaiting review" in page.text
    answer = post_decision(client, case.case_id, decision_body(case), token)
    assert answer.status_code == 409 and "processing" in answer.json()["errors"][0]["message"]
    assert post_decision(client, no_run.case_id, decision_body(no_run), token).status_code == 409
    assert resume.calls == []


def test_prefect_down_is_a_503_and_audited(rsettings: Settings, rengine: Engine) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    case = make_case(rsettings, rengine, flow_run_id="0b9a3c1e-0000-4000-8000-000000000001")
    app = create_app(rsettings, engine=rengine, start_case_run=RecordingStarter())
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:1/api", PREFECT_CLIENT_MAX_RETRIES: 0}):
        with TestClient(app) as client:
            login(client)
            token = page_csrf(client, case.case_id)
            answer = post_decision(client, case.case_id, decision_body(case), token)
            status = client.get(f"/review/cases/{case.case_id}/status").json()
    assert answer.status_code == 503
    assert status["run"] is None and status["run_error"] == "prefect-unavailable"
    [event] = review_events(rengine, case.case_id)
    assert event.actor == REVIEWER
    [refused] = review_events(rengine, case.case_id, AuditKind.REVIEW_NOT_RESUMED)
    assert refused.details["error"] == "prefect-unavailable"


def test_a_decision_that_cannot_be_recorded_resumes_nothing(
    client: TestClient, rsettings: Settings, rengine: Engine, resume: RecordingResume
) -> None:
    """Regression: the run was resumed first and the audit written after, so a failed audit
    write left an approval nobody had recorded."""
    from sqlalchemy import text

    case = make_case(rsettings, rengine, flow_run_id="0b9a3c1e-0000-4000-8000-000000000001")
    login(client)
    token = page_csrf(client, case.case_id)
    with rengine.begin() as connection:
        connection.execute(text("DROP TABLE audit_events"))  # the audit write fails
    answer = post_decision(client, case.case_id, decision_body(case), token)
    assert answer.status_code == 503 and "nothing was resumed" in answer.text
    assert resume.calls == []


# ------------------------------------------------------------------------------ the app


def test_webhook_still_works_next_to_the_review_pages(client: TestClient) -> None:
    body = b'{"study_uid": "1.2.826.0.1.3680043.10.4242.9", "requester": "orthanc"}'
    answer = client.post("/hooks/pacs", content=body, headers={"Authorization": f"Bearer {BEARER_TOKEN}"})
    assert answer.status_code == 202
    assert client.get("/health").status_code == 200


def test_review_pages_off_or_refused_without_a_session_secret(settings: Settings, engine: Engine) -> None:
    app = create_app(settings, engine=engine, start_case_run=RecordingStarter())
    with TestClient(app) as client:
        assert client.get("/review/cases").status_code == 503
    with_reviewers = settings.model_copy(
        update={
            "web": settings.web.model_copy(update={"reviewers": {"dr.a": SecretStr(hash_password("pw"))}})
        }
    )
    with pytest.raises(ConfigurationError, match="SESSION_SECRET"):
        create_app(with_reviewers, engine=engine, start_case_run=RecordingStarter())


def test_a_broken_index_shows_no_previews_and_takes_no_decision(
    client: TestClient, rsettings: Settings, rengine: Engine
) -> None:
    case = make_case(rsettings, rengine, flow_run_id="0b9a3c1e-0000-4000-8000-000000000001")
    case.workspace.file(Area.PREVIEWS, "index.json").write_text('{"case_id": "c-0000000000000000"}')
    login(client)
    token = page_csrf(client, case.case_id)
    assert "previews of this case are not ready" in client.get(f"/review/cases/{case.case_id}").text
    answer = post_decision(client, case.case_id, decision_body(case), token)
    assert answer.status_code == 409
    assert client.get(f"/review/cases/{case.case_id}/images/{case.cine_uid}/thumb.jpg").status_code == 404


def test_an_unreachable_database_is_a_503(rsettings: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")
    broken = db.create_engine(f"sqlite:///{blocker}/tftt.db")
    app = create_app(rsettings, engine=broken, start_case_run=RecordingStarter())
    with TestClient(app) as client:
        assert login(client).status_code == 303  # accounts come from the settings
        assert client.get("/review/cases").status_code == 503
        assert client.get("/review/cases/c-0000000000000000").status_code == 503
        assert client.get("/review/cases/c-0000000000000000/status").status_code == 503
    broken.dispose()
