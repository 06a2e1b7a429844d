"""Publication targets by name, registered by import path (loaded only when used).

Each entry names a factory ``module:attribute`` that takes the :class:`~tftt.settings.Settings`
and returns a :class:`~tftt.publish.base.PublicationTarget`. A target module that needs an
optional dependency fails when its target is made, not when TFTT starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from tftt.errors import ConfigurationError
from tftt.publish.base import PublicationTarget
from tftt.settings import Settings

TargetFactory = Callable[[Settings], PublicationTarget]

_TARGETS: dict[str, str] = {
    "folder": "tftt.publish.folder:FolderTarget.from_settings",
    "dicomweb": "tftt.publish.dicomweb:DicomwebArchiveTarget.from_settings",
    "dimse": "tftt.publish.dimse:DimseArchiveTarget.from_settings",
    "mirc": "tftt.publish.mirc:MircTarget.from_settings",
}


def register_target(name: str, factory_path: str) -> None:
    """Register (or replace) the factory of target ``name`` as ``"module:attribute[.attr]"``.

    Raises:
        ConfigurationError: the name is not a short lowercase identifier, or the path has no
            ``module:attribute`` form.
    """
    if not name or len(name) > 32 or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigurationError("a target name is 1-32 letters, digits, '-' or '_'")
    if name != name.lower():
        raise ConfigurationError("a target name is lowercase")
    module, _, attribute = factory_path.partition(":")
    if not module or not attribute:
        raise ConfigurationError(f"target {name!r}: factory path must be 'module:attribute'")
    _TARGETS[name] = factory_path


def available_targets() -> list[str]:
    """The registered target names, sorted."""
    return sorted(_TARGETS)


def _load_factory(name: str) -> TargetFactory:
    module_name, _, attribute = _TARGETS[name].partition(":")
    obj: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigurationError(f"target {name!r}: factory is not callable")
    return cast(TargetFactory, obj)


def make_target(name: str, settings: Settings) -> PublicationTarget:
    """The target called ``name``, configured from ``settings``.

    Raises:
        ConfigurationError: no such target, its module cannot be imported, or its settings are
            incomplete.
    """
    if name not in _TARGETS:
        known = ", ".join(available_targets())
        raise ConfigurationError(f"unknown publication target {name!r} (known: {known})")
    try:
        factory = _load_factory(name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"target {name!r} cannot be loaded: {exc}") from exc
    target = factory(settings)
    if not isinstance(target, PublicationTarget) or target.name != name:
        raise ConfigurationError(f"target {name!r}: factory returned something else")
    return target


def make_targets(settings: Settings) -> list[PublicationTarget]:
    """The targets named in ``settings.publish.targets``, in that order.

    Raises:
        ConfigurationError: as :func:`make_target`, or a name appears twice.
    """
    names = list(settings.publish.targets)
    if len(set(names)) != len(names):
        raise ConfigurationError("a publication target is listed twice")
    return [make_target(name, settings) for name in names]
