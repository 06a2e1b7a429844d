"""Shared fixtures: one small corpus per test session (about a second to write)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tftt.synth.corpus import Manifest, write_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("corpus")
    return out, write_corpus(out, seed=0, patients=2)
