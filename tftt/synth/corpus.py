"""Write a synthetic corpus to disk, with a ``manifest.json`` describing every file.

This is the one module of :mod:`tftt.synth` that writes files. Files get opaque names (a keyed
hash of the seed and a counter): some end in ``.dcm``, some have no extension, some sit in
nested folders. Objects are generated, encoded and written one at a time, so memory stays
bounded even for a corpus of gigabytes (``target_bytes``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tftt.store.files import atomic_write_bytes, atomic_write_text, contained_path
from tftt.synth.burnin import BurnedBox
from tftt.synth.canaries import CanarySet, Identity, canary_strings, make_identity
from tftt.synth.hostile import HostileInput, hostile_inputs
from tftt.synth.studies import (
    STUDY_CT,
    STUDY_US,
    SynthObject,
    ct_series,
    iter_patient_objects,
    sizes_for_scale,
    us_cine,
)
from tftt.synth.transfer import encode

MANIFEST_NAME = "manifest.json"
Outcome = Literal["ok", "burned-in", "hostile"]

_GROWTH_CT_SIZE = 512
_GROWTH_CT_SLICES = 48
_GROWTH_US_SIZE = 640
_GROWTH_US_FRAMES = 24


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Frozen):
    """One written file.

    ``path`` is relative to the corpus folder, with ``/`` separators. ``outcome`` is the hint
    for tests: ``ok`` (de-identify normally), ``burned-in`` (pixels carry identifying text in
    ``burned_in`` boxes), ``hostile`` (must be rejected or survived; see ``defect``).
    ``patient`` is the index into :attr:`Manifest.patients`.
    """

    path: str
    kind: str
    outcome: Outcome
    patient: int
    size_bytes: int
    sha256: str
    modality: str | None = None
    sop_class_uid: str | None = None
    transfer_syntax: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    sop_instance_uid: str | None = None
    rows: int | None = None
    columns: int | None = None
    frames: int | None = None
    burned_in: tuple[BurnedBox, ...] = ()
    defect: str | None = None


class PatientEntry(_Frozen):
    """A synthetic patient of the corpus and the canaries planted for them."""

    index: int
    identity: Identity
    canaries: CanarySet


class Manifest(_Frozen):
    """What :func:`write_corpus` wrote: every file, every patient, every canary."""

    version: Literal[1] = 1
    seed: int
    scale: float
    target_bytes: int | None
    total_bytes: int
    patients: tuple[PatientEntry, ...]
    files: tuple[FileEntry, ...]

    def canaries(self) -> CanarySet:
        """The canaries of all patients, merged."""
        merged = CanarySet(always=(), uids=(), device_and_institution=())
        for patient in self.patients:
            merged = merged.merged(patient.canaries)
        return merged

    def select(
        self, *, outcome: Outcome | None = None, kind: str | None = None
    ) -> tuple[FileEntry, ...]:
        """The file entries with the given outcome and/or kind."""
        return tuple(
            f
            for f in self.files
            if (outcome is None or f.outcome == outcome) and (kind is None or f.kind == kind)
        )

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        """Read ``folder/manifest.json``.

        Raises:
            FileNotFoundError: there is no manifest.
            pydantic.ValidationError: the manifest is malformed.
        """
        return cls.model_validate_json((folder / MANIFEST_NAME).read_text(encoding="utf-8"))


class _Writer:
    """Names, writes and records files; counts bytes."""

    def __init__(self, out: Path, seed: int) -> None:
        self.out = out
        self.seed = seed
        self.count = 0
        self.total = 0
        self.entries: list[FileEntry] = []

    def _parts(self) -> tuple[str, ...]:
        digest = hashlib.sha256(f"tftt-synth:{self.seed}:{self.count}".encode()).hexdigest()
        name = digest[:20]
        self.count += 1
        layout = int(digest[20], 16) % 3
        if layout == 0:
            return (name + ".dcm",)
        if layout == 1:
            return (name,)
        return (digest[21:23], digest[23:25], name)

    def write(self, data: bytes, **fields: object) -> FileEntry:
        parts = self._parts()
        atomic_write_bytes(contained_path(self.out, *parts), data)
        entry = FileEntry(
            path="/".join(parts),
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            **fields,  # type: ignore[arg-type]
        )
        self.entries.append(entry)
        self.total += len(data)
        return entry

    def write_object(self, obj: SynthObject, patient: int) -> FileEntry:
        ds = obj.dataset
        frames = int(ds.get("NumberOfFrames", 1) or 1) if "PixelData" in ds else None
        return self.write(
            encode(ds),
            kind=obj.kind,
            outcome=obj.outcome,
            patient=patient,
            modality=ds.Modality,
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
            study_uid=str(ds.StudyInstanceUID),
            series_uid=str(ds.SeriesInstanceUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            rows=ds.get("Rows"),
            columns=ds.get("Columns"),
            frames=frames,
            burned_in=obj.boxes,
        )

    def write_hostile(self, item: HostileInput, patient: int) -> FileEntry:
        return self.write(
            item.data, kind=item.kind, outcome="hostile", patient=patient, defect=item.defect
        )


def _growth(
    identities: list[Identity], remaining: Callable[[], int]
) -> Iterator[tuple[SynthObject, int]]:
    """Large CT slices and US cines, round-robin over patients, while ``remaining()`` > 0."""
    frame_bytes = _GROWTH_US_SIZE * (_GROWTH_US_SIZE * 3 // 4) * 3
    round_no = 0
    while True:
        index = round_no % len(identities)
        who = identities[index]
        series = 100 + round_no // len(identities)
        round_no += 1
        for k in range(_GROWTH_CT_SLICES):
            if remaining() <= 0:
                return
            yield (
                ct_series(
                    who,
                    study=STUDY_CT,
                    series=series,
                    slices=_GROWTH_CT_SLICES,
                    size=_GROWTH_CT_SIZE,
                    only=k,
                )[0],
                index,
            )
        if remaining() <= 0:
            return
        frames = max(1, min(_GROWTH_US_FRAMES, remaining() // frame_bytes))
        yield (
            us_cine(who, study=STUDY_US, series=series, frames=frames, size=_GROWTH_US_SIZE)[0],
            index,
        )


def write_corpus(
    out: Path,
    *,
    seed: int = 0,
    patients: int = 2,
    scale: float = 1.0,
    hostile: bool = True,
    target_bytes: int | None = None,
) -> Manifest:
    """Write a corpus for ``patients`` synthetic patients under ``out`` and return its manifest
    (also written to ``out/manifest.json``).

    Patient ``i`` is ``make_identity(seed * 1000 + i)``, so patient 0 is 92 years old. Every
    patient gets every object of :func:`~tftt.synth.studies.iter_patient_objects` at
    ``scale``; with ``hostile`` the hostile inputs of patient 0 are added; with
    ``target_bytes`` the corpus then grows with 512×512 CT slices and 640×480 US cines until it
    holds about that many bytes. Same arguments, same bytes.

    Raises:
        ValueError: ``patients`` < 1, ``seed`` < 0, or ``scale`` is not positive.
        OSError: the files cannot be written.
    """
    if patients < 1:
        raise ValueError("a corpus needs at least one patient")
    if seed < 0:
        raise ValueError("seed must be non-negative")
    sizes = sizes_for_scale(scale)
    identities = [make_identity(seed * 1000 + i) for i in range(patients)]
    writer = _Writer(out, seed)
    for index, who in enumerate(identities):
        for obj in iter_patient_objects(who, sizes):
            writer.write_object(obj, index)
    if hostile:
        for item in hostile_inputs(identities[0]):
            writer.write_hostile(item, 0)
    if target_bytes is not None and target_bytes > writer.total:
        goal = target_bytes
        for obj, index in _growth(identities, lambda: goal - writer.total):
            writer.write_object(obj, index)
    manifest = Manifest(
        seed=seed,
        scale=scale,
        target_bytes=target_bytes,
        total_bytes=writer.total,
        patients=tuple(
            PatientEntry(index=i, identity=who, canaries=canary_strings(who))
            for i, who in enumerate(identities)
        ),
        files=tuple(writer.entries),
    )
    atomic_write_text(out / MANIFEST_NAME, manifest.model_dump_json(indent=1))
    return manifest
