"""HTTP query-string list parameters, as Spring binds them to List<String> (§2.4)."""

from __future__ import annotations


def query_list(values: list[str]) -> list[str]:
    """Repeated parameters are taken as they are; a single one is a comma-separated list.

    `?ids=` (present, empty) is an empty list; `?ids=A,,B` keeps the empty piece so that the
    validator can say the list contains an empty element.
    """
    if len(values) != 1:
        return values
    value = values[0]
    if value == "":
        return []
    return [piece.strip() for piece in value.split(",")]
