"""Keyed, stable mappings: UIDs, patient pseudonyms and per-patient date offsets.

Everything is an HMAC-SHA256 under the site's secret key, with a domain label, so the same
original gives the same result in every run and every case, nothing needs to be stored, and
nobody without the key can test a guess. Pure functions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from pydicom.uid import UID_dictionary  # type: ignore[attr-defined]

#: Keywords whose UI value names a class or a syntax, never an instance: never remapped.
CLASS_UID_KEYWORDS = frozenset(
    {
        "TransferSyntaxUID",
        "ImplementationClassUID",
        "CodingSchemeUID",
        "ContextGroupExtensionCreatorUID",
        "MappingResourceUID",
        "PrivateInformationCreatorUID",
        "DimensionOrganizationType",
    }
)

#: TFTT's implementation class UID (derived once, under the 2.25 root).
IMPLEMENTATION_CLASS_UID = "2.25.208164516366839262016543287913469105701"
IMPLEMENTATION_VERSION_NAME = "TFTT_0_1"


def _digest(key: bytes, domain: bytes, value: str) -> bytes:
    return hmac.new(key, domain + b"\x00" + value.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()


def is_well_known_uid(value: str) -> bool:
    """SOP classes, transfer syntaxes, coding schemes... listed in the standard's registry."""
    return value in UID_dictionary


def is_class_uid_keyword(keyword: str) -> bool:
    return keyword.endswith("ClassUID") or keyword in CLASS_UID_KEYWORDS


def map_uid(key: bytes, uid: str) -> str:
    """``2.25.<decimal of the first 128 bits of HMAC-SHA256(key, uid)>`` (≤ 44 characters)."""
    number = int.from_bytes(_digest(key, b"uid", uid.strip().rstrip("\x00"))[:16], "big")
    return f"2.25.{number}"


def patient_pseudonym(key: bytes, patient_key: str) -> str:
    """A stable 12-character token for a patient (upper-case base32, no padding)."""
    return base64.b32encode(_digest(key, b"patient", patient_key)[:10]).decode("ascii")[:12]


def date_offset_days(key: bytes, patient_key: str, *, max_days: int = 3650) -> int:
    """A per-patient offset in ``[1, max_days]`` days, subtracted from every date."""
    return 1 + int.from_bytes(_digest(key, b"date-offset", patient_key)[:8], "big") % max_days
