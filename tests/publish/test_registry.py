from __future__ import annotations

from pathlib import Path

import pytest

from tftt.errors import ConfigurationError
from tftt.publish import registry
from tftt.publish.folder import FolderTarget
from tftt.settings import PublishSettings, Settings


def test_folder_target_by_name_with_default_root(tmp_path: Path) -> None:
    target = registry.make_target("folder", Settings(data_dir=tmp_path))
    assert isinstance(target, FolderTarget) and target.root == tmp_path / "published"
    custom = Settings(data_dir=tmp_path, publish=PublishSettings(folder=tmp_path / "teaching"))
    assert registry.make_target("folder", custom).root == tmp_path / "teaching"  # type: ignore[attr-defined]
    assert "folder" in registry.available_targets()


def test_unknown_and_broken_targets_are_configuration_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="unknown publication target 'nope'"):
        registry.make_target("nope", settings)
    monkeypatch.setitem(registry._TARGETS, "ghost", "tftt.publish.no_such_module:Target")
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        registry.make_target("ghost", settings)
    monkeypatch.setitem(
        registry._TARGETS, "wrong", "tftt.publish.folder:FolderTarget.from_settings"
    )
    with pytest.raises(ConfigurationError, match="something else"):
        registry.make_target("wrong", settings)  # it makes a target named "folder"
    with pytest.raises(ConfigurationError):
        registry.register_target("Bad Name", "x:y")
    with pytest.raises(ConfigurationError):
        registry.register_target("ok", "no-colon")


def test_register_and_make_targets_in_settings_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "_TARGETS", dict(registry._TARGETS))
    registry.register_target("folder2", "tests.publish.test_registry:_second_folder")
    settings = Settings(data_dir=tmp_path, publish=PublishSettings(targets=("folder2", "folder")))
    assert [t.name for t in registry.make_targets(settings)] == ["folder2", "folder"]
    twice = Settings(data_dir=tmp_path, publish=PublishSettings(targets=("folder", "folder")))
    with pytest.raises(ConfigurationError, match="twice"):
        registry.make_targets(twice)


class _SecondFolder(FolderTarget):
    name = "folder2"


def _second_folder(settings: Settings) -> FolderTarget:
    return _SecondFolder(settings.data_dir / "second")
