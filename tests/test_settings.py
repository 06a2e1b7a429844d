from pathlib import Path

import pytest
from pydantic import ValidationError

from tftt.settings import PublishMode, Settings, SourceKind


def test_defaults_are_the_embedded_set_up():
    settings = Settings()
    assert settings.data_dir == Path("tftt-data")
    assert settings.source.kind is SourceKind.FOLDER
    assert settings.publish.targets == ("folder",)
    assert settings.review.timeout_days == 14
    assert settings.resolved_database_url().startswith("sqlite:///")


def test_nested_environment_variables_and_secrets(monkeypatch):
    monkeypatch.setenv("TFTT_SOURCE__KIND", "dicomweb")
    monkeypatch.setenv("TFTT_SOURCE__DICOMWEB__URL", "http://pacs.example/dicom-web")
    monkeypatch.setenv("TFTT_SOURCE__DICOMWEB__PASSWORD", "hunter2-secret")
    monkeypatch.setenv("TFTT_PUBLISH__MODE", "nightly")
    settings = Settings()
    assert settings.source.kind is SourceKind.DICOMWEB
    assert settings.publish.mode is PublishMode.NIGHTLY
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in settings.model_dump_json()
    assert settings.source.dicomweb.password is not None
    assert settings.source.dicomweb.password.get_secret_value() == "hunter2-secret"


def test_unknown_settings_are_refused(monkeypatch):
    with pytest.raises(ValidationError):
        Settings(no_such_setting=1)  # type: ignore[call-arg]
