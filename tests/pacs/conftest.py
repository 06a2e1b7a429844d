"""Session fixtures for the PACS adapter tests: a real source PACS and a real teaching archive.

Both are Orthanc processes (see :mod:`tests.orthanc`) with fresh storage under pytest's
``tmp_path_factory``, random passwords, and stopped by PID at the end of the session. The PACS
knows TFTT's C-STORE SCP (AET ``TFTT`` on a free port) as a C-MOVE destination.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.orthanc import OrthancServer, free_port, stop_all
from tests.pacs.endpoints import TFTT_AET
from tests.pacs.synthetic import SyntheticStudy, build_study


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
