"""Names, versions and service instance ids: normalise, then validate (ARROWHEAD-REFERENCE.md §1.6.1–1.6.4).

Only the reference's `extended` normalisation mode (its default and shipped setting) is implemented.
Normalisation runs before validation, and error messages show the normalised value (`null` for None).

Checks use str methods instead of regexes: a regex constraint was ~58% of request decode cost
(ARCHITECTURE.md). `str.isalnum()`/`isupper()` accept non-ASCII letters, so every check is guarded
by `isascii()`.
"""

from __future__ import annotations

from collections.abc import Callable

from transports.api.errors import invalid
from transports.api.fields import WHITE_SPACE, is_blank, trim

NAME_MAX_LENGTH = 63
VERSION_MAX_LENGTH = 14
DEFAULT_VERSION = "1.0.0"

_SYSTEM_NAME_MESSAGE = "The specified system name does not match the naming convention: "
_SERVICE_DEFINITION_MESSAGE = "The specified service definition name does not match the naming convention: "
_INSTANCE_ID_MESSAGE = "The specified service instance identifier does not match the naming convention: "
_VERSION_PREFIX = "Version verification failure: "

# Java's regex `(?U)\s` (Unicode White_Space) plus the two delimiters: each run of them becomes one `_`.
_DELIMITERS = frozenset(WHITE_SPACE | {"_", "-"})


def _show(value: str | None) -> str:
    """How Java string concatenation prints the value."""
    return "null" if value is None else value


def _upper(char: str) -> str:
    """Java `Character.toUpperCase(char)`: one UTF-16 unit in, one out (`ß` stays `ß`)."""
    upper = char.upper()
    return upper if len(upper) == 1 and ord(char) < 0x10000 else char


def _lower(char: str) -> str:
    """Java `Character.toLowerCase(char)` (`İ` would become two characters in Python: keep it)."""
    lower = char.lower()
    return lower if len(lower) == 1 and ord(char) < 0x10000 else char


def _extended(value: str | None, *, pascal: bool) -> str | None:
    """Trim, make every run of whitespace/`_`/`-` one `_`, then Pascal- or camelCase.

    The first character is only re-cased, never dropped: a leading delimiter survives as `_`
    (`-provider` → `_provider`, which then fails validation, as in the reference).
    """
    if value is None:
        return None
    if value.isascii() and value.isalnum():  # the common case: nothing to trim or join
        first = value[0].upper() if pascal else value[0].lower()
        return first + value[1:]
    if is_blank(value):
        return None
    text = trim(value)
    if not text:
        return None
    out: list[str] = []
    if text[0] in _DELIMITERS:
        out.append("_")
        start = 1
        while start < len(text) and text[start] in _DELIMITERS:
            start += 1  # the rest of the leading run collapses into that one `_`
    else:
        out.append(_upper(text[0]) if pascal else _lower(text[0]))
        start = 1
    after_delimiter = False
    for char in text[start:]:
        if char in _DELIMITERS:
            after_delimiter = True
        elif after_delimiter:
            out.append(_upper(char))
            after_delimiter = False
        else:
            out.append(char)
    return "".join(out)


def _matches_convention(value: str | None, *, upper_first: bool) -> bool:
    """One ASCII letter of the right case, followed by ASCII letters/digits; 1..63 characters."""
    if value is None or not 0 < len(value) <= NAME_MAX_LENGTH:
        return False
    if not (value.isascii() and value.isalnum()):
        return False
    return value[0].isupper() if upper_first else value[0].islower()


# --------------------------------------------------------------------------- SystemName (§1.6.1)


def normalize_system_name(value: str | None) -> str | None:
    """Blank → None; else PascalCase (`temperature-manager` → `TemperatureManager`)."""
    return _extended(value, pascal=True)


def validate_system_name(value: str | None) -> None:
    if not _matches_convention(value, upper_first=True):
        raise invalid(_SYSTEM_NAME_MESSAGE + _show(value))


# --------------------------------------------------------------------------- service definition (§1.6.2)


def normalize_service_definition(value: str | None) -> str | None:
    """Blank → None; else camelCase (`kelvin-info` → `kelvinInfo`)."""
    return _extended(value, pascal=False)


