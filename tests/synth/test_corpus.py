from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import generate_fragmented_frames

from tftt.synth.corpus import MANIFEST_NAME, Manifest, write_corpus
from tftt.synth.modules import UNKNOWN_PRIVATE_CREATOR


def _read(path: Path) -> pydicom.FileDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hostile values warn on access
        return pydicom.dcmread(path)


def test_manifest_is_written_and_loads(corpus: tuple[Path, Manifest]) -> None:
    out, manifest = corpus
    assert Manifest.load(out) == manifest
    assert manifest.total_bytes == sum(f.size_bytes for f in manifest.files)
    assert len(manifest.patients) == 2
    assert manifest.patients[0].identity.age == "092Y"
    assert {f.patient for f in manifest.files} == {0, 1}
    for entry in manifest.files:
        data = (out / entry.path).read_bytes()
        assert len(data) == entry.size_bytes
        assert hashlib.sha256(data).hexdigest() == entry.sha256
    assert len(manifest.select(outcome="hostile")) == 10
    assert len(manifest.select(kind="dx-jpeg")) == 2


def test_file_names_are_opaque_and_varied(corpus: tuple[Path, Manifest]) -> None:
    out, manifest = corpus
    paths = [f.path for f in manifest.files]
    assert len(set(paths)) == len(paths)
    assert any(p.endswith(".dcm") for p in paths)
    assert any("." not in p.rsplit("/", 1)[-1] for p in paths)
    assert any(p.count("/") == 2 for p in paths)
    canaries = manifest.canaries().second_pass()
    assert not [p for p in paths for c in canaries if c in p]
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == {*paths, MANIFEST_NAME}


def test_every_regular_file_reads_and_decodes(corpus: tuple[Path, Manifest]) -> None:
    out, manifest = corpus
    syntaxes = set()
    for entry in manifest.files:
        if entry.outcome == "hostile":
            continue
        ds = _read(out / entry.path)
        assert ds.SOPInstanceUID == entry.sop_instance_uid
        assert ds.file_meta.TransferSyntaxUID == entry.transfer_syntax
        syntaxes.add(entry.transfer_syntax)
        if entry.kind == "sr":
            assert entry.frames is None
            continue
        arr = ds.pixel_array
        assert arr.shape[:2] == (
            (entry.frames, entry.rows)
            if entry.frames and entry.frames > 1
            else (entry.rows, entry.columns)
        )
    assert syntaxes == {
        "1.2.840.10008.1.2",  # implicit VR LE
        "1.2.840.10008.1.2.1",  # explicit VR LE
        "1.2.840.10008.1.2.2",  # explicit VR BE
        "1.2.840.10008.1.2.5",  # RLE
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    }


def test_every_canary_is_planted_somewhere(corpus: tuple[Path, Manifest]) -> None:
    out, manifest = corpus
    for patient in manifest.patients:
        blobs = [
            (out / f.path).read_bytes()
            for f in manifest.files
            if f.patient == patient.index and f.outcome != "hostile"
        ]
        missing = [
            c for c in patient.canaries.second_pass() if not any(c.encode() in b for b in blobs)
        ]
        assert missing == []


def test_canaries_in_jpeg_comment_private_tag_overlay_and_deep_sequence(
    corpus: tuple[Path, Manifest],
) -> None:
    out, manifest = corpus
    who = manifest.patients[1].identity
    entry = next(f for f in manifest.select(kind="dx-jpeg") if f.patient == 1)
    ds = _read(out / entry.path)
    frame = b"".join(next(generate_fragmented_frames(ds.PixelData)))
    assert frame[2:4] == b"\xff\xfe" and who.patient_name.encode() in frame[:200]
    assert ds.private_block(0x0011, UNKNOWN_PRIVATE_CREATOR)[0x10].value == who.patient_name
    ct = _read(out / next(f for f in manifest.select(kind="ct") if f.patient == 1).path)
    assert who.patient_name in ct[0x60000022].value
    protocol = ct.RequestAttributesSequence[0].ScheduledProtocolCodeSequence[0]
    names = [i.PersonName for i in protocol.ProtocolContextSequence if "PersonName" in i]
    assert who.patient_name in names  # depth 3


def test_burned_in_entries_have_boxes_inside_with_contrast(corpus: tuple[Path, Manifest]) -> None:
    out, manifest = corpus
    burned = manifest.select(outcome="burned-in")
    assert {f.kind for f in burned} == {"cr-rle", "dx-jpeg", "us", "xa", "sc"}
    for entry in burned:
        ds = _read(out / entry.path)
        arr = ds.pixel_array
        first = arr[0] if (entry.frames or 1) > 1 else arr
        for box in entry.burned_in:
            assert 0 <= box.x and box.x + box.width <= ds.Columns
            assert 0 <= box.y and box.y + box.height <= ds.Rows
            assert box.frames == tuple(range(entry.frames or 1))
            region = first[box.y : box.y + box.height, box.x : box.x + box.width].astype(int)
            assert region.max() - region.min() > 0.75 * (2**ds.BitsStored - 1)


def test_same_seed_same_bytes(corpus: tuple[Path, Manifest], tmp_path: Path) -> None:
    out, manifest = corpus
    again = write_corpus(tmp_path / "again", seed=0, patients=2)
    assert again == manifest
    assert (tmp_path / "again" / MANIFEST_NAME).read_bytes() == (out / MANIFEST_NAME).read_bytes()
    other = write_corpus(tmp_path / "other", seed=1, patients=1, hostile=False)
    assert not other.select(outcome="hostile")
    assert {f.sha256 for f in other.files}.isdisjoint({f.sha256 for f in manifest.files})


def test_target_bytes_grows_the_corpus(tmp_path: Path) -> None:
    target = 6_000_000
    manifest = write_corpus(tmp_path, patients=1, hostile=False, target_bytes=target)
    assert target <= manifest.total_bytes < target + 1_000_000
    grown = [f for f in manifest.files if f.rows == 512 or f.columns == 640]
    assert grown and {f.kind for f in grown} <= {"ct", "us"}
    assert len({f.sop_instance_uid for f in manifest.files}) == len(manifest.files)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_corpus(tmp_path, patients=0)
    with pytest.raises(ValueError):
        write_corpus(tmp_path, seed=-1)
    with pytest.raises(ValueError):
        write_corpus(tmp_path, scale=0)
