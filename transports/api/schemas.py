"""Wire schemas: the JSON shapes of requests and responses, as msgspec Structs.

Requests are decoded leniently in shape (every field optional, list elements nullable) so that the
validators in lock_requests.py / store_requests.py can give the reference's own messages ("Owner is
missing", "Request payload contains null element") instead of a generic decode error. Unknown fields
are ignored, as the reference's Jackson does. Both spellings that DECISIONS.md accepts are declared.
"""

from __future__ import annotations

import msgspec

from transports.api.pagination import PaginationWire

# --------------------------------------------------------------------------- lock management


class LockRequestWire(msgspec.Struct):
    serviceInstanceId: str | None = None
    owner: str | None = None
    expiresAt: str | None = None


class LockListRequestWire(msgspec.Struct):
    locks: list[LockRequestWire | None] | None = None


class LockQueryRequestWire(msgspec.Struct):
    pagination: PaginationWire | None = None
    ids: list[int | None] | None = None
    orchestrationJobIds: list[str | None] | str | None = None
    serviceInstanceIds: list[str | None] | str | None = None
    owners: list[str | None] | str | None = None
    owner: list[str | None] | str | None = None  # the docs' spelling (DECISIONS.md)
    expiresBefore: str | None = None
    expiresAfter: str | None = None


class LockResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: int
    orchestrationJobId: str | None = None  # omitted when null, as the reference does
    serviceInstanceId: str
    owner: str
    expiresAt: str
    temporary: bool


class LockListResponse(msgspec.Struct):
    entries: list[LockResponse]
    count: int


# --------------------------------------------------------------------------- simple store


class RuleRequestWire(msgspec.Struct):
    consumer: str | None = None
    serviceInstanceId: str | None = None
    priority: int | None = None


class RuleListRequestWire(msgspec.Struct):
    candidates: list[RuleRequestWire | None] | None = None
    entries: list[RuleRequestWire | None] | None = None  # the seed's / docs' spelling


class RuleQueryRequestWire(msgspec.Struct):
    pagination: PaginationWire | None = None
    ids: list[str | None] | str | None = None
    consumerNames: list[str | None] | str | None = None
    serviceDefinitions: list[str | None] | str | None = None
    serviceInstanceIds: list[str | None] | str | None = None
    minPriority: int | None = None
    maxPriority: int | None = None
    createdBy: str | None = None


class RuleResponse(msgspec.Struct):
    id: str
    consumer: str
    serviceDefinition: str
    serviceInstanceId: str
    priority: int
    createdBy: str
    updatedBy: str
    createdAt: str
    updatedAt: str


class RuleListResponse(msgspec.Struct):
    entries: list[RuleResponse]
    count: int


# Priority map and remove lists are plain containers: dict[str, int | None], list[str | None].
PriorityMapWire = dict[str, int | None]
IdListWire = list[str | None]
