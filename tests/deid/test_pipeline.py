"""The headless pipeline's results are pinned: speed work must not change a single byte.

The digest below was computed before the performance work on the verification and engine
(caching of needle sets and rule decisions), from the synthetic corpus of
``write_corpus(seed=5, patients=2)`` (hostile inputs included) run through
:func:`~tftt.deid.pipeline.process_bytes` with one pipeline, so that caches carried from one
file (and one patient) to the next are exercised. It covers every output's bytes and name and
every quarantine's stage, code, message and findings. Regenerate it only for a deliberate
change of output, never to make a speed change pass.
"""

import hashlib
from pathlib import Path

import pytest

from tftt.deid.pipeline import process_bytes
from tftt.headless import build_pipeline, iter_inputs
from tftt.pixels.stage import make_pixel_stage
from tftt.settings import DeidSettings, Settings
from tftt.synth.corpus import write_corpus

KEY = b"pinned-output-key-0123456789abcd"
PINNED = "a5ce969da20a53b08cdb84a99fd298e0c8c4b5eaa74153daeb3b566ec6a032ca"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pinned")
    write_corpus(root / "src", seed=5, patients=2)
    return root


def _digest(root: Path) -> tuple[str, int, int]:
    settings = Settings(data_dir=root / "data", deid=DeidSettings(ocr=False))
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    digest = hashlib.sha256()
    written = quarantined = 0
    for path in iter_inputs(root / "src"):
        if path.name == "manifest.json":
            continue
        outcome = process_bytes(path.read_bytes(), pipeline)
        written += outcome.ok
        quarantined += not outcome.ok
        record = (
            f"{path.relative_to(root / 'src')}|{outcome.ok}|{outcome.stage}|{outcome.code}|"
            f"{outcome.message}|{outcome.file_name}|{outcome.findings}|{outcome.pixels_cleaned}|"
        )
        digest.update(record.encode())
        digest.update(hashlib.sha256(outcome.output or b"").digest())
    return digest.hexdigest(), written, quarantined


def test_outputs_and_quarantine_reasons_are_unchanged(corpus):
    digest, written, quarantined = _digest(corpus)
    assert written > 0 and quarantined > 0
    assert digest == PINNED


def test_a_second_run_with_warm_caches_gives_the_same_digest(corpus):
    assert _digest(corpus)[0] == PINNED
