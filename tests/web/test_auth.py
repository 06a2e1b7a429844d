from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from tftt.errors import ConfigurationError
from tftt.pacs.webhook_signature import sign
from tftt.settings import WebSettings
from tftt.web.auth import (
    AuthMethod,
    authenticate_webhook,
    bearer_matches,
    check_webhook_settings,
    signature_matches,
)

SECRET = b"0123456789abcdef0123"


def test_signature_is_sha256_hex_of_the_raw_body() -> None:
    body = b'{"study_uid": "1.2.3"}'
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert sign(body, SECRET) == f"sha256={expected}"
    assert signature_matches(body, f"sha256={expected}", SECRET)
    assert signature_matches(body, f"  sha256={expected.upper()} ", SECRET)  # hex case-insensitive
    assert not signature_matches(body + b" ", f"sha256={expected}", SECRET)
    assert not signature_matches(body, expected, SECRET)  # prefix required
    assert not signature_matches(body, f"sha1={expected}", SECRET)
    assert not signature_matches(body, None, SECRET)
    assert not signature_matches(body, f"sha256={expected}", b"")


def test_bearer_token() -> None:
    assert bearer_matches("Bearer tok-1", "tok-1")
    assert bearer_matches("bearer   tok-1 ", "tok-1")
    assert not bearer_matches("Bearer tok-2", "tok-1")
    assert not bearer_matches("Bearer tok-1x", "tok-1")
    assert not bearer_matches("Token tok-1", "tok-1")
    assert not bearer_matches("tok-1", "tok-1")
    assert not bearer_matches(None, "tok-1")
    assert not bearer_matches("Bearer ", "")


def test_authenticate_checks_only_configured_methods() -> None:
    body = b"{}"
    both = WebSettings(
        webhook_hmac_secret=SecretStr(SECRET.decode()), webhook_bearer_token=SecretStr("t" * 20)
    )
    sig = {"X-TFTT-Signature": sign(body, SECRET)}
    assert authenticate_webhook(body, sig, both) is AuthMethod.HMAC
    assert authenticate_webhook(body, {"Authorization": "Bearer " + "t" * 20}, both) is (
        AuthMethod.BEARER
    )
    assert authenticate_webhook(body, {}, both) is None
    token_only = WebSettings(webhook_bearer_token=SecretStr("t" * 20))
    assert authenticate_webhook(body, sig, token_only) is None


def test_webhook_settings_must_name_a_strong_secret() -> None:
    with pytest.raises(ConfigurationError):
        check_webhook_settings(WebSettings())
    with pytest.raises(ConfigurationError):
        check_webhook_settings(WebSettings(webhook_hmac_secret=SecretStr("short")))
    check_webhook_settings(WebSettings(webhook_hmac_secret=SecretStr("x" * 16)))
