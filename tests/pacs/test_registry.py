"""Sources and targets made from Settings, against the real PACS and archive."""

from __future__ import annotations

import pickle
import re
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

import pydicom
import pytest

from tests.orthanc import OrthancServer
from tests.pacs.endpoints import dicomweb_settings, dimse_settings
from tests.pacs.synthetic import SyntheticStudy, build_study
from tftt.errors import ConfigurationError, TargetError, TargetUnavailableError
from tftt.pacs.base import Receipt, Source, Target
from tftt.pacs.dicomweb import DicomwebClient
from tftt.pacs.dimse import DimseClient
from tftt.pacs.folder import FolderSource
from tftt.pacs.registry import (
    make_source,
    make_target,
    register_target,
    source_names,
    target_names,
)
from tftt.settings import PublishSettings, Settings, SourceKind, SourceSettings

pytestmark = pytest.mark.integration


def _settings(**sections: object) -> Settings:
    return Settings.model_validate(sections)


def _pixels_by_sop(files: Sequence[Path]) -> dict[str, bytes]:
    return {str(ds.SOPInstanceUID): bytes(ds.PixelData) for ds in map(pydicom.dcmread, files)}


def test_builtin_names() -> None:
    assert set(source_names()) >= {"dicomweb", "dimse", "folder"}
    assert set(target_names()) >= {"dicomweb", "dimse"}


def test_every_source_kind_retrieves_the_same_study(
    pacs: OrthancServer, study: SyntheticStudy, tmp_path: Path
) -> None:
    sources: dict[str, Source] = {
        "dicomweb": make_source(_settings(source=SourceSettings(
            kind=SourceKind.DICOMWEB, dicomweb=dicomweb_settings(pacs)))),
        "dimse": make_source(_settings(source=SourceSettings(
            kind=SourceKind.DIMSE, dimse=dimse_settings(pacs)))),
        "folder": make_source(_settings(source=SourceSettings(
            kind=SourceKind.FOLDER, folder=study.files[0].parent))),
    }
    assert isinstance(sources["dicomweb"], DicomwebClient)
    assert isinstance(sources["dimse"], DimseClient)
    assert isinstance(sources["folder"], FolderSource)
    expected = {i.sop_instance_uid: i.pixel_data for i in study.instances}
    for name, source in sources.items():
        info = source.find_study(study.study_uid)
        assert set(info.series_uids) == set(study.series_uids), name
        assert info.number_of_instances == len(study.instances), name
        result = source.retrieve_study(study.study_uid, None, tmp_path / name)
        assert _pixels_by_sop(result.files) == expected, name


def test_dicomweb_target_sends_to_the_archive(archive: OrthancServer, tmp_path: Path) -> None:
    built = build_study(tmp_path / "study", seed=41)
    target = make_target("dicomweb", _settings(publish=PublishSettings(
        archive=dicomweb_settings(archive))))
    receipts = target.send(built.files)
    assert all(r.accepted for r in receipts)
    assert archive.study_instance_uids(built.study_uid) == set(built.by_sop())


def test_dimse_target_sends_to_the_archive(archive: OrthancServer, tmp_path: Path) -> None:
    built = build_study(tmp_path / "study", seed=43)
    target = make_target("dimse", _settings(publish=PublishSettings(
        dimse=dimse_settings(archive))))
    assert isinstance(target, DimseClient)
    receipts = target.send(built.files)
    assert all(r.accepted for r in receipts)
    assert archive.study_instance_uids(built.study_uid) == set(built.by_sop())


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        make_source(_settings(source=SourceSettings(kind=SourceKind.DICOMWEB)))
    # the folder source defaults to <data>/import (embedded default), so it needs no setting
    assert make_source(_settings(source=SourceSettings(kind=SourceKind.FOLDER))).name == "folder"
    with pytest.raises(ConfigurationError):
        make_target("dicomweb", _settings())
    with pytest.raises(ConfigurationError, match=r"publish\.dimse"):
        make_target("dimse", _settings())
    with pytest.raises(ConfigurationError, match="unknown target"):
        make_target("no-such-target", _settings())


def test_registering_a_target(tmp_path: Path) -> None:
    class Collect:
        name = "collect"

        def __init__(self) -> None:
            self.sent: list[Path] = []

        def send(self, files: Sequence[Path]) -> list[Receipt]:
            self.sent += files
            return [Receipt(f, "", True, "stored", self.name) for f in files]

    made: list[Collect] = []

    def factory(settings: Settings) -> Target:
        made.append(Collect())
        return made[-1]

    register_target("collect-test", factory)
    target = make_target("collect-test", _settings())
    assert isinstance(target, Target) and target is made[0]
    assert "collect-test" in target_names()


def test_unavailable_while_pacs_stopped_then_works_again(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    orthanc_servers: list[OrthancServer],
) -> None:
    """Both protocols: a stopped PACS gives retryable errors; once back, the same calls work."""
    password = secrets.token_urlsafe(12)
    server = OrthancServer(tmp_path_factory.mktemp("orthanc-restart"), aet="RESTART",
                           password=password)
    orthanc_servers.append(server)
    built = build_study(tmp_path / "study", seed=42)
    try:
        server.start()
        web = make_source(_settings(source=SourceSettings(
            kind=SourceKind.DICOMWEB, dicomweb=dicomweb_settings(server, timeout_seconds=5.0))))
        dicom = make_source(_settings(source=SourceSettings(
            kind=SourceKind.DIMSE, dimse=dimse_settings(server, timeout_seconds=5.0))))
        assert isinstance(web, DicomwebClient) and isinstance(dicom, DimseClient)
        web.send(built.files[:3])
        calls: dict[str, Callable[[], object]] = {
            "dicomweb find": lambda: web.find_study(built.study_uid),
            "dicomweb retrieve": lambda: web.retrieve_study(built.study_uid, None, tmp_path / "w"),
            "dicomweb send": lambda: web.send(built.files[3:]),
            "dimse echo": dicom.echo,
            "dimse find": lambda: dicom.find_study(built.study_uid),
            "dimse retrieve": lambda: dicom.retrieve_study(built.study_uid, None, tmp_path / "d"),
            "dimse send": lambda: dicom.send(built.files[3:]),
        }
        server.stop()
        for name, call in calls.items():
            with pytest.raises(TargetUnavailableError) as caught:
                call()
            err: TargetError = caught.value
            assert err.retryable, name
            text = str(err) + repr(err)
            assert password not in text and "http" not in text, name
            assert not re.search(r"\d+\.\d+\.\d+\.\d+\.\d+", text), name
            copy = pickle.loads(pickle.dumps(err))
            assert type(copy) is TargetUnavailableError and copy.retryable, name
        assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())

        server.start()  # same storage and ports, after the old PID has exited
        for call in calls.values():
            call()  # the retry succeeds
        assert web.find_study(built.study_uid).number_of_instances == len(built.instances)
        assert dicom.retrieve_study(built.study_uid, None, tmp_path / "d2").count == len(
            built.instances
        )
    finally:
        server.terminate()
