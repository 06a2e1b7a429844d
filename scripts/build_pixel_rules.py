"""Build ``anonymization_rules/pixel-rules.json`` and ``burned-in-filter.json`` from RSNA CTP.

Inputs (``../shared/reference/`` by default):

- ``ctp-scripts/DicomPixelAnonymizer.script``: CTP's burned-in annotation library. Free text,
  ``****`` framed modality headings, vendor/product lines, and signatures: a condition in braces
  ``{ ... }`` followed by one or more regions ``(x,y,w,h)``.
- ``ctp-scripts/BurnedInPixelsFilter.script``: one condition.
- ``README.md``: names the CTP commit the scripts were taken from.

Conditions are parsed into the syntax tree of :mod:`tftt.pixels.pixel_rules` with CTP's
precedence (``!`` binds tighter than ``*`` (AND), which binds tighter than ``+`` (OR)).
Anything the parser does not understand stops the build with an error naming the line: no
signature or region is ever dropped silently (CTP itself skips malformed regions with a warning).

Usage::

    python scripts/build_pixel_rules.py            # write the two files
    python scripts/build_pixel_rules.py --check    # exit 1 if the committed files are stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import keyword_for_tag, tag_for_keyword

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # allow `python scripts/build_pixel_rules.py`
    sys.path.insert(0, str(REPO_ROOT))

from tftt.pixels.pixel_rules import (  # noqa: E402
    BURNED_IN_FILTER_FILE,
    PIXEL_RULES_FILE,
    And,
    BurnedInFilter,
    Comparison,
    Condition,
    Constant,
    Method,
    Not,
    Or,
    PixelRegion,
    PixelRule,
    PixelRules,
    RulesProvenance,
)
from tftt.store.files import atomic_write_text  # noqa: E402

DEFAULT_REFERENCE = REPO_ROOT.parent / "shared" / "reference"
DEFAULT_OUT = REPO_ROOT / "anonymization_rules"
PIXEL_SCRIPT = "DicomPixelAnonymizer.script"
FILTER_SCRIPT = "BurnedInPixelsFilter.script"
CTP_REPOSITORY = "github johnperry/CTP"
GENERATED_BY = "scripts/build_pixel_rules.py"

# CTP's own signature pattern (PixelScript.getSignatures): a brace, anything but a closing brace.
SIGNATURE_PATTERN = re.compile(r"\{[^}]*\}")
_REGION = r"\(\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\)"
REGION_PATTERN = re.compile(_REGION)
_REGION_LINE = re.compile(rf"^\s*(?:{_REGION}\s*)+$")
_STAR_LINE = re.compile(r"^[ \t]*\*{3,}[ \t]*$")
_COMMIT = re.compile(r"johnperry/CTP,\s*commit\s+([0-9a-f]{40})")


class BuildError(Exception):
    """The CTP script holds something this converter does not understand."""


# --------------------------------------------------------------------------- condition parser


@dataclass(frozen=True)
class _Token:
    kind: str  # "operand", "op", "(", ")", "end"
    text: str
    offset: int
    node: Condition | None = None


_IDENTIFIER = re.compile(
    r"\[\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\]|([A-Za-z][A-Za-z0-9]*)"
)
_CALL = re.compile(r'\s*\.\s*([A-Za-z]+)\s*\(\s*"([^"]*)"\s*\)')


def _tag_text(tag: int) -> str:
    return f"{tag >> 16:04X},{tag & 0xFFFF:04X}"


def _operand(text: str, pos: int, where: str) -> tuple[Condition, int]:
    ident = _IDENTIFIER.match(text, pos)
    if ident is None:
        raise BuildError(f"{where}: expected an attribute at offset {pos}")
    end = ident.end()
    if ident.group(3) in {"true", "false"}:
        return Constant(value=ident.group(3) == "true"), end
    if ident.group(3) is not None:
        keyword = ident.group(3)
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise BuildError(f"{where}: unknown DICOM keyword {keyword!r}")
    else:
        tag = (int(ident.group(1), 16) << 16) | int(ident.group(2), 16)
        keyword = keyword_for_tag(tag) or None
    call = _CALL.match(text, end)
    if call is None:
        raise BuildError(f'{where}: expected .method("value") after the attribute at offset {end}')
    try:
        method = Method(call.group(1))
    except ValueError as exc:
        raise BuildError(f"{where}: unknown method {call.group(1)!r}") from exc
    node = Comparison(tag=_tag_text(tag), keyword=keyword, method=method, value=call.group(2))
    return node, call.end()


def _tokens(text: str, where: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while True:
        while pos < len(text):
            if text[pos].isspace():
                pos += 1
            elif text.startswith("//", pos):  # CTP allows line comments
                newline = text.find("\n", pos)
                pos = len(text) if newline < 0 else newline + 1
            else:
                break
        if pos >= len(text):
            out.append(_Token("end", "", pos))
            return out
        char = text[pos]
        if char in "+*!":
            out.append(_Token("op", char, pos))
            pos += 1
        elif char in "()":
            out.append(_Token(char, char, pos))
            pos += 1
        elif char == "[" or char.isalpha():
            node, end = _operand(text, pos, where)
            out.append(_Token("operand", text[pos:end], pos, node))
            pos = end
        else:
            raise BuildError(f"{where}: unexpected character {char!r} at offset {pos}")


def _flatten(kind: str, parts: list[Condition]) -> Condition:
    if len(parts) == 1:
        return parts[0]
    flat: list[Condition] = []
    for part in parts:
        if part.kind == kind:  # (a*b)*c == a*b*c
            assert isinstance(part, And | Or)
            flat.extend(part.operands)
        else:
            flat.append(part)
    return And(operands=tuple(flat)) if kind == "and" else Or(operands=tuple(flat))


class _Parser:
    """expr := term ('+' term)* ; term := factor ('*' factor)* ;
    factor := '!' factor | '(' expr ')' | operand"""

    def __init__(self, text: str, where: str) -> None:
        self.tokens = _tokens(text, where)
        self.index = 0
        self.where = where

    def _peek(self) -> _Token:
        return self.tokens[self.index]

    def _take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> Condition:
        node = self._expr()
        token = self._peek()
        if token.kind != "end":
            raise BuildError(f"{self.where}: unexpected {token.text!r} at offset {token.offset}")
        return node

    def _expr(self) -> Condition:
        parts = [self._term()]
        while self._peek().kind == "op" and self._peek().text == "+":
            self._take()
            parts.append(self._term())
        return _flatten("or", parts)

    def _term(self) -> Condition:
        parts = [self._factor()]
        while self._peek().kind == "op" and self._peek().text == "*":
            self._take()
            parts.append(self._factor())
        return _flatten("and", parts)

    def _factor(self) -> Condition:
        token = self._take()
        if token.kind == "op" and token.text == "!":
            return Not(operand=self._factor())
        if token.kind == "(":
            node = self._expr()
            closing = self._take()
            if closing.kind != ")":
                raise BuildError(f"{self.where}: missing ')' at offset {closing.offset}")
            return node
        if token.kind == "operand" and token.node is not None:
            return token.node
        raise BuildError(f"{self.where}: expected a test, '!' or '(' at offset {token.offset}")


def parse_condition(text: str, where: str = "condition") -> Condition:
    """Parse one CTP filter expression.

    Raises:
        BuildError: the text is not a complete expression this converter understands.
    """
    return _Parser(text, where).parse()


# --------------------------------------------------------------------------- script layout


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass
class _Layout:
    section: str | None = None
    group: str | None = None
    title: str | None = None


def _read_gap(
    gap: str, first_line: int, layout: _Layout, in_heading: bool
) -> tuple[list[PixelRegion], bool, bool]:
    """Walk the text between two signatures: regions of the previous one, then headings and
    descriptions of the next. Returns (regions, whether new description text was seen,
    whether a ``****`` heading is still open)."""
    regions: list[PixelRegion] = []
    seen_text = False
    heading_lines: list[str] = []
    for offset, line in enumerate(gap.split("\n")):
        where = f"{PIXEL_SCRIPT} line {first_line + offset}"
        stripped = line.strip()
        if not stripped:
            continue
        if _STAR_LINE.match(line):
            if in_heading:
                layout.section = _collapse(" ".join(heading_lines))
                layout.group = layout.title = None
                heading_lines = []
            in_heading = not in_heading
            seen_text = True
            continue
        if in_heading:
            heading_lines.append(stripped)
            continue
        if _REGION_LINE.match(line):
            if seen_text:
                raise BuildError(f"{where}: region after description text; layout is ambiguous")
            for match in REGION_PATTERN.finditer(line):
                x, y, w, h = (int(v) for v in match.groups())
                if w <= 0 or h <= 0:
                    raise BuildError(f"{where}: region with non-positive width or height")
                regions.append(PixelRegion(x=x, y=y, width=w, height=h))
            continue
        if "(" in line or ")" in line or "{" in line or "}" in line:
            # CTP would try to read any parenthesis here as a region: refuse to guess.
            raise BuildError(f"{where}: bracket in text that is not a region: cannot convert")
        if not line[0].isspace():  # an unindented line names a vendor / product group
            layout.group = _collapse(stripped)
            layout.title = None
        elif seen_text and layout.title:
            layout.title = f"{layout.title} {_collapse(stripped)}"
        else:
            layout.title = _collapse(stripped)
        seen_text = True
    return regions, seen_text, in_heading


def convert_pixel_script(text: str, provenance: RulesProvenance) -> PixelRules:
    """Convert the whole burned-in annotation library.

    Raises:
        BuildError: a signature, region or heading cannot be converted.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    matches = list(SIGNATURE_PATTERN.finditer(text))
    if not matches:
        raise BuildError(f"{PIXEL_SCRIPT}: no signatures found")
    if text.count("{") != len(matches) or text.count("}") != len(matches):
        raise BuildError(f"{PIXEL_SCRIPT}: unbalanced braces; some signature would be lost")

    preamble = text[: matches[0].start()]
    first_star = next((m.start() for m in re.finditer(r"(?m)^[ \t]*\*{3,}[ \t]*$", preamble)), None)
    if first_star is None:
        raise BuildError(f"{PIXEL_SCRIPT}: no '****' section heading before the first signature")

    layout = _Layout()
    _, _, in_heading = _read_gap(
        preamble[first_star:], text.count("\n", 0, first_star) + 1, layout, False
    )
    pending: list[tuple[int, str, Condition, _Layout]] = []
    gaps: list[list[PixelRegion]] = []
    for index, match in enumerate(matches):
        line = text.count("\n", 0, match.start()) + 1
        if in_heading:
            raise BuildError(f"{PIXEL_SCRIPT} line {line}: signature inside a '****' heading")
        if layout.section is None:
            raise BuildError(f"{PIXEL_SCRIPT} line {line}: signature before any section heading")
        body = match.group()[1:-1]
        condition = parse_condition(body, f"{PIXEL_SCRIPT} line {line}")
        pending.append((line, _collapse(body), condition, _Layout(**vars(layout))))
        gap_end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        gap_line = text.count("\n", 0, match.end()) + 1
        regions, _, in_heading = _read_gap(
            text[match.end() : gap_end], gap_line, layout, in_heading
        )
        if not regions:
            raise BuildError(f"{PIXEL_SCRIPT} line {line}: signature without any region")
        gaps.append(regions)

    counters: dict[str, int] = {}
    rules: list[PixelRule] = []
    for (line, source, condition, place), regions in zip(pending, gaps, strict=True):
        assert place.section is not None
        stem = "-".join(_slug(part) for part in (place.section, place.group or "") if _slug(part))
        counters[stem] = counters.get(stem, 0) + 1
        rules.append(
            PixelRule(
                id=f"{stem}-{counters[stem]}",
                section=place.section,
                group=place.group,
                title=place.title,
                line=line,
                source_condition=source,
                condition=condition,
                regions=tuple(regions),
            )
        )
    return PixelRules(provenance=provenance, rules=tuple(rules))


