"""The ``dicomweb`` publication target: STOW-RS of a case's verified second-pass files to a
teaching archive, and take-down by deleting the study (Orthanc REST, found by its new UID).

Publishing is idempotent: when the archive has a REST URL (Orthanc), the case's study is deleted
first, so a corrected case replaces the old one instead of mixing with it; without one, the
archive's own handling of re-sent SOP Instance UIDs applies.
"""

from __future__ import annotations

import pydicom

from tftt.errors import ConfigurationError, TargetRejectedError
from tftt.pacs.dicomweb import DicomwebClient
from tftt.pacs.orthanc_rest import OrthancRest
from tftt.publish.base import PublicationReceipt, PublishableCase
from tftt.settings import DicomwebSettings, Settings


class DicomwebArchiveTarget:
    name = "dicomweb"

    def __init__(self, settings: DicomwebSettings) -> None:
        if not settings.url:
            raise ConfigurationError("publish.archive.url is not set")
        self._settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> DicomwebArchiveTarget:
        return cls(settings.publish.archive)

    def _study_uid(self, case: PublishableCase) -> str:
        uids = {str(pydicom.dcmread(image.dicom, stop_before_pixels=True).StudyInstanceUID) for image in case.images}
        if len(uids) != 1:
            raise TargetRejectedError(f"a case must hold exactly one study, not {len(uids)}", code="not-one-study")
        return uids.pop()

    def publish(self, case: PublishableCase, previous: PublicationReceipt | None = None) -> PublicationReceipt:
        """Send every DICOM file of the case (replacing an earlier version of the study).

        ``previous`` (the current publication's receipt) is not needed: the study is found by
        its UID, which the second pass derives from the source with the site key.

        Raises:
            TargetUnavailableError: the archive cannot be reached (retryable).
            TargetRejectedError: the archive refused the request or some instances.
        """
        for image in case.images:
            header = pydicom.dcmread(image.dicom, stop_before_pixels=True)
            if header.get("PatientIdentityRemoved") != "YES":
                raise TargetRejectedError("refusing a file that is not de-identified", code="not-deidentified")
        study_uid = self._study_uid(case)
        if self._settings.rest_url:
            with OrthancRest(self._settings) as rest:
                rest.delete_study(study_uid)
        with DicomwebClient(self._settings, name=self.name) as client:
            receipts = client.store([image.dicom for image in case.images])
        return PublicationReceipt(target=self.name, case_id=case.case_id, remote_ref=study_uid,
                                  details={"instances": len(receipts)})

    def take_down(self, case_id: str, receipt: PublicationReceipt) -> None:
        """Delete the case's study from the archive (no error if it is already gone).

        Raises:
            ConfigurationError: the archive has no REST URL (DICOMweb has no delete).
            TargetRejectedError: the study is still there afterwards.
        """
        with OrthancRest(self._settings) as rest:
            rest.delete_study(receipt.remote_ref)
