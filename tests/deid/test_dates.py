from tftt.deid.dates import capped_age, shift_date, shift_datetime, year_only_date, year_only_datetime


def test_year_only():
    assert year_only_date("20230514") == "20230101"
    assert year_only_date("2023-05-14") is None
    assert year_only_datetime("20230514101112.5+0100") == "2023"


def test_shift_keeps_intervals_and_time_of_day():
    assert shift_date("20230301", 1) == "20230228"
    assert shift_date("20230230", 1) is None  # not a date
    assert shift_datetime("20230301120000", 1) == "20230228120000"


def test_ages_over_89_are_capped_in_every_unit():
    assert capped_age("092Y", 89) == "090Y"
    assert capped_age("089Y", 89) == "089Y"
    assert capped_age("999M", 89) == "999M"  # 83 years
    assert capped_age("099W", 89) == "099W"
    assert capped_age("abc", 89) is None
