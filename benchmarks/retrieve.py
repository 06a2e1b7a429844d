"""Retrieval throughput: TFTT's WADO-RS and C-GET into files, against curl, in one run.

Starts its own Orthanc (tests/orthanc.py: no gzip, no GDCM plugin), writes and uploads a
synthetic study of about ``--size-mb`` MB (uncompressed 16-bit multi-frames of about 250 MB
each), then runs ``--repeat`` rounds; each round runs every contender once, in a rotated order:

- ``curl``: downloads the WADO-RS multipart stream of the study (``transfer-syntax=*``, the
  same request TFTT sends) into one file;
- WADO-RS: ``DicomwebClient.retrieve_study`` streams the same answer, splits it into parts and
  writes each to ``<sha256>.dcm`` (hashing every byte, temporary file + rename);
- C-GET: ``DimseClient.get_study`` (C-FIND for the instance count, then C-GET) receives the
  same instances into ``<sha256>.dcm`` files the same way;
- dcmtk's ``getscu`` into files, when installed (a native DIMSE reference point).

Like with like: the same study from the same Orthanc, whose storage is in the page cache for
every contender (it was just uploaded); everybody writes to files in the same folder (curl to
a file, not ``/dev/null``), which is emptied between runs outside the timed part. Bytes are
those reported by each contender (curl's include the multipart framing, about 200 bytes per
instance). Rates are MB/s (10^6 bytes) of wall-clock time; client CPU is user + system time of
this process or of the child; Orthanc's CPU is not counted. Peak RSS is this process's high
water mark during the run (reset before each; Linux only), for the in-process contenders.

Prints each run, then for each contender its best rate, its ratio to the best curl rate, and
the lowest and median of its ratios to curl in the same round (target: at least 0.8).
Run from the repository root: ``python3 benchmarks/retrieve.py [--size-mb 500] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr
from pydicom.uid import generate_uid

from tests.orthanc import OrthancServer, free_port
from tests.pacs.synthetic import write_large_instance
from tftt.pacs.dicomweb import ACCEPT_DICOM, DicomwebClient
from tftt.pacs.dimse import DimseClient
from tftt.settings import DicomwebSettings, DimseSettings

GETSCU = "/usr/bin/getscu"  # dcmtk
FRAME_BYTES = 512 * 512 * 2
INSTANCE_MB = 250
CURL = "curl (one multipart file)"


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (curl, getscu)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _reset_peak_rss() -> None:
    """Reset this process's peak RSS (VmHWM), so that it measures the next run only."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mib() -> float:
    """This process's peak RSS since the last reset (Linux), or NaN."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _curl(server: OrthancServer, study_uid: str, dest: Path) -> int:
    """curl the multipart stream to one file; credentials go through stdin, not argv."""
    config = f'user = "{server.username}:{server.password}"\n'
    subprocess.run(
        ["curl", "-sS", "--fail", "-K", "-", "-H", f"Accept: {ACCEPT_DICOM}",
         "-o", str(dest / "stream.bin"), f"{server.dicomweb_url}/studies/{study_uid}"],
        input=config.encode(), check=True,
    )
    return (dest / "stream.bin").stat().st_size


def _getscu(server: OrthancServer, study_uid: str, dest: Path) -> int:
    """dcmtk's getscu (C-GET into files), the DIMSE reference point."""
    subprocess.run(
        [GETSCU, "-S", "-aet", "TFTT", "-aec", server.aet, "-od", str(dest),
         "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
         server.host, str(server.dicom_port)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return sum(p.stat().st_size for p in dest.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tftt-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = OrthancServer(workdir / "orthanc", aet="BENCH",
                           modalities={"tftt": ("TFTT", "127.0.0.1", free_port())})
    try:
        server.start()
        study_uid, series_uid = generate_uid(), generate_uid()
        instances = max(1, round(args.size_mb / INSTANCE_MB))
        frames = round(args.size_mb * 1e6 / instances / FRAME_BYTES)
        started = time.perf_counter()
        files = [
            write_large_instance(workdir / f"in{i}.dcm", study_uid, series_uid,
                                 frames=frames, seed=i).path
            for i in range(instances)
        ]
        size = sum(f.stat().st_size for f in files)
        print(f"study: {instances} instances, {size / 1e6:.0f} MB, "
              f"written in {time.perf_counter() - started:.1f} s")
        web_settings = DicomwebSettings(url=server.dicomweb_url, username=server.username,
                                        password=SecretStr(server.password), stow_batch_size=1,
                                        timeout_seconds=300)
        started = time.perf_counter()
        with DicomwebClient(web_settings) as client:
            client.send(files)
        print(f"STOW-RS upload: {size / 1e6 / (time.perf_counter() - started):.0f} MB/s")
        for f in files:
            f.unlink()
        dimse = DimseClient(DimseSettings(host=server.host, port=server.dicom_port,
                                          called_aet=server.aet, calling_aet="TFTT",
                                          timeout_seconds=300))

        def wado(dest: Path) -> int:
            with DicomwebClient(web_settings) as client:
                return client.retrieve_study(study_uid, None, dest).total_bytes

        def cget(dest: Path) -> int:
            return dimse.get_study(study_uid, None, dest).total_bytes

        runs: dict[str, Callable[[Path], int]] = {
            CURL: lambda d: _curl(server, study_uid, d),
            "WADO-RS -> files (TFTT)": wado,
            "C-GET -> files (TFTT)": cget,
        }
        if Path(GETSCU).exists():
            runs["dcmtk getscu -> files"] = lambda d: _getscu(server, study_uid, d)
        best: dict[str, float] = {}
        ratios: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for round_number in range(args.repeat):
            shift = round_number % len(names)
            rates: dict[str, float] = {}
            for name in names[shift:] + names[:shift]:
                dest = workdir / "out"
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                in_process = not name.startswith(("curl", "dcmtk"))
                if in_process:
                    _reset_peak_rss()
                cpu_before = _cpu_seconds()
                started = time.perf_counter()
                nbytes = runs[name](dest)
                seconds = time.perf_counter() - started
                cpu = _cpu_seconds() - cpu_before
                peak = f"peak RSS {_peak_rss_mib():4.0f} MiB" if in_process else ""
                rates[name] = rate = nbytes / 1e6 / seconds
                best[name] = max(best.get(name, 0.0), rate)
                print(f"  round {round_number + 1}: {name:28s} {nbytes / 1e6:5.0f} MB "
                      f"in {seconds:5.2f} s = {rate:4.0f} MB/s, client CPU {cpu:4.2f} s  {peak}")
                shutil.rmtree(dest, ignore_errors=True)
            for name, rate in rates.items():
                ratios[name].append(rate / rates[CURL])
        curl_rate = best[CURL]
        print("best of each (MB/s, ratio to the best curl; same-round ratios to curl: lowest,"
              " median; Orthanc's CPU is not counted):")
        for name, rate in best.items():
            print(f"  {name:28s} {rate:6.0f} MB/s  {rate / curl_rate:4.2f}x  "
                  f"same round: {min(ratios[name]):4.2f}x, {statistics.median(ratios[name]):4.2f}x")
    finally:
        server.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
