"""Benchmark: blackout + crop on every frame, against a floor measured in the same run.

    python3 benchmarks/pixels.py            # full sizes (takes a few minutes on 2 cores)
    python3 benchmarks/pixels.py --quick    # small sizes, one repetition: a smoke run

Cases: a 500-frame 512x512 uint16 (12-bit) XA-like cine and a 100-frame 640x480 RGB
ultrasound, each uncompressed and in RLE, JPEG-LS lossless and JPEG 2000 lossless (written back
in the same syntax); the ultrasound also as JPEG Baseline input (written as JPEG-LS lossless).

* Uncompressed: time of read + apply_edits + write, against read + write alone.
  Target: at most 1.2x.
* Compressed: time of apply_edits (decode + edit + encode) on a loaded dataset, against
  decode_frames + encode_pixels alone (same syntax, same number of workers). Target: 1.1x.
* JPEG 2000 also with frames spread over 2 processes (``workers=2``). The floor is then
  decode_frames + encode_pixels with 2 workers each, which ship decoded frames back to the
  parent and out again; apply_edits has each worker decode, edit and encode its frames, so
  only encoded frames travel. On 2 shared cores the wall time of these rows mostly measures
  the other load: compare them across runs, not alone.
* Times are the best of ``repeats`` runs, floor and edit interleaved. The ratio is of wall
  times; the CPU-time ratio (this process and its workers, user + system) is printed beside
  it because it hardly moves with the load other processes put on the shared cores.
* Peak memory, measured the same way for the floor and for the edit: a fresh subprocess
  reads the file, resets its peak-RSS mark, runs the operation (floor: nothing more for
  uncompressed input, decode_frames + encode_pixels for compressed input; edit: apply_edits)
  and writes the result to a file. Reported in units of the pixel data size (uncropped,
  decoded): the peak RSS above the RSS with the input loaded, i.e. what the operation itself
  needs (target: at most 2x for the edit, every row), and the edit's peak including the
  input. With workers, the sampled sum of the process's RSS and its workers' unique memory
  (USS) above the same sum once loaded is reported too. See :func:`measure_memory`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tftt.pixels.codecs import (  # noqa: E402
    DecodedPixels,
    OutputSyntax,
    decode_frames,
    encode_pixels,
    set_native_pixel_data,
)
from tftt.pixels.redact import apply_edits  # noqa: E402
from tftt.redaction_spec import CropBox, ImageEdits, Rectangle  # noqa: E402

SYNTAX_OF = {
    "explicit": OutputSyntax.EXPLICIT_VR_LITTLE_ENDIAN,
    "rle": OutputSyntax.RLE_LOSSLESS,
    "jpeg-ls": OutputSyntax.JPEG_LS_LOSSLESS,
    "jpeg-2000": OutputSyntax.JPEG_2000_LOSSLESS,
}


# --- synthetic data -------------------------------------------------------------------------


def xa_frames(n: int, size: int) -> np.ndarray:
    """A moving bright disc over a gradient, 12-bit, with a little noise and a text box."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    base = 800 + 1200 * (x / size)
    out = np.empty((n, size, size), dtype=np.uint16)
    for i in range(n):
        cx = size * (0.3 + 0.4 * i / max(n - 1, 1))
        disc = 1500 * (((x - cx) ** 2 + (y - size / 2) ** 2) < (size / 6) ** 2)
        out[i] = np.clip(base + disc, 0, 4000).astype(np.uint16)
    out += rng.integers(0, 32, size=out.shape, dtype=np.uint16)
    out[:, 4:28, 8 : size // 2] = 4095  # a burned-in label
    return out


def us_frames(n: int, rows: int, cols: int) -> np.ndarray:
    """A grey speckled sector with a coloured bar and a yellow text box."""
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    sector = (np.abs(x - cols / 2) < (y * 0.8)) & (y > 40)
    grey = (sector * (90 + 60 * np.sin(y / 17.0))).astype(np.uint8)
    out = np.repeat(np.repeat(grey[None, :, :, None], n, axis=0), 3, axis=3)
    speckle = rng.integers(0, 40, size=(n, rows, cols), dtype=np.uint8)
    out[..., 0] += speckle
    out[..., 1] += speckle
    out[..., 2] += speckle
    out[:, 8:36, 16 : cols // 2] = (230, 220, 40)
    out[:, rows - 60 : rows - 20, cols - 30 : cols - 10] = (200, 40, 40)
    return out


def make_dataset(frames: np.ndarray, bits_stored: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    sop_class = (
        uid.UltrasoundMultiFrameImageStorage
        if frames.ndim == 4
        else uid.XRayAngiographicImageStorage
    )
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "1.2.826.0.1.3680043.10.99.1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = (
        "1.2.826.0.1.3680043.10.99.2",
        "1.2.826.0.1.3680043.10.99.3",
    )
    ds.Modality = "US" if frames.ndim == 4 else "XA"
    ds.SamplesPerPixel = 3 if frames.ndim == 4 else 1
    ds.PhotometricInterpretation = "RGB" if frames.ndim == 4 else "MONOCHROME2"
    if frames.ndim == 4:
        ds.PlanarConfiguration = 0
    ds.NumberOfFrames = frames.shape[0]
    ds.Rows, ds.Columns = frames.shape[1:3]
    ds.BitsAllocated = frames.dtype.itemsize * 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, 0
    set_native_pixel_data(ds, frames.tobytes(), ds.BitsAllocated)
    return ds


def jpeg_baseline(ds: Dataset, frames: np.ndarray) -> Dataset:
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate

    parts = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=90, subsampling=1)
        parts.append(buffer.getvalue())
    out = encode_pixels(ds, DecodedPixels(frames[:1], "RGB", 8, 0))  # header template
    out.NumberOfFrames = len(frames)
    out.PhotometricInterpretation = "YBR_FULL_422"
    out.PixelData = encapsulate(parts)
    out["PixelData"].VR = "OB"
    out["PixelData"].is_undefined_length = True
    out.file_meta.TransferSyntaxUID = uid.JPEGBaseline8Bit
    out.LossyImageCompression = "01"
    return out


def edits_for(rows: int, cols: int) -> ImageEdits:
    return ImageEdits(
        blackouts=(
            Rectangle(x=0, y=0, width=cols, height=40),
            Rectangle(x=cols - 40, y=rows - 64, width=36, height=48),
        ),
        crop=CropBox(x=16, y=40, width=cols - 32, height=rows - 48),
    )


# --- timing ---------------------------------------------------------------------------------


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    return timed(repeats, fn)[0]


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of every process it started.

    Worker processes are children of the fork server, which reaps them: their time is in
    the fork server's children times.
    """
    import psutil

    total = time.process_time()
    for child in psutil.Process().children():
        try:
            t = child.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def timed(repeats: int, fn: Callable[[], object]) -> tuple[float, float]:
    """The best wall time and the best CPU time (see :func:`cpu_seconds`) of ``repeats`` calls."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, cpu_seconds() - start_cpu)
    return wall, cpu


def write(ds: Dataset, path: Path) -> None:
    with path.open("wb") as handle:
        pydicom.dcmwrite(handle, ds, enforce_file_format=True)


def measure_memory(
    path: Path, edits: ImageEdits, syntax: str, workers: int, op: str
) -> dict[str, float]:
    """Peak memory of one operation (``op`` "floor" or "edit") in a fresh subprocess.

    The subprocess warms the codecs up on a tiny image (and starts the fork server when
    ``workers`` > 1), reads ``path``, collects garbage and resets the kernel's peak-RSS mark
    (``/proc/self/clear_refs``). Then it runs the operation and writes its result to a file:
    the floor is the row's floor operation (nothing for uncompressed input, whose floor is
    read + write; decode_frames + encode_pixels for compressed input), the edit is
    apply_edits. Returned, in units of the (uncropped) pixel data size:

    * ``above``: the process's peak RSS (VmHWM) during operation + write, above the RSS with
      the input loaded;
    * ``total``: the same peak above the warmed-up start, i.e. including the loaded input;
    * ``all`` (with workers only): the largest sum of the process's RSS and its worker
      processes' unique memory (USS), sampled every 20 ms, above that sum once loaded.
    """
    script = f"""
import gc, json, sys, threading, time
sys.path.insert(0, {str(ROOT)!r})
import numpy as np, psutil, pydicom
from tftt.pixels.codecs import DecodedPixels, OutputSyntax, decode_frames, encode_pixels
from tftt.pixels.redact import apply_edits
from tftt.redaction_spec import ImageEdits
def status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    raise KeyError(key)
def now_all():
    me = psutil.Process()
    return me.memory_info().rss + sum(p.memory_full_info().uss for p in me.children(recursive=True))
edits = ImageEdits.model_validate_json({edits.model_dump_json()!r})
syntax = OutputSyntax({syntax!r})
workers, op = {workers}, {op!r}
head = pydicom.dcmread({str(path)!r}, stop_before_pixels=True)
tiny = np.zeros((1, 32, 32, 3) if head.SamplesPerPixel == 3 else (1, 32, 32), dtype=np.uint8)
colour = "RGB" if tiny.ndim == 4 else "MONOCHROME2"
tiny_ds = encode_pixels(head, DecodedPixels(tiny, colour, 8, 0), source=head)
decode_frames(encode_pixels(tiny_ds, decode_frames(tiny_ds), syntax))
decode_frames(pydicom.dcmread({str(path)!r}), index=0)  # imports the input's decoder
if workers > 1:  # start the fork server before measuring
    decode_frames(encode_pixels(tiny_ds, DecodedPixels(np.concatenate([tiny] * 4), colour, 8, 0),
                                syntax, source=head), workers=workers)
gc.collect()
start = status('VmRSS')
ds = pydicom.dcmread({str(path)!r})
pixel_bytes = (ds.Rows * ds.Columns * ds.get('SamplesPerPixel', 1)
               * int(ds.NumberOfFrames) * ds.BitsAllocated // 8)
gc.collect()
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # reset the peak RSS (VmHWM) to the current RSS
loaded = status('VmRSS')
loaded_all = now_all() if workers > 1 else 0
samples = []
def sample(stop):
    while not stop.is_set():
        try:
            samples.append(now_all())
        except psutil.Error:
            pass
        time.sleep(0.02)
stop = threading.Event()
watcher = threading.Thread(target=sample, args=(stop,), daemon=True)
if workers > 1:
    watcher.start()
native = str(ds.file_meta.TransferSyntaxUID) in ('1.2.840.10008.1.2.1', '1.2.840.10008.1.2')
if op == 'edit':
    result = apply_edits(ds, edits, syntax=syntax, workers=workers)
elif native:
    result = ds
else:
    result = encode_pixels(ds, decode_frames(ds, workers=workers), syntax, workers=workers)
with open({str(path)!r} + '.out', 'wb') as handle:
    pydicom.dcmwrite(handle, result, enforce_file_format=True)
stop.set()
if workers > 1:
    watcher.join()
peak = status('VmHWM')
print(json.dumps(dict(start=start, loaded=loaded, peak=peak, pixels=pixel_bytes,
                      all=max(samples, default=loaded_all) - loaded_all)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=1800
    )
    m = json.loads(done.stdout.strip().splitlines()[-1])
    os.unlink(str(path) + ".out")
    return {
        "above": (m["peak"] - m["loaded"]) / m["pixels"],
        "total": (m["peak"] - m["start"]) / m["pixels"],
        "all": m["all"] / m["pixels"] if workers > 1 else 0.0,
    }


def run_case(
    name: str,
    frames: np.ndarray,
    bits_stored: int,
    inputs: list[tuple[str, str, int]],
    repeats: int,
    workdir: Path,
    memory: bool,
) -> list[dict[str, object]]:
    plain = make_dataset(frames, bits_stored)
    results = []
    for label, out_syntax, workers in inputs:
        row = bench_input(name, plain, frames, label, out_syntax, workers, repeats, workdir, memory)
        results.append(row)
        print(_format(row), flush=True)
    return results


def bench_input(
    name: str,
    plain: Dataset,
    frames: np.ndarray,
    label: str,
    out_syntax: str,
    workers: int,
    repeats: int,
    workdir: Path,
    memory: bool,
) -> dict[str, object]:
    rows, cols = frames.shape[1:3]
    edits = edits_for(rows, cols)
    syntax = SYNTAX_OF[out_syntax]
    if label == "explicit":
        source = plain
    elif label == "jpeg-baseline":
        source = jpeg_baseline(plain, frames)
    else:
        source = encode_pixels(plain, decode_frames(plain), SYNTAX_OF[label], workers=2)
    path = workdir / f"{name}-{label}.dcm"
    out_path = workdir / f"{name}-{label}-out.dcm"
    write(source, path)
    del source
    loaded = pydicom.dcmread(path)
    _ = loaded.PixelData
    floor: Callable[[], object]
    edit: Callable[[], object]
    if label == "explicit":
        floor = lambda: write(pydicom.dcmread(path), out_path)  # noqa: E731
        edit = lambda: write(apply_edits(pydicom.dcmread(path), edits, syntax=syntax), out_path)  # noqa: E731
        floor_name, target = "read+write", 1.2
    else:

        def floor() -> None:
            encode_pixels(loaded, decode_frames(loaded, workers=workers), syntax, workers=workers)

        def edit() -> None:
            apply_edits(loaded, edits, syntax=syntax, workers=workers)

        floor_name, target = "decode+encode", 1.1
    floor_s = edit_s = floor_cpu = edit_cpu = float("inf")
    for _ in range(repeats):  # interleaved, so load from other processes hits both
        wall, cpu = timed(1, floor)
        floor_s, floor_cpu = min(floor_s, wall), min(floor_cpu, cpu)
        wall, cpu = timed(1, edit)
        edit_s, edit_cpu = min(edit_s, wall), min(edit_cpu, cpu)
    pixel_mb = frames.nbytes / 1e6
    row: dict[str, object] = {
        "case": name,
        "input": label,
        "output": out_syntax,
        "workers": workers,
        "pixel_mb": round(pixel_mb, 1),
        "floor": floor_name,
        "floor_s": round(floor_s, 3),
        "edit_s": round(edit_s, 3),
        "ratio": round(edit_s / floor_s, 3),
        "target": target,
        "mb_per_s": round(pixel_mb / edit_s, 1),
        "floor_cpu_s": round(floor_cpu, 3),
        "edit_cpu_s": round(edit_cpu, 3),
        "cpu_ratio": round(edit_cpu / floor_cpu, 3),
    }
    if memory:
        for op in ("floor", "edit"):
            measured = measure_memory(path, edits, out_syntax, workers, op)
            row.update({f"mem_{op}_{k}": round(v, 2) for k, v in measured.items()})
    path.unlink()
    out_path.unlink(missing_ok=True)
    return row


def _format(row: dict[str, object]) -> str:
    text = (
        f"{row['case']:<6} {row['input']:<14}-> {row['output']:<10} w={row['workers']} "
        f"{row['pixel_mb']:>6} MB  {row['floor']:<13} {row['floor_s']:>7.3f} s  "
        f"edit {row['edit_s']:>7.3f} s  ratio {row['ratio']:.2f} (target <= {row['target']})  "
        f"{row['mb_per_s']:>6} MB/s  cpu ratio {row['cpu_ratio']:.2f}"
    )
    if "mem_edit_above" in row:
        text += (
            f"  peak above input: floor {row['mem_floor_above']:.2f}x, "
            f"edit {row['mem_edit_above']:.2f}x (target <= 2), "
            f"edit incl. input {row['mem_edit_total']:.2f}x"
        )
        if row["workers"] != 1:
            text += (
                f", with workers: floor {row['mem_floor_all']:.2f}x, "
                f"edit {row['mem_edit_all']:.2f}x"
            )
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--inputs",
        default="",
        help="comma-separated input syntaxes to run (explicit,rle,jpeg-ls,jpeg-2000,jpeg-baseline)",
    )
    parser.add_argument("--cases", default="xa,us,ocr", help="comma-separated cases: xa,us,ocr")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    xa_n, xa_size = (40, 256) if args.quick else (500, 512)
    us_n, us_rows, us_cols = (20, 240, 320) if args.quick else (100, 480, 640)
    compressed = [
        ("explicit", "explicit", 1),
        ("rle", "rle", 1),
        ("jpeg-ls", "jpeg-ls", 1),
        ("jpeg-2000", "jpeg-2000", 1),
        ("jpeg-2000", "jpeg-2000", 2),
    ]
    wanted = {i for i in args.inputs.split(",") if i}
    cases = set(args.cases.split(","))

    def chosen(inputs: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
        return [i for i in inputs if not wanted or i[0] in wanted]

    print(f"pydicom {pydicom.__version__}, numpy {np.__version__}, cpus {os.cpu_count()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="tftt-bench-") as tmp:
        work = Path(tmp)
        if "xa" in cases:
            results += run_case(
                "xa",
                xa_frames(xa_n, xa_size),
                12,
                chosen(compressed),
                repeats,
                work,
                not args.no_memory,
            )
        if "us" in cases:
            results += run_case(
                "us",
                us_frames(us_n, us_rows, us_cols),
                8,
                chosen([*compressed, ("jpeg-baseline", "jpeg-ls", 1)]),
                repeats,
                work,
                not args.no_memory,
            )
    if "ocr" in cases:
        results += run_ocr(3 if args.quick else 10)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def run_ocr(repeats: int) -> list[dict[str, object]]:
    """OCR time per frame (Tesseract via tftt.pixels.ocr) on 512x512 frames with burned-in text,
    on a plain background and on ultrasound-like speckle, one frame and a 30-frame cine."""
    from PIL import Image, ImageDraw, ImageFont

    from tftt.pixels.ocr import detect_text_regions, is_available

    if not is_available():
        print("ocr: tesseract is not installed; skipped")
        return []
    rng = np.random.default_rng(3)
    font = ImageFont.load_default(size=22)
    rows = []
    for background in ("plain", "speckle"):
        speckle = rng.gamma(2.0, 30.0, (512, 512)).clip(0, 255).astype(np.uint8)
        base = np.zeros((512, 512), np.uint8) if background == "plain" else speckle
        image = Image.fromarray(base)
        ImageDraw.Draw(image).text((20, 16), "DOE^JANE  ID 12345678", fill=255, font=font)
        frame = np.asarray(image)
        for frames in (1, 30):
            stack = np.repeat(frame[np.newaxis], frames, axis=0)
            start = time.perf_counter()
            for _ in range(repeats):
                found = detect_text_regions(stack)
            seconds = (time.perf_counter() - start) / repeats
            print(f"ocr {background:8} {frames:3d} frame(s): {seconds * 1000:7.0f} ms per image, "
                  f"{seconds * 1000 / frames:6.1f} ms per frame, {len(found)} region(s)")
            rows.append({"case": f"ocr-{background}-{frames}", "seconds": seconds, "regions": len(found)})
    return rows


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    raise SystemExit(main())
