from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tftt.synth.cli import app
from tftt.synth.corpus import Manifest


def test_synth_command_writes_a_corpus(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, [str(tmp_path), "--seed", "3", "--patients", "1", "--no-hostile"]
    )
    assert result.exit_code == 0, result.output
    manifest = Manifest.load(tmp_path)
    assert manifest.seed == 3 and len(manifest.patients) == 1
    assert not manifest.select(outcome="hostile")
    assert f"{len(manifest.files)} files" in result.output


def test_synth_command_rejects_bad_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [str(tmp_path), "--patients", "0"])
    assert result.exit_code != 0
    assert not (tmp_path / "manifest.json").exists()
