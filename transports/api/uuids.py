"""UUID text → canonical form, accepting exactly what Java's `UUID.fromString` accepts (§1.6.5).

Besides the canonical 8-4-4-4-12 form (any case), Java accepts any string of at most 36 characters
made of five `-`-separated groups, each parsed by `Long.parseLong(group, 16)` (optional leading `+`,
at most 63 bits) and then masked to 32/16/16/16/48 bits: `1-1-1-1-1` is
`00000001-0001-0001-0001-000000000001`.

Decision: only ASCII hex digits count as digits. Java's `Character.digit` would also take other
Unicode decimal digits and full-width letters; nobody sends those, and Python's `int()` is laxer
still (underscores, spaces, `0x`), so the groups are checked character by character first.
"""

from __future__ import annotations

_HEX = frozenset("0123456789abcdefABCDEF")
_CANONICAL_CHARS = frozenset("0123456789abcdef-")
_LONG_MAX = (1 << 63) - 1
_MASKS = (0xFFFFFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFFFFFF)


def parse_uuid(text: str) -> str | None:
    """The canonical lower-case form of `text`, or None if `UUID.fromString` would reject it.

    No trimming: callers trim first where the reference does.
    """
    if len(text) == 36 and text[8] == "-" and text[13] == "-" and text[18] == "-" and text[23] == "-":
        lowered = text.lower()
        # Four dashes in place and only hex besides: already canonical up to case (the usual case).
        if lowered.count("-") == 4 and text.isascii() and _CANONICAL_CHARS.issuperset(lowered):
            return lowered
    if len(text) > 36:
        return None
    groups = text.split("-")
    if len(groups) != 5:
        return None
    values: list[int] = []
    for group, mask in zip(groups, _MASKS, strict=True):
        digits = group[1:] if group.startswith("+") else group
        if not digits or not _HEX.issuperset(digits):
            return None
        value = int(digits, 16)
        if value > _LONG_MAX:  # Long.parseLong overflow
            return None
        values.append(value & mask)
    a, b, c, d, e = values
    return f"{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}"


def is_uuid(text: str) -> bool:
    """Java `Utilities.isUUID`: would `UUID.fromString` accept it?"""
    return parse_uuid(text) is not None
