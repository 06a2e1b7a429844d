"""Import from a directory: a :class:`~tftt.pacs.base.Source` over DICOM files on disk.

Every call walks the folder (not following symbolic links) and reads only the headers
(``stop_before_pixels``); files that are not DICOM Part 10 are skipped. The files of the wanted
study are copied (or hard-linked) into the destination as ``<sha256>.dcm``, through a temporary
file and a rename, never under their original names.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from tftt.errors import TargetRejectedError, TargetUnavailableError
from tftt.pacs.base import RetrieveResult, SeriesInfo, StudyInfo, checked_uid
from tftt.store.files import contained_path

_HEADER_TAGS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "Modality"]
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class _Entry:
    path: Path
    study_uid: str
    series_uid: str
    modality: str | None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


class FolderSource:
    """DICOM files under ``root`` as a source of studies.

    Args:
        root: the folder to import from.
        link: hard-link files into the destination instead of copying (falls back to a copy
            across filesystems). Linked files share storage with the import folder.
    """

    def __init__(self, root: Path, *, link: bool = False, name: str = "folder") -> None:
        self.root = Path(root)
        self.link = link
        self.name = name

    def _entries(self) -> Iterator[_Entry]:
        """DICOM files under the root, in a stable order.

        Raises:
            TargetUnavailableError: the root is missing or not readable (e.g. unmounted).
        """
        if not self.root.is_dir() or not os.access(self.root, os.R_OK | os.X_OK):
            raise TargetUnavailableError("the import folder is not accessible", code="no-folder")
        for directory, subdirs, names in os.walk(self.root, followlinks=False):
            subdirs.sort()
            for filename in sorted(names):
                path = Path(directory, filename)
                if path.is_symlink() or not path.is_file():
                    continue
                try:
                    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
                except (InvalidDicomError, OSError, EOFError, ValueError, TypeError):
                    continue
                study, series = ds.get("StudyInstanceUID"), ds.get("SeriesInstanceUID")
                if study and series and ds.get("SOPInstanceUID"):
                    modality = ds.get("Modality")
                    yield _Entry(path, str(study), str(series), str(modality) if modality else None)

    def _study_entries(self, study_uid: str) -> list[_Entry]:
        checked_uid(study_uid)
        entries = [e for e in self._entries() if e.study_uid == study_uid]
        if not entries:
            raise TargetRejectedError("import folder: study not found", code="not-found")
        return entries

    def find_study(self, study_uid: str) -> StudyInfo:
        """The study's series and instance counts as found in the folder.

        Raises:
            UnsupportedInputError: ``study_uid`` is not a UID.
            TargetRejectedError: no file of the study (code ``not-found``).
            TargetUnavailableError: the folder is not accessible.
        """
        entries = self._study_entries(study_uid)
        series: dict[str, list[_Entry]] = {}
        for entry in entries:
            series.setdefault(entry.series_uid, []).append(entry)
        infos = tuple(
            SeriesInfo(uid, items[0].modality, len(items)) for uid, items in series.items()
        )
        modalities = tuple(sorted({e.modality for e in entries if e.modality}))
        return StudyInfo(study_uid, infos, modalities, len(entries))

    def retrieve_study(
        self, study_uid: str, series_uids: Sequence[str] | None, dest: Path
    ) -> RetrieveResult:
        """Copy (or link) the study's files, or only ``series_uids``, to ``dest/<sha256>.dcm``.

        Raises:
            UnsupportedInputError: a UID is not valid.
            TargetRejectedError: the study, or a requested series, is not in the folder.
            TargetUnavailableError: the folder is not accessible.
            OSError: a file cannot be read or written.
        """
        entries = self._study_entries(study_uid)
        if series_uids is not None:
            wanted = {checked_uid(u) for u in series_uids}
            entries = [e for e in entries if e.series_uid in wanted]
            if {e.series_uid for e in entries} != wanted:
                raise TargetRejectedError("import folder: series not found", code="not-found")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        files: dict[Path, int] = {}
        for entry in entries:
            target = contained_path(dest, f"{_sha256_of(entry.path)}.dcm")
            if target not in files:
                self._place(entry.path, target)
                files[target] = target.stat().st_size
        return RetrieveResult(files=tuple(files), total_bytes=sum(files.values()))

    def _place(self, source: Path, target: Path) -> None:
        fd, name = tempfile.mkstemp(prefix=".import-", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            if self.link:
                tmp.unlink()
                try:
                    os.link(source, tmp)
                except OSError:
                    shutil.copyfile(source, tmp)
            else:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
