"""Safe file writing: atomic writes and path containment.

Every file TFTT writes goes through :func:`atomic_write_bytes`, so a crash never leaves a
half-written DICOM file where a reader (or a publisher) could pick it up, and every name that is
derived from data goes through :func:`contained_path`, so no value in a DICOM header can make
TFTT write outside the folder it was given.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tftt.errors import UnsupportedInputError


def contained_path(root: Path, *parts: str) -> Path:
    """``root/part/...``, refusing any result that escapes ``root``.

    Raises:
        UnsupportedInputError: a part is empty, absolute, or climbs out of ``root``.
    """
    root_resolved = root.resolve()
    for part in parts:
        if not part or part in {".", ".."} or "/" in part or "\\" in part or "\x00" in part:
            raise UnsupportedInputError("refusing an unsafe file name", code="unsafe-path")
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
