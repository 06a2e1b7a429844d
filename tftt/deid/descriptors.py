"""Clean Descriptors: free text that is kept only in a form known not to identify anybody.

Two policies (see :class:`~tftt.deid.rules.DescriptorPolicy`):

* ``vocabulary``: keep only the words of the shipped vocabulary (anatomy, orientation, sequence
  and contrast terms...) and short numbers with units; every other word is dropped. A name that
  is not in any header field is dropped all the same, because it is not a known word.
* ``checked``: keep the whole value if it contains none of the patient's identifiers, no long
  digit run (IDs, phone numbers, dates) and no e-mail address; otherwise fall back to
  ``vocabulary``.

Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9+\-.%]*|[+\-]")
_NUMBER = re.compile(
    r"^\d{1,3}(?:\.\d+)?(?:MM|CM|M|ML|MG|KV|KVP|MA|MAS|T|S|MS|SEC|MIN|H|HR|%|X|D|CC)?$"
)
_LONG_DIGITS = re.compile(r"\d{4,}")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+")


def _normal(word: str) -> str:
    return word.strip(".-").upper()


def clean_with_vocabulary(value: str, vocabulary: frozenset[str]) -> str:
    """Keep vocabulary words and short numbers, in order, joined by single spaces."""
    kept: list[str] = []
    for token in _TOKEN.findall(value):
        word = _normal(token) or token
        if word in vocabulary or token in {"+", "-"} or _NUMBER.match(word):
            kept.append(word)
    return " ".join(kept)


def identifier_tokens(values: Iterable[str]) -> frozenset[str]:
    """Upper-case tokens (≥ 2 characters) of the patient's identifying values."""
    tokens: set[str] = set()
    for value in values:
        for part in re.split(r"[\^\s,=\\/]+", value.upper()):
            if len(part) >= 2:
                tokens.add(part)
    return frozenset(tokens)


def contains_identifier(value: str, identifiers: frozenset[str]) -> bool:
    upper = value.upper()
    words = set(re.split(r"[^A-Z0-9]+", upper))
    if words & identifiers:
        return True
    return any(len(ident) >= 5 and ident in upper for ident in identifiers)


def clean_checked(value: str, vocabulary: frozenset[str], identifiers: frozenset[str]) -> str:
    """The whole value if it is safe by the checks above, else the vocabulary-cleaned value."""
    if (
        contains_identifier(value, identifiers)
        or _LONG_DIGITS.search(value)
        or _EMAIL.search(value)
    ):
        return clean_with_vocabulary(value, vocabulary)
    return value
