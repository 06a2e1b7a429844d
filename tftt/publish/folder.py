"""The ``folder`` target: a self-contained case folder on disk.

Layout of ``<root>/<case_id>/``::

    index.html                     the case page (metadata, image and frame viewer)
    manifest.json                  teaching metadata and one entry per image
    dicom/<SOPInstanceUID>.dcm     the second-pass DICOM files, as given
    images/<SOPInstanceUID>-f<NNNN>.jpg             one JPEG per published frame
    images/<SOPInstanceUID>-f<NNNN>-annotated.jpg   and its annotated version, if any

The folder is built under a hidden staging name in ``<root>`` and then renamed into place, so a
reader sees either the previous version or the new one, never a half-written case. Publishing
again replaces the folder; taking down removes it. File names come from the SOP Instance UID
read from each file's header, checked as a strict DICOM UID. Output is byte-identical for the
same input (no timestamps in the folder).
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import shutil
from pathlib import Path
from typing import Any

from tftt.errors import TargetRejectedError, TargetUnavailableError, UnsupportedInputError
from tftt.publish.base import PublicationReceipt, PublishableCase, PublishableImage
from tftt.publish.case_page import render_case_page
from tftt.settings import Settings
from tftt.store.case_ids import check_case_id
from tftt.store.files import atomic_write_bytes, atomic_write_text, contained_path
from tftt.store.uid_syntax import is_uid

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "tftt-case-folder"
MANIFEST_VERSION = 1
_JPEG_MAGIC = b"\xff\xd8\xff"
_STAGING_PREFIX = ".staging-"
_RETIRED_PREFIX = ".retired-"


def _read_header(data: bytes) -> dict[str, Any]:
    """The attributes the folder needs, from a DICOM file's bytes.

    Raises:
        UnsupportedInputError: not a DICOM file, or a UID is not a strict DICOM UID, or the
            file meta SOP Instance UID disagrees with the dataset's.
        TargetRejectedError: the file does not say PatientIdentityRemoved = YES.
    """
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, ValueError, EOFError, OSError) as exc:
        raise UnsupportedInputError(
            f"a file to publish is not readable DICOM ({type(exc).__name__})", code="bad-dicom"
        ) from None
    uids = {
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "study_instance_uid": str(ds.get("StudyInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
    }
    for key, value in uids.items():
        if not is_uid(value, strict=True):
            raise UnsupportedInputError(f"a file to publish has no valid {key}", code="bad-uid")
    file_meta = getattr(ds, "file_meta", None)
    meta_sop = file_meta.get("MediaStorageSOPInstanceUID") if file_meta is not None else None
    if meta_sop is not None and str(meta_sop) != uids["sop_instance_uid"]:
        raise UnsupportedInputError(
            f"file meta and dataset disagree on the SOP Instance UID of {uids['sop_instance_uid']}",
            code="bad-uid",
        )
    if str(ds.get("PatientIdentityRemoved", "")).upper() != "YES":
        raise TargetRejectedError(
            f"refusing to publish {uids['sop_instance_uid']}: PatientIdentityRemoved is not YES",
            code="not-deidentified",
        )

    def number(keyword: str) -> int | None:
        value = ds.get(keyword)
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    return {
        **uids,
        "modality": str(ds.get("Modality", "")) or None,
        "series_number": number("SeriesNumber"),
        "instance_number": number("InstanceNumber"),
        "rows": number("Rows"),
        "columns": number("Columns"),
        "number_of_frames": number("NumberOfFrames") or 1,
    }


def _read_input(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise UnsupportedInputError(
            "a file to publish is missing or unreadable", code="missing-file"
        ) from None


def _read_jpeg(path: Path) -> bytes:
    data = _read_input(path)
    if not data.startswith(_JPEG_MAGIC):
        raise UnsupportedInputError("an image to publish is not a JPEG file", code="bad-jpeg")
    return data


class FolderTarget:
    """Publishes each case as a folder ``<root>/<case_id>/`` (see the module docstring)."""

    name = "folder"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def from_settings(cls, settings: Settings) -> FolderTarget:
        """The folder target at ``publish.folder``, default ``<data_dir>/published``."""
        return cls(settings.publish.folder or settings.data_dir / "published")

    def case_folder(self, case_id: str) -> Path:
        """Where the case is (or would be) published.

        Raises:
            UnsupportedInputError: ``case_id`` is not a case id.
        """
        return contained_path(self.root, check_case_id(case_id))

    def publish(
        self, case: PublishableCase, previous: PublicationReceipt | None = None
    ) -> PublicationReceipt:
        """Write the case folder, replacing a previous version. The folder is found by the case
        id, so ``previous`` is not needed (a receipt of another case or target is refused).

        Raises:
            UnsupportedInputError: a DICOM or JPEG file is unreadable or malformed, two images
                share a SOP Instance UID, a frame number exceeds the image's frames, or
                ``previous`` is another case's or another target's receipt.
            TargetRejectedError: a DICOM file is not marked as de-identified.
            TargetUnavailableError: the folder cannot be written (disk full, permissions).
        """
        final = self.case_folder(case.case_id)
        if previous is not None and (
            previous.case_id != case.case_id or previous.target != self.name
        ):
            raise UnsupportedInputError(
                "the receipt belongs to another case or target", code="bad-receipt"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = contained_path(
                self.root, f"{_STAGING_PREFIX}{case.case_id}-{secrets.token_hex(4)}"
            )
            staging.mkdir()
        except OSError as exc:
            raise TargetUnavailableError(
                f"cannot write the case folder root ({type(exc).__name__})", code="folder-io"
            ) from None
        try:
            manifest = self._build(case, staging)
            self._swap_into_place(staging, final, case.case_id)
        except OSError as exc:
            raise TargetUnavailableError(
                f"cannot write case folder {case.case_id} ({type(exc).__name__})",
                code="folder-io",
            ) from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        frames = sum(len(image["frames"]) for image in manifest["images"])
        log.info(
            "case %s published to a folder: %d image(s), %d frame(s)",
            case.case_id,
            len(manifest["images"]),
            frames,
        )
        return PublicationReceipt(
            target=self.name,
            case_id=case.case_id,
            remote_ref=str(final),
            details={"images": len(manifest["images"]), "frames": frames},
        )

    def _build(self, case: PublishableCase, folder: Path) -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        seen: set[str] = set()
        for index, image in enumerate(case.images, start=1):
            entry = self._write_image(image, folder, index)
            if entry["sop_instance_uid"] in seen:
                raise UnsupportedInputError(
                    f"SOP Instance UID {entry['sop_instance_uid']} appears twice",
                    code="duplicate-uid",
                )
            seen.add(entry["sop_instance_uid"])
            entries.append(entry)
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "case_id": case.case_id,
            "metadata": case.metadata,
            "images": entries,
        }
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(contained_path(folder, "manifest.json"), text)
        atomic_write_text(contained_path(folder, "index.html"), render_case_page(manifest))
        return manifest

    def _write_image(self, image: PublishableImage, folder: Path, index: int) -> dict[str, Any]:
        data = _read_input(image.dicom)
        header = _read_header(data)
        sop = header["sop_instance_uid"]
        if image.frames[-1].number > header["number_of_frames"]:
            raise UnsupportedInputError(
                f"{sop}: frame {image.frames[-1].number} of {header['number_of_frames']}",
                code="bad-frame",
            )
        dicom_name = f"{sop}.dcm"
        atomic_write_bytes(contained_path(folder, "dicom", dicom_name), data)
        frames = []
        for frame in image.frames:
            stem = f"{sop}-f{frame.number:04d}"
            jpeg = f"{stem}.jpg"
            atomic_write_bytes(contained_path(folder, "images", jpeg), _read_jpeg(frame.jpeg))
            annotated = None
            if frame.annotated_jpeg is not None:
                annotated = f"{stem}-annotated.jpg"
                atomic_write_bytes(
                    contained_path(folder, "images", annotated), _read_jpeg(frame.annotated_jpeg)
                )
            frames.append(
                {
                    "number": frame.number,
                    "jpeg": f"images/{jpeg}",
                    "annotated_jpeg": f"images/{annotated}" if annotated else None,
                }
            )
        return {"index": index, **header, "dicom": f"dicom/{dicom_name}", "frames": frames}

    def _swap_into_place(self, staging: Path, final: Path, case_id: str) -> None:
        """Rename ``staging`` to ``final``; an existing version is renamed away first and then
        deleted (two renames: the window without a folder is a few microseconds)."""
        retired = None
        if final.exists():
            retired = contained_path(
                self.root, f"{_RETIRED_PREFIX}{case_id}-{secrets.token_hex(4)}"
            )
            final.rename(retired)
        try:
            staging.rename(final)
        except OSError:
            if retired is not None and not final.exists():
                retired.rename(final)  # put the previous version back
            raise
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
        self._remove_leftovers(case_id, (_RETIRED_PREFIX,))

    def _remove_leftovers(self, case_id: str, prefixes: tuple[str, ...]) -> None:
        """Delete retired (and, on take-down, staging) copies a crash may have left."""
        for prefix in prefixes:
            for stale in self.root.glob(f"{prefix}{case_id}-*"):
                shutil.rmtree(stale, ignore_errors=True)

    def take_down(self, case_id: str, receipt: PublicationReceipt) -> None:
        """Remove the case folder (and any retired copy); succeed if it is already gone.

        Raises:
            UnsupportedInputError: ``case_id`` is not a case id, or the receipt is another
                case's or another target's.
            TargetUnavailableError: the folder cannot be removed.
        """
        final = self.case_folder(case_id)
        if receipt.case_id != case_id or receipt.target != self.name:
            raise UnsupportedInputError(
                "the receipt belongs to another case or target", code="bad-receipt"
            )
        try:
            if final.exists():
                shutil.rmtree(final)
            self._remove_leftovers(case_id, (_RETIRED_PREFIX, _STAGING_PREFIX))
        except OSError as exc:
            raise TargetUnavailableError(
                f"cannot remove case folder {case_id} ({type(exc).__name__})", code="folder-io"
            ) from None
        if final.exists():
            raise TargetUnavailableError(f"case folder {case_id} still exists", code="folder-io")
        log.info("case %s taken down from the folder target", case_id)
