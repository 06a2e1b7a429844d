"""Date, time and age rules: year-only, keyed shift, and the Safe Harbor age cap. Pure."""

from __future__ import annotations

import datetime as dt
import re

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(.*)$")
_AGE = re.compile(r"^(\d{3})([DWMY])$")


_YEAR = re.compile(r"^(\d{4})")

#: Top-level dates whose year is the year an object was made (first one present wins).
REFERENCE_DATE_TAGS = (0x00080020, 0x00080021, 0x00080022, 0x00080023)  # Study, Series, Acq., Content


def year_of(value: str) -> int | None:
    """The year a DA or DT value starts with; ``None`` if it does not start with four digits."""
    match = _YEAR.match(value.strip())
    return int(match.group(1)) if match else None


def reveals_age_over(value: str, reference_year: int | None, max_years: int) -> bool:
    """Whether a date lies more than ``max_years`` years before the object's own year.

    HIPAA Safe Harbor removes "all elements of dates (including year) indicative of" an age over
    89: a birth date written as a structured-report DATE item, for instance, still tells a
    92-year-old's age after it is cut to its year.
    """
    year = year_of(value)
    return reference_year is not None and year is not None and reference_year - year > max_years


def year_only_date(value: str) -> str | None:
    """``YYYYMMDD`` → ``YYYY0101``; ``None`` when the value is not a date."""
    match = _DA.match(value.strip())
    return f"{match.group(1)}0101" if match else None


def year_only_datetime(value: str) -> str | None:
    match = _DT.match(value.strip())
    return match.group(1) if match else None


def shift_date(value: str, days: int) -> str | None:
    """Move a DA value ``days`` days into the past; ``None`` when it is not a valid date."""
    match = _DA.match(value.strip())
    if not match:
        return None
    try:
        day = dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None
    try:
        return (day - dt.timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return None


def shift_datetime(value: str, days: int) -> str | None:
    """Shift the date part of a DT value, keeping its time and offset; ``None`` if invalid."""
    text = value.strip()
    if len(text) < 8:
        return None
    shifted = shift_date(text[:8], days)
    return None if shifted is None else shifted + text[8:]


def capped_age(value: str, max_years: int) -> str | None:
    """An AS value with ages over ``max_years`` replaced by ``(max_years+1)`` years.

    Returns ``None`` when the value is not a valid age string.
    """
    match = _AGE.match(value.strip())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2)
    per_year = {"D": 365.25, "W": 52.18, "M": 12.0, "Y": 1.0}[unit]
    if number / per_year > max_years:
        return f"{max_years + 1:03d}Y"
    return f"{number:03d}{unit}"
