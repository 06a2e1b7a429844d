"""Files received in pieces and named by their content (``<sha256>.dcm``), written atomically.

A :class:`HashedFile` takes one file's bytes in pieces as they arrive (a multipart part, DIMSE
fragments), writes them to a temporary file in the destination folder and hashes them on the
way, so memory stays bounded whatever the file size. :meth:`HashedFile.finish` closes it and
gives its SHA-256; :meth:`HashedFile.commit` renames it to ``<sha256>.dcm`` with mode 0644, as
``tftt.store.files.atomic_write_bytes`` does; :meth:`HashedFile.discard` removes it. Nothing is fsynced (neither does
``atomic_write_bytes``): the rename makes the file appear whole or not at all.

Pieces go through a 1 MiB write buffer, so there is one ``write`` system call per MiB whatever
the size of the pieces (DIMSE fragments are often 16 KiB).

With a ``writer`` (a one-thread executor), writing and hashing run on that thread in batches of
about 1 MiB, overlapping with receiving the next pieces; at most ``max_pending`` batches are in
flight. The pieces are then held by reference until written: they must not change afterwards
(``bytes``, or views of ``bytes``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, BinaryIO

from tftt.store.files import contained_path

BUFFER_BYTES = 1 << 20
"""Size of the write buffer, and of the batches handed to a writer thread."""

_FILE_MODE = 0o644

Piece = bytes | bytearray | memoryview


class HashedFile:
    """One file being received into ``folder``; see the module docstring.

    Raises (from :meth:`write` and :meth:`commit`):
        OSError: the temporary file cannot be created or written, or the rename fails. With a
            writer thread, a write error surfaces at a later :meth:`write` or at :meth:`commit`.
    """

    def __init__(
        self,
        folder: Path,
        *,
        writer: Executor | None = None,
        max_pending: int = 8,
        suffix: str = ".dcm",
    ) -> None:
        self.folder = folder
        self.size = 0
        self._suffix = suffix
        self._writer = writer
        self._max_pending = max(1, max_pending)
        self._pending: deque[Future[None]] = deque()
        self._batch: list[Piece] = []
        self._batch_bytes = 0
        self._digest = hashlib.sha256()
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=folder)
        self._tmp: Path | None = Path(name)
        try:
            self._handle: BinaryIO | None = os.fdopen(fd, "wb", buffering=BUFFER_BYTES)
        except BaseException:
            os.close(fd)
            self._tmp.unlink(missing_ok=True)
            raise

    def write(self, piece: Piece) -> None:
        """Append ``piece`` (any size, including empty)."""
        if self._handle is None:
            raise ValueError("write to a committed or discarded HashedFile")
        self.size += len(piece)
        if self._writer is None:
            self._handle.write(piece)
            self._digest.update(piece)
            return
        self._batch.append(piece)
        self._batch_bytes += len(piece)
        if self._batch_bytes >= BUFFER_BYTES:
            self._submit()

    def _submit(self) -> None:
        assert self._writer is not None and self._handle is not None
        if len(self._pending) >= self._max_pending:
            self._pending.popleft().result()
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        self._pending.append(self._writer.submit(_write_all, self._handle, self._digest, batch))

    def _drain(self) -> None:
        if self._batch:
            self._submit()
        while self._pending:
            self._pending.popleft().result()

    def finish(self) -> str:
        """Write out everything and close the temporary file; returns the SHA-256 (hex).

        Idempotent. The file keeps its temporary name until :meth:`commit`.
        """
        if self._handle is not None:
            try:
                self._drain()
                handle, self._handle = self._handle, None
                handle.close()
            except BaseException:
                self.discard()
                raise
        elif self._tmp is None:
            raise ValueError("finish of a committed or discarded HashedFile")
        return self._digest.hexdigest()

    def commit(self) -> Path:
        """Finish the file and rename it to ``folder/<sha256><suffix>``; returns that path."""
        digest = self.finish()
        assert self._tmp is not None
        try:
            final = contained_path(self.folder, f"{digest}{self._suffix}")
            os.chmod(self._tmp, _FILE_MODE)
            os.replace(self._tmp, final)
        except BaseException:
            self.discard()
            raise
        self._tmp = None
        return final

    def discard(self) -> None:
        """Drop the file (errors of writes still in flight are dropped too). Idempotent."""
        while self._pending:
            with contextlib.suppress(Exception):
                self._pending.popleft().result()
        self._batch, self._batch_bytes = [], 0
        if self._handle is not None:
            handle, self._handle = self._handle, None
            with contextlib.suppress(OSError):
                handle.close()
        if self._tmp is not None:
            tmp, self._tmp = self._tmp, None
            tmp.unlink(missing_ok=True)


def _write_all(handle: BinaryIO, digest: Any, pieces: Sequence[Piece]) -> None:
    for piece in pieces:
        handle.write(piece)
        digest.update(piece)
