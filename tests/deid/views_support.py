"""Every file ``tftt synth`` writes, as the harvest and the verifier see it, and the recursive
list of element views a dataset gives (to compare two ways of reading the same bytes).

:func:`synthetic_cases` runs a small corpus (hostile inputs included) through the steps of
:func:`~tftt.deid.pipeline.process_bytes`: the original as parsed and then read by the first
pass (what :func:`~tftt.deid.harvest.harvest_identifiers` walks) and the serialized output of
the second pass (what :func:`~tftt.deid.verify.verify_output` re-reads), with the identifiers
harvested from the original.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from tftt.deid.engine import DeidContext, deidentify, serialize
from tftt.deid.harvest import Identifiers
from tftt.deid.pipeline import Pipeline, parse
from tftt.deid.scan import ElementView, character_set, iter_elements, view_element
from tftt.errors import TfttError
from tftt.headless import build_pipeline, iter_inputs
from tftt.pixels.stage import make_pixel_stage
from tftt.settings import DeidSettings, Settings
from tftt.synth.corpus import write_corpus

BULK_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
KEY = b"views-support-key-0123456789abcd"


@dataclass(frozen=True)
class SynthCase:
    """One synthetic input: its bytes, the parsed original (``None`` if it does not parse),
    the identifiers harvested from it, and the de-identified output bytes and file name
    (``None`` if a pass refused it)."""

    name: str
    data: bytes
    original: Dataset | None = None
    identifiers: Identifiers | None = None
    output: bytes | None = None
    file_name: str | None = None


@lru_cache(maxsize=1)
def _synthetic() -> tuple[tuple[SynthCase, ...], Pipeline, tempfile.TemporaryDirectory[str]]:
    folder = tempfile.TemporaryDirectory(prefix="tftt-views-")  # removed at exit
    root = Path(folder.name)
    write_corpus(root / "src", seed=5, patients=1)
    settings = Settings(data_dir=root / "data", deid=DeidSettings(ocr=False))
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    cases = []
    for path in iter_inputs(root / "src"):
        if path.name == "manifest.json":
            continue
        data = path.read_bytes()
        cases.append(_run(str(path.relative_to(root / "src")), data, pipeline))
    return tuple(cases), pipeline, folder


def synthetic_cases() -> tuple[SynthCase, ...]:
    """The corpus of ``write_corpus(seed=5, patients=1)``, hostile inputs included, through
    the pipeline once per test session."""
    return _synthetic()[0]


def synthetic_pipeline() -> Pipeline:
    """The pipeline :func:`synthetic_cases` went through (default settings, no OCR)."""
    return _synthetic()[1]


def _run(name: str, data: bytes, pipeline: Pipeline) -> SynthCase:
    try:
        original = parse(data)
    except TfttError:
        return SynthCase(name, data)
    try:
        first = deidentify(original, DeidContext(rules=pipeline.first, key=pipeline.key))
        identifiers = pipeline.verification.harvest(original)
        pixels = pipeline.pixel_stage(first.dataset)
        second = deidentify(
            pixels.dataset,
            DeidContext(rules=pipeline.second, key=pipeline.key, pixels_cleaned=pixels.cleaned),
        )
        output = serialize(second.dataset)
    except TfttError:
        return SynthCase(name, data, original)
    return SynthCase(name, data, original, identifiers, output, second.file_name)


def _record(view: ElementView | None) -> tuple[Any, ...] | None:
    """A view with its value's type; a sequence's value is replaced by its number of items
    (the items are compared one by one)."""
    if view is None:
        return None
    if view.vr == "SQ" and view.value is not None and not view.error:
        return (dataclasses.replace(view, value=len(view.value)), "items")
    return (view, type(view.value).__name__, type(view.raw).__name__)


def element_views(
    ds: Any,
    *,
    top: bool = True,
    encoding: str | list[str] | None = None,
    prefix: str = "",
    skip_public_vrs: frozenset[str] = frozenset(),
) -> list[tuple[Any, ...]]:
    """Every element of ``ds`` at every depth, read the way the harvest and the verifier read
    them: the character set of each dataset, the elements one level at a time (bulk pixel data
    deferred at the top) and each element looked up alone, with and without deferred values."""
    out: list[tuple[Any, ...]] = []
    encoding = character_set(ds, encoding)
    out.append((prefix, "charset", encoding))
    defer = BULK_PIXEL_TAGS if top else frozenset()
    for element in iter_elements(ds, encoding, defer=defer, skip_public_vrs=skip_public_vrs):
        where = f"{prefix}{element.tag:08X}"
        out.append((where, _record(element)))
        for load in (True, False):
            alone = view_element(ds, element.tag, encoding, load_deferred=load)
            out.append((where, load, _record(alone)))
        if element.vr == "SQ" and element.value is not None and not element.error:
            for index, item in enumerate(element.value):
                out.extend(
                    element_views(item, top=False, encoding=encoding,
                                  prefix=f"{where}[{index}].", skip_public_vrs=skip_public_vrs)
                )  # fmt: skip
    return out


def file_views(ds: Any) -> list[tuple[Any, ...]]:
    """:func:`element_views` of the file meta (if any) and of the dataset."""
    out: list[tuple[Any, ...]] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        out.extend(element_views(meta, top=False, prefix="meta."))
    out.extend(element_views(ds))
    return out
