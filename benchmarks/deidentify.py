"""Benchmark ``tftt deidentify`` against plain pydicom read+write of the same files.

    python benchmarks/deidentify.py [--size-mb 1100] [--corpus DIR] [--keep] [--repeat N]

Generates a synthetic corpus (default ≥ 1 GB, no hostile files) with TFTT's own generator, then
measures, each in its own child process and in the same run:

* floor: ``pydicom.dcmread`` + ``save_as`` of every file into a scratch folder;
* tftt, 1 process: the full headless path (first pass, pixel stage, second pass, verification,
  atomic write or quarantine);
* tftt, 2 processes.

Prints files/s, MB/s, the ratio of each to the floor's wall time, each run's CPU time (user +
system, workers included) and its ratio to the floor's, and each child's peak RSS.
With ``--repeat N`` the three runs are taken N times in turn and each row shows its fastest
run (the floor's too): on a shared machine one run of each swings by a third.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _reset_peak_rss() -> None:
    """Forget the peak inherited from the forked parent (Linux: clear_refs 5 resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    """This process's own peak (VmHWM) or its worker processes' peak, whichever is larger."""
    hwm_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("VmHWM:"))
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(hwm_kb, children_kb) / 1024


def _cpu_seconds() -> float:
    """User + system time of this process and of its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def child_floor(src: Path, out: Path) -> dict[str, float]:
    import pydicom

    from tftt.headless import iter_inputs

    count = 0
    cpu, start = _cpu_seconds(), time.perf_counter()
    for index, path in enumerate(iter_inputs(src)):
        ds = pydicom.dcmread(path, force=True)
        ds.save_as(out / f"{index}.dcm")
        count += 1
    return {"seconds": time.perf_counter() - start, "cpu_seconds": _cpu_seconds() - cpu, "files": count,
            "peak_rss_mb": _peak_rss_mb()}


def child_tftt(src: Path, out: Path, workers: int, ocr: bool) -> dict[str, float]:
    from tftt.headless import build_pipeline, run_headless
    from tftt.pixels.stage import make_pixel_stage
    from tftt.settings import DeidSettings, Settings

    settings = Settings(data_dir=out / "data", deid=DeidSettings(ocr=ocr))
    pipeline = build_pipeline(settings, b"benchmark-key-0123456789abcdef!!", make_pixel_stage(settings))
    cpu, start = _cpu_seconds(), time.perf_counter()
    summary = run_headless(src, out / "dst", out / "quarantine", pipeline, workers=workers)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu,
        "files": summary.inputs,
        "written": summary.written,
        "quarantined": summary.quarantined_total,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _run_child(mode: str, src: Path, out: Path, workers: int = 1, ocr: bool = True) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--child", mode, "--corpus", str(src), "--out", str(out),
           "--workers", str(workers), "--ocr" if ocr else "--no-ocr"]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _corpus_bytes(src: Path) -> int:
    return sum(p.stat().st_size for p in src.rglob("*") if p.is_file() and p.name != "manifest.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1100)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three runs; the fastest of each is shown")
    parser.add_argument("--child", choices=["floor", "tftt"])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--ocr", action=argparse.BooleanOptionalAction, default=True,
                        help="OCR safety net on images flagged for burned-in text (default on)")
    args = parser.parse_args()

    if args.child:
        _reset_peak_rss()
    if args.child == "floor":
        print(json.dumps(child_floor(args.corpus, args.out)))
        return
    if args.child == "tftt":
        print(json.dumps(child_tftt(args.corpus, args.out, args.workers, args.ocr)))
        return

    scratch = Path(tempfile.mkdtemp(prefix="tftt-bench-"))
    try:
        corpus = args.corpus
        if corpus is None:
            from tftt.synth.corpus import write_corpus

            corpus = scratch / "corpus"
            t0 = time.perf_counter()
            write_corpus(corpus, seed=7, patients=4, hostile=False, target_bytes=args.size_mb * 1_000_000)
            print(f"generated corpus in {time.perf_counter() - t0:.1f} s")
        size = _corpus_bytes(corpus)
        files = sum(1 for p in corpus.rglob("*") if p.is_file() and p.name != "manifest.json")
        print(f"corpus: {files} files, {size / 1e6:.0f} MB")
        mode = "OCR on" if args.ocr else "OCR off"
        names = ["floor: pydicom dcmread + save_as", f"tftt deidentify, 1 process, {mode}",
                 f"tftt deidentify, 2 processes, {mode}"]  # fmt: skip
        best: list[dict[str, float] | None] = [None, None, None]
        peak = [0.0, 0.0, 0.0]  # the highest peak RSS of any round (a limit holds for every run)
        for round_ in range(max(1, args.repeat)):
            runs = [_run_child("floor", corpus, scratch / f"floor{round_}"),
                    _run_child("tftt", corpus, scratch / f"t1-{round_}", 1, args.ocr),
                    _run_child("tftt", corpus, scratch / f"t2-{round_}", 2, args.ocr)]  # fmt: skip
            for index, run in enumerate(runs):
                peak[index] = max(peak[index], run["peak_rss_mb"])
                kept = best[index]
                if kept is None or run["seconds"] < kept["seconds"]:
                    best[index] = run
            if round_ < args.repeat - 1:
                for sub in (f"floor{round_}", f"t1-{round_}", f"t2-{round_}"):
                    shutil.rmtree(scratch / sub, ignore_errors=True)  # the next round writes afresh
            if args.repeat > 1:
                print(f"round {round_ + 1}: " + ", ".join(f"{run['seconds']:.1f} s" for run in runs))
        rows = [(name, {**row, "peak_rss_mb": rss})
                for name, row, rss in zip(names, best, peak, strict=True) if row is not None]  # fmt: skip
        floor_seconds, floor_cpu = rows[0][1]["seconds"], rows[0][1]["cpu_seconds"]
        print(f"{'run':44} {'files/s':>9} {'MB/s':>8} {'x floor':>8} {'CPU s':>7} {'CPU x floor':>12} "
              f"{'peak RSS MB':>12}")
        for name, row in rows:
            seconds = row["seconds"]
            print(f"{name:44} {row['files'] / seconds:9.1f} {size / 1e6 / seconds:8.1f} "
                  f"{seconds / floor_seconds:8.2f} {row['cpu_seconds']:7.1f} {row['cpu_seconds'] / floor_cpu:12.2f} "
                  f"{row['peak_rss_mb']:12.0f}")
        print("x floor: wall time against the floor's. CPU s: user + system time of the run and its workers, "
              "which the disk's writeback of 1 GB does not swing as it swings wall time.")
        for name, row in rows[1:]:
            print(f"{name}: written {row['written']:.0f}, quarantined {row['quarantined']:.0f}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"kept {scratch}")


if __name__ == "__main__":
    main()
