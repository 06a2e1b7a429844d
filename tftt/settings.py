"""The one settings object of TFTT (pydantic-settings, ``TFTT_`` prefix).

Built once at an entry point (CLI, service, flow) and passed down; nothing else reads the
environment. Nested sections use ``__`` in environment names, e.g.
``TFTT_SOURCE__DICOMWEB__URL``. Secrets are :class:`~pydantic.SecretStr` and never enter URLs,
logs or reprs.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DicomwebSettings(_Section):
    """A DICOMweb endpoint (source PACS or teaching archive)."""

    url: str = Field("", description="Base URL of the DICOMweb root, e.g. http://host:8042/dicom-web")
    username: str | None = None
    password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    timeout_seconds: float = 60.0
    stow_batch_size: int = 50
    rest_url: str | None = Field(
        None, description="Orthanc REST root (for take-down and /changes), if the server is Orthanc"
    )


class DimseSettings(_Section):
    """A DIMSE peer, and TFTT's own application entity."""

    host: str = "127.0.0.1"
    port: int = 4242
    called_aet: str = "ORTHANC"
    calling_aet: str = "TFTT"
    scp_port: int = 11113
    timeout_seconds: float = 60.0
    scp_host: str = Field(
        "127.0.0.1",
        description="Address of TFTT's C-STORE SCP during a C-MOVE (0.0.0.0 for a remote PACS)",
    )
    retrieve_method: Literal["c-get", "c-move"] = Field(
        "c-get", description="How a DIMSE source retrieves: C-GET, or C-MOVE to TFTT's own SCP"
    )


class SourceKind(StrEnum):
    FOLDER = "folder"
    DICOMWEB = "dicomweb"
    DIMSE = "dimse"


class SourceSettings(_Section):
    kind: SourceKind = SourceKind.FOLDER
    folder: Path | None = None
    folder_link: bool = Field(
        False, description="Hard-link imported files instead of copying them (same filesystem)"
    )
    dicomweb: DicomwebSettings = DicomwebSettings()
    dimse: DimseSettings = DimseSettings()


class MircSettings(_Section):
    """An RSNA MIRC Teaching File System storage service."""

    url: str = ""
    ssid: str = "ss1"
    username: str | None = None
    password: SecretStr | None = None
    timeout_seconds: float = 120.0
    public_default: bool = Field(
        False,
        description="Publish cases public (read by anyone) unless a case's metadata has 'public'",
    )


class PublishMode(StrEnum):
    IMMEDIATE = "immediate"
    NIGHTLY = "nightly"


class PublishSettings(_Section):
    mode: PublishMode = PublishMode.IMMEDIATE
    targets: tuple[str, ...] = ("folder",)
    folder: Path | None = Field(None, description="Case-folder target root; default <data>/published")
    archive: DicomwebSettings = DicomwebSettings()
    dimse: DimseSettings | None = Field(
        None,
        description="Teaching archive reached by C-STORE (target 'dimse'); take-down needs archive.rest_url",
    )
    mirc: MircSettings = MircSettings()
    nightly_cron: str = "0 2 * * *"


class DeidSettings(_Section):
    first_pass_profile: str = "first-pass"
    second_pass_profile: str = "second-pass"
    retain_safe_private: bool = False
    shift_dates: bool = Field(
        False, description="Shift dates by a keyed per-patient offset instead of keeping the year"
    )
    rules_dir: Path | None = Field(None, description="Override the shipped anonymization_rules/")
    site_overrides: Path | None = None
    ocr: bool = True
    workers: int = Field(1, ge=1, description="Processes of `tftt deidentify` (its --workers overrides)")


class ReviewSettings(_Section):
    timeout_days: float = 14.0
    mode: Literal["suspend", "pause"] = "suspend"


class WorkspaceSettings(_Section):
    keep_identified_days: float = Field(
        7.0,
        ge=0,
        description="Days a finished case keeps its identified files (incoming/, first_pass/, "
        "previews/); the nightly run deletes them after that. 0: at the next nightly run",
    )


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8765
    webhook_hmac_secret: SecretStr | None = None
    webhook_bearer_token: SecretStr | None = None
    session_secret: SecretStr | None = None
    reviewers: dict[str, SecretStr] = Field(
        default_factory=dict, description="username -> argon2 hash of the password"
    )
    session_max_age_seconds: int = Field(
        12 * 3600, gt=0, description="A reviewer's login lasts this long"
    )
    session_cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only (set it behind TLS)"
    )
    login_max_failures_per_user: int = Field(
        5, ge=1, description="Failed logins per username within the window before refusing"
    )
    login_max_failures_per_address: int = Field(
        20, ge=1, description="Failed logins per client address within the window before refusing"
    )
    login_window_seconds: float = Field(900.0, gt=0, description="Window of the login limits")
    login_tracked_keys: int = Field(
        10_000, ge=10, description="Usernames/addresses remembered by the login limiter (bound)"
    )
    prefect_ui_url: str | None = Field(
        None, description="Prefect UI root for run links; default from Prefect's own settings"
    )


class Settings(BaseSettings):
    """All of TFTT's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="TFTT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(Path("tftt-data"), description="Case workspaces, key file, database")
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL; default an SQLite file in the data directory"
    )
    secret_key: SecretStr | None = Field(
        None, description="Site secret for keyed UID/pseudonym hashing; default a 0600 key file"
    )
    source: SourceSettings = SourceSettings()
    publish: PublishSettings = PublishSettings()
    deid: DeidSettings = DeidSettings()
    review: ReviewSettings = ReviewSettings()
    workspace: WorkspaceSettings = WorkspaceSettings()
    web: WebSettings = WebSettings()

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def cases_dir(self) -> Path:
        return self.data_dir / "cases"

    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'tftt.db').resolve()}"
