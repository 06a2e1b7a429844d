"""``tftt verify``, ``tftt synth`` and ``tftt deidentify`` through the command line."""

from pathlib import Path

from typer.testing import CliRunner

from tftt.cli import app
from tftt.deid.engine import DeidContext, compile_profile, deidentify, serialize
from tftt.deid.rules import load_profile
from tftt.synth.canaries import make_identity
from tftt.synth.studies import ct_series
from tftt.synth.transfer import encode


def test_verify_accepts_a_deidentified_file_and_rejects_the_original(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TFTT_DATA_DIR", str(tmp_path / "data"))
    who = make_identity(51)
    obj = ct_series(who, slices=1)[0]
    original = tmp_path / "original.dcm"
    original.write_bytes(encode(obj.dataset))
    context = DeidContext(rules=compile_profile(load_profile("second-pass")), key=b"v" * 32)
    first = DeidContext(rules=compile_profile(load_profile("first-pass")), key=b"v" * 32)
    result = deidentify(deidentify(obj.dataset, first).dataset, context)
    output = tmp_path / result.file_name
    output.write_bytes(serialize(result.dataset))
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", str(original), str(output)])
    assert ok.exit_code == 0, ok.output
    leaked = tmp_path / "leaked.dcm"
    leaked.write_bytes(original.read_bytes())
    bad = runner.invoke(app, ["verify", str(original), str(leaked)])
    assert bad.exit_code == 1
    assert "FAILED (residual-phi)" in bad.output
    assert who.family_name.upper() not in bad.output.upper()  # findings name attributes, not values


def test_synth_writes_a_corpus_with_a_manifest(tmp_path: Path):
    outcome = CliRunner().invoke(app, ["synth", str(tmp_path / "out"), "--seed", "2", "--patients", "1"])
    assert outcome.exit_code == 0, outcome.output
    assert (tmp_path / "out" / "manifest.json").exists()
    assert len([p for p in (tmp_path / "out").rglob("*") if p.is_file()]) > 10


def test_deidentify_takes_its_processes_from_the_settings_unless_given(tmp_path: Path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for number, obj in enumerate(ct_series(make_identity(81), slices=2, size=32)):
        (src / f"f{number}").write_bytes(encode(obj.dataset))
    monkeypatch.setenv("TFTT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TFTT_DEID__WORKERS", "2")
    runner = CliRunner()
    by_settings = runner.invoke(app, ["deidentify", str(src), str(tmp_path / "a"),
                                      "--quarantine", str(tmp_path / "qa")])
    assert by_settings.exit_code == 0, by_settings.output
    assert "processes:    2" in by_settings.output and "written:      2" in by_settings.output
    given = runner.invoke(app, ["deidentify", str(src), str(tmp_path / "b"), "--quarantine", str(tmp_path / "qb"),
                                "--workers", "1"])
    assert given.exit_code == 0 and "processes:    1" in given.output
