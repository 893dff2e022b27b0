"""Java blank/trim, both spellings of a field, single value as list (DECISIONS "accept both spellings")."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.api.errors import ArrowheadError
from transports.api.fields import JAVA_WHITESPACE, WHITE_SPACE, as_list, is_blank, pick, trim

BMP = [chr(code) for code in range(0x10000) if not 0xD800 <= code <= 0xDFFF]


def test_java_whitespace_is_character_is_whitespace() -> None:
    """Java: space/line/paragraph separators except the no-break ones, plus TAB..CR and FS..US."""
    separators = {c for c in BMP if unicodedata.category(c) in ("Zs", "Zl", "Zp")} - {"\u00a0", "\u2007", "\u202f"}
    controls = set("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f")
    assert separators | controls == JAVA_WHITESPACE


def test_white_space_is_the_unicode_property() -> None:
    """Unicode White_Space = Python's isspace() without the FS..US controls (which Python adds)."""
    assert {c for c in BMP if c.isspace()} - set("\x1c\x1d\x1e\x1f") == WHITE_SPACE
    assert not any(chr(code).isspace() for code in range(0x10000, 0x110000))  # none beyond the BMP


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        (None, True),
        ("", True),
        (" ", True),
        ("\t\n\r\x0b\x0c", True),
        ("\x1c\x1f", True),  # Java counts the information separators
        ("\u2003\u3000\u2028", True),
        ("\u00a0", False),  # NO-BREAK SPACE is not Java whitespace
        ("\u202f", False),
        ("\x85", False),
        ("\x00", False),
        (" a ", False),
        ("null", False),
    ],
)
def test_is_blank(value: str | None, blank: bool) -> None:
    assert is_blank(value) is blank


@pytest.mark.parametrize(
    ("value", "trimmed"),
    [
        ("  a b  ", "a b"),
        ("\x00\x01a\x1f ", "a"),  # every control up to U+0020
        ("\u3000a\u3000", "\u3000a\u3000"),  # trim() leaves Unicode spaces alone
        ("\u00a0a", "\u00a0a"),
        ("", ""),
        ("\t\n", ""),
    ],
)
def test_trim(value: str, trimmed: str) -> None:
    assert trim(value) == trimmed


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (None, None, None),
        (1, None, 1),
        (None, 2, 2),
        (0, None, 0),  # zero is given
        (3, 3, 3),
        ("ASC", None, "ASC"),
        (None, "ASC", "ASC"),
        ("", "ASC", "ASC"),  # a blank string is "not given"
        ("ASC", "  ", "ASC"),
        ("", None, ""),  # neither given: the empty value rather than None
        (None, "", ""),
        ([], ["X"], ["X"]),  # an empty list is "not given"
        (["X"], [], ["X"]),
        ([], None, []),
        (None, [], []),
        (["X", "Y"], ["X", "Y"], ["X", "Y"]),
        (False, None, False),
    ],
)
def test_pick(a: object, b: object, expected: object) -> None:
    assert pick("first", a, "second", b) == expected


@pytest.mark.parametrize(("a", "b"), [(1, 2), ("ASC", "DESC"), ("asc", "ASC"), (["X"], ["Y"]), (0, 1)])
def test_pick_conflict(a: object, b: object) -> None:
    with pytest.raises(ArrowheadError) as caught:
        pick("owners", a, "owner", b)
    assert caught.value.status == 400
    assert caught.value.origin is None
    assert caught.value.message == "Conflicting fields: owners and owner have different values"


@pytest.mark.parametrize(
    ("value", "listed"),
    [
        (None, None),
        ("341f7626-bdee-4ec1-8cb9-23f88e04e374", ["341f7626-bdee-4ec1-8cb9-23f88e04e374"]),
        ("", [""]),
        ([], []),
        (["a", "b"], ["a", "b"]),
        (["a", None], ["a", None]),
    ],
)
def test_as_list(value: list[str | None] | str | None, listed: list[str | None] | None) -> None:
    assert as_list(value) == listed


def test_as_list_keeps_the_given_list() -> None:
    given_list: list[str | None] = ["a", None]
    assert as_list(given_list) is given_list


@given(st.text(alphabet=st.sampled_from([*sorted(JAVA_WHITESPACE), "a", "\u00a0", "\x00"]), max_size=12))
def test_is_blank_means_only_java_whitespace(text: str) -> None:
    assert is_blank(text) == all(char in JAVA_WHITESPACE for char in text)
