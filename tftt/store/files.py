"""Safe file writing: atomic writes and path containment.

Every file TFTT writes goes through :func:`atomic_write_bytes`, so a crash never leaves a
half-written DICOM file where a reader (or a publisher) could pick it up, and every name that is
derived from data goes through :func:`contained_path`, so no value in a DICOM header can make
TFTT write outside the folder it was given.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from enum import Enum
from pathlib import Path

from tftt.errors import UnsupportedInputError


def check_name(part: str) -> str:
    """``part`` itself, if it is one plain path component (no separator, not ``.`` or ``..``).

    Raises:
        UnsupportedInputError: ``part`` is empty or could name anything but an entry of its folder.
    """
    if not part or part in {".", ".."} or "/" in part or "\\" in part or "\x00" in part:
        raise UnsupportedInputError("refusing an unsafe file name", code="unsafe-path")
    return part


def contained_path(root: Path, *parts: str) -> Path:
    """``root/part/...``, refusing any result that escapes ``root``.

    Raises:
        UnsupportedInputError: a part is empty, absolute, or climbs out of ``root``.
    """
    root_resolved = root.resolve()
    for part in parts:
        check_name(part)
    candidate = root_resolved.joinpath(*parts).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise UnsupportedInputError("refusing a path outside the output folder", code="unsafe-path")
    return candidate


def atomic_write_bytes(path: Path, data: bytes | bytearray | memoryview, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


class Created(Enum):
    """What :func:`create_new` found or did."""

    WRITTEN = "written"  # the file is new, with the given bytes
    PRESENT = "present"  # a regular file with the same bytes was already there
    CONFLICT = "conflict"  # a regular file with other bytes holds the name; it was left alone


_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Reading what holds the name: never through a link, never blocking on a FIFO.
_EXISTING_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | _BINARY | _CLOEXEC
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK}  # O_NOFOLLOW on a symbolic link (Linux, BSD)


def create_new(folder: Path, name: str, data: bytes, mode: int = 0o644) -> Created:
    """Create ``folder/name`` holding ``data``: whole or not at all, and never over another file.

    The bytes go to a fresh temporary entry (``O_CREAT|O_EXCL``: it cannot be an existing file
    or a link), which is then hard-linked to ``name``. ``link`` refuses an existing name instead
    of replacing it and does not follow a link placed there, so a reader sees the complete file
    or nothing, a different file under that name is never replaced (even by a concurrent
    writer: the loser finds it and compares), and, ``name`` being one plain component, the file
    is an entry of ``folder`` itself. This is why a caller may resolve ``folder`` once for many
    files instead of resolving each path: nothing at ``name`` is ever followed.

    What already holds the name is compared first, so a repeated run reads instead of writing.
    The folder is created when missing.

    Raises:
        UnsupportedInputError: ``name`` is not one plain component, or the name is held by
            something other than a regular file (a link, a folder, a device), code
            ``unsafe-path``.
        OSError: the folder cannot be written (full, read-only, permissions).
    """
    check_name(name)
    target = os.path.join(folder, name)
    found = _compare_existing(target, data)
    if found is not None:
        return found
    fd, tmp = _open_temporary(folder)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.chmod(tmp, mode)  # exactly ``mode``, whatever the umask
        try:
            os.link(tmp, target)
        except FileExistsError:  # written meanwhile by another process (gone again: a conflict too)
            return _compare_existing(target, data) or Created.CONFLICT
        return Created.WRITTEN
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _open_temporary(folder: Path) -> tuple[int, str]:
    """A new empty file in ``folder`` (``mkstemp``: ``O_EXCL``, mode 0600), creating the folder
    only when it is missing, rather than calling ``mkdir`` for every file."""
    try:
        return tempfile.mkstemp(prefix=".tmp-", dir=folder)
    except FileNotFoundError:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=".tmp-", dir=folder)


def _compare_existing(path: str, data: bytes) -> Created | None:
    """None if nothing holds ``path``; otherwise whether the regular file there holds ``data``.

    Raises:
        UnsupportedInputError: something other than a regular file holds the name.
    """
    try:
        fd = os.open(path, _EXISTING_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise UnsupportedInputError("refusing a link in the output folder", code="unsafe-path") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsupportedInputError("refusing a non-file entry in the output folder", code="unsafe-path")
        if info.st_size != len(data):
            return Created.CONFLICT
        with open(fd, "rb", buffering=0, closefd=False) as handle:
            return Created.PRESENT if handle.read() == data else Created.CONFLICT
    finally:
        os.close(fd)
