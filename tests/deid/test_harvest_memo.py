"""Harvesting with a memo gives exactly what harvesting without one gives.

A memo remembers what an element added and what a removed or cleaned value gave; these tests
warm it with other files, patients and rules, and check that no remembered decision is carried
over to a file where a fact of its key differs (encoding, private creator, enclosing sequence,
method-code item, kept words, rules, vocabulary) or where the value changed.
"""

from __future__ import annotations

import copy
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from tests.deid import verify_support as vs
from tftt.deid.dataset_reader import SequenceBytes
from tftt.deid.harvest import Identifiers, harvest_identifiers
from tftt.deid.memo import Memo
from tftt.deid.pipeline import VerificationRules, parse_with_sequence_bytes
from tftt.deid.rules import Profile, SafePrivateTags, Vocabulary, load_profile
from tftt.errors import TfttError
from tftt.headless import build_pipeline, iter_inputs
from tftt.pixels.stage import make_pixel_stage
from tftt.settings import DeidSettings, Settings
from tftt.synth.corpus import write_corpus

KEY = b"harvest-memo-test-key-0123456789"
# One object of each: the memo knows rules by identity, as a pipeline holds them.
SECOND_PASS = vs.second_pass()
FIRST_PASS = vs.first_pass()
SAFE_PRIVATE_PROFILE = vs.safe_private_profile()
SAFE_PRIVATE_TAGS = vs.safe_private_tags()
TABLE = vs.table()
KEEP_LIST = vs.keep_list()
VOCABULARY = vs.vocabulary()


#: The sequence bytes the pipeline's reader gave for a dataset these tests read, by the
#: dataset's id (the dataset is kept alive with them): the harvest is handed them, as the
#: pipeline hands them, so that whole sequences are remembered too.
_SEQUENCE_BYTES: dict[int, tuple[Dataset, SequenceBytes | None]] = {}


def _read(ds: Dataset, **read: object) -> Dataset:
    """``ds`` as read from its file bytes: elements stay raw, as a harvest meets them. Without
    options, as the pipeline reads it (sequences read, their bytes kept); with, by dcmread."""
    if read:
        return dcmread(BytesIO(vs.to_bytes(ds)), **read)  # type: ignore[arg-type]
    buffer = BytesIO()
    ds = copy.deepcopy(ds)
    ds.preamble = bytes(128)
    dcmwrite(buffer, ds, enforce_file_format=True)  # a whole file meta: the reader takes it
    return _parsed(buffer.getvalue())


def _parsed(data: bytes) -> Dataset:
    ds, sequence_bytes = parse_with_sequence_bytes(data)
    _SEQUENCE_BYTES[id(ds)] = (ds, sequence_bytes)
    return ds


def _sequence_bytes(ds: Dataset) -> SequenceBytes | None:
    entry = _SEQUENCE_BYTES.get(id(ds))
    return entry[1] if entry is not None and entry[0] is ds else None


def _harvest(
    ds: Dataset,
    memo: Memo | None,
    profile: Profile | None = None,
    *,
    vocabulary: Vocabulary | None = None,
    safe_private: SafePrivateTags | None = None,
) -> Identifiers:
    return harvest_identifiers(
        ds,
        profile or SECOND_PASS,
        TABLE,
        keep_list=KEEP_LIST,
        vocabulary=vocabulary or VOCABULARY,
        safe_private=safe_private,
        memo=memo,
        sequence_bytes=_sequence_bytes(ds),
    )


def _check_both_orders(first: Dataset, second: Dataset, **rules: object) -> None:
    """Each file harvested after the other one warmed the memo equals its harvest without a
    memo; the two files must give different identifiers (else the check proves nothing)."""
    alone = [_harvest(first, None, **rules), _harvest(second, None, **rules)]  # type: ignore[arg-type]
    assert alone[0] != alone[1]
    for order in ((0, 1), (1, 0)):
        memo = Memo()
        datasets = (first, second)
        for _ in range(2):  # the second round meets only warm entries
            for index in order:
                assert _harvest(datasets[index], memo, **rules) == alone[index]  # type: ignore[arg-type]
        assert memo.hits


