from __future__ import annotations

import hashlib
import hmac

import pytest

from tftt.pacs.webhook_signature import HEADER, sign, verify


def test_sign_is_hmac_sha256_hex() -> None:
    body, secret = b'{"study_uid":"1.2.3"}', b"s3cret"
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert sign(body, secret) == f"sha256={expected}"
    assert HEADER == "X-TFTT-Signature"


def test_verify_accepts_only_the_exact_body_and_secret() -> None:
    body, secret = b'{"series":[]}', b"another secret"
    header = sign(body, secret)
    assert verify(body, header, secret)
    assert verify(body, header.upper().replace("SHA256=", "sha256="), secret)
    assert not verify(body + b" ", header, secret)
    assert not verify(body, header, b"wrong")
    assert not verify(body, header[:-1], secret)
    assert not verify(body, header.removeprefix("sha256="), secret)
    assert not verify(body, None, secret)
    assert not verify(body, "", secret)
    assert not verify(body, "sha256=\u00e9", secret)
    assert not verify(body, header, b"")


def test_empty_secret_cannot_sign() -> None:
    with pytest.raises(ValueError):
        sign(b"x", b"")
