"""Small field helpers shared by the request validators: Java's blank/trim, both spellings, lists.

`is_blank` and `trim` reproduce Java's `String.isBlank()` and `String.trim()` exactly, because the
reference decides "missing" and "trimmed value" with them and echoes trimmed values in messages.
"""

from __future__ import annotations

from typing import TypeVar, cast

from transports.api.errors import invalid

T = TypeVar("T")

JAVA_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2008\u2009\u200a\u2028\u2029\u205f\u3000"
)
"""Java `Character.isWhitespace`: Unicode space separators except the no-break ones (U+00A0, U+2007,
U+202F), line/paragraph separators, and the ASCII controls TAB..CR and FS..US."""

WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""Unicode White_Space: what Java's `(?U)\\s` matches (used by name normalisation)."""

_JAVA_WHITESPACE_CHARS = "".join(sorted(JAVA_WHITESPACE))
_TRIM_CHARS = "".join(chr(code) for code in range(0x21))


def is_blank(value: str | None) -> bool:
    """Java `isBlank` on a nullable string: None, empty, or only (Java) whitespace."""
    return value is None or not value.strip(_JAVA_WHITESPACE_CHARS)


def trim(value: str) -> str:
    """Java `String.trim()`: strips every character <= U+0020 (controls too), nothing else."""
    return value.strip(_TRIM_CHARS)


def _absent(value: object) -> bool:
    """DECISIONS "accept both spellings": None, a blank string and an empty list mean "not given"."""
    if value is None:
        return True
    if isinstance(value, str):
        return is_blank(value)
    if isinstance(value, list | tuple | dict):
        return not value
    return False


def pick(name_a: str, value_a: T | None, name_b: str, value_b: T | None) -> T | None:
    """The value of a field that has two accepted spellings.

    Whichever spelling is given wins; when neither is, an empty value (`""`, `[]`) is preferred over
    None so the caller can still tell them apart. Both given and different → 400 naming both.
    """
    if _absent(value_b):
        return value_a if value_a is not None else value_b
    if _absent(value_a):
        return value_b
    if value_a != value_b:
        raise invalid(f"Conflicting fields: {name_a} and {name_b} have different values")
    return value_a


def as_list(value: list[T] | str | None) -> list[T | str] | None:
    """A list as given, or a single string as a one-element list (the store seed sends `"ids": "<uuid>"`).

    Typed for strings, the only single values the seeds send: with `list[T] | T` mypy cannot solve T
    for the wire type `list[str | None] | str | None`.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return cast("list[T | str]", value)  # the same list, not a copy
