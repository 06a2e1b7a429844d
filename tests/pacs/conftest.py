"""Session fixtures for the PACS adapter tests: a real source PACS and a real teaching archive.

Both are Orthanc processes (see :mod:`tests.orthanc`) with fresh storage under pytest's
``tmp_path_factory``, random passwords, and stopped by PID at the end of the session. The PACS
knows TFTT's C-STORE SCP (AET ``TFTT`` on a free port) as a C-MOVE destination.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from tests.orthanc import OrthancServer, free_port, stop_all
from tests.pacs.synthetic import SyntheticStudy, build_study
from tftt.settings import DicomwebSettings, DimseSettings

TFTT_AET = "TFTT"


@pytest.fixture(scope="session")
def tftt_scp_port() -> int:
    """The port of TFTT's own C-STORE SCP (C-MOVE destination)."""
    return free_port()


@pytest.fixture(scope="session")
def orthanc_servers() -> Iterator[list[OrthancServer]]:
    """Every Orthanc of the session; all are stopped together at the end (in parallel)."""
    servers: list[OrthancServer] = []
    yield servers
    stop_all(servers)


@pytest.fixture(scope="session")
def pacs(
    tmp_path_factory: pytest.TempPathFactory,
    tftt_scp_port: int,
    orthanc_servers: list[OrthancServer],
) -> Iterator[OrthancServer]:
    """The source PACS (AET ``PACS``); it checks the called AE title."""
    server = OrthancServer(
        tmp_path_factory.mktemp("orthanc-pacs"),
        aet="PACS",
        username="pacsuser",
        password=secrets.token_urlsafe(12),
        modalities={"tftt": (TFTT_AET, "127.0.0.1", tftt_scp_port)},
        extra_config={"DicomCheckCalledAet": True},
    )
    orthanc_servers.append(server)
    yield server.start()
    server.terminate()


@pytest.fixture(scope="session")
def archive(
    tmp_path_factory: pytest.TempPathFactory, orthanc_servers: list[OrthancServer]
) -> Iterator[OrthancServer]:
    """The teaching archive (AET ``ARCHIVE``)."""
    server = OrthancServer(
        tmp_path_factory.mktemp("orthanc-archive"),
        aet="ARCHIVE",
        username="archuser",
        password=secrets.token_urlsafe(12),
    )
    orthanc_servers.append(server)
    yield server.start()
    server.terminate()


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory, pacs: OrthancServer) -> SyntheticStudy:
    """A synthetic study (3 series, 4 transfer syntaxes, 3 SOP classes) stored in the PACS."""
    built = build_study(tmp_path_factory.mktemp("synthetic-study"))
    pacs.upload(built.files)
    return built


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
