"""Page checks and defaults (ARROWHEAD-REFERENCE.md §1.7, DECISIONS "accept both spellings")."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.records import LOCK_SORT_FIELDS, RULE_SORT_FIELDS, PageRequest
from transports.api.errors import ArrowheadError
from transports.api.pagination import PaginationWire, normalize_page

SIZE_WITHOUT_PAGE = "If size parameter is defined then page parameter cannot be undefined"
PAGE_WITHOUT_SIZE = "If page parameter is defined then size parameter cannot be undefined"
TOO_LARGE = "The page size cannot be larger than 1000"
DIRECTION = "Direction is invalid. Only ASC or DESC are allowed"
LOCK_FIELDS = "Sort field is invalid. Only the following are allowed: [id, owner, serviceInstanceId, expiresAt]"
RULE_FIELDS = (
    "Sort field is invalid. Only the following are allowed: "
    "[id, consumer, serviceDefinition, priority, serviceInstanceId, createdAt]"
)

decode = msgspec.json.Decoder(PaginationWire).decode


def lock_page(wire: PaginationWire | None) -> PageRequest:
    return normalize_page(wire, allowed=LOCK_SORT_FIELDS, max_size=1000)


def error(wire: PaginationWire, allowed: tuple[str, ...] = LOCK_SORT_FIELDS) -> str:
    with pytest.raises(ArrowheadError) as caught:
        normalize_page(wire, allowed=allowed, max_size=1000)
    assert caught.value.status == 400
    assert caught.value.origin is None
    return caught.value.message


def test_absent_pagination_is_the_first_full_page_newest_first() -> None:
    assert lock_page(None) == PageRequest(number=0, size=1000, sort_field="id", descending=True)


def test_defaults_are_the_callers() -> None:
    page = normalize_page(None, allowed=("a", "b"), max_size=50, default_field="b", default_descending=False)
    assert page == PageRequest(number=0, size=50, sort_field="b", descending=False)


@pytest.mark.parametrize(
    ("json", "message"),
    [
        ('{"size": 10}', SIZE_WITHOUT_PAGE),
        ('{"size": 5000}', SIZE_WITHOUT_PAGE),  # check 1 before check 2
        ('{"page": 0, "size": 1001}', TOO_LARGE),
        ('{"page": 0}', PAGE_WITHOUT_SIZE),
        ('{"page": 0, "direction": "up"}', PAGE_WITHOUT_SIZE),  # check 3 before check 4
        ('{"page": 0, "size": 10, "direction": "up"}', DIRECTION),
        ('{"direction": "ascending"}', DIRECTION),
        ('{"direction": "DESC!"}', DIRECTION),
        ('{"direction": "up", "sortField": "nope"}', DIRECTION),  # check 4 before check 5
        ('{"sortField": "nope"}', LOCK_FIELDS),
        ('{"sortField": "Owner"}', LOCK_FIELDS),  # case-sensitive
        ('{"sortField": "expires_at"}', LOCK_FIELDS),
        ('{"sortField": "consumer"}', LOCK_FIELDS),
        ('{"pageSize": 10}', SIZE_WITHOUT_PAGE),  # the documents' spellings take part too
        ('{"pageNumber": 0, "pageSize": 1001}', TOO_LARGE),
        ('{"pageNumber": 2}', PAGE_WITHOUT_SIZE),
        ('{"pageDirection": "sideways"}', DIRECTION),
        ('{"pageSortField": "nope"}', LOCK_FIELDS),
        ('{"page": 0, "pageSize": 1001}', TOO_LARGE),  # spellings mixed across fields
    ],
)
def test_checks_in_the_reference_order(json: str, message: str) -> None:
    assert error(decode(json)) == message


def test_rule_sort_fields_message() -> None:
    assert error(PaginationWire(sortField="owner"), RULE_SORT_FIELDS) == RULE_FIELDS


@pytest.mark.parametrize(
    ("json", "expected"),
    [
        ("{}", PageRequest(0, 1000, "id", True)),
        ('{"page": 0, "size": 10, "direction": "ASC", "sortField": "owner"}', PageRequest(0, 10, "owner", False)),
        ('{"page": 3, "size": 1000}', PageRequest(3, 1000, "id", True)),
        ('{"page": -1, "size": 10}', PageRequest(0, 10, "id", True)),
        ('{"page": 2, "size": 0}', PageRequest(2, 1000, "id", True)),
        ('{"page": 2, "size": -5}', PageRequest(2, 1000, "id", True)),
        ('{"direction": "asc"}', PageRequest(0, 1000, "id", False)),
        ('{"direction": " desc\\t"}', PageRequest(0, 1000, "id", True)),
        ('{"direction": "Asc"}', PageRequest(0, 1000, "id", False)),
        ('{"direction": ""}', PageRequest(0, 1000, "id", True)),
        ('{"direction": "   "}', PageRequest(0, 1000, "id", True)),
        ('{"direction": null, "sortField": null}', PageRequest(0, 1000, "id", True)),
        ('{"sortField": " expiresAt "}', PageRequest(0, 1000, "expiresAt", True)),
        ('{"sortField": ""}', PageRequest(0, 1000, "id", True)),
        ('{"sortField": "serviceInstanceId"}', PageRequest(0, 1000, "serviceInstanceId", True)),
        ('{"unknown": 1, "page": 1, "size": 2}', PageRequest(1, 2, "id", True)),
        # the documents' spellings
        (
            '{"pageNumber": 1, "pageSize": 20, "pageDirection": "ASC", "pageSortField": "expiresAt"}',
            PageRequest(1, 20, "expiresAt", False),
        ),
        # both spellings, same values
        ('{"page": 1, "pageNumber": 1, "size": 5, "pageSize": 5}', PageRequest(1, 5, "id", True)),
        ('{"direction": "ASC", "pageDirection": "ASC"}', PageRequest(0, 1000, "id", False)),
        # a blank spelling counts as not given
        ('{"direction": "", "pageDirection": "ASC"}', PageRequest(0, 1000, "id", False)),
        ('{"sortField": "owner", "pageSortField": " "}', PageRequest(0, 1000, "owner", True)),
    ],
)
def test_normalisation(json: str, expected: PageRequest) -> None:
    assert lock_page(decode(json)) == expected


@pytest.mark.parametrize(
    ("json", "message"),
    [
        ('{"page": 1, "pageNumber": 2, "size": 5}', "Conflicting fields: page and pageNumber have different values"),
        ('{"page": 1, "size": 5, "pageSize": 6}', "Conflicting fields: size and pageSize have different values"),
        (
            '{"direction": "ASC", "pageDirection": "DESC"}',
            "Conflicting fields: direction and pageDirection have different values",
        ),
        (
            '{"sortField": "id", "pageSortField": "owner"}',
            "Conflicting fields: sortField and pageSortField have different values",
        ),
        # the conflict is found before any other check
        ('{"size": 5, "pageSize": 6}', "Conflicting fields: size and pageSize have different values"),
    ],
)
def test_conflicting_spellings(json: str, message: str) -> None:
    assert error(decode(json)) == message


@given(
    st.none() | st.integers(min_value=-5, max_value=10**6),
    st.none() | st.integers(min_value=-5, max_value=1000),
    st.sampled_from([None, "", "asc", "DESC", " Asc "]),
    st.sampled_from([None, "", *RULE_SORT_FIELDS]),
)
def test_valid_requests_give_a_usable_page(
    page: int | None, size: int | None, direction: str | None, field: str | None
) -> None:
    if (page is None) != (size is None):
        return  # covered by the table above
    result = normalize_page(
        PaginationWire(page=page, size=size, direction=direction, sortField=field),
        allowed=RULE_SORT_FIELDS,
        max_size=1000,
    )
    assert result.number >= 0 and 1 <= result.size <= 1000
    assert result.sort_field in RULE_SORT_FIELDS
    assert result.sort_field == (field or "id")
    assert result.descending is (direction is None or direction.strip().upper() != "ASC")
    # the other spelling means the same thing
    assert result == normalize_page(
        PaginationWire(pageNumber=page, pageSize=size, pageDirection=direction, pageSortField=field),
        allowed=RULE_SORT_FIELDS,
        max_size=1000,
    )
