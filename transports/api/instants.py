"""DateTime text ⇄ seconds since the epoch (ARROWHEAD-REFERENCE.md §1.6.6, DECISIONS.md 15).

Parsing follows Java's `DateTimeFormatter.ISO_INSTANT` (what the reference uses), restricted to
instants in the years 1970..9999 (DECISIONS 15; no `+YYYYY` years). Output is always whole seconds,
`YYYY-MM-DDThh:mm:ssZ`.

Parsing is one regex plus integer arithmetic (no `datetime`): it runs once per lock in a request.
"""

from __future__ import annotations

import math
import re
import time

MIN_SECONDS = 0  # 1970-01-01T00:00:00Z
END_SECONDS = 253_402_300_800  # 10000-01-01T00:00:00Z, first instant out of range
_MAX_OFFSET = 18 * 3600

# date 'T' time, optional fraction ('.' + 0..9 digits), then Z or ±hh:mm[:ss]. ASCII digits only (as Java).
_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{0,9}))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)"
)

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def parse_instant(text: str) -> float:
    """ISO_INSTANT text → seconds since the epoch (UTC), with the fraction; ValueError if invalid.

    Accepts `T`/`t`, `Z`/`z`, `.` + 0..9 fraction digits (`.Z` too), offsets `±hh:mm[:ss]` up to
    ±18:00, `24:00:00` (next day 00:00) and `23:59:60` (read as :59). No surrounding whitespace:
    callers trim where the reference does. Callers build the operation-specific message.
    """
    match = _INSTANT.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO instant: {text!r}")
    year_t, month_t, day_t, hour_t, minute_t, second_t, fraction, sign, off_h, off_m, off_s = match.groups()
    year, month, day = int(year_t), int(month_t), int(day_t)
    hour, minute, second = int(hour_t), int(minute_t), int(second_t)
    nanos = int(fraction.ljust(9, "0")) if fraction else 0

    if not 1 <= month <= 12:
        raise ValueError(f"invalid month: {text!r}")
    last_day = 29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month]
    if not 1 <= day <= last_day:
        raise ValueError(f"invalid day of month: {text!r}")
    extra_day = 0
    if hour == 24 and minute == 0 and second == 0 and nanos == 0:
        hour, extra_day = 0, 1
    elif hour == 23 and minute == 59 and second == 60:
        second = 59  # Java's leap-second smoothing
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"invalid time of day: {text!r}")

    offset = 0
    if sign is not None:
        hours, minutes, seconds = int(off_h), int(off_m), int(off_s or 0)
        if minutes > 59 or seconds > 59:
            raise ValueError(f"invalid offset: {text!r}")
        offset = hours * 3600 + minutes * 60 + seconds
        if offset > _MAX_OFFSET:
            raise ValueError(f"offset beyond ±18:00: {text!r}")
        if sign == "-":
            offset = -offset

    whole = (_days_from_civil(year, month, day) + extra_day) * 86400 + hour * 3600 + minute * 60 + second
    whole -= offset
    if not MIN_SECONDS <= whole < END_SECONDS:
        raise ValueError(f"outside the years 1970..9999: {text!r}")
    if not nanos:
        return float(whole)
    # Keep a fractional instant strictly between its whole seconds, where a float would round onto
    # one (`.999999999` up to the next second, `.000000001` down to this one): comparisons with
    # whole-second expiries and truncation then stay exact.
    result = whole + nanos / 1e9
    if result >= whole + 1:
        result = math.nextafter(float(whole + 1), 0.0)
    elif result <= whole:
        result = math.nextafter(float(whole), math.inf)
    return result


def truncate_seconds(t: float) -> int:
    """Whole seconds, fraction dropped (DECISIONS 15), as `math.floor` (also right before 1970)."""
    return math.floor(t)


def format_instant(seconds: int) -> str:
    """Whole seconds since the epoch → `YYYY-MM-DDThh:mm:ssZ`; ValueError outside 1970..9999."""
    if not MIN_SECONDS <= seconds < END_SECONDS:
        raise ValueError(f"instant outside the years 1970..9999: {seconds}")
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))  # C code: ~2x an f-string's speed
