"""Benchmark: identifier harvest and independent verification per file, on synthetic CT slices.

    python3 benchmarks/harvest_verify.py                      # writes a 60 MB corpus, then removes it
    python3 benchmarks/harvest_verify.py --corpus /tmp/corpus # an existing `tftt synth` corpus

Takes the CT files in Explicit VR Little Endian of a ``tftt synth --seed 7 --patients 1
--size-mb 60 --no-hostile`` corpus, runs each through the steps of the headless pipeline
(parse, first pass, harvest, pixel stage, second pass, serialize; pipeline built as
``benchmarks/deidentify.py``'s child does) and then times, in this one process, best of
``--repeats`` rounds over all files:

* ``harvest``: :meth:`VerificationRules.harvest` on the original as the pipeline leaves it;
* ``verify``: :meth:`VerificationRules.verify` on the output bytes;

and also each file's best of ``--repeats`` runs, summed (the statistic least hit by the load
that other processes and virtual machines put on shared cores).

The same times with the fast paths turned off are printed beside them (``plain``: elements read
through ``Dataset.keys()`` / ``get_item``, outputs read by ``dcmread``), measured in the same
run, interleaved, so that load from elsewhere hits both alike.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"


@contextmanager
def plain_paths() -> Iterator[None]:
    """Harvest and verification as before the fast paths: pydicom's keys/get_item, dcmread."""
    from tftt.deid import scan, verify
    from tftt.errors import UnsupportedInputError

    def refuse(*_args: object, **_kwargs: object) -> Any:
        raise UnsupportedInputError("plain path", code="raw-reader-refused")

    saved = scan._element_map, verify.read_explicit_little
    scan._element_map = lambda _ds: None  # type: ignore[assignment]
    verify.read_explicit_little = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        scan._element_map, verify.read_explicit_little = saved


def cases(corpus: Path) -> tuple[Any, list[tuple[Any, Any, bytes, str]]]:
    from tftt.deid.engine import DeidContext, deidentify, serialize
    from tftt.deid.pipeline import parse
    from tftt.headless import build_pipeline
    from tftt.pixels.stage import make_pixel_stage
    from tftt.settings import DeidSettings, Settings

    manifest = json.loads((corpus / "manifest.json").read_text())
    paths = [corpus / f["path"] for f in manifest["files"]
             if f.get("modality") == "CT" and f.get("transfer_syntax") == EXPLICIT_LITTLE]  # fmt: skip
    data_dir = Path(tempfile.mkdtemp(prefix="tftt-bench-data-"))
    settings = Settings(data_dir=data_dir, deid=DeidSettings(ocr=True))
    pipeline = build_pipeline(settings, b"benchmark-key-0123456789abcdef!!", make_pixel_stage(settings))
    rules = pipeline.verification
    out = []
    for path in paths:
        original = parse(path.read_bytes())
        first = deidentify(original, DeidContext(rules=pipeline.first, key=pipeline.key))
        identifiers = rules.harvest(original)
        pixels = pipeline.pixel_stage(first.dataset)
        second = deidentify(pixels.dataset, DeidContext(rules=pipeline.second, key=pipeline.key,
                                                        pixels_cleaned=pixels.cleaned))  # fmt: skip
        output = serialize(second.dataset)
        rules.verify(identifiers, output, second.file_name)  # every output passes
        out.append((original, identifiers, output, second.file_name))
    shutil.rmtree(data_dir, ignore_errors=True)
    return rules, out


def seconds(work: Callable[[], object], *, plain: bool) -> float:
    with plain_paths() if plain else nullcontext():
        start = time.perf_counter()
        work()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scratch = None
    corpus = args.corpus
    if corpus is None:
        from tftt.synth.corpus import write_corpus

        scratch = Path(tempfile.mkdtemp(prefix="tftt-bench-corpus-"))
        corpus = scratch / "corpus"
        write_corpus(corpus, seed=7, patients=1, hostile=False, target_bytes=60_000_000)
    try:
        rules, items = cases(corpus)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    steps: dict[str, Callable[[Any], object]] = {
        "harvest": lambda item: rules.harvest(item[0]),
        "verify": lambda item: rules.verify(item[1], item[2], item[3]),
    }
    count = len(items)
    print(f"{count} CT files in Explicit VR Little Endian, ms per file (fast / plain)")
    for label, step in steps.items():
        rounds: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):  # whole rounds, fast and plain interleaved
            for plain in (False, True):
                rounds[plain].append(seconds(lambda: [step(item) for item in items], plain=plain))  # noqa: B023
        per_file = {False: 0.0, True: 0.0}
        for item in items:  # each file's best time: least hit by other load on shared cores
            for plain in (False, True):
                per_file[plain] += min(
                    seconds(lambda: step(item), plain=plain)  # noqa: B023
                    for _ in range(args.repeats)
                )
        best = {plain: min(times) / count * 1000 for plain, times in rounds.items()}
        each = {plain: total / count * 1000 for plain, total in per_file.items()}
        print(f"{label:8s} best round {best[False]:6.2f} / {best[True]:6.2f} ({best[True] / best[False]:.2f}x)"
              f"   sum of per-file bests {each[False]:6.2f} / {each[True]:6.2f} ({each[True] / each[False]:.2f}x)")


if __name__ == "__main__":
    main()
