"""The ``dimse`` publication target: C-STORE of a case's verified second-pass files to a teaching
archive that speaks DIMSE (``settings.publish.dimse``: host, port, called AE title).

Publish. Every file must say ``PatientIdentityRemoved = YES`` and the case must hold exactly one
study. The files go to the archive with :meth:`~tftt.pacs.dimse.DimseClient.send` (each in its
own transfer syntax). A C-STORE status of success does not prove the archive kept the instance
(Orthanc 1.10 answers 0x0000 for an instance its Lua ``ReceivedInstanceFilter`` drops), so one
IMAGE-level C-FIND then checks that the archive holds exactly the case's SOP Instance UIDs in
the study (an archive that caps C-FIND answers, like Orthanc's ``LimitFindInstances``, must allow
a whole case). Instances it refused, instances it does not hold, and instances of the study that the
case does not have (left from an earlier version of the case) all make the publication fail with
:class:`~tftt.errors.TargetRejectedError`; what was stored stays stored (DIMSE has no delete).

Idempotence. Publishing again re-sends the same SOP Instance UIDs (the second pass derives them
from the source with the site key). The archive must replace an instance re-sent with the same
SOP Instance UID: Orthanc does so with ``"OverwriteInstances": true`` (as in
``deploy/orthanc/orthanc.json.example``), without duplicates. With Orthanc's default (``false``)
it keeps the first copy and still answers success, so a corrected case would not replace the
published one, and nothing visible over DIMSE tells. Publishing never deletes: a REST URL that
is not this archive's would delete another target's copy of the case.

Take-down. DIMSE has no delete, so the study is deleted through Orthanc's REST API at
``settings.publish.archive.rest_url`` (with that section's credentials): the one REST setting
TFTT has, meant for the archive the ``dicomweb`` target uses, which must then be this same
Orthanc. Both ends are checked over DIMSE: before, the REST API must hold the study that the
DIMSE archive holds; after, a C-FIND must no longer find it. A study the DIMSE archive no longer
holds counts as taken down without any REST call (e.g. after its operator deleted it by hand);
otherwise, without ``rest_url``, take-down raises :class:`~tftt.errors.ConfigurationError`.
If the REST API belongs to another Orthanc that holds the same study (the ``dicomweb`` target's
archive), the study is deleted there before the check fails; a take-down removes the case from
every target anyway.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from tftt.errors import ConfigurationError, TargetRejectedError, UnsupportedInputError
from tftt.pacs.base import InstancesRejectedError, checked_uid
from tftt.pacs.dimse import DimseClient
from tftt.pacs.orthanc_rest import OrthancRest
from tftt.publish.base import PublicationReceipt, PublishableCase
from tftt.settings import DicomwebSettings, DimseSettings, Settings


@dataclass(frozen=True)
class _Header:
    study_uid: str
    sop_instance_uid: str
    deidentified: bool


def _header(path: Path) -> _Header:
    """The few attributes this target checks (header only).

    Raises:
        TargetRejectedError: not a DICOM file, or without Study/SOP Instance UID.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, ValueError, OSError):
        raise TargetRejectedError("a file to publish is not readable DICOM", code="not-dicom") from None
    study, sop = ds.get("StudyInstanceUID"), ds.get("SOPInstanceUID")
    if not study or not sop:
        raise TargetRejectedError("a file to publish lacks StudyInstanceUID or SOPInstanceUID", code="not-dicom")
    return _Header(str(study), str(sop), ds.get("PatientIdentityRemoved") == "YES")


def _refusals(error: InstancesRejectedError) -> str:
    """``"2 of 5 instances (failed 0xA700: 1, no presentation context: 1)"``: counts and statuses."""
    refused = Counter(r.status for r in error.receipts if not r.accepted)
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(refused.items()))
    return f"{sum(refused.values())} of {len(error.receipts)} instances ({statuses})"


