"""Verification with a memo: the same report or the same findings as without one, always.

The memo (:class:`~tftt.deid.memo.Memo`) keeps two kinds of results: the judgement of a plain
element value (in a context: path, character set, rules, reference year) and what the
patient's shared needles found in one searched value. These tests run the synthetic corpus
with and without a memo, verify outputs tampered after a warm-up, and change one thing of
the context at a time after a warm-up: each of them fails if the key forgets that thing.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset

from tests.deid import verify_support as vs
from tftt.deid.engine import DeidContext, deidentify, serialize
from tftt.deid.harvest import Identifiers
from tftt.deid.memo import Memo
from tftt.deid.pipeline import Pipeline, VerificationRules, parse
from tftt.deid.raw_dataset import read_explicit_little
from tftt.deid.retention import rule_view
from tftt.deid.rules import DatePolicy, Profile
from tftt.deid.verify import _PIECE_SEPARATOR, VerificationReport, _Verifier, verify_output
from tftt.errors import ResidualPHIError, TfttError
from tftt.headless import build_pipeline, iter_inputs
from tftt.pixels.stage import make_pixel_stage
from tftt.settings import DeidSettings, Settings
from tftt.synth.corpus import write_corpus

KEY = b"memo-test-key-0123456789abcdefgh"

Result = tuple[str, object]


def _result(rules: VerificationRules, identifiers: Identifiers, data: bytes, name: str,
            memo: Memo | None, profile: Profile | None = None) -> Result:  # fmt: skip
    """The report, or the findings and message, of one verification."""
    try:
        report = verify_output(identifiers, data, name, profile or rules.profile, rules.table,
                               rules.keep_list, safe_private=rules.safe_private, memo=memo)  # fmt: skip
    except ResidualPHIError as err:
        return "findings", (err.findings, err.message)
    assert isinstance(report, VerificationReport)
    return "ok", report


@dataclass(frozen=True)
class Output:
    source: str
    identifiers: Identifiers
    data: bytes
    name: str


def _outputs(pipeline: Pipeline, root: Path) -> list[Output]:
    """Every corpus file that reaches verification, as :func:`process_bytes` would verify it."""
    outputs = []
    for path in iter_inputs(root):
        if path.name == "manifest.json":
            continue
        try:
            original = parse(path.read_bytes())
            first = deidentify(original, DeidContext(rules=pipeline.first, key=pipeline.key))
            identifiers = pipeline.verification.harvest(original)
            pixels = pipeline.pixel_stage(first.dataset)
            second = deidentify(pixels.dataset, DeidContext(
                rules=pipeline.second, key=pipeline.key, pixels_cleaned=pixels.cleaned))  # fmt: skip
            data = serialize(second.dataset)
        except TfttError:
            continue
        outputs.append(Output(str(path.relative_to(root)), identifiers, data, second.file_name))
    return outputs


Corpus = tuple[Pipeline, list[Output]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("memo")
    write_corpus(root / "src", seed=5, patients=2)
    settings = Settings(data_dir=root / "data", deid=DeidSettings(ocr=False))
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    return pipeline, _outputs(pipeline, root / "src")


def _other_dates_profile(rules: VerificationRules) -> Profile:
    """The pipeline's profile with another date policy: other rules, other judgements."""
    dates = DatePolicy.KEEP if rules.profile.dates is DatePolicy.YEAR else DatePolicy.YEAR
    return rules.profile.model_copy(update={"dates": dates})


def _runs(pipeline: Pipeline, outputs: list[Output]) -> list[tuple[Output, Identifiers, Profile | None]]:
    """Each output with its own identifiers, with the previous file's (another file of the
    patient, or another patient: other UIDs, other needles) and under other rules."""
    other = _other_dates_profile(pipeline.verification)
    runs: list[tuple[Output, Identifiers, Profile | None]] = []
    for index, output in enumerate(outputs):
        runs.append((output, output.identifiers, None))
        runs.append((output, outputs[index - 1].identifiers, None))
        runs.append((output, output.identifiers, other))
    return runs