def convert_filter_script(text: str, provenance: RulesProvenance) -> BurnedInFilter:
    """Convert the burned-in pixels filter.

    Raises:
        BuildError: the condition cannot be parsed.
    """
    condition = parse_condition(text, FILTER_SCRIPT)
    return BurnedInFilter(
        provenance=provenance,
        description=(
            "CTP DicomFilter for burned-in pixels: an image passes (is not flagged) when the "
            "condition is true, i.e. neither ImageType nor SeriesDescription contains 'SAVE', "
            "no Secondary Capture date/device attribute has a value, and BurnedInAnnotation "
            "does not contain 'YES'."
        ),
        source_condition=_collapse(text),
        condition=condition,
    )


# --------------------------------------------------------------------------- files


def ctp_commit(reference: Path) -> str:
    """The CTP commit named in ``reference/README.md``.

    Raises:
        BuildError: the README does not name it.
    """
    readme = (reference / "README.md").read_text(encoding="utf-8")
    match = _COMMIT.search(readme)
    if match is None:
        raise BuildError("reference README.md does not name the johnperry/CTP commit")
    return match.group(1)


def _provenance(path: Path, commit: str, notes: str) -> RulesProvenance:
    return RulesProvenance(
        source=path.name,
        repository=CTP_REPOSITORY,
        commit=commit,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        generated_by=GENERATED_BY,
        notes=notes,
    )


