"""Authentication of the PACS webhook: an HMAC-SHA256 signature or a bearer token.

Signature header: ``X-TFTT-Signature: sha256=<hex HMAC-SHA256 of the raw request body>`` under
``web.webhook_hmac_secret``. Token header: ``Authorization: Bearer <web.webhook_bearer_token>``.
Both are compared in constant time (:func:`hmac.compare_digest` over bytes). Nothing here logs
or returns a secret, a signature or a token.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from enum import StrEnum

from tftt.errors import ConfigurationError
from tftt.pacs.webhook_signature import HEADER as SIGNATURE_HEADER
from tftt.pacs.webhook_signature import verify as signature_matches
from tftt.settings import WebSettings

MIN_SECRET_CHARS = 16


class AuthMethod(StrEnum):
    HMAC = "hmac"
    BEARER = "bearer"


def bearer_matches(authorization: str | None, token: str) -> bool:
    """True if ``authorization`` is ``Bearer <token>`` (scheme case-insensitive, constant time)."""
    if not authorization or not token:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode("utf-8"))


def check_webhook_settings(web: WebSettings) -> None:
    """Refuse to serve a webhook that anybody could call.

    Raises:
        ConfigurationError: neither a signature secret nor a bearer token is set, or one is
            shorter than 16 characters.
    """
    secrets = [s for s in (web.webhook_hmac_secret, web.webhook_bearer_token) if s is not None]
    if not secrets:
        raise ConfigurationError(
            "set TFTT_WEB__WEBHOOK_HMAC_SECRET or TFTT_WEB__WEBHOOK_BEARER_TOKEN: "
            "the PACS webhook refuses to run without authentication"
        )
    if any(len(s.get_secret_value()) < MIN_SECRET_CHARS for s in secrets):
        raise ConfigurationError(
            f"webhook secrets and tokens must have at least {MIN_SECRET_CHARS} characters"
        )


def authenticate_webhook(
    body: bytes, headers: Mapping[str, str], web: WebSettings
) -> AuthMethod | None:
    """Which configured method vouches for this request, or ``None`` (then answer 401).

    Every configured method is evaluated (no early exit on which header is present), so the
    time taken does not tell a caller which one failed.
    """
    ok_hmac = ok_bearer = False
    if web.webhook_hmac_secret is not None:
        secret = web.webhook_hmac_secret.get_secret_value().encode("utf-8")
        ok_hmac = signature_matches(body, headers.get(SIGNATURE_HEADER), secret)
    if web.webhook_bearer_token is not None:
        token = web.webhook_bearer_token.get_secret_value()
        ok_bearer = bearer_matches(headers.get("Authorization"), token)
    if ok_hmac:
        return AuthMethod.HMAC
    if ok_bearer:
        return AuthMethod.BEARER
    return None