def test_the_corpus_verifies_alike_with_one_memo_for_all_files(corpus: Corpus) -> None:
    pipeline, outputs = corpus
    rules = pipeline.verification
    assert len(outputs) > 20
    memo = Memo()
    kinds = set()
    runs = _runs(pipeline, outputs)
    for output, identifiers, profile in runs + runs[:30]:  # then again, every value remembered
        plain = _result(rules, identifiers, output.data, output.name, None, profile)
        remembered = _result(rules, identifiers, output.data, output.name, memo, profile)
        assert remembered == plain, output.source
        kinds.add(plain[0])
    assert kinds == {"ok", "findings"}  # both clean outputs and findings were compared
    assert sum(_raw_readable(output.data) for output in outputs) > 20
    assert memo.hits > memo.misses  # and the memo was used


def test_a_small_memo_stays_within_its_capacity_and_changes_nothing(corpus: Corpus) -> None:
    pipeline, outputs = corpus
    rules = pipeline.verification
    memo = Memo(capacity=40)
    for output, identifiers, profile in _runs(pipeline, outputs)[:60]:
        plain = _result(rules, identifiers, output.data, output.name, None, profile)
        assert _result(rules, identifiers, output.data, output.name, memo, profile) == plain
        assert len(memo) <= 40


def _written(ds: Dataset) -> bytes:
    """The file bytes of ``ds``, with a preamble and a whole file meta."""
    buffer = BytesIO()
    ds = copy.deepcopy(ds)
    ds.preamble = bytes(128)
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _raw_readable(data: bytes) -> bool:
    """Whether the raw reader reads ``data`` (element judgements are remembered for what it
    reads only: the tests check that they exercised them)."""
    try:
        read_explicit_little(data)
    except TfttError:
        return False
    return True


def _tampered(data: bytes, **values: str) -> bytes:
    """``data`` (an output) with some text attributes set, written back."""
    ds = dcmread(BytesIO(data))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return _written(ds)


def test_canaries_written_into_outputs_after_a_warm_up_are_found_alike(corpus: Corpus) -> None:
    """Warm the memo with every clean output, then write each patient's identifiers (every
    kind of needle, an e-mail address, an unremapped UID, a full date, an over-age) back into
    its outputs and verify them again."""
    pipeline, outputs = corpus
    rules = pipeline.verification
    memo = Memo()
    clean = [o for o in outputs if _result(rules, o.identifiers, o.data, o.name, memo)[0] == "ok"]
    assert len(clean) > 10
    raw = 0
    for output in clean:
        ids = output.identifiers
        canaries = {
            "StudyDescription": " ".join(sorted(ids.names)[:2]) or "NONE",
            "ImageComments": " ".join([*sorted(ids.ids)[:1], *sorted(ids.dates)[:1],
                                       *sorted(ids.texts)[:1], "x.y@example.org"]),
            "SeriesDescription": f"see {sorted(ids.uids)[0]}" if ids.uids else "none",
            "FrameOfReferenceUID": sorted(ids.uids)[-1] if ids.uids else "2.25.1",
            "PatientAge": "093Y",
            "ContentDate": "19271231",
        }
        data = _tampered(output.data, **canaries)
        plain = _result(rules, ids, data, output.name, None)
        assert plain[0] == "findings"
        assert _result(rules, ids, data, output.name, memo) == plain, output.source
        raw += _raw_readable(data)
    assert raw > 10


# ----- one thing of the context changed after a warm-up ----------------------------------

RULES = VerificationRules(vs.second_pass(), vs.table(), vs.keep_list(), None)


def _both(output: Dataset | bytes, identifiers: Identifiers, memo: Memo, *,
          profile: Profile | None = None, name: str | None = None) -> Result:  # fmt: skip
    """The result with the (warm) memo, checked equal to the result without one."""
    data = output if isinstance(output, bytes) else _written(output)
    assert _raw_readable(data)
    name = name or (vs.NEW_SOP_UID + ".dcm")
    plain = _result(RULES, identifiers, data, name, None, profile)
    remembered = _result(RULES, identifiers, data, name, memo, profile)
    assert remembered == plain
    assert len(memo) > 0
    return plain


def _findings(result: Result) -> tuple[str, ...]:
    return result[1][0] if result[0] == "findings" else ()  # type: ignore[index,return-value]


def _ids(**fields: frozenset[str]) -> Identifiers:
    return Identifiers(**fields)


