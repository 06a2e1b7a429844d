"""Signed session cookies and CSRF tokens of the review pages.

The session is a small signed value (itsdangerous, keyed by ``web.session_secret``) in a cookie
that is ``HttpOnly``, ``SameSite=Strict``, limited to ``/review`` and, behind TLS, ``Secure``.
It holds the username (``None`` before login), a per-session CSRF token and a fingerprint of the
user's password hash, so a password change or a removed account ends older sessions. Nothing
is stored on the server.

Every POST carries the session's CSRF token, in the form field :data:`CSRF_FIELD` or the header
:data:`CSRF_HEADER`, and it is compared in constant time (:func:`csrf_matches`).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import SecretStr
from starlette.responses import Response

COOKIE_NAME = "tftt_review"
COOKIE_PATH = "/review"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SALT = "tftt-review-session-v1"


@dataclass(frozen=True)
class ReviewSession:
    """What the session cookie says: the CSRF token, and who is logged in (if anybody)."""

    csrf_token: str
    username: str | None = None
    fingerprint: str | None = None


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str, given: str | None) -> bool:
    """True if ``given`` is the session's token (constant-time comparison)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "replace"))


class SessionCodec:
    """Signs, reads and sets the session cookie."""

    def __init__(self, secret: SecretStr, *, max_age_seconds: int, secure: bool) -> None:
        self._serializer = URLSafeTimedSerializer(secret.get_secret_value(), salt=_SALT)
        self.max_age_seconds = max_age_seconds
        self.secure = secure

    def anonymous(self) -> ReviewSession:
        """A fresh session for the login form (no user, a new CSRF token)."""
        return ReviewSession(csrf_token=new_csrf_token())

    def logged_in(self, username: str, fingerprint: str) -> ReviewSession:
        """A fresh session for ``username``; the CSRF token is new (no session fixation)."""
        return ReviewSession(csrf_token=new_csrf_token(), username=username, fingerprint=fingerprint)

    def dumps(self, session: ReviewSession) -> str:
        payload = {"c": session.csrf_token, "u": session.username, "f": session.fingerprint}
        return self._serializer.dumps(payload)

    def loads(self, value: str | None) -> ReviewSession | None:
        """The session in a cookie value; ``None`` if missing, forged, expired or malformed."""
        if not value or len(value) > 4096:
            return None
        try:
            payload: Any = self._serializer.loads(value, max_age=self.max_age_seconds)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(payload, dict):
            return None
        csrf, user, fingerprint = payload.get("c"), payload.get("u"), payload.get("f")
        if not isinstance(csrf, str) or not csrf:
            return None
        if user is not None and (not isinstance(user, str) or not isinstance(fingerprint, str)):
            return None
        return ReviewSession(csrf_token=csrf, username=user, fingerprint=fingerprint)

    def set_cookie(self, response: Response, session: ReviewSession) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self.dumps(session),
            max_age=self.max_age_seconds,
            path=COOKIE_PATH,
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE_NAME, path=COOKIE_PATH, secure=self.secure, httponly=True, samesite="strict"
        )