# ----- the synthetic corpus ---------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_datasets(tmp_path_factory: pytest.TempPathFactory) -> list[Dataset]:
    root = tmp_path_factory.mktemp("harvest-memo")
    write_corpus(root / "src", seed=5, patients=2)
    datasets = []
    for path in iter_inputs(root / "src"):
        if path.name == "manifest.json":
            continue
        try:
            datasets.append(_parsed(path.read_bytes()))
        except TfttError:
            continue  # a hostile input the pipeline quarantines before the harvest
    assert len(datasets) > 20
    return datasets


def _rule_sets(tmp: Path) -> list[VerificationRules]:
    """The verifier's rules under several settings, and the first-pass profile's."""
    rule_sets = []
    for deid in (
        DeidSettings(ocr=False),
        DeidSettings(ocr=False, shift_dates=True, retain_safe_private=True),
    ):
        settings = Settings(data_dir=tmp / "data", deid=deid)
        rule_sets.append(build_pipeline(settings, KEY, make_pixel_stage(settings)).verification)
    default = rule_sets[0]
    rule_sets.append(
        VerificationRules(
            profile=load_profile("first-pass"),
            table=default.table,
            keep_list=default.keep_list,
            safe_private=None,
            vocabulary=default.vocabulary,
        )
    )
    return rule_sets


def _corpus_harvest(rules: VerificationRules, ds: Dataset, memo: Memo | None) -> Identifiers:
    return harvest_identifiers(ds, rules.profile, rules.table, keep_list=rules.keep_list,
                               vocabulary=rules.vocabulary, safe_private=rules.safe_private,
                               memo=memo, sequence_bytes=_sequence_bytes(ds))  # fmt: skip


def test_corpus_is_harvested_the_same_with_one_memo_across_files_patients_and_rules(
    corpus_datasets: list[Dataset], tmp_path: Path
) -> None:
    rule_sets = _rule_sets(tmp_path)
    expected = [[_corpus_harvest(r, ds, None) for r in rule_sets] for ds in corpus_datasets]
    memo = Memo()
    for _ in range(2):
        for ds, wanted in zip(corpus_datasets, expected, strict=True):
            for rules, identifiers in zip(rule_sets, wanted, strict=True):
                assert _corpus_harvest(rules, ds, memo) == identifiers
                assert _corpus_harvest(rules, ds, Memo()) == identifiers  # cold
    assert memo.hits > 4 * memo.misses  # the files of a series share most decisions


def test_memo_stays_within_its_capacity_and_results_do_not_change(
    corpus_datasets: list[Dataset], tmp_path: Path
) -> None:
    rules = _rule_sets(tmp_path)[0]
    memo = Memo(capacity=40)
    for ds in corpus_datasets:
        assert _corpus_harvest(rules, ds, memo) == _corpus_harvest(rules, ds, None)
        assert len(memo) <= 40


# ----- what the key must tell apart -------------------------------------------------------


def test_the_encoding_of_the_same_bytes_is_part_of_the_key() -> None:
    utf8 = vs.original()
    utf8.SpecificCharacterSet = "ISO_IR 192"
    utf8.PatientName = "Müller^Jürgen"
    utf8.RequestAttributesSequence[0].ScheduledProcedureStepDescription = "Größenmessung"
    latin1 = vs.original()
    latin1.SpecificCharacterSet = "ISO_IR 100"
    # the same bytes, read as Latin-1 (nested values inherit the character set)
    latin1.PatientName = "Müller^Jürgen".encode().decode("latin-1")
    latin1.RequestAttributesSequence[0].ScheduledProcedureStepDescription = (
        "Größenmessung".encode().decode("latin-1")
    )
    first, second = _read(utf8), _read(latin1)
    assert first.get_item(0x00100010).value == second.get_item(0x00100010).value
    _check_both_orders(first, second)


def test_the_private_creator_is_part_of_the_key() -> None:
    def with_creator(creator: str) -> Dataset:
        ds = vs.original()
        ds.private_block(0x0009, creator, create=True).add_new(0x01, "LO", "SECRETWOMBAT77")
        return _read(ds)

    safe, other = with_creator("ACME_SAFE"), with_creator("ACME_OTHER")
    rules: dict[str, object] = {"profile": SAFE_PRIVATE_PROFILE, "safe_private": SAFE_PRIVATE_TAGS}
    assert "SECRETWOMBAT77" not in _harvest(safe, None, **rules).ids  # type: ignore[arg-type]
    assert "SECRETWOMBAT77" in _harvest(other, None, **rules).ids  # type: ignore[arg-type]
    _check_both_orders(safe, other, **rules)


