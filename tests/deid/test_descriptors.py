from tftt.deid.descriptors import clean_checked, clean_with_vocabulary, contains_identifier, identifier_tokens

VOCAB = frozenset({"AX", "T2", "FLAIR", "BRAIN", "C+", "POST"})


def test_vocabulary_cleaning_drops_every_unknown_word():
    assert clean_with_vocabulary("AX T2 FLAIR Zelda Canary", VOCAB) == "AX T2 FLAIR"
    assert clean_with_vocabulary("brain post c+ 5mm", VOCAB) == "BRAIN POST C+ 5MM"
    assert clean_with_vocabulary("MRN 48213771", VOCAB) == ""


def test_checked_cleaning_keeps_safe_text_whole():
    ids = identifier_tokens(["CANARYZELDA^QUIXOTE", "CNRYID48213"])
    assert clean_checked("Head CT for trauma", VOCAB, ids) == "Head CT for trauma"
    assert clean_checked("AX T2 for Quixote", VOCAB, ids) == "AX T2"
    # a long digit run (ID, phone) makes the value fall back to vocabulary words and short numbers
    assert "0148213" not in clean_checked("phone 555 0148213", VOCAB, ids)
    assert clean_checked("mail z@example.invalid", VOCAB, ids) == ""
    assert contains_identifier("scan of canaryzelda", ids)
