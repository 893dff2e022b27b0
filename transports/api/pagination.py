"""The `pagination` object of query requests: wire shape, checks and defaults (§1.7).

Both spellings are accepted (DECISIONS "accept both spellings"): the code's `page`/`size`/
`direction`/`sortField` and the documents' `pageNumber`/`pageSize`/`pageDirection`/`pageSortField`.
"""

from __future__ import annotations

import msgspec

from actors.records import PageRequest
from transports.api.errors import invalid
from transports.api.fields import is_blank, pick, trim

_DIRECTIONS = {"ASC": False, "DESC": True}  # name → descending


class PaginationWire(msgspec.Struct):
    """Pagination as sent; every field optional. Unknown fields are ignored (§1.8)."""

    page: int | None = None
    size: int | None = None
    direction: str | None = None
    sortField: str | None = None
    pageNumber: int | None = None
    pageSize: int | None = None
    pageDirection: str | None = None
    pageSortField: str | None = None


def _java_list(values: tuple[str, ...]) -> str:
    """Java `List.toString()`: `[a, b, c]`."""
    return "[" + ", ".join(values) + "]"


def normalize_page(
    wire: PaginationWire | None,
    *,
    allowed: tuple[str, ...],
    max_size: int,
    default_field: str = "id",
    default_descending: bool = True,
) -> PageRequest:
    """Check the page request in the reference's order, then fill in defaults.

    Absent pagination → first page of `max_size`. A negative page becomes 0, a size below 1 becomes
    `max_size`, a blank direction or sort field becomes the default; direction is case-insensitive.
    """
    if wire is None:
        return PageRequest(number=0, size=max_size, sort_field=default_field, descending=default_descending)
    page = pick("page", wire.page, "pageNumber", wire.pageNumber)
    size = pick("size", wire.size, "pageSize", wire.pageSize)
    direction = pick("direction", wire.direction, "pageDirection", wire.pageDirection)
    sort_field = pick("sortField", wire.sortField, "pageSortField", wire.pageSortField)

    if size is not None and page is None:
        raise invalid("If size parameter is defined then page parameter cannot be undefined")
    if size is not None and size > max_size:
        raise invalid(f"The page size cannot be larger than {max_size}")
    if page is not None and size is None:
        raise invalid("If page parameter is defined then size parameter cannot be undefined")
    descending = default_descending
    if direction is not None and not is_blank(direction):
        name = trim(direction).upper()
        if name not in _DIRECTIONS:
            raise invalid("Direction is invalid. Only ASC or DESC are allowed")
        descending = _DIRECTIONS[name]
    field = default_field
    if sort_field is not None and not is_blank(sort_field):
        field = trim(sort_field)
        if field not in allowed:
            raise invalid(f"Sort field is invalid. Only the following are allowed: {_java_list(allowed)}")

    number = page if page is not None and page >= 0 else 0
    page_size = size if size is not None and size >= 1 else max_size
    return PageRequest(number=number, size=page_size, sort_field=field, descending=descending)
