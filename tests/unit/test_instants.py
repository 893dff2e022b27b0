"""DateTime parsing and formatting (ARROWHEAD-REFERENCE.md §1.6.6, DECISIONS 15)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.api.instants import END_SECONDS, format_instant, parse_instant, truncate_seconds

UTC = dt.UTC


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


BASE = epoch(2025, 11, 8, 11, 24, 43)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2025-11-08T11:24:43Z", BASE),
        ("2025-11-08t11:24:43z", BASE),
        ("2025-11-08T11:24:43.5Z", BASE + 0.5),
        ("2025-11-08T11:24:43.123456789Z", BASE + 0.123456789),
        ("2025-11-08T11:24:43.Z", BASE),
        ("2025-11-08T11:24:43.000Z", BASE),
        ("2025-11-08T12:24:43+01:00", BASE),
        ("2025-11-08T05:54:43-05:30", BASE),
        ("2025-11-08T12:25:13+01:00:30", BASE),
        ("2025-11-08T11:24:43-00:00", BASE),
        ("2025-11-08T11:24:43+00:00", BASE),
        ("2025-11-09T05:24:43+18:00", BASE),
        ("2025-11-07T17:24:43-18:00", BASE),
        ("2025-11-07T24:00:00Z", epoch(2025, 11, 8)),
        ("2025-12-31T24:00:00Z", epoch(2026, 1, 1)),
        ("2025-11-07T24:00:00.000Z", epoch(2025, 11, 8)),
        ("2016-12-31T23:59:60Z", epoch(2016, 12, 31, 23, 59, 59)),
        ("2016-12-31T23:59:60.5Z", epoch(2016, 12, 31, 23, 59, 59) + 0.5),
        ("2024-02-29T00:00:00Z", epoch(2024, 2, 29)),
        ("2000-02-29T00:00:00Z", epoch(2000, 2, 29)),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1969-12-31T23:00:00-01:00", 0),  # the instant is in 1970
        ("9999-12-31T23:59:59Z", END_SECONDS - 1),
        ("2038-01-19T03:14:08Z", 2**31),  # beyond MySQL's timestamp range, fine here
    ],
)
def test_accepted(text: str, seconds: float) -> None:
    assert parse_instant(text) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "2025-11-08T11:24Z",  # missing seconds
        "2025-11-08T11:24:43",  # missing zone
        "2025-11-08T11:24:43+0100",
        "2025-11-08T11:24:43+01",
        "2025-11-08T11:24:43+1:00",
        "2025-11-08T11:24:43+01:00:",
        "2025-11-08T11:24:43+01:00:5",
        "2025-11-08 11:24:43Z",  # space instead of T
        "2025-11-08T11:24:43,5Z",  # comma fraction
        "2025-11-08T11:24:43.1234567890Z",  # 10 fraction digits
        " 2025-11-08T11:24:43Z",
        "2025-11-08T11:24:43Z ",
        "2025-11-08T11:24:43Z\n",
        "2025-02-30T11:24:43Z",
        "2025-02-29T00:00:00Z",  # not a leap year
        "1900-02-29T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-00-01T00:00:00Z",
        "2025-11-00T00:00:00Z",
        "2025-11-31T00:00:00Z",
        "2025-11-08T25:00:00Z",
        "2025-11-08T24:00:01Z",
        "2025-11-08T24:01:00Z",
        "2025-11-08T24:00:00.5Z",
        "2025-11-08T11:60:00Z",
        "2025-11-08T11:24:60Z",  # :60 only at 23:59
        "2025-11-08T11:24:61Z",
        "2025-11-08T11:24:43+18:01",
        "2025-11-08T11:24:43-18:00:01",
        "2025-11-08T11:24:43+19:00",
        "2025-11-08T11:24:43+01:60",
        "2025-11-08T11:24:43+01:00:60",
        "2025-11-08T11:24:43UTC",
        "2025-11-08T11:24:43+01:00Z",
        "2025-11-8T11:24:43Z",
        "25-11-08T11:24:43Z",
        "+2025-11-08T11:24:43Z",
        "+12025-11-08T11:24:43Z",  # DECISIONS 15: no +YYYYY years
        "12025-11-08T11:24:43Z",
        "-2025-11-08T11:24:43Z",
        "1969-12-31T23:59:59Z",  # DECISIONS 15: before 1970
        "1970-01-01T00:00:00+00:01",  # the instant is in 1969
        "0000-01-01T00:00:00Z",
        "9999-12-31T24:00:00Z",  # the instant is in year 10000
        "9999-12-31T23:59:59-00:01",
        "２025-11-08T11:24:43Z",  # non-ASCII digit
        "2025-11-08T11:24:43.٣Z",
        "2025-11-08",
        "",
    ],
)
def test_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_instant(text)


@pytest.mark.parametrize(
    ("text", "whole"),
    [
        ("2025-11-08T11:24:43.999999999Z", BASE),
        ("2025-11-08T11:24:43.9Z", BASE),
        ("2025-11-08T11:24:43.000000001Z", BASE),
        ("9999-12-31T23:59:59.999999999Z", END_SECONDS - 1),
        ("1970-01-01T00:00:00.999999999Z", 0),
    ],
)
def test_truncation_keeps_the_second_even_where_a_float_would_round_up(text: str, whole: int) -> None:
    assert truncate_seconds(parse_instant(text)) == whole


@pytest.mark.parametrize("year", ["1970", "2025", "9999"])
def test_a_fraction_stays_strictly_between_whole_seconds(year: str) -> None:
    """Comparisons against whole-second expiries (expiresBefore/After, "in the past") stay exact."""
    whole = parse_instant(f"{year}-11-08T11:24:43Z")
    assert whole < parse_instant(f"{year}-11-08T11:24:43.000000001Z") < whole + 1
    assert whole < parse_instant(f"{year}-11-08T11:24:43.999999999Z") < whole + 1
    assert parse_instant(f"{year}-11-08T11:24:43.5Z") < parse_instant(f"{year}-11-08T11:24:43.6Z")


@pytest.mark.parametrize(
    ("value", "whole"), [(0.0, 0), (1.999, 1), (5.0, 5), (-0.5, -1), (1762601083.999999, 1762601083)]
)
def test_truncate_seconds_floors(value: float, whole: int) -> None:
    assert truncate_seconds(value) == whole
    assert isinstance(truncate_seconds(value), int)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (BASE, "2025-11-08T11:24:43Z"),
        (epoch(2024, 2, 29, 23, 59, 59), "2024-02-29T23:59:59Z"),
        (epoch(2000, 3, 1), "2000-03-01T00:00:00Z"),
        (END_SECONDS - 1, "9999-12-31T23:59:59Z"),
    ],
)
def test_format(seconds: int, text: str) -> None:
    assert format_instant(seconds) == text


@pytest.mark.parametrize("seconds", [-1, END_SECONDS])
def test_format_refuses_out_of_range(seconds: int) -> None:
    with pytest.raises(ValueError):
        format_instant(seconds)


@given(st.integers(min_value=0, max_value=END_SECONDS - 1))
def test_format_then_parse_round_trips(seconds: int) -> None:
    text = format_instant(seconds)
    assert parse_instant(text) == seconds
    expected = dt.datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert text == expected


@given(
    st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(9998, 12, 31)),
    st.integers(min_value=-18 * 3600, max_value=18 * 3600),
    st.integers(min_value=0, max_value=9),
)
def test_parse_agrees_with_datetime(moment: dt.datetime, offset: int, digits: int) -> None:
    """Local time + offset, as text, parses to the same instant Python computes."""
    zone = dt.timezone(dt.timedelta(seconds=offset))
    local = moment.replace(tzinfo=zone)
    sign = "-" if offset < 0 else "+"
    hours, rest = divmod(abs(offset), 3600)
    minutes, secs = divmod(rest, 60)
    zone_text = f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")
    fraction = f"{local.microsecond:06d}000"[:digits]
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + ("." + fraction if digits else "") + zone_text
    whole = int(local.replace(microsecond=0).timestamp())
    assert truncate_seconds(parse_instant(text)) == whole
    assert parse_instant(text) == pytest.approx(whole + (int(fraction) / 10**digits if digits else 0), abs=1e-4)
