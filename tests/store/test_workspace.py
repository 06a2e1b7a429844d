from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tftt.errors import UnsupportedInputError
from tftt.settings import Settings
from tftt.store.workspace import IDENTIFIED_AREAS, Area, CaseWorkspace

CASE = "c-00112233445566ff"


def test_layout_and_private_folders(tmp_path: Path) -> None:
    ws = CaseWorkspace(tmp_path / "cases", CASE)
    assert not ws.path.exists()  # creating the object touches nothing
    ws.ensure().ensure()
    names = sorted(p.name for p in ws.path.iterdir())
    assert names == sorted(a.value for a in Area)
    assert ws.second_pass == (tmp_path / "cases" / CASE / "second_pass").resolve()
    for folder in [ws.path, *(ws.area(a) for a in Area)]:
        assert stat.S_IMODE(os.stat(folder).st_mode) & 0o077 == 0


def test_for_settings_uses_the_cases_dir(tmp_path: Path) -> None:
    ws = CaseWorkspace.for_settings(Settings(data_dir=tmp_path), CASE)
    assert ws.path == (tmp_path / "cases" / CASE).resolve()


@pytest.mark.parametrize(
    "case_id",
    [
        "../c-00112233445566ff",
        "c-0011",
        "C-00112233445566FF",
        "/tmp/x",
        "",
        "c-..",
        "c-00112233445566ff/..",
        "c-00112233445566fg",
    ],
)
def test_case_ids_are_validated(tmp_path: Path, case_id: str) -> None:
    with pytest.raises(UnsupportedInputError):
        CaseWorkspace(tmp_path, case_id)


def test_write_is_atomic_private_and_contained(tmp_path: Path) -> None:
    ws = CaseWorkspace(tmp_path, CASE).ensure()
    path = ws.write_bytes(Area.SECOND_PASS, "2.25.123.dcm", b"DICM")
    assert path.read_bytes() == b"DICM" and path.parent == ws.second_pass
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ws.files(Area.SECOND_PASS, ".dcm") == [path]
    for bad in ["../../escape.dcm", "/etc/passwd", "..", "a/b", "", "x\x00y"]:
        with pytest.raises(UnsupportedInputError):
            ws.write_bytes(Area.SECOND_PASS, bad, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [CASE]


def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    ws = CaseWorkspace(tmp_path / "cases", CASE).ensure()
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.incoming / "link").symlink_to(outside)
    with pytest.raises(UnsupportedInputError):
        ws.file(Area.INCOMING, "link")


def test_relative_paths_round_trip_and_stay_inside(tmp_path: Path) -> None:
    ws = CaseWorkspace(tmp_path, CASE).ensure()
    path = ws.write_bytes(Area.QUARANTINE, "2.25.9.dcm", b"x")
    rel = ws.relative(path)
    assert rel == "quarantine/2.25.9.dcm"
    assert ws.resolve(rel) == path
    with pytest.raises(UnsupportedInputError):
        ws.relative(tmp_path / "other.dcm")
    with pytest.raises(UnsupportedInputError):
        ws.resolve("../../etc/passwd")
    with pytest.raises(UnsupportedInputError):
        ws.resolve("/etc/passwd")


def test_purge_deletes_only_the_named_areas_and_says_which_existed(tmp_path: Path) -> None:
    ws = CaseWorkspace(tmp_path, CASE).ensure()
    ws.write_bytes(Area.INCOMING, "a.dcm", b"x")
    ws.write_bytes(Area.FIRST_PASS, "b.dcm", b"x")
    ws.write_bytes(Area.QUARANTINE, "c.bin", b"x")
    ws.write_bytes(Area.SECOND_PASS, "d.dcm", b"x")
    # previews/ is there but empty: deleted, not reported
    assert ws.purge(IDENTIFIED_AREAS) == (Area.INCOMING, Area.FIRST_PASS)
    assert not ws.area(Area.PREVIEWS).exists()
    assert not ws.incoming.exists() and not ws.area(Area.FIRST_PASS).exists()
    assert ws.file(Area.QUARANTINE, "c.bin").exists() and ws.file(Area.SECOND_PASS, "d.dcm").exists()
    assert ws.purge(IDENTIFIED_AREAS) == ()  # idempotent
