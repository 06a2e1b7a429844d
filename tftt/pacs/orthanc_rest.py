"""The few Orthanc REST calls DICOMweb has no equivalent for: find a study's Orthanc id by its
Study Instance UID, and delete a study (take-down from a teaching archive)."""

from __future__ import annotations

from typing import Any

import httpx

from tftt.errors import ConfigurationError, TargetRejectedError
from tftt.pacs.base import checked_uid
from tftt.pacs.dicomweb import _auth_of, _edge
from tftt.settings import DicomwebSettings


class OrthancRest:
    """Orthanc's REST API at ``settings.rest_url`` with the DICOMweb endpoint's credentials.

    Raises:
        ConfigurationError: ``rest_url`` is not set.
    """

    def __init__(self, settings: DicomwebSettings, *, client: httpx.Client | None = None) -> None:
        if not settings.rest_url:
            raise ConfigurationError("the archive's Orthanc REST URL (rest_url) is not set")
        self._base = settings.rest_url.rstrip("/")
        self._auth = _auth_of(settings)
        self._owns = client is None
        self._client = client or httpx.Client(timeout=httpx.Timeout(settings.timeout_seconds))

    def close(self) -> None:
        if self._owns:
            self._client.close()

    def __enter__(self) -> OrthancRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def study_id(self, study_uid: str) -> str | None:
        """Orthanc's id of the study, or None if the archive does not have it."""
        with _edge("lookup"):
            response = self._client.post(f"{self._base}/tools/lookup", content=checked_uid(study_uid),
                                         auth=self._auth)
            response.raise_for_status()
            found: Any = response.json()
        if not isinstance(found, list):
            raise TargetRejectedError("Orthanc lookup: unreadable answer", code="bad-answer")
        ids = [item.get("ID") for item in found if isinstance(item, dict) and item.get("Type") == "Study"]
        return str(ids[0]) if ids else None

    def delete_study(self, study_uid: str) -> bool:
        """Delete the study; False if it was not there. Confirmed by a second lookup.

        Raises:
            TargetRejectedError: the study is still there after the delete.
        """
        orthanc_id = self.study_id(study_uid)
        if orthanc_id is None:
            return False
        with _edge("delete"):
            self._client.delete(f"{self._base}/studies/{orthanc_id}", auth=self._auth).raise_for_status()
        if self.study_id(study_uid) is not None:
            raise TargetRejectedError("the archive still has the study after the delete", code="delete-unconfirmed")
        return True
