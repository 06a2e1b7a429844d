"""Retrieval throughput: TFTT's WADO-RS and C-GET into files, against curl, in one run.

Starts its own Orthanc (tests/orthanc.py), writes and uploads a synthetic study of about
``--size-mb`` MB (uncompressed 16-bit multi-frames), then, ``--repeat`` times in turn:

- ``curl``: downloads the same WADO-RS multipart stream (``transfer-syntax=*``) to one file;
- WADO-RS: ``DicomwebClient.retrieve_study`` streams and splits it into ``<sha256>.dcm`` files;
- C-GET: ``DimseClient.get_study`` receives it into ``<sha256>.dcm`` files.

Prints the best MB/s of each and the ratios to curl (target: at least 0.8).
Run from the repository root: ``python3 benchmarks/retrieve.py [--size-mb 500] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import resource
import shutil
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


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (curl, getscu)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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
            "curl (one multipart file)": lambda d: _curl(server, study_uid, d),
            "WADO-RS -> files (TFTT)": wado,
            "C-GET -> files (TFTT)": cget,
        }
        if Path(GETSCU).exists():
            runs["dcmtk getscu -> files"] = lambda d: _getscu(server, study_uid, d)
        best: dict[str, float] = {}
        for round_number in range(args.repeat):
            for name, run in runs.items():
                dest = workdir / "out"
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                cpu_before = _cpu_seconds()
                started = time.perf_counter()
                nbytes = run(dest)
                seconds = time.perf_counter() - started
                cpu = _cpu_seconds() - cpu_before
                rate = nbytes / 1e6 / seconds
                best[name] = max(best.get(name, 0.0), rate)
                print(f"  round {round_number + 1}: {name:28s} {nbytes / 1e6:5.0f} MB "
                      f"in {seconds:5.2f} s = {rate:4.0f} MB/s, client CPU {cpu:4.2f} s")
                shutil.rmtree(dest, ignore_errors=True)
        curl_rate = best["curl (one multipart file)"]
        print("best of each (MB/s, ratio to curl; Orthanc's CPU is not counted):")
        for name, rate in best.items():
            print(f"  {name:28s} {rate:6.0f} MB/s  {rate / curl_rate:4.2f}x")
    finally:
        server.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
