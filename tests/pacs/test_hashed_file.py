from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tftt.pacs.hashed_file import BUFFER_BYTES, HashedFile

# Pieces smaller and larger than the write buffer, and an empty one.
PIECES = [b"\0" * 128 + b"DICM", os.urandom(16 * 1024), b"", os.urandom(BUFFER_BYTES + 3),
          os.urandom(777)]


@pytest.mark.parametrize("threaded", [False, True])
def test_commit_names_the_file_by_its_sha256(tmp_path: Path, threaded: bool) -> None:
    whole = b"".join(PIECES)
    with ThreadPoolExecutor(max_workers=1) as writer:
        part = HashedFile(tmp_path / "new", writer=writer if threaded else None, max_pending=1)
        [temporary] = list((tmp_path / "new").iterdir())
        assert temporary.name.startswith(".part-")
        for piece in PIECES:
            part.write(memoryview(piece))
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


def test_a_write_error_on_the_writer_thread_surfaces_and_cleans_up(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=1) as writer:
        part = HashedFile(tmp_path, writer=writer)
        assert part._handle is not None
        part._handle.close()  # every further write on the thread raises
        part.write(b"x" * BUFFER_BYTES)
        with pytest.raises(ValueError, match="closed file"):
            part.commit()
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_raises_oserror(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"")
    with pytest.raises(OSError):
        HashedFile(not_a_folder)
