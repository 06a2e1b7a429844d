"""scripts/build_rules.py: the committed generated files are up to date, the script is
deterministic, leaves hand-curated files alone and fails clearly on bad input."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tftt.deid.rules import RULES_DIR, Action, Option, TableRow
from tftt.errors import RuleError

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build_rules.py"
REFERENCE = REPO.parent / "shared" / "reference"
GENERATED = [
    "ps3.15-table-e1-1-2024b.json",
    "ps3.15-table-e1-1-2023b.json",
    "table-differences-2023b-2024b.json",
    "safe-private-tags.json",
]

needs_reference = pytest.mark.skipif(
    not (REFERENCE / "README.md").is_file(),
    reason=f"shared reference data not found at {REFERENCE}; cannot rebuild the rules",
)


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_rules", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_rules = _load_script()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_reference
def test_committed_files_are_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "rules"
    out.mkdir()
    shutil.copy(RULES_DIR / "README.md", out / "README.md")
    sentinel = b'{"hand": "curated"}\n'
    (out / "keep-list.json").write_bytes(sentinel)

    result = _run("--reference", str(REFERENCE), "--out", str(out))
    assert result.returncode == 0, result.stderr

    stale = [
        name
        for name in [*GENERATED, "README.md"]
        if (out / name).read_bytes() != (RULES_DIR / name).read_bytes()
    ]
    assert not stale, f"run `python3 scripts/build_rules.py` and commit: {stale} are stale"
    assert (out / "keep-list.json").read_bytes() == sentinel
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*GENERATED, "README.md", "keep-list.json"]
    )


@needs_reference
def test_build_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    build_rules.build(REFERENCE, first)
    build_rules.build(REFERENCE, second)
    for name in GENERATED:
        data = (first / name).read_bytes()
        assert data == (second / name).read_bytes()
        assert data.endswith(b"}\n") and data.isascii()
    assert not (first / "README.md").exists()  # only rewritten where it exists


def test_missing_reference_fails_with_a_clear_message(tmp_path: Path) -> None:
    result = _run("--reference", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "reference README not found" in result.stderr
    assert not (tmp_path / "out").exists()


@needs_reference
def test_reference_without_commit_is_refused(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    for source in REFERENCE.rglob("*"):
        if source.is_file():
            target = reference / source.relative_to(REFERENCE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    readme = reference / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace("commit", "revision"))
    with pytest.raises(RuleError, match="names no commit"):
        build_rules.build(reference, tmp_path / "out")


def test_normalize_tag() -> None:
    assert build_rules._normalize_tag("(0008,0050)") == "0008,0050"
    assert build_rules._normalize_tag("(50XX,XXXX)") == "50xx,xxxx"
    assert build_rules._normalize_tag(" (60xx,4000) ") == "60xx,4000"
    assert build_rules._normalize_tag("(300a,067c)") == "300A,067C"
    with pytest.raises(RuleError, match="not a tag"):
        build_rules._normalize_tag("(GGGG,EEEE) WHERE GGGG IS ODD")


def test_private_row_becomes_eight_odd_group_rows() -> None:
    rows = build_rules._expand(
        "(gggg,eeee) where gggg is odd",
        "Private Attributes",
        "N",
        "X",
        {"rtnSafePrivOpt": "C"},
        None,
    )
    assert [row.tag for row in rows] == [f"xxx{d},xxxx" for d in "13579BDF"]
    assert all(row.options == {Option.RETAIN_SAFE_PRIVATE: Action.CLEAN} for row in rows)


def test_unknown_action_code_is_refused() -> None:
    with pytest.raises(RuleError, match="0010,0010"):
        build_rules._expand("(0010,0010)", "Patient's Name", "Y", "Q", {}, None)
    with pytest.raises(RuleError, match="Y or N"):
        build_rules._expand("(0010,0010)", "Patient's Name", "maybe", "Z", {}, None)


def _row(tag: str, **options: str) -> TableRow:
    return TableRow(
        tag=tag,
        name="Station AE Title",
        in_std_comp_iod=False,
        basic=Action.REMOVE,
        options={Option(k): Action(v) for k, v in options.items()},
    )


def test_duplicate_rows_merge_keep_and_clean_into_clean() -> None:
    rows, notes = build_rules._merge_duplicates(
        [_row("0040,0241", rtnDevIdOpt="K"), _row("0008,0055"), _row("0040,0241", rtnDevIdOpt="C")]
    )
    assert [row.tag for row in rows] == ["0008,0055", "0040,0241"]
    assert rows[1].options == {Option.RETAIN_DEVICE_IDENTITY: Action.CLEAN}
    assert notes == ["0040,0241 rtnDevIdOpt K and C -> C"]


def test_conflicting_duplicate_rows_are_refused() -> None:
    with pytest.raises(RuleError, match="twice"):
        build_rules._merge_duplicates(
            [_row("0040,0241", rtnDevIdOpt="K"), _row("0040,0241", rtnDevIdOpt="X")]
        )
    with pytest.raises(RuleError, match="twice"):
        build_rules._merge_duplicates([_row("0040,0241", rtnDevIdOpt="K"), _row("0040,0241")])


def test_readme_section_needs_its_markers() -> None:
    text = f"intro\n{build_rules.README_BEGIN}\nold\n{build_rules.README_END}\nend\n"
    replaced = build_rules._replace_readme_section(text, "new")
    assert replaced == f"intro\n{build_rules.README_BEGIN}\nnew\n{build_rules.README_END}\nend\n"
    with pytest.raises(RuleError, match="markers"):
        build_rules._replace_readme_section("no markers here", "new")
