"""scripts/build_pixel_rules.py: CTP's pixel library and burned-in filter as data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scripts import build_pixel_rules as build
from tftt.pixels.pixel_rules import (
    And,
    BurnedInFilter,
    Comparison,
    Constant,
    Method,
    Not,
    Or,
    PixelRules,
    load_burned_in_filter,
    load_pixel_rules,
)

REFERENCE = build.DEFAULT_REFERENCE
needs_reference = pytest.mark.skipif(
    not (REFERENCE / "ctp-scripts" / build.PIXEL_SCRIPT).is_file(),
    reason="../shared/reference (CTP scripts) is not present",
)

PROVENANCE = {
    "source": "test.script",
    "repository": "test",
    "commit": "0" * 40,
    "sha256": "0" * 64,
    "generated_by": "test",
}


def _convert(text: str) -> PixelRules:
    return build.convert_pixel_script(text, build.RulesProvenance(**PROVENANCE))


@needs_reference
def test_committed_rule_files_are_current() -> None:
    outputs = build.build(REFERENCE)
    for name, text in outputs.items():
        committed = (build.DEFAULT_OUT / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} is stale: run python scripts/build_pixel_rules.py"


@needs_reference
def test_every_signature_and_region_of_the_script_is_converted() -> None:
    source = (REFERENCE / "ctp-scripts" / build.PIXEL_SCRIPT).read_text(encoding="utf-8")
    rules = load_pixel_rules().rules
    # counted in the source independently of the converter's own parsing
    assert len(rules) == source.count("{") == source.count("}")
    region_count = len(re.findall(r"\(\s*-?\d+\s*,\s*-?\d+\s*,\s*-?\d+\s*,\s*-?\d+\s*\)", source))
    assert sum(len(rule.regions) for rule in rules) == region_count
    lines = source.splitlines()
    for rule in rules:
        assert "{" in lines[rule.line - 1], rule.id
    assert len({rule.id for rule in rules}) == len(rules)


@needs_reference
def test_provenance_names_the_ctp_commit_and_source_hash() -> None:
    rules = load_pixel_rules()
    readme = (REFERENCE / "README.md").read_text(encoding="utf-8")
    assert rules.provenance.commit in readme
    assert rules.provenance.source == build.PIXEL_SCRIPT
    flt = load_burned_in_filter()
    assert isinstance(flt, BurnedInFilter)
    assert flt.provenance.source == build.FILTER_SCRIPT
    assert flt.provenance.commit == rules.provenance.commit


@needs_reference
def test_filter_script_becomes_a_conjunction_of_its_seven_tests() -> None:
    source = (REFERENCE / "ctp-scripts" / build.FILTER_SCRIPT).read_text(encoding="utf-8")
    condition = load_burned_in_filter().condition
    assert isinstance(condition, And)
    assert len(condition.operands) == source.count("*") + 1
    negated = [part for part in condition.operands if isinstance(part, Not)]
    assert len(negated) == source.count("!")


def test_check_mode_reports_stale_then_current(tmp_path: Path) -> None:
    if not (REFERENCE / "ctp-scripts" / build.PIXEL_SCRIPT).is_file():
        pytest.skip("../shared/reference (CTP scripts) is not present")
    assert build.main(["--check", "--out", str(tmp_path)]) == 1
    assert not any(tmp_path.iterdir())
    assert build.main(["--out", str(tmp_path)]) == 0
    assert build.main(["--check", "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / build.PIXEL_RULES_FILE).read_text(encoding="utf-8"))
    assert PixelRules.model_validate(written) == load_pixel_rules()


def test_precedence_not_binds_tighter_than_and_tighter_than_or() -> None:
    condition = build.parse_condition(
        'Modality.equals("US") + Rows.equals("512") * !Columns.equals("640")'
    )
    assert isinstance(condition, Or)
    first, second = condition.operands
    assert isinstance(first, Comparison) and first.keyword == "Modality"
    assert isinstance(second, And)
    assert isinstance(second.operands[1], Not)


def test_parentheses_tags_spaces_and_constants() -> None:
    condition = build.parse_condition(
        '( [0008,0070].containsIgnoreCase ("GE") + false ) * [6000,0022].matches("Sie.*")'
        " // a comment\n * true"
    )
    assert isinstance(condition, And)
    group, overlay, literal = condition.operands
    assert isinstance(group, Or)
    manufacturer, constant = group.operands
    assert isinstance(manufacturer, Comparison)
    assert manufacturer.tag == "0008,0070" and manufacturer.keyword == "Manufacturer"
    assert manufacturer.method is Method.CONTAINS_IGNORE_CASE and manufacturer.value == "GE"
    assert constant == Constant(value=False)
    assert isinstance(overlay, Comparison) and overlay.tag == "6000,0022"
    assert literal == Constant(value=True)


@pytest.mark.parametrize(
    "condition",
    [
        'Rows.greaterThan("5")',  # unknown method
        'NoSuchKeyword.equals("5")',  # unknown keyword
        "Rows.equals(512)",  # value not quoted
        'Rows.equals("512") *',  # dangling operator
        '(Rows.equals("512")',  # missing parenthesis
        'Rows.equals("512") Columns.equals("5")',  # missing operator
        'Rows.equals("512") & Columns.equals("5")',  # unknown operator
    ],
)
def test_unparseable_conditions_fail_the_build(condition: str) -> None:
    with pytest.raises(build.BuildError):
        build.parse_condition(condition)


def test_script_layout_gives_sections_groups_titles_and_ids() -> None:
    rules = _convert(
        "Library preamble\n"
        "*****\n  CT\n*****\n"
        "GE\n"
        " Dose\n"
        '  { Rows.equals("512") }\n  (0,0,512,20) (0,-30,512,30)\n\n'
        '  { Rows.equals("1024") }\n  (0,0,1024,40)\n'
        "*****\n  US\n*****\n"
        "ACME\n"
        '{ Modality.equals("US") }\n(10,0,100,20)\n'
    ).rules
    assert [rule.id for rule in rules] == ["ct-ge-1", "ct-ge-2", "us-acme-1"]
    assert [(rule.section, rule.group, rule.title) for rule in rules] == [
        ("CT", "GE", "Dose"),
        ("CT", "GE", "Dose"),
        ("US", "ACME", None),
    ]
    assert [(r.x, r.y, r.width, r.height) for r in rules[0].regions] == [
        (0, 0, 512, 20),
        (0, -30, 512, 30),
    ]
    assert rules[1].line == 10


@pytest.mark.parametrize(
    "script",
    [
        '*****\nCT\n*****\nGE\n{ Rows.equals("512") }\n(0,0,512)\n',  # malformed region
        '*****\nCT\n*****\nGE\n{ Rows.equals("512") }\n\n',  # signature without region
        '*****\nCT\n*****\nGE (old)\n{ Rows.equals("512") }\n(0,0,5,5)\n',  # stray bracket
        '*****\nCT\n*****\n{ Rows.equals("512") }\n(0,0,0,5)\n',  # empty region
        '*****\nCT\n*****\n{ Rows.equals("512") \n(0,0,5,5)\n',  # unbalanced brace
        '{ Rows.equals("512") }\n(0,0,5,5)\n',  # no section heading
        '*****\nCT\n*****\n{ Rows.nope("512") }\n(0,0,5,5)\n',  # bad condition
    ],
)
def test_unconvertible_scripts_fail_loudly(script: str) -> None:
    with pytest.raises(build.BuildError):
        _convert(script)
