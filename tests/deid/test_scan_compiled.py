"""A NeedleSet finds the same hits, in the same order, with or without its C-speed finders.

The compiled finders (:mod:`tftt.deid.literal_search`) are used by a patient's shared set once
it has been searched a few times, and for a file's UIDs in large data; a verification must not
depend on which path ran (a batch's history decides that), so every result is compared with
the vectorised path's on the same data.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tftt.deid import literal_search, scan
from tftt.deid.scan import Category, Hit, NeedleSet

NEEDLES: dict[str, Category] = {
    "CANARYFAMILY^CANARYGIVEN": Category.NAME,
    "CANARYFAMILY": Category.NAME,
    "MÜLLERSON": Category.NAME,
    "ŁUKASZEWICZ": Category.NAME,
    "ANN": Category.NAME,
    "PID-778812": Category.ID,
    "ACC99812": Category.ID,
    "19520314": Category.DATE,
    "1952-03-14": Category.DATE,
    "CANARY@EXAMPLE.ORG": Category.EMAIL,
    "SECRET WARD 7": Category.TEXT,
    "1.2.826.0.1.3680043.8.498.123456789": Category.UID,
    "1.2.826.0.1.3680043.8.498.1234567891": Category.UID,
    "2.25.987654321987654321": Category.UID,
}

PIECES = [
    *NEEDLES,
    "canaryfamily^canarygiven", "müllerson", "Pid-778812", "x19520314", "119520314",
    "1.19520314", "19520314.5", "1.2.826.0.1.3680043.8.498.123456789.7",
    "91.2.826.0.1.3680043.8.498.123456789", "ann smith", "annotation", "2.25.9876543219876543210",
]  # fmt: skip


def haystack(rng: random.Random, size: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while total < size:
        if rng.random() < 0.7:
            part = bytes(rng.choice(b"\x00\x01\x02\x7f\x80\xff 0123456789.aAzZ^-") for _ in range(rng.randint(1, 64)))
        else:
            text = rng.choice(PIECES)
            text = text.lower() if rng.random() < 0.3 else text
            encoding = rng.choice(["latin-1", "utf-8", "utf-16-le"])
            try:
                part = text.encode(encoding)
            except UnicodeEncodeError:
                part = text.encode("utf-8")
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def clear_caches() -> None:
    scan._shared_set.cache_clear()
    scan._shared_indexes.cache_clear()
    scan._FINDERS.clear()


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    clear_caches()
    yield
    clear_caches()


def reference(needles: dict[str, Category], data: bytes, short: bool,
              monkeypatch: pytest.MonkeyPatch) -> list[Hit]:
    """The vectorised path's hits: the libraries switched off, caches empty."""
    with monkeypatch.context() as patch:
        patch.setattr(literal_search, "CASELESS_AVAILABLE", False)
        patch.setattr(literal_search, "EXACT_AVAILABLE", False)
        clear_caches()
        needle_set = NeedleSet(needles)
        hits = needle_set.search(data, short=short)
        assert needle_set.shared_part()._caseless is None and needle_set._uid_exact is None
        clear_caches()
    return hits


def compiled_set(needles: dict[str, Category]) -> NeedleSet:
    needle_set = NeedleSet(needles)
    shared = needle_set.shared_part()
    while not shared.accelerated():
        pass
    assert shared._caseless is not None
    return needle_set


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("size", [300, 5_000, 70_000])
def test_same_hits_in_the_same_order(seed: int, size: int, fresh_caches: None,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed * 1000 + size)
    data = haystack(rng, size)
    for short in (True, False):
        expected = reference(NEEDLES, data, short, monkeypatch)
        needle_set = compiled_set(NEEDLES)
        got = needle_set.search(data, short=short)
        assert got == expected
        assert needle_set.search(memoryview(data), short=short) == expected
        assert needle_set.search_uids(data) == [hit for hit in expected if hit.category is Category.UID]
        assert len(expected) > 0
        if size >= scan._SPLIT_MIN_BYTES:
            assert needle_set._uid_exact is not None  # the split path ran, UIDs by Aho-Corasick


