from tftt.deid.uids import date_offset_days, is_class_uid_keyword, is_well_known_uid, map_uid, patient_pseudonym


def test_uid_mapping_is_keyed_stable_and_valid():
    a = map_uid(b"k" * 32, "1.2.3.4")
    assert a == map_uid(b"k" * 32, "1.2.3.4")
    assert a != map_uid(b"j" * 32, "1.2.3.4")
    assert a != map_uid(b"k" * 32, "1.2.3.5")
    assert a.startswith("2.25.") and len(a) <= 64 and a[5] != "0"


def test_pseudonyms_and_offsets_are_per_patient():
    key = b"k" * 32
    assert patient_pseudonym(key, "id:1") == patient_pseudonym(key, "id:1")
    assert patient_pseudonym(key, "id:1") != patient_pseudonym(key, "id:2")
    assert 1 <= date_offset_days(key, "id:1") <= 3650


def test_class_uids_are_recognised():
    assert is_class_uid_keyword("SOPClassUID") and is_class_uid_keyword("TransferSyntaxUID")
    assert not is_class_uid_keyword("SOPInstanceUID")
    assert is_well_known_uid("1.2.840.10008.5.1.4.1.1.2")
