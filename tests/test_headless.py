"""The headless path (``tftt deidentify``) over a synthetic corpus with planted canaries."""

import json
import logging
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from tftt import headless
from tftt.cli import app
from tftt.deid.uids import map_uid
from tftt.errors import ConfigurationError
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


# ----- the settings' options reach the verifier as well as the engine --------------------------


def _one_ct(seed: int) -> tuple[pydicom.Dataset, list[bytes]]:
    from tftt.synth.canaries import canary_strings, make_identity
    from tftt.synth.studies import ct_series

    who = make_identity(seed)
    ds = ct_series(who, study=1, series=1, slices=1, size=32)[0].dataset
    canaries = sorted({c.encode() for c in canary_strings(who).second_pass() if len(c) >= 4})
    return ds, canaries


def _process(ds: pydicom.Dataset, settings: Settings):
    from tftt.deid.pipeline import process_bytes
    from tftt.synth.transfer import encode

    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    outcome = process_bytes(encode(ds), pipeline)
    assert outcome.ok, (outcome.stage, outcome.code, outcome.findings)
    assert outcome.output is not None
    return outcome.output, pydicom.dcmread(__import__("io").BytesIO(outcome.output))


def test_shifted_dates_pass_verification(tmp_path):
    """Regression: with ``deid.shift_dates`` the verifier still demanded year-only dates, so
    every dated file was quarantined."""
    from tftt.settings import DeidSettings

    ds, canaries = _one_ct(41)
    original = str(ds.StudyDate)
    output, out = _process(ds, Settings(data_dir=tmp_path, deid=DeidSettings(shift_dates=True, ocr=False)))
    shifted = str(out.StudyDate)
    assert len(shifted) == 8 and shifted != original and not shifted.endswith("0101")
    assert not any(c.lower() in output.lower() for c in canaries)


def test_safe_private_tags_are_kept_when_the_option_is_on(tmp_path):
    """Regression: ``deid.retain_safe_private`` kept the listed tags, and the verifier, still
    reading the profile's own 'remove', quarantined the file."""
    from tftt.settings import DeidSettings

    ds, canaries = _one_ct(42)
    ds[0x00091004].value = "LIGHTSPEED16"  # GEMS_IDEN_01 ProductID, listed as safe (synth plants an ID)
    listed = ds.private_block(0x2001, "BrainWave: 1.2.840.113819.3", create=True)
    listed.add_new(0x31, "IS", "4")  # NumberOfObjectsAveraged [CTP]: listed as safe
    other = ds.private_block(0x0009, "ACME TFTT TEST", create=True)
    other.add_new(0x01, "LO", "ANY VENDOR TEXT")
    output, out = _process(ds, Settings(data_dir=tmp_path, deid=DeidSettings(retain_safe_private=True, ocr=False)))
    kept = out.private_block(0x2001, "BrainWave: 1.2.840.113819.3")
    assert str(kept[0x31].value) == "4"
    assert out.private_block(0x0009, "GEMS_IDEN_01")[0x04].value == "LIGHTSPEED16"
    assert b"ANY VENDOR TEXT" not in output and b"ACME TFTT TEST" not in output
    assert not any(c.lower() in output.lower() for c in canaries)
    _, default = _process(ds, Settings(data_dir=tmp_path, deid=DeidSettings(ocr=False)))
    assert not any(tag.is_private for tag in default.keys())


def test_a_site_override_is_honoured_by_the_verifier(tmp_path):
    """Regression: site overrides changed the engine's actions but not the verifier's reading."""
    from tftt.settings import DeidSettings

    overrides = tmp_path / "site-overrides.json"
    overrides.write_text(json.dumps({
        "kind": "site-overrides",
        "provenance": {"source": "test", "notes": "keep a clean study description whole"},
        "overrides": [{"keyword": "StudyDescription", "action": "C", "descriptor_policy": "checked",
                       "reason": "teaching value"}]}))
    ds, canaries = _one_ct(43)
    ds.StudyDescription = "CT THORAX ANGIOGRAPHY PROTOCOL ZETA"
    output, out = _process(ds, Settings(data_dir=tmp_path, deid=DeidSettings(site_overrides=overrides, ocr=False)))
    assert out.StudyDescription == "CT THORAX ANGIOGRAPHY PROTOCOL ZETA"
    assert not any(c.lower() in output.lower() for c in canaries)


