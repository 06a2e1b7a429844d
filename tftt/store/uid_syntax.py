"""The syntax of DICOM UIDs (PS3.5 §9.1), checked before a UID is used as a key or a file name.

Lenient for what arrives from a PACS (hospital UIDs sometimes carry components with a leading
zero), strict for what TFTT writes and publishes.
"""

from __future__ import annotations

import re

UID_MAX_LENGTH = 64
LENIENT_UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"
STRICT_UID_PATTERN = r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$"
_LENIENT = re.compile(LENIENT_UID_PATTERN)
_STRICT = re.compile(STRICT_UID_PATTERN)


def is_uid(value: object, *, strict: bool = False) -> bool:
    """True if ``value`` is a UID: digits and dots, at most 64 characters.

    ``strict`` also requires at least two components and no leading zero in any component.
    """
    if not isinstance(value, str) or not value or len(value) > UID_MAX_LENGTH:
        return False
    pattern = _STRICT if strict else _LENIENT
    return pattern.fullmatch(value) is not None