class DimseArchiveTarget:
    """Publishes cases to a DIMSE teaching archive; see the module docstring.

    Args:
        dimse: the archive's DIMSE peer (TFTT calls as ``calling_aet``).
        rest: the settings whose ``rest_url`` is this archive's Orthanc REST API (take-down
            only); ``None`` or no ``rest_url`` when there is none.
    """

    name = "dimse"

    def __init__(self, dimse: DimseSettings, rest: DicomwebSettings | None = None) -> None:
        self._client = DimseClient(dimse, name=self.name)
        self._rest = rest if rest is not None and rest.rest_url else None

    @classmethod
    def from_settings(cls, settings: Settings) -> DimseArchiveTarget:
        """The target for ``settings.publish.dimse``, taking down through ``publish.archive.rest_url``.

        Raises:
            ConfigurationError: ``publish.dimse`` is not set.
        """
        if settings.publish.dimse is None:
            raise ConfigurationError("publish.dimse is not set (the DIMSE teaching archive)")
        return cls(settings.publish.dimse, settings.publish.archive)

    def publish(self, case: PublishableCase, previous: PublicationReceipt | None = None) -> PublicationReceipt:
        """C-STORE every DICOM file of the case, then check what the archive holds.

        ``previous`` is not needed: re-sent instances keep their SOP Instance UIDs, and the
        archive replaces them in place (see the module docstring for the setting this needs).

        Raises:
            TargetRejectedError: a file is not de-identified or not DICOM, the case holds more
                than one study, the archive refused the association or some instances, does not
                hold every instance sent, or holds instances of the study the case does not have.
            TargetUnavailableError: the archive cannot be reached or stopped answering (retryable;
                publishing again is safe).
        """
        headers = [_header(image.dicom) for image in case.images]
        if not all(h.deidentified for h in headers):
            raise TargetRejectedError("refusing a file that is not de-identified", code="not-deidentified")
        studies = {h.study_uid for h in headers}
        if len(studies) != 1:
            raise TargetRejectedError(f"a case must hold exactly one study, not {len(studies)}", code="not-one-study")
        study_uid = studies.pop()
        try:
            checked_uid(study_uid)
            receipts = self._client.send([image.dicom for image in case.images])
        except InstancesRejectedError as exc:
            raise TargetRejectedError(f"the DIMSE archive refused {_refusals(exc)}",
                                      code="instances-rejected") from None
        except UnsupportedInputError as exc:
            raise TargetRejectedError(f"cannot send the case: {exc}", code=exc.code) from None
        self._check_held(study_uid, {h.sop_instance_uid for h in headers})
        return PublicationReceipt(target=self.name, case_id=case.case_id, remote_ref=study_uid,
                                  details={"instances": len(receipts)})

    def _check_held(self, study_uid: str, sent: set[str]) -> None:
        """The archive holds exactly ``sent`` in the study.

        Raises:
            TargetRejectedError: some are missing, or others are there too.
        """
        held = {str(item.SOPInstanceUID) for item in self._client.find_instances(study_uid)
                if item.get("SOPInstanceUID")}
        if missing := len(sent - held):
            raise TargetRejectedError(
                f"the DIMSE archive answered success but does not hold {missing} of {len(sent)} instances",
                code="instances-not-held")
        if extra := len(held - sent):
            raise TargetRejectedError(
                f"the DIMSE archive holds {extra} instances of the case's study that the case does not have "
                "(an earlier version); take the case down before publishing it again",
                code="stale-instances")

    def _holds(self, study_uid: str) -> bool:
        return bool(self._client.find_studies({"StudyInstanceUID": study_uid}))

    def take_down(self, case_id: str, receipt: PublicationReceipt) -> None:
        """Delete the case's study through the archive's Orthanc REST API; succeed if it is gone.

        Raises:
            ConfigurationError: the archive still holds the study and ``publish.archive.rest_url``
                is not set, or the REST API there does not hold the study (not this archive).
            TargetRejectedError: the receipt holds no valid study UID, or the DIMSE archive still
                holds the study after the delete.
            TargetUnavailableError: the archive or its REST API cannot be reached (retryable).
        """
        try:
            study_uid = checked_uid(receipt.remote_ref)
        except UnsupportedInputError:
            raise TargetRejectedError("the publication record holds no valid study UID", code="bad-receipt") from None
        if not self._holds(study_uid):
            return
        if self._rest is None:
            raise ConfigurationError(
                "taking a case down from a DIMSE-only archive needs its Orthanc REST API "
                "(publish.archive.rest_url); the archive still holds the case")
        with OrthancRest(self._rest) as rest:
            if rest.study_id(study_uid) is None:
                raise ConfigurationError(
                    "publish.archive.rest_url is not the DIMSE archive's REST API: it does not hold the "
                    "study the DIMSE archive holds")
            rest.delete_study(study_uid)
        if self._holds(study_uid):
            raise TargetRejectedError("the DIMSE archive still holds the study after the REST delete",
                                      code="delete-unconfirmed")
