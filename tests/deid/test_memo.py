"""The bounded memo the stages remember per-element results in."""

import pytest

from tftt.deid.memo import Memo


def test_remembers_and_counts_hits_and_misses() -> None:
    memo = Memo(capacity=4)
    assert memo.get(("a", 1)) is None
    memo.put(("a", 1), "result")
    assert memo.get(("a", 1)) == "result"
    assert (memo.hits, memo.misses) == (1, 1)


def test_starts_again_when_full_so_memory_stays_bounded() -> None:
    memo = Memo(capacity=3)
    for i in range(3):
        memo.put(i, str(i))
    memo.put(1, "again")  # a key already held does not empty it
    assert len(memo) == 3
    memo.put(3, "3")
    assert len(memo) == 1
    assert memo.get(0) is None and memo.get(3) == "3"


def test_refuses_none_and_a_zero_capacity() -> None:
    with pytest.raises(ValueError):
        Memo(capacity=0)
    with pytest.raises(ValueError):
        Memo().put("k", None)


def test_a_context_keeps_its_token_until_the_memo_is_emptied() -> None:
    memo = Memo(capacity=2)
    first = memo.token(("context", 1))
    assert memo.token(("context", 1)) is first
    assert memo.token(("context", 2)) is not first
    memo.put("other", 1)  # full: emptied
    assert memo.token(("context", 1)) is not first
