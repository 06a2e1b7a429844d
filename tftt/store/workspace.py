"""The on-disk workspace of one case: ``<cases_dir>/<case_id>/<stage>/``.

Tasks pass paths into this workspace, never pixel data. The case folder is named by the case
id only after the id has been checked against its fixed pattern, and every file name inside goes
through :func:`~tftt.store.files.contained_path`, so no value from a DICOM header can make TFTT
write outside the workspace. Folders are private (0700): ``incoming/`` and ``first_pass/`` hold
identified or partly identified data.
"""

from __future__ import annotations

import shutil
from enum import StrEnum
from pathlib import Path

from tftt.errors import UnsupportedInputError
from tftt.settings import Settings
from tftt.store.case_ids import check_case_id
from tftt.store.files import atomic_write_bytes, contained_path


class Area(StrEnum):
    """The folders of a case workspace, in pipeline order."""

    INCOMING = "incoming"  # as retrieved from the PACS (identified)
    FIRST_PASS = "first_pass"
    PREVIEWS = "previews"  # review JPEGs (may show burned-in text: never publish)
    SECOND_PASS = "second_pass"
    QUARANTINE = "quarantine"  # objects set aside, with a QuarantineRecord each
    PUBLISHED = "published"  # derived files made for the targets (JPEGs, manifests)


#: The areas that hold identified or possibly identified data: the originals, the first pass
#: (original UIDs, institution and station kept) and the previews (burned-in text).
IDENTIFIED_AREAS: tuple[Area, ...] = (Area.INCOMING, Area.FIRST_PASS, Area.PREVIEWS)


class CaseWorkspace:
    """Paths of one case's workspace. Creating the object touches nothing on disk."""

    def __init__(self, root: Path, case_id: str) -> None:
        """
        Raises:
            UnsupportedInputError: ``case_id`` is not a case id.
        """
        self.case_id = check_case_id(case_id)
        self.root = Path(root)
        self.path = contained_path(self.root, self.case_id)

    @classmethod
    def for_settings(cls, settings: Settings, case_id: str) -> CaseWorkspace:
        """The workspace of ``case_id`` under ``settings.cases_dir``."""
        return cls(settings.cases_dir, case_id)

    def __repr__(self) -> str:
        return f"CaseWorkspace({str(self.root)!r}, {self.case_id!r})"

    def area(self, area: Area) -> Path:
        """The folder of ``area`` (not created)."""
        return self.path / Area(area).value

    @property
    def incoming(self) -> Path:
        return self.area(Area.INCOMING)

    @property
    def first_pass(self) -> Path:
        return self.area(Area.FIRST_PASS)

    @property
    def previews(self) -> Path:
        return self.area(Area.PREVIEWS)

    @property
    def second_pass(self) -> Path:
        return self.area(Area.SECOND_PASS)

    @property
    def quarantine(self) -> Path:
        return self.area(Area.QUARANTINE)

    @property
    def published(self) -> Path:
        return self.area(Area.PUBLISHED)

    def ensure(self) -> CaseWorkspace:
        """Create the case folder and every area folder (mode 0700); idempotent."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path.mkdir(exist_ok=True, mode=0o700)
        for area in Area:
            self.area(area).mkdir(exist_ok=True, mode=0o700)
        return self

    def file(self, area: Area, *names: str) -> Path:
        """``<area>/<name>/...`` inside the workspace, refusing unsafe names.

        Raises:
            UnsupportedInputError: a name is empty, absolute, has a separator or climbs out.
        """
        return contained_path(self.area(area), *names)

    def write_bytes(self, area: Area, name: str, data: bytes, mode: int = 0o600) -> Path:
        """Atomically write ``data`` to ``<area>/<name>`` (private by default).

        Raises:
            UnsupportedInputError: ``name`` is unsafe.
        """
        self.area(area).mkdir(parents=True, exist_ok=True, mode=0o700)
        return atomic_write_bytes(self.file(area, name), data, mode)

    def files(self, area: Area, suffix: str = "") -> list[Path]:
        """Regular files directly in ``area`` (sorted by name), skipping temporary files."""
        folder = self.area(area)
        if not folder.is_dir():
            return []
        return sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".tmp-") and p.name.endswith(suffix)
        )

    def relative(self, path: Path) -> str:
        """``path`` relative to the case folder, as stored in the database (posix form).

        Raises:
            UnsupportedInputError: ``path`` is not inside this workspace.
        """
        base = self.path.resolve()
        resolved = Path(path).resolve()
        if resolved == base or base not in resolved.parents:
            raise UnsupportedInputError("a path outside the case workspace", code="unsafe-path")
        return resolved.relative_to(base).as_posix()

    def resolve(self, relative: str) -> Path:
        """The absolute path of a workspace-relative path read back from the database.

        Raises:
            UnsupportedInputError: ``relative`` is absolute or climbs out.
        """
        parts = relative.split("/")
        return contained_path(self.path, *parts)

    def purge(self, areas: tuple[Area, ...]) -> tuple[Area, ...]:
        """Delete ``areas`` of the case folder; returns those that held anything (an empty area
        folder, as :meth:`ensure` makes, is deleted without being reported). Idempotent.

        Raises:
            OSError: an area could not be deleted (e.g. it is a symbolic link: never followed).
        """
        held: list[Area] = []
        for area in areas:
            folder = self.area(area)
            if not folder.exists() and not folder.is_symlink():
                continue
            if folder.is_symlink() or any(folder.iterdir()):
                held.append(area)
            shutil.rmtree(folder)
        return tuple(held)
