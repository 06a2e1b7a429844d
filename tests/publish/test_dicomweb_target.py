"""The ``dicomweb`` publication target against a real Orthanc teaching archive."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.orthanc import OrthancServer, orthanc_available
from tests.pacs.endpoints import dicomweb_settings
from tests.publish.ct_cases import CASE, ct_case
from tftt.errors import ConfigurationError, TargetRejectedError
from tftt.publish.base import PublishableCase
from tftt.publish.dicomweb import DicomwebArchiveTarget

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not orthanc_available(), reason="Orthanc is not installed")]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Iterator[OrthancServer]:
    server = OrthancServer(tmp_path_factory.mktemp("archive"), aet="ARCHIVE", username="arch",
                           password=secrets.token_urlsafe(12))
    yield server.start()
    server.terminate()


def _case(folder: Path, *, deidentified: bool = True, slices: int = 3) -> PublishableCase:
    return ct_case(folder, 3, deidentified=deidentified, slices=slices)


def _settings(archive: OrthancServer):
    return dicomweb_settings(archive, rest_url=archive.url)


def test_publish_replace_and_take_down(archive, tmp_path):
    target = DicomwebArchiveTarget(_settings(archive))
    case = _case(tmp_path / "a")
    receipt = target.publish(case)
    study_uid = receipt.remote_ref
    assert study_uid.startswith("2.25.")
    assert len(archive.study_instance_uids(study_uid)) == 3
    # publishing again (e.g. after a corrected review) replaces the study; no duplicates
    again = target.publish(case)
    assert again.remote_ref == study_uid
    assert len(archive.study_instance_uids(study_uid)) == 3
    target.take_down(CASE, receipt)
    assert archive.study_instance_uids(study_uid) == set()
    target.take_down(CASE, receipt)  # already gone: no error


def test_refuses_files_that_are_not_deidentified(archive, tmp_path):
    target = DicomwebArchiveTarget(_settings(archive))
    with pytest.raises(TargetRejectedError, match="not de-identified"):
        target.publish(_case(tmp_path / "raw", deidentified=False))


def test_take_down_needs_the_rest_api(archive, tmp_path):
    target = DicomwebArchiveTarget(dicomweb_settings(archive))
    receipt = target.publish(_case(tmp_path / "b"))
    with pytest.raises(ConfigurationError, match="rest_url"):
        target.take_down(CASE, receipt)
