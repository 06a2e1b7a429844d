from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from tftt.synth.canaries import UID_ARC, CanarySet, canary_strings, make_identity


def test_identity_is_deterministic_and_frozen() -> None:
    a, b = make_identity(7), make_identity(7)
    assert a == b
    assert a != make_identity(8)
    with pytest.raises(ValidationError):
        a.patient_id = "X"  # type: ignore[misc]


def test_identities_differ_per_seed() -> None:
    ids = [make_identity(s) for s in range(200)]
    assert len({i.patient_id for i in ids}) == 200
    assert len({i.uid_root for i in ids}) == 200
    assert len({i.patient_name for i in ids}) == 200


def test_even_seeds_are_92_and_ages_match_dates() -> None:
    for seed in range(30):
        who = make_identity(seed)
        years = int(who.study_date[:4]) - int(who.birth_date[:4])
        assert who.age == f"{years:03d}Y"
        assert who.birth_date[4:] < who.study_date[4:]  # birthday already passed
        assert (who.age == "092Y") == (seed % 2 == 0)
        assert who.prior_date < who.study_date


def test_values_carry_canary_tokens() -> None:
    who = make_identity(3)
    for value in (who.patient_id, who.accession_number, who.station_name, who.address):
        assert "CNRY" in value
    for name in (who.patient_name, who.referring_physician, who.operator_name):
        assert name.split("^")[0].startswith("CANARY")
    assert who.email.endswith("@example.invalid") and "canary" in who.email
    assert who.phone.startswith("+1-555-01")
    assert who.uid_root.startswith(UID_ARC + ".")


def test_uid_builder() -> None:
    who = make_identity(0)
    assert who.uid(1, 2, 3) == f"{who.uid_root}.1.2.3"
    assert who.uid(1).startswith(who.uid_prefix)
    assert re.fullmatch(r"[0-9.]+", who.uid(5, 0))
    with pytest.raises(ValueError):
        who.uid()
    with pytest.raises(ValueError):
        who.uid(-1)
    with pytest.raises(ValueError):
        who.uid(*([123456789] * 8))


def test_negative_seed_is_refused() -> None:
    with pytest.raises(ValueError):
        make_identity(-1)


def test_canary_set_lists_names_dates_and_ids() -> None:
    who = make_identity(0)
    canaries = canary_strings(who)
    always = set(canaries.always)
    assert who.patient_name in always
    for part in who.patient_name.split("^"):
        assert part in always
    for value in (
        who.birth_date,
        who.study_date,
        who.prior_date,
        who.patient_id,
        who.accession_number,
        who.email,
        who.phone,
        who.address,
    ):
        assert value in always
    assert canaries.uids[0] == who.uid_prefix
    assert who.uid(1) in canaries.uids and who.uid(99) in canaries.uids
    assert all(u.startswith(who.uid_prefix) for u in canaries.uids[1:])
    assert who.station_name in canaries.device_and_institution
    assert who.institution_name in canaries.device_and_institution
    assert canaries.first_pass() == canaries.always
    assert set(canaries.second_pass()) == always | set(canaries.uids) | set(
        canaries.device_and_institution
    )


def test_canary_set_leaves_out_what_the_second_pass_keeps() -> None:
    for seed in range(10):
        who = make_identity(seed)
        every = canary_strings(who).second_pass()
        for kept in (
            who.sex,
            who.age,
            f"{who.size_m:.2f}",
            f"{who.weight_kg:.1f}",
            who.study_date[:4],
            who.birth_date[:4],
            who.study_time,
        ):
            assert kept not in every
        assert all(len(c) >= 6 for c in every)  # long enough for a byte search


def test_first_pass_canaries_are_not_inside_kept_values() -> None:
    """A value the first pass keeps must not contain an 'always' canary, or first-pass tests
    would fail for the wrong reason."""
    for seed in range(10):
        canaries = canary_strings(make_identity(seed))
        for kept in (*canaries.uids, *canaries.device_and_institution):
            assert not [c for c in canaries.always if c in kept]


def test_merged_sets_keep_order_and_drop_duplicates() -> None:
    a, b = canary_strings(make_identity(0)), canary_strings(make_identity(1))
    merged = a.merged(b).merged(a)
    assert merged.always[: len(a.always)] == a.always
    assert len(merged.always) == len(set(merged.always))
    assert set(merged.uids) == {*a.uids, *b.uids}
    assert isinstance(merged, CanarySet)
