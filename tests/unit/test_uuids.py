"""UUID acceptance as Java's `UUID.fromString` (ARROWHEAD-REFERENCE.md §1.6.5)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.api.uuids import is_uuid, parse_uuid

ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("341f7626-bdee-4ec1-8cb9-23f88e04e374", "341f7626-bdee-4ec1-8cb9-23f88e04e374"),
        ("341F7626-BDEE-4EC1-8CB9-23F88E04E374", "341f7626-bdee-4ec1-8cb9-23f88e04e374"),
        ("341f7626-BDEE-4ec1-8CB9-23f88e04e374", "341f7626-bdee-4ec1-8cb9-23f88e04e374"),
        (ZERO, ZERO),
        ("1-1-1-1-1", "00000001-0001-0001-0001-000000000001"),
        ("a-B-c-D-e", "0000000a-000b-000c-000d-00000000000e"),
        ("+1-+1-+1-+1-+1", "00000001-0001-0001-0001-000000000001"),
        ("+0000000-0000-0000-0000-000000000000", ZERO),  # 36 chars, not canonical: the slow path
        ("1-12345-1-1-1", "00000001-2345-0001-0001-000000000001"),  # masked to 16 bits
        ("123456789-1-1-1-1", "23456789-0001-0001-0001-000000000001"),  # masked to 32 bits
        ("1-1-1-1-1234567890123", "00000001-0001-0001-0001-234567890123"),  # masked to 48 bits
        ("7fffffffffffffff-1-1-1-1", "ffffffff-0001-0001-0001-000000000001"),  # Long.MAX_VALUE
        ("000000000000000000000001-1-1-1-1", "00000001-0001-0001-0001-000000000001"),  # 32 chars
        ("0000000000000000000000001-0-0-0-0", "00000001-0000-0000-0000-000000000000"),  # 33 chars
        ("341f7626-bdee-4ec1-8cb9-23f88e04e37", "341f7626-bdee-4ec1-8cb9-023f88e04e37"),  # 35 chars
    ],
)
def test_accepted(text: str, canonical: str) -> None:
    assert parse_uuid(text) == canonical
    assert is_uuid(text)


@pytest.mark.parametrize(
    "text",
    [
        "6-7",
        "341f7626bdee4ec18cb923f88e04e374",  # 32 hex digits, no dashes
        "{341f7626-bdee-4ec1-8cb9-23f88e04e374}",
        "341f7626-bdee-4ec1-8cb9-23f88e04e3740",  # 37 characters
        "0000000000000000000000001-0-0-0-00000",  # 37 characters, otherwise fine
        "341f7626-bdee-4ec1-8cb9-23f88e04e37g",
        "1--1-1-1",
        "1-1-1-1-",
        "-1-1-1-1",
        "1-1-1-1-1-1",
        "1-1-1-1",
        "+-1-1-1-1",
        "++1-1-1-1-1",
        "1+-1-1-1-1",
        "8000000000000000-1-1-1-1",  # 2^63: Long.parseLong overflows
        "ffffffffffffffff-1-1-1-1",
        " 1-1-1-1-1",
        "1-1-1-1-1 ",
        "1_0-1-1-1-1",  # Python's int() would take the underscore
        "0x1-1-1-1-1",
        "١-1-1-1-1",  # Arabic-Indic digit one
        "341f7626-bdee-4ec1-8cb9-23f88e04e37٤",  # 36 chars, dashes in place, a non-ASCII digit
        "341f7626-bdee-4ec1-8cb9-23f88e04\u212a374",  # KELVIN SIGN lower-cases to ASCII 'k'
        "",
        "-----",
    ],
)
def test_rejected(text: str) -> None:
    assert parse_uuid(text) is None
    assert not is_uuid(text)


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_canonical_round_trip(value: int) -> None:
    text = str(uuid.UUID(int=value))
    assert parse_uuid(text) == text
    assert parse_uuid(text.upper()) == text


@given(
    st.tuples(*(st.integers(min_value=0, max_value=2**bits - 1) for bits in (32, 16, 16, 16, 48))),
    st.tuples(*(st.integers(min_value=0, max_value=4) for _ in range(5))),
    st.booleans(),
)
def test_short_forms_mean_the_same_uuid(
    fields: tuple[int, int, int, int, int], padding: tuple[int, int, int, int, int], plus: bool
) -> None:
    """Unpadded or zero-padded groups, with or without `+`, name the same UUID while ≤ 36 chars."""
    groups = [("+" if plus else "") + "0" * pad + f"{field:x}" for field, pad in zip(fields, padding, strict=True)]
    text = "-".join(groups)
    a, b, c, d, e = fields
    expected = str(uuid.UUID(int=(a << 96) | (b << 80) | (c << 64) | (d << 48) | e))
    assert parse_uuid(text) == (expected if len(text) <= 36 else None)
