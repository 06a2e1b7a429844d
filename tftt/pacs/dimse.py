"""DIMSE adapter on pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE.

For PACS without DICOMweb. A :class:`DimseClient` is both a :class:`~tftt.pacs.base.Source`
(retrieving by C-GET or by C-MOVE to TFTT's own C-STORE SCP, per
``DimseSettings.retrieve_method``) and a :class:`~tftt.pacs.base.Target` (C-STORE).

No transcoding, ever:

- C-GET proposes one presentation context per (storage SOP class, transfer syntax), so the PACS
  can send each instance in its stored syntax (a context listing several syntaxes lets the
  PACS choose one and transcode; Orthanc 1.10 can crash doing so). At most 128 contexts fit
  in an association; the SOP classes come from ``SOPClassesInStudy`` and, when there are too
  many (or the PACS does not report them), from an IMAGE-level C-FIND, and the retrieve is
  split over several associations by SOP class.
- The SCP used for C-MOVE accepts every transfer syntax for every storage SOP class.
- C-STORE proposes exactly the (SOP class, transfer syntax) pairs of the files.

If a retrieve fails part-way, the files already received stay in the destination; they are
named by content, so a retry rewrites the same names.

Received datasets are streamed to disk as their fragments arrive, as received (preamble, file
meta, raw dataset bytes, exactly ``event.encoded_dataset()``), through a temporary file renamed
to ``<sha256>.dcm``: memory stays bounded whatever the instance size (see
:mod:`tftt.pacs.dimse_receive`). Failures are mapped in
:func:`_dimse_error`: association not established, aborted, or no answer in time →
:class:`TargetUnavailableError`; association rejected (permanently), refused or failed
statuses, incomplete retrieves → :class:`TargetRejectedError`. Messages carry the operation,
status codes and counts only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import HTJ2K as HTJ2KLossy
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    build_role,
)
from pynetdicom.association import Association

from tftt.errors import (
    TargetError,
    TargetRejectedError,
    TargetUnavailableError,
    UnsupportedInputError,
)
from tftt.pacs.base import (
    InstancesRejectedError,
    Receipt,
    RetrieveResult,
    SeriesInfo,
    StudyInfo,
    checked_uid,
)
from tftt.pacs.dimse_receive import StoreReceiver, close_streams
from tftt.settings import DimseSettings

# SOP classes (pynetdicom.sop_class builds these names at run time, hidden from type checkers).
VERIFICATION = UID("1.2.840.10008.1.1")
STUDY_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.2.1")
STUDY_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.2.2")
STUDY_ROOT_GET = UID("1.2.840.10008.5.1.4.1.2.2.3")

MAX_CONTEXTS = 128
"""Presentation contexts per association (PS3.8: context ids are odd numbers 1..255)."""

GET_TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    HTJ2KLossy,
)
"""The stored syntaxes C-GET accepts, each in its own presentation context."""

_CLASSES_PER_GET = (MAX_CONTEXTS - 1) // len(GET_TRANSFER_SYNTAXES)
_SUCCESS = 0x0000
_PENDING = frozenset({0xFF00, 0xFF01})
_STORE_WARNINGS = frozenset({0xB000, 0xB006, 0xB007})
_TRANSIENT_REJECTION = 0x02


def _dimse_error(
    action: str,
    *,
    assoc: Association | None = None,
    status: Dataset | None = None,
    missing_context: bool = False,
    received: int | None = None,
    expected: int | None = None,
) -> TargetError:
    """The one place where DIMSE outcomes become TFTT errors (returned, for the caller to raise).

    - association rejected: permanent → Rejected; transient (result 2) → Unavailable;
    - association not established / aborted, no status (timeout, abort) → Unavailable;
    - a failure status, no accepted presentation context, an incomplete retrieve → Rejected.
    """
    if assoc is not None and assoc.is_rejected:
        primitive = getattr(assoc.acceptor, "primitive", None)
        if getattr(primitive, "result", None) == _TRANSIENT_REJECTION:
            return TargetUnavailableError(
                f"DIMSE {action}: association rejected (transient)", code="association-busy"
            )
        return TargetRejectedError(
            f"DIMSE {action}: association rejected", code="association-rejected"
        )
    if assoc is not None and not assoc.is_established:
        return TargetUnavailableError(
            f"DIMSE {action}: could not establish an association", code="association-failed"
        )
    if missing_context:
        return TargetRejectedError(
            f"DIMSE {action}: the peer accepted no presentation context for it",
            code="no-context",
        )
    if received is not None:
        return TargetRejectedError(
            f"DIMSE {action}: received {received} of {expected} instances",
            code="incomplete-retrieve",
        )
    code = None if status is None else status.get("Status")
    if code is None:
        return TargetUnavailableError(
            f"DIMSE {action}: no response (timeout or aborted association)", code="no-response"
        )
    return TargetRejectedError(f"DIMSE {action}: status 0x{int(code):04X}", code="dimse-status")


@dataclass(frozen=True)
class _FileInfo:
    path: Path
    sop_class: str
    sop_instance: str
    transfer_syntax: str


def _file_info(path: Path) -> _FileInfo:
    """SOP class, instance and transfer syntax of a DICOM file (header only).

    Raises:
        UnsupportedInputError: not a DICOM file with file meta information.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, ValueError):
        raise UnsupportedInputError("a file to send is not DICOM", code="not-dicom") from None
    meta = getattr(ds, "file_meta", None)
    sop_class = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    sop_instance = ds.get("SOPInstanceUID")
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if not (sop_class and sop_instance and syntax):
        raise UnsupportedInputError(
            "a file to send lacks SOP class, instance or transfer syntax", code="not-dicom"
        )
    return _FileInfo(path, str(sop_class), str(sop_instance), str(syntax))


