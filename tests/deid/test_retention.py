"""The verifier's own reading of the profile: actions, presence, private tags, cache."""

from __future__ import annotations

from tests.deid import verify_support as vs
from tftt.deid.retention import Presence, RuleView, rule_view
from tftt.deid.rules import Action, DatePolicy, Override

STUDY_DATE = 0x00080020
STUDY_DESCRIPTION = 0x00081030
PATIENT_ADDRESS = 0x00101040
INSTITUTION_NAME = 0x00080080
ADMITTING_DATE_LIKE = 0x00080012  # InstanceCreationDate: X/D with date options


def view(profile=None, safe: bool = False) -> RuleView:  # type: ignore[no-untyped-def]
    return RuleView(
        profile or vs.second_pass(),
        vs.table(),
        vs.keep_list(),
        vs.safe_private_tags() if safe else None,
    )


def test_effective_action_options_beat_basic() -> None:
    second = view()
    assert second.disposition(STUDY_DESCRIPTION).presence is Presence.CLEANED
    assert second.disposition(INSTITUTION_NAME).presence is Presence.REPLACED  # X/Z/D
    assert second.disposition(PATIENT_ADDRESS).presence is Presence.REMOVED
    first = view(vs.first_pass())
    assert first.disposition(INSTITUTION_NAME).presence is Presence.RETAINED
    assert first.disposition(0x00080018).presence is Presence.RETAINED  # SOPInstanceUID kept
    assert second.disposition(0x00080018).presence is Presence.REPLACED


def test_uid_rows_are_kept_when_the_profile_does_not_remap() -> None:
    profile = vs.second_pass(remap_uids=False)
    row = view(profile).table_row(0x0020000D)
    assert row is not None and view(profile).effective_action(row) is Action.KEEP


def test_date_rows_under_year_and_table_policies() -> None:
    table_policy = view(vs.second_pass(dates=DatePolicy.TABLE))
    year_policy = view()
    removed = vs.second_pass(
        dates=DatePolicy.TABLE,
        overrides=(Override(keyword="InstanceCreationDate", action=Action.REMOVE, reason="t"),),
    )
    assert table_policy.disposition(ADMITTING_DATE_LIKE).presence is Presence.REPLACED
    assert view(removed).disposition(ADMITTING_DATE_LIKE, "InstanceCreationDate").presence is (
        Presence.REMOVED
    )
    assert year_policy.disposition(STUDY_DATE).presence is Presence.REPLACED


def test_override_wins_over_the_table() -> None:
    profile = vs.second_pass(
        overrides=(Override(tag="0010,1040", action=Action.KEEP, reason="site keeps it"),)
    )
    assert view(profile).disposition(PATIENT_ADDRESS).presence is Presence.RETAINED


def test_classes_of_tags_always_removed() -> None:
    second = view()
    for tag, reason in (
        (0x60000010, "overlay group not allowed"),
        (0x50000005, "curve group not allowed"),
        (0x00880200, "icon image not allowed"),
        (0x00080000, "group length not allowed"),
        (0x00091001, "private attribute not allowed"),
        (0x00181234, "not in the table or the keep list"),
    ):
        ruling = second.disposition(tag)
        assert ruling.presence is Presence.REMOVED and ruling.reason == reason, hex(tag)


def test_marks_and_their_code_items() -> None:
    second = view()
    assert second.disposition(0x00120062).presence is Presence.RETAINED
    assert second.disposition(0x00080104, in_mark_code_item=True).presence is Presence.RETAINED


def test_safe_private_needs_profile_list_and_creator() -> None:
    plain = view(safe=True)  # profile removes private tags: the list is not enough
    assert plain.disposition(0x00091001, private_creator="ACME_SAFE").presence is (
        Presence.REMOVED
    )
    safe = view(vs.safe_private_profile(), safe=True)
    assert safe.disposition(0x00090010, private_creator="ACME_SAFE").presence is (
        Presence.RETAINED
    )
    assert safe.disposition(0x00091101, private_creator="ACME_SAFE").presence is (
        Presence.RETAINED
    )  # any block
    assert safe.disposition(0x00091003, private_creator="ACME_SAFE").presence is (
        Presence.REMOVED
    )
    assert safe.disposition(0x00091001, private_creator="OTHER").presence is Presence.REMOVED
    assert safe.disposition(0x00091001).presence is Presence.REMOVED


def test_rule_view_is_reused_for_the_same_objects() -> None:
    profile, table, keep = vs.second_pass(), vs.table(), vs.keep_list()
    assert rule_view(profile, table, keep) is rule_view(profile, table, keep)
    assert rule_view(profile, table, keep) is not rule_view(vs.second_pass(), table, keep)
