"""Sources and targets by name, built from :class:`~tftt.settings.Settings`.

Built in:

- sources: ``dicomweb`` (``settings.source.dicomweb``), ``dimse`` (``settings.source.dimse``)
  and ``folder`` (``settings.source.folder``); :func:`make_source` picks
  ``settings.source.kind``.
- targets: ``dicomweb`` (the teaching archive, ``settings.publish.archive``) and ``dimse``
  (``settings.publish.dimse``).

Other packages add theirs with :func:`register_source` / :func:`register_target` (for example
the publication targets of ``tftt.publish``).
"""

from __future__ import annotations

from collections.abc import Callable

from tftt.errors import ConfigurationError
from tftt.pacs.base import Source, Target
from tftt.pacs.dicomweb import DicomwebClient
from tftt.pacs.dimse import DimseClient
from tftt.pacs.folder import FolderSource
from tftt.settings import Settings

SourceFactory = Callable[[Settings], Source]
TargetFactory = Callable[[Settings], Target]


def _dicomweb_source(settings: Settings) -> Source:
    if not settings.source.dicomweb.url:
        raise ConfigurationError("source.dicomweb.url is not set")
    return DicomwebClient(settings.source.dicomweb, name="dicomweb")


def _dimse_source(settings: Settings) -> Source:
    return DimseClient(settings.source.dimse, name="dimse")


def _folder_source(settings: Settings) -> Source:
    folder = settings.source.folder or settings.data_dir / "import"  # the embedded default
    folder.mkdir(parents=True, exist_ok=True)
    return FolderSource(folder, link=settings.source.folder_link, name="folder")


def _dicomweb_target(settings: Settings) -> Target:
    if not settings.publish.archive.url:
        raise ConfigurationError("publish.archive.url is not set")
    return DicomwebClient(settings.publish.archive, name="dicomweb")


def _dimse_target(settings: Settings) -> Target:
    if settings.publish.dimse is None:
        raise ConfigurationError("no DIMSE archive is configured (publish.dimse)")
    return DimseClient(settings.publish.dimse, name="dimse")


_SOURCES: dict[str, SourceFactory] = {
    "dicomweb": _dicomweb_source,
    "dimse": _dimse_source,
    "folder": _folder_source,
}
_TARGETS: dict[str, TargetFactory] = {
    "dicomweb": _dicomweb_target,
    "dimse": _dimse_target,
}


def register_source(name: str, factory: SourceFactory) -> None:
    """Add (or replace) a source kind."""
    _SOURCES[name] = factory


def register_target(name: str, factory: TargetFactory) -> None:
    """Add (or replace) a target kind."""
    _TARGETS[name] = factory


def source_names() -> tuple[str, ...]:
    return tuple(sorted(_SOURCES))


def target_names() -> tuple[str, ...]:
    return tuple(sorted(_TARGETS))


def make_source(settings: Settings) -> Source:
    """The source named by ``settings.source.kind``.

    Raises:
        ConfigurationError: unknown kind, or its section is incomplete.
    """
    factory = _SOURCES.get(str(settings.source.kind))
    if factory is None:
        raise ConfigurationError(f"unknown source kind {str(settings.source.kind)!r}")
    return factory(settings)


def make_target(name: str, settings: Settings) -> Target:
    """The target called ``name``.

    Raises:
        ConfigurationError: unknown name, or its section is incomplete.
    """
    factory = _TARGETS.get(name)
    if factory is None:
        raise ConfigurationError(f"unknown target {name!r}")
    return factory(settings)
