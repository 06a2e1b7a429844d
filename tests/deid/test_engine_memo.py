"""The engine's memo: a decision remembered from one file is replayed only where it is the same.

Every test compares a run with a memo against the same run without one: the output bytes,
file name and report must be equal, whatever the memo saw before.
"""

import dataclasses
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tftt.deid.engine import DeidContext, DeidResult, deidentify, serialize
from tftt.deid.memo import Memo
from tftt.deid.pipeline import parse
from tftt.deid.rules import Action, DescriptorPolicy, Override, Provenance, SiteOverrides
from tftt.errors import TfttError
from tftt.headless import build_pipeline, iter_inputs
from tftt.pixels.stage import make_pixel_stage
from tftt.settings import DeidSettings, Settings
from tftt.synth.corpus import write_corpus

from .test_engine import KEY, _ctx, _raw, make_ct


def _run(ds: Dataset, ctx: DeidContext, memo: Memo | None) -> DeidResult:
    return deidentify(ds, dataclasses.replace(ctx, memo=memo))


def _same(ds: Dataset, ctx: DeidContext, memo: Memo) -> DeidResult:
    """De-identify ``ds`` with ``memo`` and without, and check that nothing differs."""
    plain = _run(ds, ctx, None)
    remembered = _run(ds, ctx, memo)
    assert serialize(remembered.dataset) == serialize(plain.dataset)
    assert remembered.file_name == plain.file_name
    assert remembered.report == plain.report
    return remembered


@pytest.fixture(scope="module")
def second() -> DeidContext:
    return _ctx("second-pass")


def test_a_whole_corpus_gives_the_same_bytes_and_reports_with_a_memo(tmp_path: Path) -> None:
    """Both passes of every file of the synthetic corpus (hostile files included), in order,
    with one memo shared by both passes and all patients, twice over (cold, then warm)."""
    write_corpus(tmp_path / "src", seed=5, patients=2)
    settings = Settings(data_dir=tmp_path / "data", deid=DeidSettings(ocr=False))
    pipeline = build_pipeline(settings, KEY, make_pixel_stage(settings))
    memo = Memo()
    first = DeidContext(rules=pipeline.first, key=KEY)
    second = DeidContext(rules=pipeline.second, key=KEY)
    compared = 0
    for _ in range(2):
        for path in iter_inputs(tmp_path / "src"):
            try:
                original = parse(path.read_bytes())
                first_pass = _same(original, first, memo)
            except TfttError:
                continue
            _same(first_pass.dataset, second, memo)
            compared += 1
    assert compared > 40
    assert memo.hits > memo.misses  # the memo was used, not bypassed


def test_a_date_judged_against_one_study_year_is_judged_again_in_another(second) -> None:
    """The age-over-89 rule depends on the file's study year, not only on the date itself."""
    memo = Memo()
    late, early = make_ct(), make_ct()
    late.StudyDate, early.StudyDate = "20230514", "20100514"  # the other dates stay 2023
    for ds in (late, early):
        ds.AcquisitionDate = "19300101"
    late_out = _same(parse(_raw(late)), second, memo)
    early_out = _same(parse(_raw(early)), second, memo)
    assert "AcquisitionDate" not in late_out.dataset  # 93 years before the study
    assert early_out.dataset.AcquisitionDate == "19300101"  # 80 years: its year stays


def test_text_checked_against_one_file_is_checked_again_in_another(second) -> None:
    """A description kept after a check for the patient's identifiers: the same patient (same
    pseudonym) may come with another referring physician, whose name must then go."""
    site = SiteOverrides(
        provenance=Provenance(source="test"),
        overrides=(Override(keyword="StudyDescription", action=Action.KEEP,
                            descriptor_policy=DescriptorPolicy.CHECKED, reason="test"),),
    )
    checked = _ctx("second-pass", site_overrides=site)
    memo = Memo()
    before, after = make_ct(), make_ct()
    after.ReferringPhysicianName = "OTHERDOC^AMY"
    for ds in (before, after):
        ds.StudyDescription = "CT HEAD OTHERDOC"
    kept = _same(parse(_raw(before)), checked, memo)
    assert "OTHERDOC" in kept.dataset.StudyDescription
    out = _same(parse(_raw(after)), checked, memo)
    assert "OTHERDOC" not in out.dataset.StudyDescription


def test_another_key_or_profile_is_never_served_from_the_memo(second) -> None:
    memo = Memo()
    ds = parse(_raw(make_ct()))
    _same(ds, second, memo)
    other_key = dataclasses.replace(second, key=b"o" * 32)
    _same(ds, other_key, memo)
    assert _run(ds, other_key, memo).dataset.StudyInstanceUID != _run(ds, second, memo).dataset.StudyInstanceUID
    _same(ds, _ctx("first-pass"), memo)
    shifted = _ctx("second-pass", dates=_ctx("second-pass").rules.dates.__class__.SHIFT)
    _same(ds, shifted, memo)