def test_a_safe_listed_private_tag_holding_the_patients_id_is_quarantined(tmp_path):
    """Safe-listed means safe by definition, not by content: the synthetic CT plants the
    patient's ID in GEMS_IDEN_01 ProductID (0009,xx04), which the list keeps; verification
    finds it and the file goes to quarantine."""
    from tftt.deid.pipeline import process_bytes
    from tftt.settings import DeidSettings
    from tftt.synth.transfer import encode

    ds, _ = _one_ct(44)
    settings = Settings(data_dir=tmp_path, deid=DeidSettings(retain_safe_private=True, ocr=False))
    outcome = process_bytes(encode(ds), build_pipeline(settings, KEY, make_pixel_stage(settings)))
    assert not outcome.ok and outcome.code == "residual-phi"
    assert outcome.findings == ("(0009,1004) private: contains harvested identifier",)


def test_duplicates_and_unreadable_inputs_keep_their_order_and_count(result, tmp_path):
    root, _, _ = result
    src = tmp_path / "src"
    src.mkdir()
    original = src / "ct"
    for path in sorted((root / "src").rglob("*")):
        if path.is_file() and path.stat().st_size < 2_000_000:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            if ds.get("Modality") == "CT" and ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian:
                original.write_bytes(path.read_bytes())
                break
    (src / "copy").write_bytes(original.read_bytes())  # same bytes: already present
    changed = bytearray(original.read_bytes())
    changed[-1] ^= 0xFF  # same SOP Instance UID, other pixels: a conflicting duplicate
    (src / "conflict").write_bytes(bytes(changed))
    (src / "folder").mkdir()  # listed, but reading it fails
    paths = [original, src / "folder", src / "copy", src / "gone", src / "conflict"]
    settings = Settings(data_dir=tmp_path / "data")
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    results = [headless._handle(path, src, tmp_path / "out", tmp_path / "q", pipeline) for path in paths]
    assert [(r.status, r.code) for r in results] == [
        ("written", "ok"),
        ("quarantined", "unreadable"),
        ("present", "ok"),
        ("quarantined", "unreadable"),
        ("quarantined", "duplicate-sop-instance"),
    ]
    assert len(list((tmp_path / "out").iterdir())) == 1



# ----- the I/O around process_bytes: inputs found, outputs named and created safely -------------


def _walked(src: Path) -> list[Path]:
    """What iter_inputs gave before it read directory entries' types (a sorted os.walk)."""
    import os

    found = []
    for root, dirs, names in os.walk(src):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return found


