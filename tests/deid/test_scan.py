"""Finding needles in bytes: boundaries, encodings, offsets, and no false positives."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from tests.deid import verify_support as vs
from tests.deid import views_support as views
from tftt.deid import scan
from tftt.deid.scan import (
    _CHUNK,
    Category,
    NeedleSet,
    iter_elements,
    merge_needles,
)

NAME = Category.NAME


def found(needles: dict[str, Category], data: bytes, *, short: bool = True) -> list[int]:
    return [hit.offset for hit in NeedleSet(needles).search(data, short=short)]


def test_short_needles_match_whole_words_only() -> None:
    needles = {"ANN": NAME, "LEE": NAME}
    assert found(needles, b"ANNOTATION SLEEVE LEEWAY") == []
    assert found(needles, b"Dr Ann, see lee^x") == [3, 12]
    assert found(needles, b"ANN", short=False) == []  # never in raw bytes


def test_long_needles_match_as_substrings_case_insensitively() -> None:
    assert found({"CANARY": NAME}, b"xxcanaryzelda Canary") == [2, 14]


def test_encodings_utf16_latin1_utf8() -> None:
    needles = {"MÜLLERSON": NAME}
    for data in (
        "Dr müllerson".encode("latin-1"),
        "Dr MÜLLERSON".encode(),
        b"\x01" + "by Müllerson".encode("utf-16-le"),
    ):
        assert len(found(needles, data, short=False)) == 1, data
    polish = {"ŁUKASZEWICZ": NAME}
    assert len(found(polish, b"\x00" + "łukaszewicz".upper().encode("utf-16-le"))) == 1


def test_short_utf16_token() -> None:
    assert found({"ZED": NAME}, "a zed b".encode("utf-16-le")) == [4]
    assert found({"ZED": NAME}, "zedekiah".encode("utf-16-le")) == []


def test_digit_boundaries() -> None:
    date = {"19520314": Category.DATE}
    assert found(date, b"born 19520314.") == [5]
    assert found(date, b"uid 1.2.19520314.7") == []
    assert found(date, b"n 219520314") == []
    uid = {"1.2.826.0.1.3680043.8.498.1": Category.UID}
    assert found(uid, b"1.2.826.0.1.3680043.8.498.1.5") == [0]  # appended to: still a leak
    assert found(uid, b"9.1.2.826.0.1.3680043.8.498.1") == [2]  # prefixed by a root
    assert found(uid, b"1.2.826.0.1.3680043.8.498.12") == []  # a different UID


def test_irregular_short_needle_with_separator() -> None:
    assert found({"XU LI": NAME}, b"CT xu li chest") == [3]
    assert found({"XU LI": NAME}, b"CT xu lix") == []


def test_every_alignment_and_chunk_boundaries() -> None:
    rng = np.random.default_rng(3)
    data = bytearray(rng.integers(0, 256, size=_CHUNK + 4096, dtype=np.uint8).tobytes())
    needle = b"\x00QUIXOTE\x00"
    wide = "\x00QUIXOTE\x00".encode("utf-16-le")
    expected: list[int] = []
    for offset in [*range(100, 600, 33), _CHUNK - 5, _CHUNK + 11, len(data) - 12]:
        data[offset : offset + len(needle)] = needle
        expected.append(offset + 1)
    for offset in (2000, 3001, _CHUNK - 40):
        data[offset : offset + len(wide)] = wide
        expected.append(offset + 2)
    assert found({"QUIXOTE": NAME}, bytes(data), short=False) == sorted(expected)


def test_no_false_positives_in_random_and_pixel_like_data() -> None:
    rng = np.random.default_rng(5)
    needles = {
        "".join(chr(65 + int(c)) for c in rng.integers(0, 26, size=8)): Category.TEXT
        for _ in range(300)
    } | {"19520314": Category.DATE, "1.2.826.0.1.3680043.8.498.10000000001": Category.UID}
    noise = rng.integers(0, 256, size=3 << 20, dtype=np.uint8).tobytes()
    mr = rng.normal(60, 40, size=1 << 20).clip(0, 4095).astype("<u2").tobytes()
    assert found(needles, noise, short=False) == []
    assert found(needles, mr, short=False) == []


def test_merge_needles_keeps_the_stronger_kind() -> None:
    merged = merge_needles([("ZELDA", Category.TEXT)], [("ZELDA", Category.NAME)])
    assert merged == {"ZELDA": Category.NAME}


def test_needle_count_ignores_tiny_strings() -> None:
    assert len(NeedleSet({"AB": NAME, "ABC": NAME})) == 1


@pytest.mark.parametrize("defer", [None, 4])
def test_iter_elements_reads_without_converting(defer: int | None) -> None:
    ds = dcmread(BytesIO(vs.to_bytes(vs.original())), defer_size=defer)
    views = {v.tag: v for v in iter_elements(ds, None)}
    assert views[0x00100010].value == vs.PATIENT_NAME
    assert views[0x00100010].value_tell is not None
    assert isinstance(ds.get_item(0x00100010, keep_deferred=True), RawDataElement)
    assert views[0x00080008].value == "ORIGINAL\\PRIMARY\\AXIAL"


def test_sets_sharing_a_patients_needles_do_not_share_their_own_uids():
    shared = {"CANARYSURNAME": NAME, "CNRYID4711": Category.ID}
    first = NeedleSet({**shared, "1.2.3.4.5.6.7": Category.UID})
    second = NeedleSet({**shared, "1.2.3.4.5.6.8": Category.UID})
    data = b"CANARYSURNAME 1.2.3.4.5.6.7 CNRYID4711 1.2.3.4.5.6.8"
    assert [h.category for h in first.search(data)] == [NAME, Category.UID, Category.ID]
    assert [h.category for h in second.search(data)] == [NAME, Category.ID, Category.UID]
    # the first set is unchanged by building the second from the same cached part
    assert [h.offset for h in first.search(data)] == [0, 14, 28]
    assert len(first) == len(second) == 3


_FRAGMENTS = ["quixote", "Li", " ", ".", "o'ne", "19520314", "1", "MRN881122", "éabcde",
              "1.2.826.0.1.3680043.8.498.1", "2.25.77", "ÉABCDE", "Ã©ABCDE", "2.25.777", "x"]  # fmt: skip


@pytest.mark.parametrize(
    "uids",
    [
        ("1.2.826.0.1.3680043.8.498.1", "2.25.77"),  # ASCII: found with bytes.find
        ("1.2.826.0.1.3680043.8.498.1", "ÉABCDE"),  # not all ASCII: the vectorised search
    ],
)
def test_the_shared_part_and_the_uid_search_split_the_whole_search(uids: tuple[str, str]) -> None:
    import random

    rng = random.Random(7)
    needles = {"QUIXOTE": NAME, "LI": NAME, "O'NE": NAME, "Ã©ABCDE": NAME,
               "19520314": Category.DATE, "MRN881122": Category.ID}  # fmt: skip
    whole = NeedleSet({**needles, **{uid: Category.UID for uid in uids}})
    assert whole.uids_long
    found_uids = 0
    for _ in range(300):
        text = "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(1, 6)))
        data = text.encode(rng.choice(["latin-1", "utf-8", "utf-16-le"]), errors="replace")
        data = data[rng.randint(0, 1) :]
        for short in (True, False):
            hits = whole.search(data, short=short)
            uid_hits = [hit for hit in hits if hit.category is Category.UID]
            assert whole.search_uids(data) == uid_hits
            assert whole.shared_part().search(data, short=short) == [
                hit for hit in hits if hit.category is not Category.UID
            ]
            found_uids += bool(uid_hits)
    assert found_uids > 20


def test_a_patients_sets_share_one_shared_part() -> None:
    shared = {"CANARYSURNAME": NAME, "CNRYID4711": Category.ID}
    first = NeedleSet({**shared, "1.2.3.4.5.6.7": Category.UID})
    second = NeedleSet({**shared, "1.2.3.4.5.6.8": Category.UID})
    assert first.shared_needles is second.shared_needles
    assert first.shared_needles == frozenset(shared.items())
    assert first.shared_part() is second.shared_part()
    assert first.shared_part().search(b"1.2.3.4.5.6.7 CANARYSURNAME")[0].offset == 14


def test_separable_needles_cannot_start_on_or_cover_two_zero_bytes() -> None:
    assert NeedleSet({"QUIXOTE": NAME, "LI": NAME, "ŁUKASZ": NAME}).separable
    assert not NeedleSet({"ĀBCDEF": NAME}).separable  # UTF-16 form 00 01 ...
    assert not NeedleSet({"AB\x00\x00CD": NAME}).separable


# ----- the fast path over pydicom's element dict ---------------------------------------------


def _datasets(ds: Dataset) -> list[Dataset]:
    """``ds``, its file meta and every sequence item, at every depth."""
    out = [ds]
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        out.append(meta)
    for element in ds.iterall():
        if element.VR == "SQ":
            for item in element.value:
                out.extend(_datasets(item))
    return out


def _stored(ds: Dataset) -> list[list[tuple[int, int]]]:
    """The identity of every stored element: a read must not store a conversion."""
    return [[(int(t), id(e)) for t, e in d._dict.items()] for d in _datasets(ds)]


def _synthetic_datasets() -> list[tuple[str, Dataset]]:
    out: list[tuple[str, Dataset]] = []
    for case in views.synthetic_cases():
        if case.original is not None:
            out.append((f"{case.name} original", case.original))
        if case.output is not None:
            out.append((f"{case.name} output", dcmread(BytesIO(case.output), defer_size=1 << 20)))
    return out


def test_the_fast_path_is_taken_for_pydicom_datasets() -> None:
    """Fails when a pydicom release moves the element dict: the fast path would be lost."""
    ds = dcmread(BytesIO(vs.to_bytes(vs.original())))
    for dataset in (ds, ds.file_meta, Dataset()):
        assert scan._element_map(dataset) is dataset._dict
    for tag, item in scan._sorted_items(ds):
        assert ds.get_item(tag, keep_deferred=True) is item


def test_fast_and_plain_paths_read_every_synthetic_file_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = _synthetic_datasets()
    assert len(datasets) > 20
    for name, ds in datasets:
        before = _stored(ds)
        fast = views.file_views(ds)
        harvest_like = views.element_views(ds, skip_public_vrs=frozenset({"US", "OB"}))
        with monkeypatch.context() as patch:
            patch.setattr(scan, "_element_map", lambda _ds: None)
            assert views.file_views(ds) == fast, name
            plain_harvest = views.element_views(ds, skip_public_vrs=frozenset({"US", "OB"}))
            assert plain_harvest == harvest_like, name
        assert _stored(ds) == before, name


def test_a_files_uids_never_reach_the_patients_shared_set_or_another_file() -> None:
    """Sets share the patient's cached buckets (copied dicts, shared lists): a UID added to one
    file's set must not land in a bucket another set reads, even under the same prefix."""
    shared = {"1.2.840999999": Category.ID, "CANARYZELDA": Category.NAME}
    one = NeedleSet({**shared, "1.2.840.11111.1": Category.UID})
    other = NeedleSet({**shared, "1.2.840.22222.2": Category.UID})
    alone = NeedleSet(shared)
    text = b"x 1.2.840.11111.1 y 1.2.840.22222.2 z 1.2.840999999"
    assert [h.category for h in one.search(text)] == [Category.UID, Category.ID]
    assert [h.category for h in other.search(text)] == [Category.UID, Category.ID]
    assert one.search(text)[0].offset == 2
    assert other.search(text)[0].offset == 20
    assert [h.category for h in alone.search(text)] == [Category.ID]


