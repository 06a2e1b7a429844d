"""The contracts every PACS or archive adapter fulfils: a :class:`Source` and a :class:`Target`.

A *source* finds a study and retrieves some or all of its series into a folder, as files named
by the SHA-256 of their bytes (never by values from the data). A *target* takes files and
returns one :class:`Receipt` per file. Adapters raise only TFTT errors:
:class:`~tftt.errors.TargetUnavailableError` when retrying may help (connection refused,
timeout, HTTP 5xx, association aborted) and :class:`~tftt.errors.TargetRejectedError` when it
will not (authentication, HTTP 4xx, refused association, failed instances). Messages carry
counts and reasons, never UIDs, patient values or URLs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from tftt.errors import TargetRejectedError, UnsupportedInputError

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def checked_uid(uid: str) -> str:
    """``uid`` if it is a syntactically valid DICOM UID (digits and dots, at most 64 chars).

    Adapters put UIDs into URLs and DIMSE identifiers; this keeps anything else out.

    Raises:
        UnsupportedInputError: not a valid UID (the value is not echoed).
    """
    if not isinstance(uid, str) or len(uid) > 64 or not _UID.match(uid):
        raise UnsupportedInputError("not a valid DICOM UID", code="invalid-uid")
    return uid


@dataclass(frozen=True)
class SeriesInfo:
    """One series of a study as the source reports it."""

    series_uid: str
    modality: str | None = None
    number_of_instances: int | None = None


@dataclass(frozen=True)
class StudyInfo:
    """A study as the source reports it (structure only; no patient attributes)."""

    study_uid: str
    series: tuple[SeriesInfo, ...] = ()
    modalities: tuple[str, ...] = ()
    number_of_instances: int | None = None

    @property
    def series_uids(self) -> tuple[str, ...]:
        return tuple(s.series_uid for s in self.series)


@dataclass(frozen=True)
class RetrieveResult:
    """Files written by a retrieve, each named ``<sha256>.dcm`` inside the destination."""

    files: tuple[Path, ...]
    total_bytes: int

    @property
    def count(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class Receipt:
    """What a target said about one file.

    ``status`` is a short machine-readable reason: ``"stored"``, ``"warning 0xB000"``,
    ``"failed 0xA700"``, ``"not acknowledged"``.
    """

    path: Path
    sop_instance_uid: str
    accepted: bool
    status: str
    target: str


class InstancesRejectedError(TargetRejectedError):
    """A target refused some instances. ``receipts`` holds every file's receipt (sent so far)."""

    default_code = "instances-rejected"

    def __init__(
        self, message: str, *, receipts: Sequence[Receipt] = (), code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.receipts = tuple(receipts)


@runtime_checkable
class Source(Protocol):
    """Where studies come from (a PACS, or a folder to import)."""

    name: str

    def find_study(self, study_uid: str) -> StudyInfo:
        """Describe a study.

        Raises:
            TargetRejectedError: the study does not exist or access is refused.
            TargetUnavailableError: the source cannot be reached now.
        """
        ...

    def retrieve_study(
        self, study_uid: str, series_uids: Sequence[str] | None, dest: Path
    ) -> RetrieveResult:
        """Write the study (or only ``series_uids``) into ``dest`` as ``<sha256>.dcm`` files.

        Raises:
            TargetRejectedError: refused, not found, or delivered incompletely.
            TargetUnavailableError: the source cannot be reached now.
        """
        ...


@runtime_checkable
class Target(Protocol):
    """Where finished files go (a teaching archive)."""

    name: str

    def send(self, files: Sequence[Path]) -> list[Receipt]:
        """Send files; one receipt per file, in order.

        Raises:
            InstancesRejectedError: the target refused some instances (receipts attached).
            TargetRejectedError: the target refused the request as a whole.
            TargetUnavailableError: the target cannot be reached now.
        """
        ...
