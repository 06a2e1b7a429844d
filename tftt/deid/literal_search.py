"""Many byte literals found at once, at C speed: the candidate finders of :mod:`tftt.deid.scan`.

Two well-kept libraries do the work, each where it is strongest:

- :class:`CaselessLiterals` (Hyperscan): ASCII-case-insensitive literals, for a patient's shared
  needles (names, IDs, dates, text). Compiling a set costs milliseconds, so it is built only
  for a set that is searched again and again (one patient's files); a search of 512 kB then
  takes about 0.1 ms, against about 1 ms for the vectorised scan.
- :class:`ExactLiterals` (Aho-Corasick, ``ahocorasick_rs``): exact literals, for a file's own
  UIDs (digits and dots: no case to fold). It builds in about 0.1 ms, so once per file.

Both report *candidates*: every place where a literal occurs, overlapping ones included. The
caller confirms each one with its own exact check, so what a search finds never depends on
which finder ran, or on whether these libraries are installed at all (:data:`AVAILABLE`):
without them the callers use their pure-Python and numpy paths, with the same results.

No I/O, no state besides the compiled patterns; the patterns may be identifiers, so they stay in
this process's memory and are never logged.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

try:
    import hyperscan

    CASELESS_AVAILABLE = True
except ImportError:  # pragma: no cover - where no wheel exists; callers then use their own scan
    CASELESS_AVAILABLE = False
try:
    import ahocorasick_rs

    EXACT_AVAILABLE = True
except ImportError:  # pragma: no cover - where no wheel exists; callers then use their own scan
    EXACT_AVAILABLE = False


class LiteralSearchError(Exception):
    """The library failed while searching (its own error, translated at this edge): the caller
    falls back to its own scan, which finds the same."""


def _check_patterns(patterns: Sequence[bytes], available: bool, library: str) -> None:
    """What both finders demand before building: their library, and patterns to find."""
    if not available:
        raise RuntimeError(f"{library} is not installed")
    if not patterns or any(not p for p in patterns):
        raise ValueError("patterns must be non-empty byte strings")


class CaselessLiterals:
    """Hyperscan over ``patterns``, ASCII letters matched in either case (other bytes exactly)."""

    def __init__(self, patterns: Sequence[bytes]) -> None:
        _check_patterns(patterns, CASELESS_AVAILABLE, "hyperscan")
        self.lengths = tuple(len(p) for p in patterns)
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        # Each pattern as an expression: ASCII letters as themselves (HS_FLAG_CASELESS matches
        # them in either case, as ``bytes.upper`` folds them in the exact check), every other
        # byte as a \xHH escape (the binding passes expressions as C strings, so a zero byte
        # must not appear in one, and no byte may be read as regex syntax).
        self._db.compile(
            expressions=[_expression(p) for p in patterns],
            ids=list(range(len(patterns))),
            elements=len(patterns),
            flags=hyperscan.HS_FLAG_CASELESS,
        )
        # Hyperscan's scratch space serves one scan at a time: one per thread (a case's tasks
        # may verify in threads, and the shared sets that hold these finders are process-wide).
        self._local = threading.local()

    def find(self, data: bytes | memoryview) -> list[tuple[int, int]]:
        """``(start, pattern index)`` of every occurrence, overlapping ones included."""
        found: list[tuple[int, int]] = []
        lengths = self.lengths

        def on_match(index: int, _start: int, end: int, _flags: int, _context: object) -> None:
            found.append((end - lengths[index], index))

        buffer = data if isinstance(data, bytes) else bytes(data)
        try:
            scratch = getattr(self._local, "scratch", None)
            if scratch is None:
                scratch = self._local.scratch = hyperscan.Scratch(self._db)
            self._db.scan(buffer, match_event_handler=on_match, scratch=scratch)
        except hyperscan.error as exc:
            raise LiteralSearchError(f"hyperscan failed ({type(exc).__name__})") from None
        return found


def _expression(pattern: bytes) -> bytes:
    return b"".join(bytes((b,)) if _ASCII_LETTER[b] else b"\\x%02x" % b for b in pattern)


_ASCII_LETTER = tuple(0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A for b in range(256))


class ExactLiterals:
    """Aho-Corasick over ``patterns``, byte for byte."""

    def __init__(self, patterns: Sequence[bytes]) -> None:
        _check_patterns(patterns, EXACT_AVAILABLE, "ahocorasick_rs")
        try:
            self._automaton = ahocorasick_rs.BytesAhoCorasick(list(patterns))
        except (ValueError, TypeError, OverflowError) as exc:
            raise LiteralSearchError(f"ahocorasick_rs failed ({type(exc).__name__})") from None

    def find(self, data: bytes | memoryview) -> list[tuple[int, int]]:
        """``(start, pattern index)`` of every occurrence, overlapping ones included."""
        try:
            matches = self._automaton.find_matches_as_indexes(data, overlapping=True)
        except (ValueError, TypeError, OverflowError) as exc:
            raise LiteralSearchError(f"ahocorasick_rs failed ({type(exc).__name__})") from None
        return [(start, index) for index, start, _end in matches]