def dump(model: PixelRules | BurnedInFilter) -> str:
    """Deterministic JSON text of a rules model."""
    return json.dumps(model.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def build(reference: Path = DEFAULT_REFERENCE) -> dict[str, str]:
    """File name -> JSON text of both rules files.

    Raises:
        BuildError: an input is missing or cannot be converted.
    """
    scripts = reference / "ctp-scripts"
    pixel_path = scripts / PIXEL_SCRIPT
    filter_path = scripts / FILTER_SCRIPT
    for path in (pixel_path, filter_path):
        if not path.is_file():
            raise BuildError(f"missing input {path}")
    commit = ctp_commit(reference)
    pixel_rules = convert_pixel_script(
        pixel_path.read_text(encoding="utf-8"),
        _provenance(
            pixel_path,
            commit,
            "CTP applies only the first matching signature; TFTT proposes the regions of every "
            "matching rule. Negative x/y count from the right/bottom edge; regions are clipped "
            "to the image.",
        ),
    )
    burned_in_filter = convert_filter_script(
        filter_path.read_text(encoding="utf-8"),
        _provenance(filter_path, commit, "Images for which the condition is false are flagged."),
    )
    return {PIXEL_RULES_FILE: dump(pixel_rules), BURNED_IN_FILTER_FILE: dump(burned_in_filter)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="only check the files are current")
    args = parser.parse_args(argv)
    try:
        outputs = build(args.reference)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = []
    for name, text in outputs.items():
        path = args.out / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            atomic_write_text(path, text)
    if args.check and stale:
        print(f"stale: {', '.join(stale)}; run {GENERATED_BY}", file=sys.stderr)
        return 1
    rules = json.loads(outputs[PIXEL_RULES_FILE])["rules"]
    regions = sum(len(rule["regions"]) for rule in rules)
    print(f"{len(rules)} pixel rules, {regions} regions; {len(stale)} file(s) updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
