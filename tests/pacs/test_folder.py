from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.pacs.synthetic import SyntheticStudy, build_study
from tftt.errors import TargetRejectedError, TargetUnavailableError, UnsupportedInputError
from tftt.pacs.base import Source
from tftt.pacs.folder import FolderSource


@pytest.fixture
def import_dir(tmp_path: Path) -> tuple[Path, SyntheticStudy]:
    root = tmp_path / "import"
    built = build_study(root / "a" / "deep", seed=31)
    (root / "notes.txt").write_text("not DICOM")
    (root / "a" / "truncated.dcm").write_bytes(b"\0" * 128 + b"DICM")
    return root, built


def test_folder_source_finds_and_copies_a_study(tmp_path: Path) -> None:
    root = tmp_path / "import"
    wanted = build_study(root / "x", seed=32)
    other = build_study(root / "y", seed=33)
    (root / "junk.bin").write_bytes(os.urandom(1000))
    (root / "link.dcm").symlink_to(other.files[0])
    source = FolderSource(root)
    assert isinstance(source, Source)

    info = source.find_study(wanted.study_uid)
    assert info.number_of_instances == len(wanted.instances)
    assert {s.series_uid: s.number_of_instances for s in info.series} == {
        uid: len(wanted.in_series(uid)) for uid in wanted.series_uids
    }
    assert info.modalities == ("CT", "MR", "OT")

    before = {p: p.read_bytes() for p in wanted.files}
    result = source.retrieve_study(wanted.study_uid, None, tmp_path / "out")
    assert result.count == len(wanted.instances)
    for path in result.files:
        assert path.parent == tmp_path / "out"
        assert path.name == hashlib.sha256(path.read_bytes()).hexdigest() + ".dcm"
    assert {p.read_bytes() for p in result.files} == set(before.values())
    assert result.total_bytes == sum(len(b) for b in before.values())
    assert {p: p.read_bytes() for p in wanted.files} == before  # the input is untouched
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())
    assert os.stat(result.files[0]).st_ino not in {os.stat(p).st_ino for p in wanted.files}


def test_folder_source_links_when_asked(tmp_path: Path) -> None:
    built = build_study(tmp_path / "import", seed=34)
    result = FolderSource(tmp_path / "import", link=True).retrieve_study(
        built.study_uid, [built.series_uids[1]], tmp_path / "out"
    )
    assert result.count == len(built.in_series(built.series_uids[1]))
    inodes = {os.stat(p).st_ino for p in built.files}
    assert all(os.stat(p).st_ino in inodes for p in result.files)


def test_folder_source_errors(import_dir: tuple[Path, SyntheticStudy], tmp_path: Path) -> None:
    root, built = import_dir
    source = FolderSource(root)
    assert source.find_study(built.study_uid).number_of_instances == len(built.instances)
    with pytest.raises(TargetRejectedError) as caught:
        source.find_study("1.2.3.4.5.6.7.8.9")
    assert caught.value.code == "not-found"
    with pytest.raises(TargetRejectedError):
        source.retrieve_study(built.study_uid, ["1.2.3.4.5.6.7.8.9"], tmp_path / "out")
    with pytest.raises(UnsupportedInputError):
        source.find_study("../etc")
    with pytest.raises(TargetUnavailableError):
        FolderSource(tmp_path / "missing").find_study(built.study_uid)


def _png(color: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pictures_beside_a_studys_files_come_as_secondary_captures(tmp_path: Path) -> None:
    import pydicom

    root = tmp_path / "import"
    built = build_study(root / "x", seed=35)
    other = build_study(root / "y", seed=36)
    (root / "x" / "Photo 1.PNG").write_bytes(_png((200, 10, 10)))
    (root / "x" / "copy.png").write_bytes(_png((200, 10, 10)))  # the same picture again
    (root / "x" / "screen.gif").write_bytes(_png((10, 10, 200)))  # named .gif, decodes as PNG
    (root / "x" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "y" / "theirs.png").write_bytes(_png((0, 200, 0)))  # another study's picture
    source = FolderSource(root)

    result = source.retrieve_study(built.study_uid, None, tmp_path / "out")
    assert result.count == len(built.instances) + 3  # two distinct pictures and the broken one
    captures, raw = [], []
    for path in result.files:
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            raw.append(path.read_bytes())
            continue
        if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and ds.get("ConversionType") == "WSD":
            captures.append(ds)
    assert raw == [b"\xff\xd8 not a jpeg"]  # as it is: the first pass quarantines it
    assert len(captures) == 2
    assert {str(ds.StudyInstanceUID) for ds in captures} == {built.study_uid}
    assert len({str(ds.SeriesInstanceUID) for ds in captures}) == 1
    assert {int(ds.SeriesNumber) for ds in captures} == {9001}
    assert other.study_uid not in {str(ds.StudyInstanceUID) for ds in captures}

    again = source.retrieve_study(built.study_uid, None, tmp_path / "again")
    assert sorted(p.name for p in again.files) == sorted(p.name for p in result.files)  # stable UIDs
    series_only = source.retrieve_study(built.study_uid, [built.series_uids[0]], tmp_path / "series")
    assert series_only.count == len(built.in_series(built.series_uids[0]))  # no pictures