def validate_service_definition(value: str | None) -> None:
    if not _matches_convention(value, upper_first=False):
        raise invalid(_SERVICE_DEFINITION_MESSAGE + _show(value))


# --------------------------------------------------------------------------- version (§1.6.3)


def _java_split_dots(value: str) -> list[str]:
    """Java `split("\\.")`: leading empty pieces kept, trailing empty pieces dropped; no dot at all
    gives the string itself (so `""` is one piece)."""
    if "." not in value:
        return [value]
    pieces = value.split(".")
    while pieces and not pieces[-1]:
        pieces.pop()
    return pieces


def normalize_version(value: str | None) -> str:
    """Blank → `1.0.0`; `2` → `2.0.0`; `2.3` → `2.3.0`; `1.` → `1.0.0`; anything else as trimmed."""
    if value is None:
        return DEFAULT_VERSION
    if value.isascii() and value.count(".") == 2 and value[-1] != "." and value.replace(".", "").isdigit():
        return value  # already `X.Y.Z` (the common case)
    if is_blank(value):
        return DEFAULT_VERSION
    text = trim(value)
    pieces = _java_split_dots(text)
    if len(pieces) == 1:
        return f"{pieces[0]}.0.0"
    if len(pieces) == 2:
        return f"{pieces[0]}.{pieces[1]}.0"
    return text


def validate_version(value: str) -> None:
    """The reference's four checks, in its order, each with its own message."""
    if len(value) > VERSION_MAX_LENGTH:
        raise invalid(_VERSION_PREFIX + "version is too long")
    if value.count(".") != 2:
        raise invalid(_VERSION_PREFIX + "version must contain exactly 2 separator . characters")
    pieces = _java_split_dots(value)
    if len(pieces) != 3:
        raise invalid(_VERSION_PREFIX + "version must contain exactly 3 numbers")
    for piece in pieces:
        if not (piece.isascii() and piece.isdigit()):
            raise invalid(_VERSION_PREFIX + "the version should only contain numbers and separator . characters")


# --------------------------------------------------------------------------- ServiceInstanceID (§1.6.4)


def normalize_service_instance_id(value: str | None) -> str | None:
    """`<system>|<serviceDefinition>|<version>`, each part normalised by its own rule.

    DECISIONS 9: unlike the reference, every piece is kept (a trailing `|` is not dropped) and a
    blank piece stays empty (no `null` text, no default version), so validation rejects it.
    Pieces after the third are left as they are. Blank → None (the message then shows `null`).
    """
    if value is None or is_blank(value):
        return None
    pieces = value.split("|")
    count = len(pieces)
    if count == 3:  # the common case, without the generic loop
        system, definition, version = pieces
        return (
            f"{_part(system, normalize_system_name)}|{_part(definition, normalize_service_definition)}"
            f"|{'' if is_blank(version) else normalize_version(version)}"
        )
    if count == 1:
        return _part(pieces[0], normalize_system_name)
    pieces[0] = _part(pieces[0], normalize_system_name)
    pieces[1] = _part(pieces[1], normalize_service_definition)
    if count > 2:
        pieces[2] = "" if is_blank(pieces[2]) else normalize_version(pieces[2])
    return "|".join(pieces)


def _part(piece: str, normalize: Callable[[str | None], str | None]) -> str:
    """A blank part stays empty (DECISIONS 9), so validation sees it."""
    return normalize(piece) or ""


def validate_service_instance_id(value: str | None) -> None:
    """Exactly three non-empty parts (DECISIONS 9), then each part's own rule and message."""
    if value is None or is_blank(value):
        raise invalid(_INSTANCE_ID_MESSAGE + _show(value))
    pieces = value.split("|")
    if len(pieces) != 3 or not all(pieces):
        raise invalid(_INSTANCE_ID_MESSAGE + value)
    validate_system_name(pieces[0])
    validate_service_definition(pieces[1])
    validate_version(pieces[2])


def service_definition_of(instance_id: str) -> str:
    """The middle part of a valid service instance id (the store keeps it as its own column)."""
    return instance_id.split("|", 2)[1]