def test_shared_part_alone_matches_the_vectorised_path(fresh_caches: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    shared_only = {text: category for text, category in NEEDLES.items() if category is not Category.UID}
    data = haystack(random.Random(7), 40_000)
    for short in (True, False):
        expected = reference(shared_only, data, short, monkeypatch)
        assert expected
        shared = compiled_set(NEEDLES).shared_part()
        assert shared.search(data, short=short) == expected


def test_only_a_reused_shared_set_compiles(fresh_caches: None) -> None:
    needle_set = NeedleSet(NEEDLES)
    assert not needle_set.accelerated()  # a file's own set: never worth compiling
    shared = needle_set.shared_part()
    calls = 0
    while not shared.accelerated():
        calls += 1
    assert calls == scan._ACCELERATE_AFTER - 1


def test_a_set_built_again_reuses_its_compiled_finder(fresh_caches: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: with many patients' files alternating, a patient's shared set left the cache
    (then of 8 sets) and was compiled again each time it came back: 82 compiles, a fifth of the
    run, on a 12-patient corpus."""
    built: list[int] = []
    original = literal_search.CaselessLiterals.__init__

    def spy(self: literal_search.CaselessLiterals, patterns: list[bytes]) -> None:
        built.append(len(patterns))
        original(self, patterns)

    shared_only = {text: category for text, category in NEEDLES.items() if category is not Category.UID}
    data = haystack(random.Random(5), 20_000)
    expected = reference(shared_only, data, True, monkeypatch)
    monkeypatch.setattr(literal_search.CaselessLiterals, "__init__", spy)
    compiled_set(NEEDLES)
    assert len(built) == 1
    for _ in range(3):
        scan._shared_set.cache_clear()  # evicted, as by other patients' sets
        scan._shared_indexes.cache_clear()
        again = NeedleSet(NEEDLES).shared_part()
        assert again.search(data) == expected  # the kept finder, with this set's own buckets
        assert again._caseless is not None
    assert len(built) == 1


def test_searches_are_counted_across_rebuilt_sets(fresh_caches: None) -> None:
    for _ in range(scan._ACCELERATE_AFTER - 1):
        scan._shared_set.cache_clear()
        assert not NeedleSet(NEEDLES).shared_part().accelerated()
    scan._shared_set.cache_clear()
    assert NeedleSet(NEEDLES).shared_part().accelerated()


def test_uids_with_letters_are_not_searched_byte_for_byte(fresh_caches: None) -> None:
    # a malformed "UID" with letters: upper-casing the data matters, so no exact finder
    needle_set = NeedleSet({**NEEDLES, "1.2.3.ABC.456789": Category.UID})
    assert needle_set._uid_patterns == ()
    data = b"\x00" * 40_000 + b"1.2.3.abc.456789"
    assert [hit.offset for hit in needle_set.search_uids(data)] == [40_000]


def test_a_shared_hit_and_a_uid_hit_at_one_place_fall_back_to_the_whole_set(
        fresh_caches: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Cannot happen with letter-free UIDs (their forms hold no byte a name form could share at
    # one length), so it is forced: a UID hit placed on a shared hit must not be merged in.
    data = b"\x00" * 40_000 + b" CANARYFAMILY "
    expected = reference(NEEDLES, data, False, monkeypatch)
    needle_set = compiled_set(NEEDLES)
    (name_hit,) = [hit for hit in expected if hit.length == len("CANARYFAMILY")]
    fake = Hit(name_hit.offset, name_hit.length, Category.UID, "latin-1")
    monkeypatch.setattr(NeedleSet, "search_uids", lambda self, data: [fake])
    assert needle_set._search_split(data, short=False) is None
    assert needle_set.search(data, short=False) == expected


@pytest.mark.parametrize("failing", ["CaselessLiterals", "ExactLiterals"])
def test_a_library_failing_at_run_time_leaves_the_same_hits(failing: str, fresh_caches: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = haystack(random.Random(11), 50_000)
    expected = reference(NEEDLES, data, True, monkeypatch)
    needle_set = compiled_set(NEEDLES)

    def fail(self: object, data: object) -> list[tuple[int, int]]:
        raise literal_search.LiteralSearchError("simulated")

    monkeypatch.setattr(getattr(literal_search, failing), "find", fail)
    assert needle_set.search(data, short=True) == expected
    assert needle_set.search(data, short=True) == expected  # and again, now on the fallback
    if failing == "CaselessLiterals":
        assert needle_set.shared_part()._caseless is None
    else:
        assert needle_set._uid_patterns == ()