def test_an_element_handed_out_is_a_copy_so_changing_it_changes_no_other_file(second) -> None:
    memo = Memo()
    ds = parse(_raw(make_ct()))
    decided = _run(ds, second, memo).dataset  # decided and remembered
    decided.StudyInstanceUID = "1.2.4"  # a later stage setting values in place
    served = _run(ds, second, memo).dataset  # replayed
    served.StudyInstanceUID = "1.2.3"  # a later stage setting values in place
    served.PatientSex = "O"
    _same(ds, second, memo)


def test_a_changed_value_after_warm_up_is_decided_afresh(second) -> None:
    memo = Memo()
    clean = make_ct()
    _same(parse(_raw(clean)), second, memo)
    changed = make_ct()
    changed.StudyDescription = "CT HEAD CANARYZELDA SECOND"
    changed.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.9999"
    changed.ContentSequence = Sequence([Dataset()])
    _same(parse(_raw(changed)), second, memo)


def test_the_memo_stays_within_its_capacity(second) -> None:
    memo = Memo(capacity=25)
    for i in range(5):
        ds = make_ct(sop_uid=f"1.2.826.0.1.3680043.8.498.{7000 + i}")
        _same(parse(_raw(ds)), second, memo)
        assert len(memo) <= 25


def test_the_marks_follow_whether_pixels_were_cleaned(second) -> None:
    """The marks are remembered per set of rules and per pixel cleaning (CID 7050 code)."""
    memo = Memo()
    ds = parse(_raw(make_ct()))
    _same(ds, second, memo)
    cleaned = _same(ds, dataclasses.replace(second, pixels_cleaned=True), memo)
    codes = [item.CodeValue for item in cleaned.dataset.DeidentificationMethodCodeSequence]
    plain = _same(ds, second, memo)
    assert len(codes) == len(plain.dataset.DeidentificationMethodCodeSequence) + 1


def test_the_patients_values_are_read_again_under_another_character_set() -> None:
    """The file's facts (pseudonym, identifying tokens ...) are remembered by the bytes they are
    read from and the character set that decodes them: the same bytes, read as Latin-1 and as
    UTF-8, are other names."""
    from tftt.deid.engine import _FileFacts

    ds = make_ct()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ReferringPhysicianName = "MÜLLER^JÖRG"
    latin1 = _raw(ds)
    assert latin1.count(b"ISO_IR 100") == 1
    memo = Memo()
    facts = []
    for data in (latin1, latin1.replace(b"ISO_IR 100", b"ISO_IR 192")):
        parsed = parse(data)
        warm = _FileFacts.of(parsed, KEY, parsed.original_character_set, memo)
        assert warm == _FileFacts.of(parsed, KEY, parsed.original_character_set, None)
        facts.append(warm)
    assert facts[0].identifiers != facts[1].identifiers


def test_the_second_pass_remembers_the_facts_of_names_the_first_pass_wrote() -> None:
    """The second pass reads names as PersonName values (the first pass wrote them): its facts
    are remembered by their text too, apart from a str value of the same text, which the facts
    read stripped."""
    from pydicom.dataelem import DataElement
    from pydicom.valuerep import PersonName

    from tftt.deid.engine import _FileFacts

    first_pass = deidentify(parse(_raw(make_ct())), _ctx("first-pass")).dataset
    assert type(first_pass["PatientName"].value) is PersonName
    memo = Memo()
    fresh = _FileFacts.of(first_pass, KEY, first_pass.original_character_set, None)
    assert _FileFacts.of(first_pass, KEY, first_pass.original_character_set, memo) == fresh
    hits = memo.hits
    assert _FileFacts.of(first_pass, KEY, first_pass.original_character_set, memo) == fresh
    assert memo.hits == hits + 1
    pseudonyms = set()
    for as_str in (False, True):
        ds = Dataset()
        ds.PatientBirthDate = "19700101"
        name = DataElement(0x00100010, "PN", "DOE^JANE ")
        if as_str:
            name._value = "DOE^JANE "  # pydicom converts a PN value; forced, as a plugin might
        ds._dict[0x00100010] = name
        facts = _FileFacts.of(ds, KEY, None, memo)
        assert facts == _FileFacts.of(ds, KEY, None, None)
        pseudonyms.add(facts.pseudonym)
    assert len(pseudonyms) == 2


def test_two_patients_of_the_same_name_get_their_own_pseudonyms(second) -> None:
    memo = Memo()
    one, other = make_ct(), make_ct()
    other.PatientID = "CNRYID99999"
    first = _same(parse(_raw(one)), second, memo)
    again = _same(parse(_raw(other)), second, memo)
    assert first.dataset.PatientName != again.dataset.PatientName
