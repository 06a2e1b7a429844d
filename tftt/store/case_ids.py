"""Opaque case identifiers.

A case id is the only name a case has outside TFTT's database: it appears in Prefect run
parameters, workspace folders, published folders and log lines. It is random, so it reveals
nothing about the source study, and its shape is fixed, so it is safe to use as a file name.
"""

from __future__ import annotations

import re
import uuid

from tftt.errors import UnsupportedInputError

CASE_ID_PATTERN = r"^c-[0-9a-f]{16}$"
_CASE_ID_RE = re.compile(CASE_ID_PATTERN)


def new_case_id() -> str:
    """A fresh case id: ``c-`` and 16 hex digits (64 random bits from a uuid4)."""
    return "c-" + uuid.uuid4().hex[:16]


def is_case_id(value: object) -> bool:
    """True if ``value`` is a string of the case-id shape."""
    return isinstance(value, str) and _CASE_ID_RE.fullmatch(value) is not None


def check_case_id(value: object) -> str:
    """Return ``value`` if it is a well-formed case id.

    Raises:
        UnsupportedInputError: ``value`` is not a case id (the value is not echoed).
    """
    if not is_case_id(value):
        raise UnsupportedInputError("not a valid case id", code="bad-case-id")
    assert isinstance(value, str)
    return value
