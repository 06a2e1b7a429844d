"""What every case step needs, built once per process from the settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine

from tftt.deid.pipeline import Pipeline
from tftt.headless import build_pipeline
from tftt.observability import quiet_libraries
from tftt.pixels.stage import AutomaticCleaner, make_pixel_stage
from tftt.settings import Settings
from tftt.store.db import init_db, make_engine
from tftt.store.keys import load_or_create_key
from tftt.store.workspace import CaseWorkspace


@dataclass(frozen=True)
class CaseRuntime:
    settings: Settings
    engine: Engine
    key: bytes
    pipeline: Pipeline
    cleaner: AutomaticCleaner

    def workspace(self, case_id: str) -> CaseWorkspace:
        return CaseWorkspace.for_settings(self.settings, case_id).ensure()


_CACHE: dict[str, CaseRuntime] = {}


def _fingerprint(value: Any) -> Any:
    """The settings as plain data with secrets revealed (only used as an in-memory cache key)."""
    if isinstance(value, SecretStr):
        return hashlib.sha256(value.get_secret_value().encode()).hexdigest()
    if isinstance(value, dict):
        return {k: _fingerprint(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_fingerprint(v) for v in value]
    return str(value) if value is not None else None


def _build(settings: Settings) -> CaseRuntime:
    quiet_libraries()
    engine = make_engine(settings)
    init_db(engine)
    key = load_or_create_key(settings)
    stage = make_pixel_stage(settings)
    assert isinstance(stage, AutomaticCleaner)
    return CaseRuntime(settings=settings, engine=engine, key=key,
                       pipeline=build_pipeline(settings, key, stage), cleaner=stage)


def runtime(settings: Settings | None = None) -> CaseRuntime:
    """The runtime for ``settings`` (default: from the environment), cached per process.

    Raises:
        ConfigurationError: the key or database is misconfigured.
        RuleError: a rules file is missing or invalid.
    """
    settings = settings or Settings()
    fingerprint = json.dumps(_fingerprint(settings.model_dump()), sort_keys=True)
    found = _CACHE.get(fingerprint)
    if found is None:
        found = _CACHE[fingerprint] = _build(settings)
    return found
