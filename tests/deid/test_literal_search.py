"""The C-speed literal finders report exactly the places a naive comparison finds."""

from __future__ import annotations

import random
import threading

import pytest

from tftt.deid import literal_search
from tftt.deid.literal_search import CaselessLiterals, ExactLiterals

# Bytes that are regex syntax, zero, high Latin-1 letters (which must NOT fold) and ASCII
# letters in both cases (which must).
ALPHABET = b"aAbBzZ\x00\x01.19\xe9\xc9\xfc\xdc^ \\()[]*+?$|{}"


def naive(patterns: list[bytes], data: bytes, *, fold: bool) -> list[tuple[int, int]]:
    def same(a: bytes, b: bytes) -> bool:
        return a.upper() == b.upper() if fold else a == b

    return sorted((start, index) for index, pattern in enumerate(patterns)
                  for start in range(len(data) - len(pattern) + 1)
                  if same(data[start : start + len(pattern)], pattern))  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_both_finders_report_every_occurrence_and_nothing_else(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        patterns = sorted({bytes(rng.choice(ALPHABET) for _ in range(rng.randint(1, 7)))
                           for _ in range(rng.randint(1, 14))})  # fmt: skip
        data = bytes(rng.choice(ALPHABET) for _ in range(rng.randint(0, 500)))
        # plant a few patterns, in a random case, so that overlapping matches occur
        for _ in range(3):
            pattern = rng.choice(patterns)
            at = rng.randint(0, len(data))
            planted = bytes(b ^ 0x20 if rng.random() < 0.5 and chr(b).isalpha() and b < 0x80 else b
                            for b in pattern)  # fmt: skip
            data = data[:at] + planted + data[at:]
        assert sorted(CaselessLiterals(patterns).find(data)) == naive(patterns, data, fold=True)
        assert sorted(ExactLiterals(patterns).find(data)) == naive(patterns, data, fold=False)
        assert sorted(CaselessLiterals(patterns).find(memoryview(data))) == naive(patterns, data, fold=True)


def test_zero_bytes_and_utf16_forms_are_matched_whole() -> None:
    smith16 = "SMITH".encode("utf-16-le")
    finder = CaselessLiterals([smith16, b"AB\x00\x00C"])
    data = b"S" + "sMiTh".encode("utf-16-le") + b" ab\x00\x00c ab\x00c"
    assert sorted(finder.find(data)) == [(1, 0), (12, 1)]


def test_high_latin1_letters_do_not_fold() -> None:
    # bytes.upper() folds ASCII only; so must the finder, or its hits would not be the same
    finder = CaselessLiterals([b"M\xdcLLER"])
    assert finder.find(b"m\xdcller M\xfcLLER") == [(0, 0)]


def test_threads_scan_one_finder_at_once() -> None:
    finder = CaselessLiterals([b"CANARYNAME", "CANARYNAME".encode("utf-16-le")])
    data = (b"\x00" * 4096 + b"canaryname") * 64
    expected = sorted(finder.find(data))
    assert len(expected) == 64
    results: list[list[tuple[int, int]]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                results.append(sorted(finder.find(data)))
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(result == expected for result in results) and len(results) == 200


def test_empty_patterns_are_refused() -> None:
    with pytest.raises(ValueError):
        CaselessLiterals([])
    with pytest.raises(ValueError):
        ExactLiterals([b"x", b""])


def test_libraries_are_installed_here() -> None:
    # The project depends on both; the fallbacks exist for platforms without their wheels.
    assert literal_search.CASELESS_AVAILABLE and literal_search.EXACT_AVAILABLE
