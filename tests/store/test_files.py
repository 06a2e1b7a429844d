"""create_new: whole files or none, never over another file, never through a link."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from tftt.errors import UnsupportedInputError
from tftt.store import files
from tftt.store.files import Created, contained_path, create_new

NAME = "2.25.123456789.dcm"
DATA = b"DICM" + bytes(range(256)) * 40


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_new_file_is_written_with_mode_0644_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        assert create_new(tmp_path, NAME, DATA) is Created.WRITTEN
    finally:
        os.umask(previous)
    target = tmp_path / NAME
    assert target.read_bytes() == DATA
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _entries(tmp_path) == [NAME]  # no temporary file left


def test_a_missing_folder_is_created(tmp_path: Path) -> None:
    assert create_new(tmp_path / "a" / "b", NAME, DATA) is Created.WRITTEN
    assert (tmp_path / "a" / "b" / NAME).read_bytes() == DATA


def test_the_same_bytes_are_present_and_left_alone(tmp_path: Path) -> None:
    create_new(tmp_path, NAME, DATA)
    before = (tmp_path / NAME).stat()
    assert create_new(tmp_path, NAME, bytes(DATA)) is Created.PRESENT
    after = (tmp_path / NAME).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert _entries(tmp_path) == [NAME]


@pytest.mark.parametrize("other", [DATA[:-1] + b"\x00", DATA + b"\x00", b""])
def test_other_bytes_are_a_conflict_and_never_replace_the_file(tmp_path: Path, other: bytes) -> None:
    create_new(tmp_path, NAME, DATA)
    assert create_new(tmp_path, NAME, other) is Created.CONFLICT
    assert (tmp_path / NAME).read_bytes() == DATA
    assert _entries(tmp_path) == [NAME]


@pytest.mark.parametrize(("theirs", "expected"), [(DATA, Created.PRESENT), (b"other", Created.CONFLICT)])
def test_a_file_written_meanwhile_by_another_process_is_compared_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, theirs: bytes, expected: Created
) -> None:
    real_link = os.link

    def racing_link(src: str, dst: str, **kwargs: object) -> None:
        Path(dst).write_bytes(theirs)  # the other writer wins between our check and our link
        real_link(src, dst, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(files.os, "link", racing_link)
    assert create_new(tmp_path, NAME, DATA) is expected
    assert (tmp_path / NAME).read_bytes() == theirs
    assert _entries(tmp_path) == [NAME]


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "write", full)
    with pytest.raises(OSError, match="No space"):
        create_new(tmp_path, NAME, DATA)
    assert _entries(tmp_path) == []


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(files.os, "write", lambda fd, data: real_write(fd, data[:1000]))
    assert create_new(tmp_path, NAME, DATA) is Created.WRITTEN
    assert (tmp_path / NAME).read_bytes() == DATA


@pytest.mark.parametrize("name", ["", ".", "..", "../x.dcm", "a/b.dcm", "a\\b.dcm", "x\x00.dcm", "/etc/x"])
def test_a_name_that_is_not_one_plain_component_is_refused(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(UnsupportedInputError) as caught:
        create_new(folder, name, DATA)
    assert caught.value.code == "unsafe-path"
    assert _entries(tmp_path) == ["out"] and _entries(folder) == []


def test_a_link_at_the_name_is_neither_followed_nor_replaced(tmp_path: Path) -> None:
    """The folder is resolved once per run, not per file: a link planted under an output name
    (pointing outside, or dangling) must not be written through, read through or replaced."""
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(DATA)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / NAME).symlink_to(outside)
    (folder / "2.25.9.dcm").symlink_to(tmp_path / "missing.dcm")
    for name in (NAME, "2.25.9.dcm"):
        with pytest.raises(UnsupportedInputError) as caught:
            create_new(folder, name, b"new bytes")
        assert caught.value.code == "unsafe-path"
    assert outside.read_bytes() == DATA
    assert not (tmp_path / "missing.dcm").exists()
    assert (folder / NAME).is_symlink() and (folder / "2.25.9.dcm").is_symlink()
    assert _entries(folder) == sorted([NAME, "2.25.9.dcm"])


def test_a_folder_or_a_fifo_at_the_name_is_refused_without_blocking(tmp_path: Path) -> None:
    (tmp_path / NAME).mkdir()
    os.mkfifo(tmp_path / "2.25.9.dcm")
    for name in (NAME, "2.25.9.dcm"):
        with pytest.raises(UnsupportedInputError) as caught:
            create_new(tmp_path, name, DATA)
        assert caught.value.code == "unsafe-path"
    assert _entries(tmp_path) == sorted([NAME, "2.25.9.dcm"])


def test_contained_path_still_refuses_unsafe_parts(tmp_path: Path) -> None:
    assert contained_path(tmp_path, "a", "b") == tmp_path.resolve() / "a" / "b"
    for part in ("..", "a/../..", ""):
        with pytest.raises(UnsupportedInputError):
            contained_path(tmp_path, part)
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(UnsupportedInputError):
        contained_path(tmp_path, "link")