def test_a_uid_judged_clean_for_one_file_is_harvested_in_another() -> None:
    """The 'harvested UID not remapped' check and the UID needles are the file's own."""
    memo = Memo()
    out = vs.clean_output()
    out.ImageComments = f"see {vs.NEW_REF_UID}"
    this_file = _ids(names=frozenset({"CANARYZELDA"}), uids=frozenset({vs.SOP_UID}))
    assert _both(out, this_file, memo)[0] == "ok"
    other_file = _ids(names=frozenset({"CANARYZELDA"}), uids=frozenset({vs.NEW_REF_UID}))
    findings = _findings(_both(out, other_file, memo))
    ref = "(0008,1140) ReferencedImageSequence[0] > (0008,1155) ReferencedSOPInstanceUID"
    assert f"{ref}: harvested UID not remapped" in findings
    assert f"{ref}: contains harvested UID" in findings
    assert "(0020,4000) ImageComments: contains harvested UID" in findings


def test_a_value_judged_clean_for_one_patient_holds_another_patients_name() -> None:
    memo = Memo()
    out = vs.clean_output()
    out.ImageComments = "Quixote was here"
    assert _both(out, _ids(names=frozenset({"PUMPERNICKEL"})), memo)[0] == "ok"
    findings = _findings(_both(out, _ids(names=frozenset({"QUIXOTE"})), memo))
    assert "(0020,4000) ImageComments: contains harvested person name" in findings


def test_a_date_judged_under_one_reference_year_reveals_an_age_under_another() -> None:
    memo = Memo()
    ids = _ids(names=frozenset({"CANARYZELDA"}))
    out = vs.clean_output()
    out.ContentDate = "19300101"
    out.StudyDate = "20000101"  # 70 years: fine
    assert _both(out, ids, memo)[0] == "ok"
    out.StudyDate = "20230101"  # 93 years
    findings = _findings(_both(out, ids, memo))
    assert "(0008,0023) ContentDate: date reveals an age over 89" in findings


def test_a_value_judged_under_one_profile_is_judged_again_under_another() -> None:
    memo = Memo()
    ids = _ids(names=frozenset({"CANARYZELDA"}))
    out = vs.clean_output()
    out.ContentDate = "20230517"
    keep = vs.second_pass(dates=DatePolicy.KEEP)
    assert _both(out, ids, memo, profile=keep)[0] == "ok"
    findings = _findings(_both(out, ids, memo))
    assert "(0008,0023) ContentDate: date keeps more than the year" in findings


def test_the_same_value_at_another_place_is_named_by_its_own_place() -> None:
    memo = Memo()
    ids = _ids(names=frozenset({"QUIXOTE"}))
    out = vs.clean_output()
    out.DeidentificationMethodCodeSequence[0].CodeMeaning = "Quixote"
    first = _findings(_both(out, ids, memo))
    out.DeidentificationMethodCodeSequence[0].CodeMeaning = "Basic Application Confidentiality Profile"
    out.DeidentificationMethodCodeSequence[1].CodeMeaning = "Quixote"
    second = _findings(_both(out, ids, memo))
    assert any("Sequence[0] > (0008,0104) CodeMeaning: contains harvested" in f for f in first)
    assert any("Sequence[1] > (0008,0104) CodeMeaning: contains harvested" in f for f in second)
    assert not any("Sequence[0] > (0008,0104)" in f for f in second)


def test_the_same_bytes_under_another_character_set_are_decoded_again() -> None:
    """ISO 8859-5 bytes of a Cyrillic name read as Latin-1 hold no needle; as Cyrillic, they
    do."""
    memo = Memo()
    name = "ЛИЗАВЕТА"
    ids = _ids(names=frozenset({name}))
    latin = vs.clean_output()
    latin.SpecificCharacterSet = "ISO_IR 100"
    latin.ImageComments = name.encode("iso8859-5").decode("latin-1")
    cyrillic = vs.clean_output()
    cyrillic.SpecificCharacterSet = "ISO_IR 144"
    cyrillic.ImageComments = name
    latin_bytes, cyrillic_bytes = _written(latin), _written(cyrillic)
    assert name.encode("iso8859-5") in latin_bytes and name.encode("iso8859-5") in cyrillic_bytes
    assert _both(latin_bytes, ids, memo)[0] == "ok"
    findings = _findings(_both(cyrillic_bytes, ids, memo))
    assert "(0020,4000) ImageComments: contains harvested person name" in findings


