#!/usr/bin/env python3
"""Build the generated files of ``anonymization_rules/`` from the shared reference data.

Usage::

    python3 scripts/build_rules.py [--reference DIR] [--out DIR]

Defaults: ``--reference <repo>/../shared/reference`` and ``--out <repo>/anonymization_rules``.

Writes (deterministically: sorted, ``indent=1``, trailing newline):

- ``ps3.15-table-e1-1-2024b.json``: PS3.15 Table E.1-1 (2024b) from the innolitics JSON.
- ``ps3.15-table-e1-1-2023b.json``: the same table (2023b) from the DocBook XML of PS3.15.
- ``table-differences-2023b-2024b.json``: what changed between the two editions.
- ``safe-private-tags.json``: private attributes safe to keep under Retain Safe Private, from
  CTP's ``PrivateTagDictionary.xml`` (code ``K``) and PS3.15 Table E.3.10-1 (2023b).
- the generated section of ``README.md`` in the output folder, between the markers
  ``<!-- BEGIN GENERATED: table differences -->`` and ``<!-- END GENERATED -->``, when that
  file exists.

The hand-curated files (keep list, attribute types, vocabulary, site overrides, profiles) are
never touched. Every generated file is validated by the models of :mod:`tftt.deid.rules` before
it is written and re-loaded with :func:`tftt.deid.rules.load_rules_file` afterwards.

Raises :class:`tftt.errors.RuleError` (exit status 1) when a reference file is missing or has a
shape this script does not understand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pydicom  # noqa: E402
from pydantic import BaseModel, ValidationError  # noqa: E402
from pydicom.datadict import (  # noqa: E402
    RepeatersDictionary,
    dictionary_is_retired,
    keyword_for_tag,
)

from tftt.deid.rules import (  # noqa: E402
    Action,
    ConfidentialityTable,
    Option,
    Provenance,
    SafePrivateTag,
    SafePrivateTags,
    TableRow,
    load_rules_file,
)
from tftt.errors import RuleError  # noqa: E402
from tftt.store.files import atomic_write_bytes  # noqa: E402

GENERATED_BY = "scripts/build_rules.py"
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference"
DEFAULT_OUT = REPO / "anonymization_rules"

TABLE_2024B_SOURCE = "dicom-standard/confidentiality_profile_attributes-2024b.json"
PART15_2023B_SOURCE = "dicom-standard/part15-2023b.xml"
CTP_PRIVATE_SOURCE = "ctp-scripts/PrivateTagDictionary.xml"

TABLE_2024B_FILE = "ps3.15-table-e1-1-2024b.json"
TABLE_2023B_FILE = "ps3.15-table-e1-1-2023b.json"
DIFFERENCES_FILE = "table-differences-2023b-2024b.json"
SAFE_PRIVATE_FILE = "safe-private-tags.json"
README_FILE = "README.md"
README_BEGIN = "<!-- BEGIN GENERATED: table differences -->"
README_END = "<!-- END GENERATED -->"

DOCBOOK = "{http://docbook.org/ns/docbook}"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"

# The one row of Table E.1-1 whose "tag" is a rule, not a tag: "(gggg,eeee) where gggg is odd".
# The model's tag pattern (hex digits and 'x') cannot say "odd", so the row becomes eight rows,
# one per odd last digit of the group: xxx1,xxxx xxx3,xxxx ... xxxF,xxxx. Together they match
# exactly the odd groups.
PRIVATE_ROW_TAG = "(GGGG,EEEE) WHERE GGGG IS ODD"
PRIVATE_ROW_TAGS = tuple(f"xxx{digit},xxxx" for digit in "13579BDF")
PRIVATE_ROW_NOTE = (
    "The source row 'Private Attributes (gggg,eeee) where gggg is odd' is written as 8 rows "
    "xxx1,xxxx xxx3,xxxx ... xxxF,xxxx (one per odd last group digit), because the tag pattern "
    "of the rules model has no way to say 'odd'; together they match exactly the private groups."
)

# Column headers of Table E.1-1 in the DocBook XML -> field.
XML_COLUMNS: dict[str, str] = {
    "Attribute Name": "name",
    "Tag": "tag",
    "Retd.": "retired",
    "In Std. Comp. IOD": "std",
    "Basic Prof.": "basic",
    "Rtn. Safe Priv. Opt.": Option.RETAIN_SAFE_PRIVATE.value,
    "Rtn. UIDs Opt.": Option.RETAIN_UIDS.value,
    "Rtn. Dev. Id. Opt.": Option.RETAIN_DEVICE_IDENTITY.value,
    "Rtn. Inst. Id. Opt.": Option.RETAIN_INSTITUTION_IDENTITY.value,
    "Rtn. Pat. Chars. Opt.": Option.RETAIN_PATIENT_CHARACTERISTICS.value,
    "Rtn. Long. Full Dates Opt.": Option.RETAIN_LONG_FULL_DATES.value,
    "Rtn. Long. Modif. Dates Opt.": Option.RETAIN_LONG_MODIFIED_DATES.value,
    "Clean Desc. Opt.": Option.CLEAN_DESCRIPTORS.value,
    "Clean Struct. Cont. Opt.": Option.CLEAN_STRUCTURED_CONTENT.value,
    "Clean Graph. Opt.": Option.CLEAN_GRAPHICS.value,
}

# Safe private attributes that TFTT does NOT keep although a source calls them safe.
# UIDs, dates, times and names escape the UID/date/name handling; free text (LT, ST, UT) may
# hold anything; bulk data (OB, OW, UN) may hold pixels the pixel redaction never sees (PS3.15
# E.3.10: "Pixel Data occurring within private Attributes will be removed"); an unknown VR
# cannot be checked at all.
UNSAFE_PRIVATE_VRS = frozenset(
    {"UI", "DA", "DT", "TM", "PN", "LT", "ST", "UT", "OB", "OW", "OW/OB", "OB/OW", "UN", ""}
)
EXCLUDED_PRIVATE_CREATORS = {
    "CTP": "written by CTP itself for clinical trials (project, trial, site name and site id)",
}
EXCLUDED_PRIVATE_ELEMENTS: dict[tuple[str, str, str], str] = {
    ("GEMS_IDEN_01", "0009", "02"): "SuiteId names the scanner suite (device identity)",
}


# --------------------------------------------------------------------------------------------
# small pieces


def _text(element: ET.Element) -> str:
    """All text of an element and its children, zero-width spaces dropped, whitespace folded."""
    return " ".join("".join(element.itertext()).replace("\u200b", "").split())


def _clean_name(name: str) -> str:
    return " ".join(name.replace("\u200b", "").split())


def _reference_commits(reference: Path) -> dict[str, str]:
    """Map each reference file (path relative to ``reference``) to the commit in its README.

    Raises:
        RuleError: the README is missing or names no commit for a file this script reads.
    """
    readme_path = reference / "README.md"
    try:
        readme = readme_path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RuleError(f"reference README not found in {reference}") from exc
    commits: dict[str, str] = {}
    for source in (TABLE_2024B_SOURCE, PART15_2023B_SOURCE):
        file_name = source.split("/", 1)[1]
        line = next((ln for ln in readme.splitlines() if f"`{file_name}`" in ln), "")
        match = re.search(r"commit ([0-9a-f]{40})", line)
        if match is None:
            raise RuleError(f"reference README names no commit for {file_name}")
        commits[source] = match.group(1)
    match = re.search(r"johnperry/CTP, commit ([0-9a-f]{40})", readme)
    if match is None:
        raise RuleError("reference README names no commit for the CTP scripts")
    commits[CTP_PRIVATE_SOURCE] = match.group(1)
    return commits


def _normalize_tag(raw: str) -> str:
    """``(50XX,xxxx)`` -> ``50xx,xxxx``: upper-case hex, lower-case ``x``.

    Raises:
        RuleError: the text is not a ``(GGGG,EEEE)`` tag.
    """
    match = re.fullmatch(r"\(([0-9A-Fa-fXx]{4}),([0-9A-Fa-fXx]{4})\)", raw.strip())
    if match is None:
        raise RuleError(f"not a tag: {raw!r}")
    return ",".join(part.upper().replace("X", "x") for part in match.groups())


def _pydicom_keyword(tag: str) -> str | None:
    if "x" in tag:
        return None
    return keyword_for_tag(int(tag.replace(",", ""), 16)) or None


def _pydicom_retired(tag: str) -> bool:
    """Retired per pydicom's dictionary; a repeating-group pattern is retired when every
    repeater entry of pydicom that it covers is retired."""
    if "x" not in tag:
        value = int(tag.replace(",", ""), 16)
        try:
            return bool(dictionary_is_retired(value))
        except KeyError:
            return False
    pattern = re.compile(tag.replace(",", "").replace("x", "[0-9A-Fx]"))
    covered = [entry for mask, entry in RepeatersDictionary.items() if pattern.fullmatch(mask)]
    return bool(covered) and all(entry[3] == "Retired" for entry in covered)


def _row(
    tag: str,
    name: str,
    std: str,
    basic: str,
    options: dict[str, str],
    retired: bool,
) -> TableRow:
    """Build one validated row.

    Raises:
        RuleError: an unknown action code or Y/N value.
    """
    if std not in {"Y", "N"}:
        raise RuleError(f"row {tag}: 'in Std. Comp. IOD' is {std!r}, not Y or N")
    try:
        return TableRow(
            tag=tag,
            name=name,
            keyword=_pydicom_keyword(tag),
            in_std_comp_iod=std == "Y",
            retired=retired or "(retired)" in name.lower(),
            basic=Action(basic),
            options={Option(key): Action(value) for key, value in options.items() if value},
        )
    except (ValueError, ValidationError) as exc:
        raise RuleError(f"row {tag}: {exc}") from exc


def _expand(
    raw_tag: str,
    name: str,
    std: str,
    basic: str,
    options: dict[str, str],
    retired: bool | None,
) -> list[TableRow]:
    """One source row -> model rows (eight for the odd-group private row)."""
    if raw_tag.strip().upper() == PRIVATE_ROW_TAG:
        return [_row(tag, name, std, basic, options, bool(retired)) for tag in PRIVATE_ROW_TAGS]
    tag = _normalize_tag(raw_tag)
    is_retired = _pydicom_retired(tag) if retired is None else retired
    return [_row(tag, name, std, basic, options, is_retired)]


def _merge_duplicates(rows: Iterable[TableRow]) -> tuple[tuple[TableRow, ...], list[str]]:
    """Sort rows by tag and merge rows listed twice; also return what was merged.

    The 2023b XML lists three AE Title rows twice, once with Retain Device Identity K and once
    with C (2024b keeps only C). Such a pair becomes one row with C, the more protective
    action. Any other disagreement between two rows of one tag is an error.

    Raises:
        RuleError: two rows of one tag differ in anything but a K/C option.
    """
    merged: dict[str, TableRow] = {}
    notes: list[str] = []
    for row in rows:
        first = merged.get(row.tag)
        if first is None:
            merged[row.tag] = row
            continue
        if first.model_dump(exclude={"options"}) != row.model_dump(exclude={"options"}):
            raise RuleError(f"Table E.1-1 lists {row.tag} twice with different columns")
        options = dict(first.options)
        for option, action in row.options.items():
            before = options.get(option)
            if before is None or before == action:
                options[option] = action
            elif {before, action} == {Action.KEEP, Action.CLEAN}:
                options[option] = Action.CLEAN
                notes.append(f"{row.tag} {option.value} K and C -> C")
            else:
                raise RuleError(
                    f"Table E.1-1 lists {row.tag} twice with {option.value} {before} and {action}"
                )
        if set(options) != set(first.options) or set(options) != set(row.options):
            raise RuleError(f"Table E.1-1 lists {row.tag} twice with different option columns")
        merged[row.tag] = first.model_copy(update={"options": options})
    return tuple(merged[tag] for tag in sorted(merged)), sorted(notes)


def _duplicates_note(notes: list[str]) -> str:
    if not notes:
        return ""
    return (
        " Rows listed twice in the source with Retain Device Identity K in one and C in the "
        "other were merged into one row with C (the more protective): " + "; ".join(notes) + "."
    )


def _pydicom_version() -> str:
    return ".".join(pydicom.__version__.split(".")[:2])


# --------------------------------------------------------------------------------------------
# Table E.1-1


def table_2024b(
    reference: Path, commits: dict[str, str]
) -> tuple[ConfidentialityTable, int, list[str]]:
    """Parse the innolitics JSON of Table E.1-1 (2024b); also return the source row count and
    the rows merged because the source lists them twice.

    Raises:
        RuleError: the file is missing or not the expected list of rows.
    """
    path = reference / TABLE_2024B_SOURCE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise RuleError(f"cannot read {TABLE_2024B_SOURCE}: {exc}") from exc
    if not isinstance(raw, list):
        raise RuleError(f"{TABLE_2024B_SOURCE} is not a list of rows")
    option_keys = {option.value for option in Option}
    known = option_keys | {"name", "tag", "id", "stdCompIOD", "basicProfile"}
    rows: list[TableRow] = []
    for entry in raw:
        unknown = set(entry) - known
        if unknown:
            raise RuleError(f"{TABLE_2024B_SOURCE}: unknown columns {sorted(unknown)}")
        options = {key: entry[key] for key in option_keys if key in entry}
        rows.extend(
            _expand(
                entry["tag"],
                _clean_name(entry["name"]),
                entry["stdCompIOD"],
                entry["basicProfile"],
                options,
                None,
            )
        )
    merged_rows, merge_notes = _merge_duplicates(rows)
    provenance = Provenance(
        source=TABLE_2024B_SOURCE,
        edition="2024b",
        generated_by=GENERATED_BY,
        notes=(
            "PS3.15 Table E.1-1, 2024b, as JSON from github innolitics/dicom-standard, path "
            "standard/confidentiality_profile_attributes.json, commit "
            f"{commits[TABLE_2024B_SOURCE]}; {len(raw)} source rows. Keywords and the retired "
            f"flag come from the data dictionary of pydicom {_pydicom_version()} (the JSON has "
            f"no retired column). {PRIVATE_ROW_NOTE}{_duplicates_note(merge_notes)}"
        ),
    )
    return ConfidentialityTable(provenance=provenance, rows=merged_rows), len(raw), merge_notes


def _find_table(root: ET.Element, table_id: str) -> ET.Element:
    for table in root.iter(f"{DOCBOOK}table"):
        if table.get(XML_ID) == table_id:
            return table
    raise RuleError(f"{PART15_2023B_SOURCE} has no table {table_id}")


def _table_cells(table: ET.Element) -> tuple[list[str], list[list[str]]]:
    """Header texts and body rows (cell texts) of a DocBook table.

    Raises:
        RuleError: a cell spans rows or columns, or the table has no header.
    """
    header: list[str] = []
    body: list[list[str]] = []
    for tr in table.iter(f"{DOCBOOK}tr"):
        cells = [cell for cell in tr if cell.tag in {f"{DOCBOOK}td", f"{DOCBOOK}th"}]
        for cell in cells:
            if cell.get("colspan", "1") != "1" or cell.get("rowspan", "1") != "1":
                raise RuleError(f"table {table.get(XML_ID)}: spanning cells are not supported")
        texts = [_text(cell) for cell in cells]
        if cells and cells[0].tag == f"{DOCBOOK}th":
            header = texts
        else:
            body.append(texts)
    if not header:
        raise RuleError(f"table {table.get(XML_ID)} has no header row")
    return header, body


def _column_map(header: Sequence[str]) -> dict[str, int]:
    """Field -> column index, matching each header by the prefix in :data:`XML_COLUMNS`.

    Raises:
        RuleError: a header is unknown or a known column is missing.
    """
    columns: dict[str, int] = {}
    for index, text in enumerate(header):
        field = next((f for prefix, f in XML_COLUMNS.items() if text.startswith(prefix)), None)
        if field is None:
            raise RuleError(f"Table E.1-1: unknown column {text!r}")
        columns[field] = index
    missing = sorted(set(XML_COLUMNS.values()) - set(columns))
    if missing:
        raise RuleError(f"Table E.1-1: missing columns {missing}")
    return columns


def _parse_part15(reference: Path) -> ET.Element:
    path = reference / PART15_2023B_SOURCE
    try:
        return ET.parse(path).getroot()
    except (FileNotFoundError, ET.ParseError) as exc:
        raise RuleError(f"cannot read {PART15_2023B_SOURCE}: {exc}") from exc


def table_2023b(
    root: ET.Element, commits: dict[str, str]
) -> tuple[ConfidentialityTable, int, list[str]]:
    """Parse Table E.1-1 from the DocBook XML of PS3.15 2023b; also return the source row count
    and the rows merged because the source lists them twice.

    Raises:
        RuleError: the table is missing or has an unexpected layout.
    """
    header, body = _table_cells(_find_table(root, "table_E.1-1"))
    columns = _column_map(header)
    option_keys = [option.value for option in Option]
    rows: list[TableRow] = []
    for cells in body:
        if len(cells) != len(header):
            raise RuleError(f"Table E.1-1: a row has {len(cells)} cells, not {len(header)}")
        retired = cells[columns["retired"]]
        if retired not in {"Y", "N"}:
            raise RuleError(f"Table E.1-1: retired column is {retired!r}, not Y or N")
        rows.extend(
            _expand(
                cells[columns["tag"]],
                _clean_name(cells[columns["name"]]),
                cells[columns["std"]],
                cells[columns["basic"]],
                {key: cells[columns[key]] for key in option_keys},
                retired == "Y",
            )
        )
    merged_rows, merge_notes = _merge_duplicates(rows)
    provenance = Provenance(
        source=PART15_2023B_SOURCE,
        edition="2023b",
        generated_by=GENERATED_BY,
        notes=(
            "PS3.15 Table E.1-1, 2023b, DocBook XML from github jodogne/dicom-specification, "
            f"path 2023b/part15.xml, commit {commits[PART15_2023B_SOURCE]}; {len(body)} source "
            "rows. The retired flag is the table's own 'Retd.' column; keywords come from the "
            f"data dictionary of pydicom {_pydicom_version()}. {PRIVATE_ROW_NOTE}"
            f"{_duplicates_note(merge_notes)}"
        ),
    )
    return ConfidentialityTable(provenance=provenance, rows=merged_rows), len(body), merge_notes


# --------------------------------------------------------------------------------------------
# differences between editions


def _row_summary(row: TableRow) -> dict[str, Any]:
    return {
        "tag": row.tag,
        "name": row.name,
        "basic": row.basic.value,
        "options": {option.value: action.value for option, action in row.options.items()},
    }


def table_differences(
    old: tuple[ConfidentialityTable, int, list[str]],
    new: tuple[ConfidentialityTable, int, list[str]],
) -> dict[str, Any]:
    """Rows only in one edition, and rows whose actions or other columns differ.

    ``old`` and ``new`` are what :func:`table_2023b` and :func:`table_2024b` return.
    """
    old_table, old_source_rows, old_merged = old
    new_table, new_source_rows, new_merged = new
    return _differences(old_table, new_table) | {
        "source_rows": {
            old_table.provenance.edition or "old": old_source_rows,
            new_table.provenance.edition or "new": new_source_rows,
        },
        "source_duplicates_merged": {
            old_table.provenance.edition or "old": old_merged,
            new_table.provenance.edition or "new": new_merged,
        },
    }


def _differences(old: ConfidentialityTable, new: ConfidentialityTable) -> dict[str, Any]:
    old_edition = old.provenance.edition or "old"
    new_edition = new.provenance.edition or "new"
    old_rows = {row.tag: row for row in old.rows}
    new_rows = {row.tag: row for row in new.rows}
    common = sorted(set(old_rows) & set(new_rows))
    basic_changed = [
        {
            "tag": tag,
            "name": new_rows[tag].name,
            old_edition: old_rows[tag].basic.value,
            new_edition: new_rows[tag].basic.value,
        }
        for tag in common
        if old_rows[tag].basic != new_rows[tag].basic
    ]
    options_changed = []
    for tag in common:
        old_options = old_rows[tag].options
        new_options = new_rows[tag].options
        for option in sorted(set(old_options) | set(new_options), key=lambda o: o.value):
            before, after = old_options.get(option), new_options.get(option)
            if before != after:
                options_changed.append(
                    {
                        "tag": tag,
                        "name": new_rows[tag].name,
                        "option": option.value,
                        old_edition: before.value if before else None,
                        new_edition: after.value if after else None,
                    }
                )

    def changed(attribute: str) -> list[dict[str, Any]]:
        return [
            {
                "tag": tag,
                old_edition: getattr(old_rows[tag], attribute),
                new_edition: getattr(new_rows[tag], attribute),
            }
            for tag in common
            if getattr(old_rows[tag], attribute) != getattr(new_rows[tag], attribute)
        ]

    return {
        "kind": "ps3.15-table-e.1-1-differences",
        "provenance": {
            "source": f"{TABLE_2023B_FILE}, {TABLE_2024B_FILE}",
            "edition": f"{old_edition} -> {new_edition}",
            "generated_by": GENERATED_BY,
            "notes": (
                "Compared tag by tag after parsing (names with whitespace folded). 'retired' "
                f"comes from the table's own column in {old_edition} and from pydicom's "
                f"dictionary in {new_edition}, so a retired change may reflect the source "
                "rather than the standard."
            ),
        },
        "editions": [old_edition, new_edition],
        "row_counts": {old_edition: len(old.rows), new_edition: len(new.rows)},
        "only_in": {
            old_edition: [_row_summary(old_rows[t]) for t in sorted(set(old_rows) - set(new_rows))],
            new_edition: [_row_summary(new_rows[t]) for t in sorted(set(new_rows) - set(old_rows))],
        },
        "basic_changed": basic_changed,
        "options_changed": options_changed,
        "in_std_comp_iod_changed": changed("in_std_comp_iod"),
        "retired_changed": changed("retired"),
        "name_changed": changed("name"),
    }


def _actions_text(summary: dict[str, Any]) -> str:
    options = ", ".join(f"{key} {value}" for key, value in sorted(summary["options"].items()))
    return f"basic {summary['basic']}" + (f"; {options}" if options else "")


def render_differences_markdown(diff: dict[str, Any]) -> str:
    """The README section for the differences (between the markers, without them)."""
    old_edition, new_edition = diff["editions"]
    lines = [
        f"### Table E.1-1: {old_edition} versus {new_edition}",
        "",
        f"Generated by `{GENERATED_BY}` (also in `{DIFFERENCES_FILE}`). Source rows: "
        f"{diff['source_rows'][old_edition]} ({old_edition}), "
        f"{diff['source_rows'][new_edition]} ({new_edition}); rows in the files (the private "
        "row becomes 8, duplicates merged): "
        f"{diff['row_counts'][old_edition]} ({old_edition}), "
        f"{diff['row_counts'][new_edition]} ({new_edition}).",
        "",
    ]
    for edition in (old_edition, new_edition):
        merged = diff["source_duplicates_merged"][edition]
        if merged:
            lines.append(
                f"**Rows listed twice in {edition}**, merged with the more protective action: "
                + "; ".join(f"`{note.split(' ', 1)[0]}` {note.split(' ', 1)[1]}" for note in merged)
                + "."
            )
            lines.append("")
    for edition in (old_edition, new_edition):
        only = diff["only_in"][edition]
        lines.append(f"**Rows only in {edition}** ({len(only)}):")
        lines.append("")
        if not only:
            lines.append("- none")
        for row in only:
            lines.append(f"- `{row['tag']}` {row['name']}: {_actions_text(row)}")
        lines.append("")
    lines.append(f"**Basic Profile action changed** ({len(diff['basic_changed'])}):")
    lines.append("")
    if not diff["basic_changed"]:
        lines.append("- none")
    for change in diff["basic_changed"]:
        lines.append(
            f"- `{change['tag']}` {change['name']}: {change[old_edition]} → {change[new_edition]}"
        )
    lines.append("")
    lines.append(f"**Option actions changed** ({len(diff['options_changed'])}):")
    lines.append("")
    if not diff["options_changed"]:
        lines.append("- none")
    for change in diff["options_changed"]:
        before = change[old_edition] or "(none)"
        after = change[new_edition] or "(none)"
        lines.append(
            f"- `{change['tag']}` {change['name']}, {change['option']}: {before} → {after}"
        )
    lines.append("")
    for key, title in (
        ("in_std_comp_iod_changed", "'In Std. Comp. IOD' changed"),
        ("retired_changed", "Retired flag changed (2023b: table column; 2024b: pydicom)"),
        ("name_changed", "Attribute name changed"),
    ):
        changes = diff[key]
        lines.append(f"**{title}** ({len(changes)}):")
        lines.append("")
        if not changes:
            lines.append("- none")
        for change in changes:
            lines.append(f"- `{change['tag']}`: {change[old_edition]!s} → {change[new_edition]!s}")
        lines.append("")
    return "\n".join(lines)


def _replace_readme_section(readme: str, section: str) -> str:
    """Put ``section`` between the markers of ``readme``.

    Raises:
        RuleError: the markers are missing or out of order.
    """
    begin = readme.find(README_BEGIN)
    end = readme.find(README_END)
    if begin < 0 or end < begin:
        raise RuleError(f"{README_FILE} lacks the markers {README_BEGIN!r} ... {README_END!r}")
    head = readme[: begin + len(README_BEGIN)]
    return f"{head}\n{section}\n{readme[end:]}"


# --------------------------------------------------------------------------------------------
# safe private attributes


def safe_private_tags(
    reference: Path, root: ET.Element, commits: dict[str, str]
) -> SafePrivateTags:
    """Safe private attributes from CTP (code ``K``) and PS3.15 Table E.3.10-1 (2023b).

    Raises:
        RuleError: a source is missing or has an unexpected layout.
    """
    path = reference / CTP_PRIVATE_SOURCE
    try:
        ctp_root = ET.parse(path).getroot()
    except (FileNotFoundError, ET.ParseError) as exc:
        raise RuleError(f"cannot read {CTP_PRIVATE_SOURCE}: {exc}") from exc

    # key (creator upper-case, group, element) -> [creator as written, name, vr, sources]
    found: dict[tuple[str, str, str], list[Any]] = {}

    def add(creator: str, group: str, element: str, name: str, vr: str, source: str) -> None:
        if not re.fullmatch(r"[0-9A-F]{3}[13579BDF]", group) or not re.fullmatch(
            r"[0-9A-F]{2}", element
        ):
            raise RuleError(f"{source}: not a private group/element: {group},xx{element}")
        key = (creator.upper(), group, element)
        if key in found:
            found[key][3].append(source)
            if not found[key][1]:
                found[key][1] = name
        else:
            found[key] = [creator, name, vr, [source]]

    ctp_count = 0
    for entry in ctp_root.iter("element"):
        if entry.get("code") != "K":
            continue
        creator = (entry.get("cr") or "").strip()
        if not creator:
            raise RuleError(f"{CTP_PRIVATE_SOURCE}: a safe element has no private creator")
        ctp_count += 1
        add(
            creator,
            (entry.get("gp") or "").upper(),
            (entry.get("el") or "").upper(),
            entry.get("key") or "",
            entry.get("vr") or "",
            "CTP",
        )

    header, body = _table_cells(_find_table(root, "table_E.3.10-1"))
    if header[:3] != ["Data Element", "Private Creator", "VR"] or header[-1] != "Meaning":
        raise RuleError(f"Table E.3.10-1: unexpected columns {header}")
    for cells in body:
        match = re.fullmatch(r"\(([0-9A-Fa-f]{4}),xx([0-9A-Fa-f]{2})\)", cells[0])
        if match is None:
            raise RuleError(f"Table E.3.10-1: not a private element: {cells[0]!r}")
        add(
            cells[1],
            match.group(1).upper(),
            match.group(2).upper(),
            cells[-1],
            cells[2],
            "E.3.10-1",
        )

    tags: list[SafePrivateTag] = []
    excluded: dict[str, list[str]] = {}
    for (creator_key, group, element), (creator, name, vr, sources) in found.items():
        label = f"{creator} ({group},xx{element})"
        reason = EXCLUDED_PRIVATE_CREATORS.get(creator_key) or EXCLUDED_PRIVATE_ELEMENTS.get(
            (creator_key, group, element)
        )
        if reason is None and vr in UNSAFE_PRIVATE_VRS:
            reason = f"VR {vr}" if vr else "VR unknown"
        if reason is not None:
            excluded.setdefault(reason, []).append(label)
            continue
        keyword = f"{name or '(unnamed)'} [{'; '.join(sorted(set(sources)))}]"
        tags.append(
            SafePrivateTag(creator=creator, group=group, element=f"xx{element}", keyword=keyword)
        )
    tags.sort(key=lambda tag: (tag.creator.upper(), tag.group, tag.element))
    excluded_count = sum(len(labels) for labels in excluded.values())
    provenance = Provenance(
        source=f"{CTP_PRIVATE_SOURCE}, {PART15_2023B_SOURCE} (Table E.3.10-1)",
        edition="2023b",
        generated_by=GENERATED_BY,
        notes=(
            f"CTP PrivateTagDictionary.xml (github johnperry/CTP, commit "
            f"{commits[CTP_PRIVATE_SOURCE]}): the {ctp_count} elements with code 'K' (the only "
            "code CTP treats as safe; 'KB', 'R', 'X', 'F', 'Z' are not). PS3.15 2023b Table "
            f"E.3.10-1 (commit {commits[PART15_2023B_SOURCE]}): {len(body)} rows. The source of "
            "each entry is in brackets at the end of its keyword ([CTP], [E.3.10-1] or both). "
            "Creators are as written by the source; match them case-insensitively. Not kept "
            f"although a source lists them as safe ({excluded_count}), because UIDs, dates, "
            "times and names escape TFTT's UID/date/name handling, free text (LT, ST, UT) may "
            "hold anything, private bulk data (OB, OW, UN) may hold pixels that pixel redaction "
            "never sees, and an unknown VR cannot be checked: "
            + "; ".join(
                f"{reason}: {', '.join(sorted(labels))}"
                for reason, labels in sorted(excluded.items())
            )
            + "."
        ),
    )
    return SafePrivateTags(provenance=provenance, tags=tuple(tags))


# --------------------------------------------------------------------------------------------
# writing


def dump_json(data: BaseModel | dict[str, Any]) -> bytes:
    """Stable JSON: sorted keys, ``indent=1``, ASCII, trailing newline."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", exclude_none=True)
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def build(reference: Path, out: Path) -> list[Path]:
    """Write every generated file into ``out``; return the paths written.

    Raises:
        RuleError: a reference file is missing or malformed, or a written file fails to load.
    """
    commits = _reference_commits(reference)
    root = _parse_part15(reference)
    new = table_2024b(reference, commits)
    old = table_2023b(root, commits)
    differences = table_differences(old, new)
    new_table, old_table = new[0], old[0]
    outputs: dict[str, bytes] = {
        TABLE_2024B_FILE: dump_json(new_table),
        TABLE_2023B_FILE: dump_json(old_table),
        DIFFERENCES_FILE: dump_json(differences),
        SAFE_PRIVATE_FILE: dump_json(safe_private_tags(reference, root, commits)),
    }
    readme_path = out / README_FILE
    if readme_path.exists():
        readme = readme_path.read_text(encoding="utf-8")
        section = render_differences_markdown(differences)
        outputs[README_FILE] = _replace_readme_section(readme, section).encode("utf-8")
    written = []
    for name, data in outputs.items():
        path = out / name
        if path.exists() and path.read_bytes() == data:
            written.append(path)
            continue
        written.append(atomic_write_bytes(path, data))
    for name in (TABLE_2024B_FILE, TABLE_2023B_FILE, SAFE_PRIVATE_FILE):
        load_rules_file(out / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        written = build(args.reference, args.out)
    except RuleError as exc:
        print(f"build_rules: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
