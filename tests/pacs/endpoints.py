"""Settings that point TFTT's adapters at a test Orthanc (with its credentials)."""

from __future__ import annotations

from pydantic import SecretStr

from tests.orthanc import OrthancServer, free_port
from tftt.settings import DicomwebSettings, DimseSettings

TFTT_AET = "TFTT"
"""TFTT's AE title; the session PACS knows it as a C-MOVE destination."""


def dicomweb_settings(server: OrthancServer, **changes: object) -> DicomwebSettings:
    """DICOMweb settings pointing at ``server`` with its credentials."""
    values: dict[str, object] = {
        "url": server.dicomweb_url,
        "username": server.username,
        "password": SecretStr(server.password),
        "timeout_seconds": 30.0,
    }
    values.update(changes)
    return DicomwebSettings.model_validate(values)


def dimse_settings(server: OrthancServer, scp_port: int = 0, **changes: object) -> DimseSettings:
    """DIMSE settings pointing at ``server``, calling as TFTT."""
    values: dict[str, object] = {
        "host": server.host,
        "port": server.dicom_port,
        "called_aet": server.aet,
        "calling_aet": TFTT_AET,
        "scp_port": scp_port or free_port(),
        "timeout_seconds": 30.0,
    }
    values.update(changes)
    return DimseSettings.model_validate(values)