def _groups(**extra: frozenset[str]) -> dict[str, frozenset[str]]:
    groups = {
        "names": frozenset({"CANARYFAMILY^CANARYGIVEN", "CANARYFAMILY", "ANN"}),
        "ids": frozenset({"PID-778812", "AB"}),
        "uids": frozenset({"1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"}),
        "dates": frozenset({"19520314", "1952-03-14"}),
        "emails": frozenset({"CANARY@EXAMPLE.ORG"}),
        "phones": frozenset({"+1 555 0100"}),
        "texts": frozenset({"SECRET WARD 7"}),
    }
    groups.update(extra)
    return groups


def _merged(groups: dict[str, frozenset[str]]) -> NeedleSet:
    kinds = {"names": NAME, "ids": Category.ID, "uids": Category.UID, "dates": Category.DATE,
             "emails": Category.EMAIL, "phones": Category.PHONE, "texts": Category.TEXT}
    return NeedleSet(merge_needles(*([(text, kinds[name]) for text in texts]
                                     for name, texts in groups.items())))  # fmt: skip


@pytest.mark.parametrize("extra", [
    {},
    {"uids": frozenset({"1.2.826.0.1.3680043.8.498.1", "19520314"})},  # also a date: a UID wins
    {"uids": frozenset({"1.2.826.0.1.3680043.8.498.1", "PID-778812"})},  # also an ID: the ID wins
    {"uids": frozenset({"1.2"})},  # too short to search
    {"uids": frozenset()},
])  # fmt: skip
def test_a_harvests_set_is_the_merged_set(extra: dict[str, frozenset[str]]) -> None:
    """NeedleSet.of_harvest (shared groups remembered per patient) builds what merging every
    group afresh builds: the same needles, split the same way, finding the same hits."""
    groups = _groups(**extra)
    expected = _merged(groups)
    for _ in range(2):  # the second time from the remembered shared groups
        got = NeedleSet.of_harvest(**groups)
        assert got.shared_needles == expected.shared_needles
        assert got._own == expected._own and len(got) == len(expected)
        assert got.uids_long == expected.uids_long
        data = b" ".join(text.encode() for texts in groups.values() for text in sorted(texts)) * 3
        assert got.search(data) == expected.search(data) != []
        assert got.search(data, short=False) == expected.search(data, short=False)
