from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from tftt.pacs.hashed_file import BUFFER_BYTES, HashedFile

# Pieces smaller and larger than the write buffer, and an empty one.
PIECES = [b"\0" * 128 + b"DICM", os.urandom(16 * 1024), b"", os.urandom(BUFFER_BYTES + 3),
          os.urandom(777)]


def test_commit_names_the_file_by_its_sha256(tmp_path: Path) -> None:
    whole = b"".join(PIECES)
    part = HashedFile(tmp_path / "new")
    [temporary] = list((tmp_path / "new").iterdir())
    assert temporary.name.startswith(".part-")
    buffer = bytearray(len(max(PIECES, key=len)))
    for piece in PIECES:  # through one reused buffer: each piece is consumed on write
        buffer[: len(piece)] = piece
        part.write(memoryview(buffer)[: len(piece)])
    assert part.finish() == hashlib.sha256(whole).hexdigest()
    assert part.finish() == hashlib.sha256(whole).hexdigest()  # idempotent
    path = part.commit()
    assert path == (tmp_path / "new" / f"{hashlib.sha256(whole).hexdigest()}.dcm").resolve()
    assert path.read_bytes() == whole and part.size == len(whole)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert list((tmp_path / "new").iterdir()) == [path]
    with pytest.raises(ValueError):
        part.write(b"more")


def test_discard_removes_the_temporary_file(tmp_path: Path) -> None:
    part = HashedFile(tmp_path)
    part.write(b"x" * 100)
    part.discard()
    part.discard()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        part.commit()


def test_a_failed_write_leaves_nothing_after_discard(tmp_path: Path) -> None:
    part = HashedFile(tmp_path)
    assert part._handle is not None
    part._handle.close()  # the file "fails"
    with pytest.raises(ValueError, match="closed file"):
        part.write(b"x")
    part.discard()
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_raises_oserror(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"")
    with pytest.raises(OSError):
        HashedFile(not_a_folder)
