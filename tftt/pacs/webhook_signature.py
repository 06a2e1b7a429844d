"""HMAC-SHA256 signatures of webhook bodies (``X-TFTT-Signature: sha256=<hex>``).

The Orthanc Lua script ``deploy/orthanc/tftt-webhook.lua`` signs the exact request body it
sends with the shared secret; the receiver recomputes the signature over the exact bytes it
received and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-TFTT-Signature"
PREFIX = "sha256="


def sign(body: bytes, secret: bytes) -> str:
    """The header value for ``body``: ``sha256=`` and the hex HMAC-SHA256 under ``secret``.

    Raises:
        ValueError: the secret is empty.
    """
    if not secret:
        raise ValueError("the webhook secret must not be empty")
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: bytes) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret`` (constant time).

    A missing or malformed header, or an empty secret, gives False.
    """
    if not secret or not header:
        return False
    expected = sign(body, secret).encode("ascii")
    try:
        given = header.strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)