def _identifier(level: str, values: Mapping[str, Any], return_keys: Sequence[str]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    if any(tag_for_keyword(k) is None for k in [*values, *return_keys]):
        raise UnsupportedInputError("a query names an unknown attribute", code="bad-query")
    try:
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        for keyword in return_keys:
            if keyword not in ds:
                setattr(ds, keyword, "")
    except (AttributeError, ValueError, TypeError):
        raise UnsupportedInputError(
            "a query names an unknown attribute or has an invalid value", code="bad-query"
        ) from None
    return ds


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


class DimseClient:
    """A DIMSE peer as a :class:`~tftt.pacs.base.Source` and a :class:`~tftt.pacs.base.Target`.

    TFTT calls as ``settings.calling_aet``; for C-MOVE the PACS must know that AE title at
    ``settings.scp_host``:``settings.scp_port``, where this client listens only while a move runs
    (accepting associations from ``settings.called_aet`` only).
    """

    def __init__(self, settings: DimseSettings, *, name: str = "dimse") -> None:
        self.name = name
        self.settings = settings

    # -- plumbing ------------------------------------------------------------------------
    def _ae(self) -> AE:
        ae = AE(ae_title=self.settings.calling_aet)
        timeout = self.settings.timeout_seconds
        ae.acse_timeout = timeout
        ae.dimse_timeout = timeout
        ae.network_timeout = timeout
        ae.connection_timeout = timeout
        ae.maximum_pdu_size = 4 * 1024 * 1024  # large PDUs: fewer round trips for big data
        return ae

    @contextlib.contextmanager
    def _association(
        self, ae: AE, action: str, **kwargs: Any
    ) -> Iterator[Association]:
        """An established association, released afterwards.

        Raises:
            TargetUnavailableError / TargetRejectedError: see :func:`_dimse_error`.
        """
        assoc = ae.associate(
            self.settings.host, self.settings.port, ae_title=self.settings.called_aet, **kwargs
        )
        if not assoc.is_established:
            raise _dimse_error(action, assoc=assoc)
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    @staticmethod
    def _final_status(action: str, responses: Iterator[tuple[Dataset, Any]]) -> list[Any]:
        """Drain a C-FIND/C-GET/C-MOVE response iterator; pending identifiers are returned.

        Raises:
            TargetUnavailableError: no status (timeout, abort).
            TargetRejectedError: a warning or failure status (for C-GET/C-MOVE, a warning
                means some sub-operations failed).
        """
        identifiers: list[Any] = []
        for status, identifier in responses:
            code = status.get("Status") if status else None
            if code is None:
                raise _dimse_error(action, status=None)
            if code in _PENDING:
                if identifier is not None:
                    identifiers.append(identifier)
                continue
            if code != _SUCCESS:
                raise _dimse_error(action, status=status)
        return identifiers

    # -- C-ECHO --------------------------------------------------------------------------
    def echo(self) -> None:
        """C-ECHO the peer.

        Raises:
            TargetUnavailableError: the peer cannot be reached.
            TargetRejectedError: association rejected or a failure status.
        """
        ae = self._ae()
        ae.add_requested_context(VERIFICATION)
        with self._association(ae, "echo") as assoc:
            status = assoc.send_c_echo()
            if not status or status.get("Status") != _SUCCESS:
                raise _dimse_error("echo", status=status or None)

    # -- C-FIND --------------------------------------------------------------------------
    def _find(self, level: str, values: Mapping[str, Any], return_keys: Sequence[str],
              action: str) -> list[Dataset]:
        identifier = _identifier(level, values, return_keys)
        ae = self._ae()
        ae.add_requested_context(STUDY_ROOT_FIND)
        with self._association(ae, action) as assoc:
            try:
                responses = assoc.send_c_find(
                    identifier, STUDY_ROOT_FIND
                )
                return self._final_status(action, responses)
            except ValueError:
                raise _dimse_error(action, missing_context=True) from None

    def find_studies(
        self, filters: Mapping[str, Any] | None = None, return_keys: Sequence[str] = ()
    ) -> list[Dataset]:
        """C-FIND at STUDY level (Study Root). ``filters`` are keyword → value (wildcards ok).

        Raises:
            UnsupportedInputError: an unknown keyword.
            TargetUnavailableError / TargetRejectedError: see :func:`_dimse_error`.
        """
        keys = ["StudyInstanceUID", *return_keys]
        return self._find("STUDY", dict(filters or {}), keys, "study search")

    def find_series(
        self,
        study_uid: str,
        filters: Mapping[str, Any] | None = None,
        return_keys: Sequence[str] = (),
    ) -> list[Dataset]:
        """C-FIND at SERIES level within one study.

        Raises:
            UnsupportedInputError: an invalid UID or an unknown keyword.
            TargetUnavailableError / TargetRejectedError: see :func:`_dimse_error`.
        """
        values = {"StudyInstanceUID": checked_uid(study_uid), **dict(filters or {})}
        return self._find("SERIES", values, ["SeriesInstanceUID", *return_keys], "series search")

    def find_instances(
        self,
        study_uid: str,
        series_uid: str | None = None,
        return_keys: Sequence[str] = (),
    ) -> list[Dataset]:
        """C-FIND at IMAGE level within one study (and one series if given).

        Raises:
            UnsupportedInputError: an invalid UID or an unknown keyword.
            TargetUnavailableError / TargetRejectedError: see :func:`_dimse_error`.
        """
        values: dict[str, Any] = {"StudyInstanceUID": checked_uid(study_uid)}
        values["SeriesInstanceUID"] = "" if series_uid is None else checked_uid(series_uid)
        keys = ["SOPInstanceUID", "SOPClassUID", *return_keys]
        return self._find("IMAGE", values, keys, "instance search")

    def find_study(self, study_uid: str) -> StudyInfo:
        """The study's series, modalities and instance counts (C-FIND study + series level).

        Raises:
            TargetRejectedError: not found (code ``not-found``) or refused.
            TargetUnavailableError: the PACS cannot be reached now.
        """
        checked_uid(study_uid)
        studies = self.find_studies(
            {"StudyInstanceUID": study_uid},
            ["ModalitiesInStudy", "NumberOfStudyRelatedInstances"],
        )
        study = next((s for s in studies if s.get("StudyInstanceUID") == study_uid), None)
        if study is None:
            raise TargetRejectedError("DIMSE: study not found", code="not-found")
        series = self.find_series(study_uid, return_keys=["Modality",
                                                           "NumberOfSeriesRelatedInstances"])
        modalities = study.get("ModalitiesInStudy") or []
        if isinstance(modalities, str):
            modalities = [modalities]
        return StudyInfo(
            study_uid=study_uid,
            series=tuple(
                SeriesInfo(
                    series_uid=str(s.SeriesInstanceUID),
                    modality=str(s.get("Modality")) if s.get("Modality") else None,
                    number_of_instances=_int_or_none(s.get("NumberOfSeriesRelatedInstances")),
                )
                for s in series
                if s.get("SeriesInstanceUID")
            ),
            modalities=tuple(str(m) for m in modalities if m),
            number_of_instances=_int_or_none(study.get("NumberOfStudyRelatedInstances")),
        )

    def _expected_count(self, study_uid: str, series_uids: Sequence[str] | None) -> int | None:
        if series_uids is None:
            studies = self.find_studies(
                {"StudyInstanceUID": study_uid}, ["NumberOfStudyRelatedInstances"]
            )
            if not studies:
                raise TargetRejectedError("DIMSE: study not found", code="not-found")
            return _int_or_none(studies[0].get("NumberOfStudyRelatedInstances"))
        wanted = set(series_uids)
        found = self.find_series(study_uid, return_keys=["NumberOfSeriesRelatedInstances"])
        counts = {str(s.SeriesInstanceUID): s.get("NumberOfSeriesRelatedInstances")
                  for s in found if s.get("SeriesInstanceUID") in wanted}
        if len(counts) != len(wanted):
            raise TargetRejectedError(
                f"DIMSE: {len(wanted) - len(counts)} requested series not found",
                code="not-found",
            )
        numbers = [_int_or_none(c) for c in counts.values()]
        return None if None in numbers else sum(n for n in numbers if n is not None)

    def _check_complete(self, action: str, result: RetrieveResult, expected: int | None) -> None:
        # More than expected is fine (instances may arrive between the C-FIND and the C-GET).
        if expected is not None and result.count < expected:
            raise _dimse_error(action, received=result.count, expected=expected)

    # -- C-GET ---------------------------------------------------------------------------
    def retrieve_study(
        self, study_uid: str, series_uids: Sequence[str] | None, dest: Path
    ) -> RetrieveResult:
        """:class:`~tftt.pacs.base.Source` entry point: C-GET or C-MOVE per the settings."""
        if self.settings.retrieve_method == "c-move":
            return self.move_study(study_uid, series_uids, dest)
        return self.get_study(study_uid, series_uids, dest)

    def get_study(
        self, study_uid: str, series_uids: Sequence[str] | None, dest: Path
    ) -> RetrieveResult:
        """C-GET the study (or only ``series_uids``) into ``dest/<sha256>.dcm`` files.

        Raises:
            UnsupportedInputError: an invalid UID.
            TargetRejectedError: not found, refused, a failure status, or fewer instances
                arrived than the PACS reported.
            TargetUnavailableError: the PACS cannot be reached, or stopped answering.
            OSError: ``dest`` cannot be written.
        """
        checked_uid(study_uid)
        series = None if series_uids is None else [checked_uid(u) for u in series_uids]
        studies = self.find_studies(
            {"StudyInstanceUID": study_uid},
            ["SOPClassesInStudy", "NumberOfStudyRelatedInstances"],
        )
        if not studies:
            raise TargetRejectedError("DIMSE: study not found", code="not-found")
        if series is None:
            expected = _int_or_none(studies[0].get("NumberOfStudyRelatedInstances"))
        else:
            expected = self._expected_count(study_uid, series)
        classes = studies[0].get("SOPClassesInStudy")
        if isinstance(classes, str):
            classes = [classes]
        receiver = StoreReceiver(Path(dest))
        with receiver.local_errors_first():
            if classes and len(classes) <= _CLASSES_PER_GET:
                if series is None:
                    requests = [_identifier("STUDY", {"StudyInstanceUID": study_uid}, ())]
                else:
                    requests = [
                        _identifier("SERIES", {"StudyInstanceUID": study_uid,
                                               "SeriesInstanceUID": uid}, ())
                        for uid in series
                    ]
                self._c_get([str(c) for c in classes], requests, receiver)
            else:
                self._c_get_by_class(study_uid, series, receiver)
        result = receiver.result()
        self._check_complete("retrieve", result, expected)
        return result

    def _c_get_by_class(
        self, study_uid: str, series: list[str] | None, receiver: StoreReceiver
    ) -> None:
        """C-GET instance lists grouped by SOP class, ``_CLASSES_PER_GET`` classes at a time."""
        found: list[Dataset] = []
        scopes: list[str | None] = list(series) if series is not None else [None]
        for series_uid in scopes:
            found += self.find_instances(study_uid, series_uid)
        by_class: dict[str, dict[str, list[str]]] = {}
        for item in found:
            if not (item.get("SOPClassUID") and item.get("SOPInstanceUID")):
                raise TargetRejectedError(
                    "DIMSE retrieve: the PACS does not report SOP classes", code="no-sop-class"
                )
            per_series = by_class.setdefault(str(item.SOPClassUID), {})
            per_series.setdefault(str(item.SeriesInstanceUID), []).append(str(item.SOPInstanceUID))
        classes = sorted(by_class)
        for start in range(0, len(classes), _CLASSES_PER_GET):
            chunk = classes[start : start + _CLASSES_PER_GET]
            lists: dict[str, list[str]] = {}
            for sop_class in chunk:
                for series_uid, uids in by_class[sop_class].items():
                    lists.setdefault(series_uid, []).extend(uids)
            requests = [
                _identifier("IMAGE", {"StudyInstanceUID": study_uid,
                                      "SeriesInstanceUID": series_uid,
                                      "SOPInstanceUID": uids}, ())
                for series_uid, uids in lists.items()
            ]
            self._c_get(chunk, requests, receiver)

    def _c_get(
        self,
        sop_classes: Sequence[str],
        requests: Sequence[Dataset],
        receiver: StoreReceiver,
    ) -> None:
        ae = self._ae()
        ae.add_requested_context(STUDY_ROOT_GET)
        for sop_class in sop_classes:
            for syntax in GET_TRANSFER_SYNTAXES:
                ae.add_requested_context(sop_class, syntax)
        roles = [build_role(sop_class, scp_role=True) for sop_class in sop_classes]
        with self._association(
            ae, "retrieve", ext_neg=roles, evt_handlers=receiver.handlers()
        ) as assoc:
            try:
                for request in requests:
                    try:
                        responses = assoc.send_c_get(request, STUDY_ROOT_GET)
                        self._final_status("retrieve", responses)
                    except ValueError:
                        raise _dimse_error("retrieve", missing_context=True) from None
            finally:
                close_streams(assoc)

    # -- C-MOVE --------------------------------------------------------------------------
    def move_study(
        self, study_uid: str, series_uids: Sequence[str] | None, dest: Path
    ) -> RetrieveResult:
        """C-MOVE the study (or ``series_uids``) to TFTT's own C-STORE SCP, into ``dest``.

        The SCP listens on ``scp_host:scp_port`` as ``calling_aet`` only while the move runs.

        Raises:
            UnsupportedInputError: an invalid UID.
            TargetRejectedError: not found, refused, a failure status (e.g. unknown move
                destination), or fewer instances arrived than the PACS reported.
            TargetUnavailableError: the PACS cannot be reached, or the SCP port is busy.
            OSError: ``dest`` cannot be written.
        """
        checked_uid(study_uid)
        series = None if series_uids is None else [checked_uid(u) for u in series_uids]
        expected = self._expected_count(study_uid, series)
        if series is None:
            requests = [_identifier("STUDY", {"StudyInstanceUID": study_uid}, ())]
        else:
            requests = [
                _identifier("SERIES", {"StudyInstanceUID": study_uid, "SeriesInstanceUID": uid}, ())
                for uid in series
            ]
        receiver = StoreReceiver(Path(dest))
        scp = self._ae()
        scp.require_calling_aet = [self.settings.called_aet]
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax is not None:
                scp.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        try:
            server = scp.start_server(
                (self.settings.scp_host, self.settings.scp_port),
                block=False,
                evt_handlers=receiver.handlers(),
            )
        except OSError:
            raise TargetUnavailableError(
                "DIMSE retrieve: cannot listen on the C-STORE SCP port", code="scp-port-busy"
            ) from None
        assert server is not None  # block=False returns the running server
        try:
            with receiver.local_errors_first():
                ae = self._ae()
                ae.add_requested_context(STUDY_ROOT_MOVE)
                with self._association(ae, "retrieve") as assoc:
                    for request in requests:
                        try:
                            responses = assoc.send_c_move(
                                request,
                                self.settings.calling_aet,
                                STUDY_ROOT_MOVE,
                            )
                            self._final_status("retrieve", responses)
                        except ValueError:
                            raise _dimse_error("retrieve", missing_context=True) from None
        finally:
            server.shutdown()
        result = receiver.result()
        self._check_complete("retrieve", result, expected)
        return result

    # -- C-STORE -------------------------------------------------------------------------
    def send(self, files: Sequence[Path]) -> list[Receipt]:
        """C-STORE the files, each in its own transfer syntax; one receipt per file.

        Raises:
            UnsupportedInputError: a file is not DICOM.
            InstancesRejectedError: the peer refused some instances (receipts attached).
            TargetRejectedError: association rejected.
            TargetUnavailableError: the peer cannot be reached or stopped answering.
        """
        infos = [_file_info(Path(f)) for f in files]
        pairs = list(dict.fromkeys((i.sop_class, i.transfer_syntax) for i in infos))
        receipts: dict[Path, Receipt] = {}
        for start in range(0, len(pairs), MAX_CONTEXTS):
            chunk = set(pairs[start : start + MAX_CONTEXTS])
            ae = self._ae()
            for sop_class, syntax in chunk:
                ae.add_requested_context(sop_class, syntax)
            with self._association(ae, "store") as assoc:
                for info in infos:
                    if (info.sop_class, info.transfer_syntax) in chunk:
                        receipts[info.path] = self._store_one(assoc, info)
        ordered = [receipts[i.path] for i in infos]
        failed = sum(not r.accepted for r in ordered)
        if failed:
            raise InstancesRejectedError(
                f"DIMSE store: {failed} of {len(ordered)} instances were not stored",
                receipts=ordered,
            )
        return ordered

    def _store_one(self, assoc: Association, info: _FileInfo) -> Receipt:
        try:
            status = assoc.send_c_store(info.path)
        except ValueError:
            return Receipt(info.path, info.sop_instance, False, "no presentation context",
                           self.name)
        code = status.get("Status") if status else None
        if code is None:
            raise _dimse_error("store", status=None)
        if code == _SUCCESS:
            return Receipt(info.path, info.sop_instance, True, "stored", self.name)
        if code in _STORE_WARNINGS:
            return Receipt(info.path, info.sop_instance, True, f"warning 0x{code:04X}", self.name)
        return Receipt(info.path, info.sop_instance, False, f"failed 0x{code:04X}", self.name)
