"""The quarantine folder: inputs that failed, with a JSON record of why.

The quarantine is a PHI zone (it holds the original, identified bytes), so its records may
name the source path; nothing from here is ever logged or published. Files are named by the
SHA-256 of their content, so a repeated run stores each input once. A record is named by the
SHA-256 of that digest with its stage, code and source: a repeated run writes the same record
again, and two inputs with the same bytes (two copies of one file, or two folders that could not
be read, which hold no bytes) keep a record each.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tftt.store.files import atomic_write_bytes, atomic_write_text


@dataclass(frozen=True)
class QuarantineRecord:
    stage: str
    code: str
    message: str
    findings: tuple[str, ...]
    source: str
    sha256: str
    size: int


def quarantine(qdir: Path, data: bytes, *, stage: str, code: str, message: str,
               findings: tuple[str, ...] = (), source: str = "") -> QuarantineRecord:
    """Store ``data`` and its record under ``qdir``; returns the record."""
    digest = hashlib.sha256(data).hexdigest()
    record = QuarantineRecord(stage=stage, code=code, message=message, findings=tuple(findings),
                              source=source, sha256=digest, size=len(data))
    name = hashlib.sha256(f"{digest}\0{stage}\0{code}\0{source}".encode()).hexdigest()
    atomic_write_bytes(qdir / f"{digest}.bin", data, mode=0o600)
    atomic_write_text(qdir / f"{name}.json", json.dumps(asdict(record), indent=1, sort_keys=True),
                      mode=0o600)
    return record
