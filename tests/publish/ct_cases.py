"""A synthetic CT series through the second pass, as a case to publish (shared by the archive
target tests)."""

from __future__ import annotations

from pathlib import Path

from tftt.deid.engine import DeidContext, compile_profile, deidentify, serialize
from tftt.deid.rules import load_profile
from tftt.publish.base import PublishableCase, PublishableFrame, PublishableImage
from tftt.synth.canaries import make_identity
from tftt.synth.studies import ct_series

CASE = "c-0123456789abcdef"


def ct_case(folder: Path, seed: int, *, deidentified: bool = True, slices: int = 3,
            size: int | None = None) -> PublishableCase:
    """A CT series of synthetic patient ``seed`` (de-identified unless asked otherwise), as a case."""
    folder.mkdir(parents=True, exist_ok=True)
    context = DeidContext(rules=compile_profile(load_profile("second-pass")), key=b"t" * 32)
    images = []
    sized = {"size": size} if size is not None else {}
    for obj in ct_series(make_identity(seed), slices=slices, **sized):
        ds = deidentify(obj.dataset, context).dataset if deidentified else obj.dataset
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        if deidentified:
            path.write_bytes(serialize(ds))
        else:
            ds.save_as(path, enforce_file_format=True)
        jpeg = folder / f"{ds.SOPInstanceUID}.jpg"
        jpeg.write_bytes(b"\xff\xd8\xff\xd9")
        images.append(PublishableImage(dicom=path, frames=(PublishableFrame(number=1, jpeg=jpeg),)))
    return PublishableCase(case_id=CASE, metadata={"title": "CT"}, images=tuple(images))