def test_every_kind_of_element_finding_after_a_warm_up_on_clean_outputs() -> None:
    """Warm with the clean output, then one tampered value per kind of finding a judgement
    holds (presence, UID syntax and length, age, dates, time of day, file meta)."""
    memo = Memo()
    ids = _ids(names=frozenset({"CANARYZELDA"}), uids=frozenset({vs.REF_UID}))
    for _ in range(2):
        assert _both(vs.clean_output(), ids, memo)[0] == "ok"
    cases = {
        "not allowed (": lambda ds: setattr(ds, "PatientAddress", "Somewhere"),
        "UID longer than 64": lambda ds: setattr(ds, "SeriesInstanceUID", "2.25." + "1" * 60),
        "UID is not valid": lambda ds: setattr(ds, "FrameOfReferenceUID", "2.25.0123"),
        "harvested UID not remapped":
            lambda ds: setattr(ds.ReferencedImageSequence[0], "ReferencedSOPInstanceUID", vs.REF_UID),
        "age over": lambda ds: setattr(ds, "PatientAge", "092Y"),
        "not a valid age": lambda ds: setattr(ds, "PatientAge", "abc"),
        "date keeps more than the year": lambda ds: setattr(ds, "ContentDate", "20230517"),
        "time of day remains": lambda ds: setattr(ds, "StudyTime", "101502"),
        "not allowed in the file meta":
            lambda ds: setattr(ds.file_meta, "SourceApplicationEntityTitle", "CT1"),
        "contains an e-mail address": lambda ds: setattr(ds, "ImageComments", "a.b@c-d.org"),
    }  # fmt: skip
    for expected, tamper in cases.items():
        out = vs.clean_output()
        tamper(out)
        assert any(expected in f for f in _findings(_both(out, ids, memo))), expected


# ----- the searched values: remembered per piece, equal to one search of them all ----------

_WORDS = ["QUIXOTE", "LI", "XU", "O'NE", "MRN88112233", "19520314", "ZOË", "ŁUKASZ", "ANN LEE",
          "CANARYZELDA", "555-867-5309", "Ã©ABCDE"]  # fmt: skip
_UIDS = ["1.2.826.0.1.3680043.8.498.1", "2.25.1234567", "ÉABCDE", "1.2.3"]
_FRAGMENTS = ["quixote", "Li", "xu.", "O'NE", "mrn88112233", ".19520314.", "zoë", "łukasz",
              "ann  lee", "a@b.org", "x@y", " ", ".", "1", "Canaryzelda", "555.867.5309",
              "1.2.826.0.1.3680043.8.498.1", "2.25.1234567.8", "éabcde", "Ã©ABCDE", "1.2.3",
              "ANNOTATION", "ÉABCDE", "XULI"]  # fmt: skip


def _piece(rng: random.Random) -> bytes:
    text = "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(0, 3)))
    encoding = rng.choice(["latin-1", "utf-8", "utf-16-le", "utf-16-le"])
    data = text.encode(encoding, errors="replace")
    if encoding == "utf-16-le" and data and rng.random() < 0.5:
        data = data[: -1]  # an odd length: a UTF-16 token then ends in the separator
    if rng.random() < 0.2:
        data = bytes([rng.choice(b"a.1 \xe9")]) + data
    return data


def _verifier(identifiers: Identifiers, memo: Memo | None) -> _Verifier:
    profile = vs.second_pass()
    return _Verifier(identifiers, b"", profile, rule_view(profile, vs.table(), vs.keep_list()), memo)


def _scan(identifiers: Identifiers, pieces: list[bytes], binary: list[bytes],
          memo: Memo | None) -> list[str]:  # fmt: skip
    verifier = _verifier(identifiers, memo)
    verifier.pieces = [(f"piece {i}", data) for i, data in enumerate(pieces)]
    verifier.binary = [(f"binary {i}", data) for i, data in enumerate(binary)]
    verifier.scan_pieces()
    return verifier.findings.items


