"""Import from a directory: a :class:`~tftt.pacs.base.Source` over DICOM files on disk.

Every call walks the folder (not following symbolic links) and reads only the headers
(``stop_before_pixels``); files that are not DICOM Part 10 are skipped. The files of the wanted
study are copied (or hard-linked) into the destination as ``<sha256>.dcm``, through a temporary
file and a rename, never under their original names.

Pictures: a JPEG, PNG or GIF in a directory that holds DICOM files of the study is imported
with the whole study (not with a series selection) as a Secondary Capture of that study
(:func:`tftt.pixels.imports.image_to_secondary_capture`; patient and study modules from a DICOM
file of the same directory). Its UIDs are derived from the study UID, the directory and the
picture's bytes, so a repeated retrieval gives the same objects. A picture that does not decode
is placed as it is, so the first pass quarantines it with its reason: nothing is lost.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from tftt.errors import TargetRejectedError, TargetUnavailableError, UnsupportedInputError
from tftt.pacs.base import RetrieveResult, SeriesInfo, StudyInfo, checked_uid
from tftt.pixels.imports import ImportUIDs, image_to_secondary_capture
from tftt.store.files import atomic_write_bytes, contained_path

_HEADER_TAGS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "Modality"]
_CHUNK = 1024 * 1024


#: Pictures imported with a study (see the module docstring), and their series number.
PICTURE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif"})
PICTURE_SERIES_NUMBER = 9001


def _derived_uid(*parts: str) -> str:
    """A ``2.25`` UID from a hash of ``parts`` (stable: the same parts give the same UID)."""
    digest = hashlib.sha256("\x1f".join(("tftt-import", *parts)).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


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
        if series_uids is None:
            for data in self._pictures(study_uid, entries):
                target = contained_path(dest, f"{hashlib.sha256(data).hexdigest()}.dcm")
                if target not in files:
                    atomic_write_bytes(target, data, mode=0o600)
                    files[target] = len(data)
        return RetrieveResult(files=tuple(files), total_bytes=sum(files.values()))

    def _pictures(self, study_uid: str, entries: list[_Entry]) -> Iterator[bytes]:
        """The study's pictures as Secondary Capture files (or as they are, if they do not decode)."""
        first_of: dict[Path, Path] = {}
        for entry in entries:
            first_of.setdefault(entry.path.parent, entry.path)
        for directory, example in first_of.items():
            pictures = sorted(p for p in directory.iterdir()
                              if p.suffix.lower() in PICTURE_SUFFIXES and p.is_file() and not p.is_symlink())
            if not pictures:
                continue
            patient_study = pydicom.dcmread(example, stop_before_pixels=True)
            where = directory.relative_to(self.root).as_posix()
            series_uid = _derived_uid(study_uid, "series", where)
            seen: set[str] = set()
            for number, picture in enumerate(pictures, start=1):
                data = picture.read_bytes()
                content = hashlib.sha256(data).hexdigest()
                if content in seen:
                    continue  # the same picture under another name
                seen.add(content)
                uids = ImportUIDs(series_instance_uid=series_uid,
                                  sop_instance_uid=_derived_uid(study_uid, "instance", where, content))
                try:
                    ds = image_to_secondary_capture(data, patient_study=patient_study, uids=uids,
                                                    instance_number=number, series_number=PICTURE_SERIES_NUMBER)
                except UnsupportedInputError:
                    yield data  # quarantined by the first pass, with its reason
                    continue
                buffer = io.BytesIO()
                pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
                yield buffer.getvalue()

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
