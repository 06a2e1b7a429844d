"""The headless path (``tftt deidentify``) over a synthetic corpus with planted canaries."""

import json
import logging
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from tftt.cli import app
from tftt.deid.uids import map_uid
from tftt.headless import build_pipeline, run_headless
from tftt.pixels.codecs import decode_frames
from tftt.pixels.ocr import residual_text
from tftt.pixels.stage import make_pixel_stage
from tftt.settings import Settings
from tftt.synth.corpus import Manifest, write_corpus

KEY = b"headless-test-key-0123456789abcd"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Manifest]:
    root = tmp_path_factory.mktemp("corpus")
    manifest = write_corpus(root / "src", seed=5, patients=2)
    return root, manifest


@pytest.fixture(scope="module")
def result(corpus):
    root, manifest = corpus
    settings = Settings(data_dir=root / "data")
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    summary = run_headless(root / "src", root / "out", root / "q", pipeline, workers=1)
    return root, manifest, summary


def _canaries(manifest: Manifest) -> list[bytes]:
    values = manifest.canaries().second_pass()
    return sorted({v.encode() for v in values if len(v) >= 4})


def test_every_input_is_accounted_for(result):
    root, _manifest, summary = result
    inputs = sum(1 for p in (root / "src").rglob("*") if p.is_file())
    assert summary.inputs == inputs
    assert summary.balanced
    outputs = list((root / "out").iterdir())
    assert len(outputs) == summary.written
    records = list((root / "q").glob("*.json"))
    # identical inputs share one quarantine record, so records can only be fewer
    assert 0 < len(records) <= summary.quarantined_total


def test_no_canary_survives_anywhere_in_the_output(result):
    root, manifest, _ = result
    needles = _canaries(manifest)
    assert needles
    for path in (root / "out").iterdir():
        data = path.read_bytes().lower()
        for needle in needles:
            assert needle.lower() not in data, (path.name, "canary found")
        assert needle.lower() not in path.name.lower().encode()


def test_outputs_are_named_by_their_new_sop_uid_and_marked(result):
    root, _, _ = result
    for path in (root / "out").iterdir():
        ds = pydicom.dcmread(path)
        assert path.name == f"{ds.SOPInstanceUID}.dcm"
        assert ds.SOPInstanceUID.startswith("2.25.")
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_plain_images_are_written_and_hostile_files_never_crash(result):
    root, _manifest, summary = result
    written_kinds = set()
    for path in (root / "out").iterdir():
        written_kinds.add(str(pydicom.dcmread(path, stop_before_pixels=True).Modality))
    assert {"CT", "MR"} <= written_kinds
    codes = set(summary.quarantined)
    assert "not-dicom" in codes
    assert "unsupported-transfer-syntax" in codes
    assert "missing-pixel-data" in codes or "truncated-pixel-data" in codes
    # burned-in images come out cleaned or are quarantined with a pixel reason, never raw
    assert summary.pixels_cleaned >= 1


def test_burned_in_boxes_are_black_in_every_frame_of_cleaned_outputs(result):
    root, manifest, _ = result
    checked = 0
    for entry in manifest.select(outcome="burned-in"):
        path = root / "out" / f"{map_uid(KEY, entry.sop_instance_uid)}.dcm"
        if not path.exists():
            continue  # quarantined (residual text): never published, checked elsewhere
        ds = pydicom.dcmread(path)
        assert ds.BurnedInAnnotation == "NO"
        assert "113101" in {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
        frames = decode_frames(ds).frames
        black = frames.max() if ds.PhotometricInterpretation == "MONOCHROME1" else frames.min()
        for box in entry.burned_in:
            region = frames[list(box.frames)] if box.frames else frames
            inside = region[:, box.y : box.y + box.height, box.x : box.x + box.width]
            # the text (not necessarily the whole margin of the drawn box) is black ...
            assert (inside == black).mean() > 0.5, (entry.kind, "text box not blacked out")
            # ... and an independent OCR pass over the box reads nothing there
            left = residual_text(region[:, box.y : box.y + box.height, box.x : box.x + box.width], [])
            assert left == [], (entry.kind, "text still readable")
        checked += 1
    assert checked >= 4


def test_quarantine_keeps_the_bytes_and_a_reason(result):
    root, _, _ = result
    for record_path in (root / "q").glob("*.json"):
        record = json.loads(record_path.read_text())
        assert record["code"] and record["stage"]
        data = (root / "q" / f"{record['sha256']}.bin").read_bytes()
        assert len(data) == record["size"]


def test_two_workers_give_the_same_bytes(result, tmp_path):
    root, _, summary = result
    settings = Settings(data_dir=tmp_path / "data")
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    parallel = run_headless(root / "src", tmp_path / "out", tmp_path / "q", pipeline, workers=2)
    assert parallel.written == summary.written
    assert parallel.quarantined == summary.quarantined
    for path in (root / "out").iterdir():
        assert (tmp_path / "out" / path.name).read_bytes() == path.read_bytes()


def test_rerun_into_the_same_folder_is_idempotent(result):
    root, _, summary = result
    settings = Settings(data_dir=root / "data")
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    again = run_headless(root / "src", root / "out", root / "q", pipeline)
    assert again.written == 0
    assert again.already_present == summary.written
    assert again.balanced


def test_cli_prints_counts_and_leaks_nothing(corpus, tmp_path, monkeypatch, caplog):
    root, manifest = corpus
    monkeypatch.setenv("TFTT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TFTT_DEID__OCR", "false")
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    outcome = runner.invoke(app, ["deidentify", str(root / "src"), str(tmp_path / "out"),
                                  "--quarantine", str(tmp_path / "q")])
    assert outcome.exit_code == 0, outcome.output
    assert "accounted:    yes" in outcome.output
    # without OCR, risky images with no device rule are quarantined, never passed through
    assert "burned-in-unchecked" in outcome.output
    text = (outcome.output + caplog.text).lower()
    for needle in _canaries(manifest):
        assert needle.decode().lower() not in text
    key_file = tmp_path / "data" / "secret.key"
    assert key_file.stat().st_mode & 0o077 == 0