@pytest.mark.parametrize("seed", range(6))
def test_remembered_piece_searches_equal_one_search_of_all_pieces(seed: int) -> None:
    """Random values (UTF-16 cut at odd lengths, needles at the edges, e-mails, digits and dots
    next to dates and UIDs), shuffled so the same value comes first, last or between others,
    searched with one memo across needle sets that share a patient's needles or not."""
    rng = random.Random(seed)
    memo = Memo()
    values = [_piece(rng) for _ in range(40)]
    patients = [frozenset(rng.sample(_WORDS, 5)) for _ in range(2)]
    found = 0
    for _ in range(60):
        names = rng.choice(patients)
        uids = frozenset(rng.sample(_UIDS[:3] if rng.random() < 0.8 else _UIDS, 2))
        identifiers = _ids(names=names, uids=uids)
        pieces = rng.sample(values, rng.randint(1, 8))
        binary = rng.sample(values, rng.randint(0, 3))
        plain = _scan(identifiers, pieces, binary, None)
        assert _scan(identifiers, pieces, binary, memo) == plain, (names, uids, pieces, binary)
        found += bool(plain)
    assert found > 10


def test_a_short_utf16_name_at_the_end_of_a_piece_depends_on_what_follows() -> None:
    """``X\\0U\\0`` + ``L``: with a separator after it the last unit is ``L\\0`` (the name
    ``XUL``); at the end of the buffer it is cut. Remembered per place, not per bytes alone."""
    memo = Memo()
    ids = _ids(names=frozenset({"XUL"}))
    cut = "XUL".encode("utf-16-le")[:-1]
    assert _scan(ids, [b"a", cut], [], memo) == _scan(ids, [b"a", cut], [], None) == []
    expected = ["piece 1: contains harvested person name"]
    assert _scan(ids, [b"a", cut, b"b"], [], memo) == expected
    assert _scan(ids, [b"a", cut, b"b"], [], None) == expected


def test_a_name_and_a_uid_with_the_same_bytes_are_listed_as_the_whole_set_lists_them() -> None:
    """The UTF-8 form of a short name and the Latin-1 form of a long UID can be the same bytes;
    the whole set lists long hits before short ones at the same place, the UID first. The
    memo steps aside for such a tie rather than guess the order."""
    memo = Memo()
    ids = _ids(names=frozenset({"ÉABCD"}), uids=frozenset({"Ã©ABCD"}))
    data = "éABCD".encode()
    assert data == "Ã©ABCD".encode("latin-1")
    plain = _scan(ids, [data], [], None)
    assert plain == ["piece 0: contains harvested UID", "piece 0: contains harvested person name"]
    assert _scan(ids, [data], [], memo) == plain


def test_a_short_uid_is_searched_with_the_whole_set() -> None:
    """A UID of fewer than 6 characters is a whole-word needle; the UID search the memo relies
    on finds long needles only, so the whole set is searched."""
    memo = Memo()
    pieces = [b"ref 1.2.3 ok", b"CT"]
    assert _scan(_ids(names=frozenset({"QUIXOTE"})), pieces, [], memo) == []
    ids = _ids(names=frozenset({"QUIXOTE"}), uids=frozenset({"1.2.3"}))
    plain = _scan(ids, pieces, [], None)
    assert plain == ["piece 0: contains harvested UID"]
    assert _scan(ids, pieces, [], memo) == plain


def test_a_needle_holding_zero_bytes_is_searched_across_values() -> None:
    """A harvested value with NUL characters can match across a separator, from one searched
    value into the next, so what it finds in a value depends on its neighbour: not split."""
    memo = Memo()
    ids = _ids(names=frozenset({"AB\x00\x00\x00\x00CD"}))
    assert _scan(ids, [b"x", b"CD"], [], memo) == []
    plain = _scan(ids, [b"AB", b"CD"], [], None)
    assert plain == ["piece 0: contains harvested person name"]
    assert _scan(ids, [b"AB", b"CD"], [], memo) == plain


def test_needles_that_could_span_a_separator_are_searched_whole() -> None:
    """A name whose UTF-16 form starts with a zero byte (U+0100) may match from the separator
    into the next value: such a set is not split, and the findings name the same value."""
    memo = Memo()
    name = "ĀBCDEFG"
    ids = _ids(names=frozenset({name}))
    data = name.encode("utf-16-le")
    assert data[0] == 0
    plain = _scan(ids, [b"x", data[1:]], [], None)
    assert plain == ["piece 0: contains harvested person name"]
    assert _scan(ids, [b"x", data[1:]], [], memo) == plain
    assert _PIECE_SEPARATOR[-1:] == b"\x00"