def _code_item(meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = "T-12345"
    item.CodingSchemeDesignator = "SRT"
    item.CodeMeaning = meaning
    return item


def test_a_removed_enclosing_sequence_is_part_of_the_key() -> None:
    kept = vs.original()
    kept.AnatomicRegionSequence = Sequence([_code_item("Zorblaxian region")])
    removed = vs.original()
    removed.ReferencedImageSequence[0].CodeMeaning = "Zorblaxian region"
    first, second = _read(kept), _read(removed)
    assert "ZORBLAXIAN" in _harvest(second, None).texts
    assert "ZORBLAXIAN" not in _harvest(first, None).texts
    _check_both_orders(first, second)


def test_a_method_code_item_is_part_of_the_key() -> None:
    in_mark = vs.original()
    code = _code_item("Basic Application Confidentiality Profile")
    code.CodingSchemeVersion = "QZV98765"
    in_mark.DeidentificationMethodCodeSequence = Sequence([code])
    at_top = vs.original()
    at_top.CodingSchemeVersion = "QZV98765"
    first, second = _read(in_mark), _read(at_top)
    assert "QZV98765" in _harvest(second, None).ids
    _check_both_orders(first, second)


def test_the_kept_words_a_removed_value_is_judged_with_are_part_of_the_key() -> None:
    plain = vs.original()
    plain.InstitutionAddress = "Zorbla Harbour Road"
    kept_word = vs.original()
    kept_word.InstitutionAddress = "Zorbla Harbour Road"
    kept_word.Manufacturer = "ZORBLA"  # kept: its words cannot prove a leak
    first, second = _read(plain), _read(kept_word)
    assert "ZORBLA" in _harvest(first, None).texts
    assert "ZORBLA" not in _harvest(second, None).texts
    _check_both_orders(first, second)


def test_the_rules_are_part_of_the_key() -> None:
    ds = _read(vs.original())
    memo = Memo()
    profiles = (SECOND_PASS, FIRST_PASS, vs.second_pass(method_description="Pumpernickel"))
    alone = [_harvest(ds, None, profile) for profile in profiles]
    assert len(set(alone)) == len(alone)
    for _ in range(2):
        for profile, identifiers in zip(profiles, alone, strict=True):
            assert _harvest(ds, memo, profile) == identifiers


def test_the_vocabulary_is_part_of_the_key() -> None:
    original = vs.original()
    original.StudyDescription = "CT CHEST ZEPPELINOS"
    ds = _read(original)
    wider = Vocabulary(provenance=vs.PROV, words=(*VOCABULARY.words, "ZEPPELINOS"))
    memo = Memo()
    alone = [_harvest(ds, None, vocabulary=v) for v in (VOCABULARY, wider)]
    assert "ZEPPELINOS" in alone[0].texts and "ZEPPELINOS" not in alone[1].texts
    for _ in range(2):
        for vocabulary, identifiers in zip((VOCABULARY, wider), alone, strict=True):
            assert _harvest(ds, memo, vocabulary=vocabulary) == identifiers


def test_implicit_vr_and_deferred_reads_share_a_memo_with_explicit_ones() -> None:
    explicit = _read(vs.original())
    implicit_original = vs.original()
    implicit_original.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = _read(implicit_original)
    deferred = _read(vs.original(), defer_size=8)
    expected = _harvest(explicit, None)
    memo = Memo()
    for _ in range(2):
        for ds in (explicit, implicit, deferred):
            assert _harvest(ds, memo) == expected


# ----- changed values ---------------------------------------------------------------------


def test_a_changed_value_after_warm_up_is_judged_again() -> None:
    memo = Memo()
    warm = _read(vs.original())
    _harvest(warm, memo)
    changed = vs.original()
    changed.PatientName = "CANARYZELDB^QUIXOTE^MARMALADE"  # one letter, same length
    changed.private_block(0x0009, "ACME_PRIVATE").add_new(0x01, "LO", "CANARYZELDB")
    changed.InstitutionAddress = "1 Harbour Road, Zanzibaz"
    tampered = _read(changed)
    identifiers = _harvest(tampered, memo)
    assert identifiers == _harvest(tampered, None)
    assert "CANARYZELDB" in identifiers.names and "CANARYZELDA" not in identifiers.names
    assert "ZANZIBAZ" in identifiers.texts


def test_a_value_set_on_the_read_dataset_after_warm_up_is_judged_again() -> None:
    memo = Memo()
    ds = _read(vs.original())
    before = _harvest(ds, memo)
    ds.PatientName = "FLIBBERTIGIBBET^HORTENSE"  # now a converted element, not raw bytes
    ds.RequestAttributesSequence[0].ScheduledProcedureStepDescription = "Zyzzyva protocol"
    # The bytes a sequence was read from describe it as read: a dataset changed since is
    # harvested without them (the pipeline harvests what it has just read, unchanged).
    del _SEQUENCE_BYTES[id(ds)]
    after = _harvest(ds, memo)
    assert after == _harvest(ds, None)
    assert after != before
    assert "FLIBBERTIGIBBET" in after.names and "CANARYZELDA" not in after.names
    assert "ZYZZYVA" in after.texts


def _longest_in(key: object) -> int:
    if isinstance(key, tuple):
        return max((_longest_in(part) for part in key), default=0)
    return len(key) if isinstance(key, str | bytes) else 0


def test_long_values_and_long_kept_text_are_not_held() -> None:
    """Entries stay small: a long value, or an object whose kept text is long, is judged in
    every file instead of being remembered (and is still harvested)."""
    original = vs.original()
    blob = b"\x00".join(b"Operator Horatio Pumpernickel %d" % i for i in range(80))
    original.private_block(0x0011, "ACME_BLOBS", create=True).add_new(0x01, "OB", blob)
    long_kept = vs.original()
    long_kept.ImageType = ["ORIGINAL", "PRIMARY", *(f"KEPTWORD{i}" for i in range(150))]
    memo = Memo()
    for ds in (_read(original), _read(long_kept)):
        for _ in range(2):
            assert _harvest(ds, memo) == _harvest(ds, None)
    assert "PUMPERNICKEL" in _harvest(_read(original), memo).texts
    assert max(_longest_in(key) for key in memo._entries) <= 1024
    assert not any(len(key[3]) > 100 for key in memo._entries if key[0] == "harvest.context")


# ----- whole sequences --------------------------------------------------------------------


def test_whole_sequences_are_remembered_by_the_bytes_they_were_read_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read as the pipeline reads it, a file's sequences come with their bytes, and a warm memo
    replays what each adds without walking its items (the key tests above then cover them)."""
    from tftt.deid import harvest

    ds = _read(vs.original())
    read = _sequence_bytes(ds)
    assert read and all(element.VR == "SQ" for element, _, _ in read.values())
    memo = Memo()
    expected = _harvest(ds, None)
    assert _harvest(ds, memo) == expected
    walked: list[int] = []
    take = harvest._Collector.take

    def counting(self, ds, element, *args):  # type: ignore[no-untyped-def]
        if element.vr == "SQ":
            walked.append(element.tag)
        return take(self, ds, element, *args)

    monkeypatch.setattr(harvest._Collector, "take", counting)
    assert _harvest(ds, memo) == expected
    assert walked == []
    assert _harvest(ds, None) == expected and walked  # without a memo, every sequence is walked


def test_a_sequence_element_replaced_after_reading_is_walked_again() -> None:
    """Bytes are found by the very element they were read into: an element put in its place
    since is judged by what it holds."""
    memo = Memo()
    ds = _read(vs.original())
    _harvest(ds, memo)
    item = Dataset()
    item.ScheduledProcedureStepDescription = "Quagmirian protocol"
    ds.RequestAttributesSequence = Sequence([item])  # pydicom sets the value of the same element
    after = _harvest(ds, memo)
    assert after == _harvest(ds, None)
    assert "QUAGMIRIAN" in after.texts