def test_inputs_are_the_regular_files_in_the_order_of_a_sorted_walk(tmp_path):
    import os

    src = tmp_path / "src"
    for folder in ("b", "a/z", "a/B", "a/B/deep", "empty"):
        (src / folder).mkdir(parents=True)
    for name in ("x", "a/1", "a/10", "a/2", "a/Z", "a/z/f", "a/B/f", "a/B/deep/.hidden", "b/f", "A", "_"):
        (src / name).write_bytes(b"x")
    (src / "a" / "link-to-file").symlink_to(src / "x")
    (src / "a" / "link-to-folder").symlink_to(src / "b")
    (src / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(src / "a" / "fifo")
    found = list(headless.iter_inputs(src))
    assert found == _walked(src)
    assert [p.relative_to(src).as_posix() for p in found] == [
        "A", "_", "x", "a/1", "a/10", "a/2", "a/Z", "a/B/f", "a/B/deep/.hidden", "a/z/f", "b/f"]
    assert list(headless.iter_inputs(tmp_path / "missing")) == []


@pytest.mark.parametrize("name", ["2.25.1234.dcm", "1.2.840.10008.1.2.dcm", "1.02.3.dcm"])
def test_an_output_name_is_a_uid_and_dcm(name):
    assert headless._output_name(name) == name


@pytest.mark.parametrize("name", ["../2.25.1.dcm", "2.25.1", "2.25.1.DCM", ".dcm", "2..25.dcm", "2.25.1 .dcm",
                                  "a.dcm", "2.25/1.dcm", "1." + "1" * 63 + ".dcm"])
def test_any_other_output_name_is_refused(name):
    from tftt.errors import UnsupportedInputError

    with pytest.raises(UnsupportedInputError) as caught:
        headless._output_name(name)
    assert caught.value.code == "unsafe-path"


def _replay(monkeypatch, file_name: str, output: bytes) -> None:
    from tftt.deid.pipeline import Outcome, Stage

    monkeypatch.setattr(headless, "process_bytes", lambda data, pipeline: Outcome(
        ok=True, stage=Stage.VERIFY, file_name=file_name, output=output))


def test_a_name_from_the_data_never_writes_outside_dst(tmp_path, monkeypatch):
    """DST is resolved once per run, not per file: the name itself is what keeps a file inside."""
    src, dst, qdir = tmp_path / "src", (tmp_path / "out").resolve(), tmp_path / "q"
    src.mkdir()
    (src / "input").write_bytes(b"input bytes")
    _replay(monkeypatch, "../escaped.dcm", b"output bytes")
    result = headless._handle(src / "input", src, dst, qdir, pipeline=None)  # type: ignore[arg-type]
    assert (result.status, result.code) == ("quarantined", "unsafe-path")
    assert not (tmp_path / "escaped.dcm").exists()
    assert not dst.exists() or list(dst.iterdir()) == []
    record = json.loads(next(qdir.glob("*.json")).read_text())
    assert record["code"] == "unsafe-path" and record["source"] == "input"


def test_a_link_planted_at_an_output_name_is_quarantined_not_followed(tmp_path, monkeypatch):
    src, dst, qdir = tmp_path / "src", tmp_path / "out", tmp_path / "q"
    src.mkdir()
    dst.mkdir()
    (src / "input").write_bytes(b"input bytes")
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    (dst / "2.25.7.dcm").symlink_to(outside)
    _replay(monkeypatch, "2.25.7.dcm", b"output bytes")
    result = headless._handle(src / "input", src, dst, qdir, pipeline=None)  # type: ignore[arg-type]
    assert (result.status, result.code) == ("quarantined", "unsafe-path")
    assert outside.read_bytes() == b"precious"
    assert [p.name for p in dst.iterdir()] == ["2.25.7.dcm"]


def test_written_present_and_conflicting_outputs_leave_no_temporary_files(tmp_path, monkeypatch):
    import stat

    src, dst, qdir = tmp_path / "src", tmp_path / "out", tmp_path / "q"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(name.encode())
    outputs = iter([b"output", b"output", b"other"])
    from tftt.deid.pipeline import Outcome, Stage

    monkeypatch.setattr(headless, "process_bytes", lambda data, pipeline: Outcome(
        ok=True, stage=Stage.VERIFY, file_name="2.25.7.dcm", output=next(outputs)))
    summary = run_headless(src, dst, qdir, pipeline=None)  # type: ignore[arg-type]
    assert (summary.inputs, summary.written, summary.already_present) == (3, 1, 1)
    assert summary.quarantined == {"duplicate-sop-instance": 1} and summary.balanced
    assert [p.name for p in dst.iterdir()] == ["2.25.7.dcm"]
    assert (dst / "2.25.7.dcm").read_bytes() == b"output"
    assert stat.S_IMODE((dst / "2.25.7.dcm").stat().st_mode) == 0o644


def test_a_folder_that_cannot_be_listed_is_recorded_and_the_run_is_not_accounted(tmp_path, monkeypatch):
    """Regression: such a folder was skipped in silence, so its files were missing from every
    count and the run still said every input was accounted for (exit 0)."""
    import os

    src = tmp_path / "src"
    (src / "locked" / "inner").mkdir(parents=True)
    (src / "open").mkdir()
    (src / "open" / "x").write_bytes(b"not dicom")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(headless.os, "scandir", scandir)
    unlisted: list = []
    assert list(headless.iter_inputs(src, unlisted)) == [src / "open" / "x"]
    assert [folder for folder, _ in unlisted] == [src / "locked"]

    settings = Settings(data_dir=tmp_path / "data")
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    summary = run_headless(src, tmp_path / "out", tmp_path / "q", pipeline)
    assert summary.inputs == 1 and summary.quarantined_total == 1 and summary.unlisted_folders == 1
    assert not summary.balanced
    records = [json.loads(p.read_text()) for p in (tmp_path / "q").glob("*.json")]
    assert sorted((r["code"], r["source"]) for r in records) == [("not-dicom", "open/x"),
                                                                 ("unlisted-folder", "locked")]


def test_an_unlisted_source_folder_fails_the_cli(tmp_path, monkeypatch):
    import os

    src = tmp_path / "src"
    src.mkdir()
    real_scandir = os.scandir
    monkeypatch.setattr(headless.os, "scandir",
                        lambda path: (_ for _ in ()).throw(PermissionError(13, "denied"))
                        if Path(path) == src.resolve() else real_scandir(path))
    monkeypatch.setenv("TFTT_DATA_DIR", str(tmp_path / "data"))
    outcome = CliRunner().invoke(app, ["deidentify", str(src), str(tmp_path / "out"),
                                       "--quarantine", str(tmp_path / "q")])
    assert outcome.exit_code == 1, outcome.output
    assert "could not be listed: 1" in outcome.output and "accounted:    NO" in outcome.output


def test_two_unreadable_inputs_keep_a_quarantine_record_each(tmp_path):
    from tftt.store.quarantine import quarantine

    for source in ("a/one", "b/two"):
        quarantine(tmp_path, b"", stage="read", code="unreadable", message="cannot read", source=source)
    records = sorted(json.loads(p.read_text())["source"] for p in tmp_path.glob("*.json"))
    assert records == ["a/one", "b/two"]


def test_two_inputs_with_the_same_bytes_keep_a_quarantine_record_each(tmp_path):
    """Regression: records were named by the content digest alone, so the second copy of a
    quarantined file overwrote the first one's record and its source was lost."""
    from tftt.store.quarantine import quarantine

    for source in ("a/copy", "b/copy"):
        quarantine(tmp_path, b"not dicom", stage="parse", code="not-dicom", message="no", source=source)
    records = sorted(json.loads(p.read_text())["source"] for p in tmp_path.glob("*.json"))
    assert records == ["a/copy", "b/copy"]
    assert len(list(tmp_path.glob("*.bin"))) == 1  # the bytes themselves are kept once
    quarantine(tmp_path, b"not dicom", stage="parse", code="not-dicom", message="no", source="a/copy")
    assert len(list(tmp_path.glob("*.json"))) == 2  # a repeated run writes the same record again


def test_output_and_quarantine_folders_inside_src_are_not_read_as_inputs(tmp_path):
    """Regression: with DST or QDIR inside SRC, the walk reached them after SRC's own files and
    took the outputs and quarantined copies written so far as further inputs."""
    from tftt.settings import DeidSettings
    from tftt.synth.transfer import encode

    src = tmp_path / "src"
    src.mkdir()
    for seed in (51, 52):
        ds, _ = _one_ct(seed)
        (src / f"ct{seed}").write_bytes(encode(ds))
    (src / "junk").write_bytes(b"not dicom at all")
    settings = Settings(data_dir=tmp_path / "data", deid=DeidSettings(ocr=False))
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    for _ in range(2):  # the second run finds both folders full
        summary = run_headless(src, src / "out", src / "q", pipeline)
        assert (summary.inputs, summary.written + summary.already_present, summary.quarantined_total) == (3, 2, 1)
    assert len(list((src / "out").iterdir())) == 2


@pytest.mark.parametrize("which", ["dst", "quarantine"])
def test_the_input_folder_itself_is_refused_as_output_or_quarantine(tmp_path, which):
    src = tmp_path / "src"
    src.mkdir()
    (src / "junk").write_bytes(b"not dicom")
    dst = src if which == "dst" else tmp_path / "out"
    qdir = src if which == "quarantine" else tmp_path / "q"
    with pytest.raises(ConfigurationError, match="must not be the input folder"):
        run_headless(src, dst, qdir, build_pipeline(Settings(data_dir=tmp_path / "data"), KEY, lambda ds: ds))
    assert sorted(p.name for p in src.iterdir()) == ["junk"]  # nothing written
    result = CliRunner().invoke(app, ["deidentify", str(src), str(dst), "--quarantine", str(qdir)],
                                env={"TFTT_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 2 and "output-is-input" in result.output


def test_a_run_collects_cyclic_garbage_less_often_and_restores_the_thresholds(tmp_path, monkeypatch):
    import gc

    src = tmp_path / "src"
    src.mkdir()
    (src / "junk").write_bytes(b"not dicom")
    seen = []
    real = headless.process_bytes

    def spying(data, pipeline):
        seen.append(gc.get_threshold())
        return real(data, pipeline)

    monkeypatch.setattr(headless, "process_bytes", spying)
    before = gc.get_threshold()
    settings = Settings(data_dir=tmp_path / "data")
    run_headless(src, tmp_path / "out", tmp_path / "q", build_pipeline(settings, KEY, make_pixel_stage(settings)))
    assert seen == [headless._BATCH_GC_THRESHOLDS]
    assert gc.get_threshold() == before
