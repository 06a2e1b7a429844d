"""A bounded memory of results already computed, for the files of one batch.

The files of a series repeat almost every element: in the synthetic corpus 97 % of the values
of 256 bytes or less that a file holds were already in an earlier file of the batch. The
engine, the harvest and the verifier each judge an element by its tag, VR, value and a few
facts of its file and patient, so each may remember what it decided for that combination and
replay it. A :class:`Memo` is where it does.

Rules for whoever uses one (they keep the output byte-identical with or without it):

- A key holds *everything* the remembered result depends on. A stage that cannot name all of
  it for an element does not use the memo for that element.
- A remembered result is never handed out to be changed: it is immutable, or copied first.
- The memo is an optimisation only: a cold memo, a warm one and none at all give the same
  output, report and findings (tests run the corpus each way).

Memory stays bounded: past ``capacity`` entries the memo is emptied and starts again, so a
batch of many patients costs no more than one. It holds identifiers (PHI) in this process's
memory only, as the datasets it serves do, and is never written anywhere. Not thread-safe: one
per process (or per thread).
"""

from __future__ import annotations

from collections.abc import Hashable

DEFAULT_CAPACITY = 8_000
"""Entries before the memo starts again: a CT series of a few hundred files needs a few
thousand (each file adds about ten: its own UIDs, position, instance number). At 20,000 the
three stages' memos added about 17 MB to the benchmark's peak RSS; at a few hundred bytes an
entry, 8,000 keep them to a few MB each."""


class Memo:
    """A dict of remembered results with a size bound (see the module docstring)."""

    __slots__ = ("_entries", "capacity", "hits", "misses")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("a memo must hold at least one entry")
        self.capacity = capacity
        self._entries: dict[Hashable, object] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> object | None:
        """The result remembered for ``key``, or ``None`` (so ``None`` itself is never stored)."""
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def token(self, context: Hashable) -> object:
        """A fresh object naming ``context`` for as long as this memo holds it: a stage puts it
        in its per-element keys in place of the context itself, so that each key hashes a few
        plain values. The same context gives the same token until the memo is emptied."""
        token = self.get(context)
        if token is None:
            token = object()
            self.put(context, token)
        return token

    def put(self, key: Hashable, result: object) -> None:
        if result is None:
            raise ValueError("None cannot be remembered: it means 'not found'")
        entries = self._entries
        if len(entries) >= self.capacity and key not in entries:
            entries.clear()
        entries[key] = result

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
