from __future__ import annotations

from pydantic import SecretStr
from starlette.responses import Response

from tests.web.synthetic_case import SESSION_SECRET
from tftt.web.review_sessions import COOKIE_NAME, SessionCodec, csrf_matches


def codec(secret: str = SESSION_SECRET, max_age: int = 3600) -> SessionCodec:
    return SessionCodec(SecretStr(secret), max_age_seconds=max_age, secure=False)


def test_round_trip_and_fresh_tokens() -> None:
    c = codec()
    anonymous = c.anonymous()
    assert anonymous.username is None and len(anonymous.csrf_token) >= 40
    user = c.logged_in("dr.a", "f" * 16)
    assert user.csrf_token != anonymous.csrf_token
    assert c.loads(c.dumps(user)) == user
    assert c.loads(c.dumps(anonymous)) == anonymous


def test_forged_expired_and_foreign_cookies_are_ignored() -> None:
    c = codec()
    value = c.dumps(c.logged_in("dr.a", "f" * 16))
    assert c.loads(value[:-2] + ("AA" if not value.endswith("AA") else "BB")) is None
    assert codec(secret=SESSION_SECRET + "-other").loads(value) is None
    assert codec(max_age=-1).loads(value) is None  # any age is too old
    assert c.loads(None) is None and c.loads("") is None and c.loads("x" * 5000) is None
    forged_payload = c._serializer.dumps({"c": "", "u": "dr.a"})
    assert c.loads(forged_payload) is None


def test_cookie_flags() -> None:
    response = Response()
    SessionCodec(SecretStr(SESSION_SECRET), max_age_seconds=600, secure=True).set_cookie(
        response, codec().anonymous()
    )
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE_NAME}=")
    for flag in ("HttpOnly", "SameSite=strict", "Path=/review", "Secure", "Max-Age=600"):
        assert flag.lower() in header.lower()


def test_csrf_comparison() -> None:
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd")
    assert not csrf_matches("abc", None)
    assert not csrf_matches("", "")
    assert not csrf_matches("abc", "abcé")
