"""The seven management operations, independent of the transport.

Each operation: decode the payload bytes into its wire Struct, validate and normalise (pure), send
one message to the owning actor, and build the response Struct. HTTP and MQTT both call these, so
the same request gives the same result and the same error text on both (ARCHITECTURE.md).
Errors are raised as ArrowheadError without an origin; the transport adds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from actors.clock import Clock
from actors.errors import Rejected, Unavailable
from actors.records import Lock, Rule
from actors.runtime import ActorStopped
from actors.services import LockService, StoreService
from transports.api import lock_requests, store_requests
from transports.api.errors import ArrowheadError, ExceptionType, invalid
from transports.api.instants import format_instant
from transports.api.requester import Requester
from transports.api.schemas import (
    LockListRequestWire,
    LockListResponse,
    LockQueryRequestWire,
    LockResponse,
    PriorityMapWire,
    RuleListRequestWire,
    RuleListResponse,
    RuleQueryRequestWire,
    RuleResponse,
)
from wal.errors import LogUnavailable

T = TypeVar("T")

ECHO_REPLY = "Got it!"


@dataclass(frozen=True)
class Limits:
    max_page_size: int = 1000
    max_batch: int = 1000


@dataclass(frozen=True)
class Result:
    """A success: the status (200/201) and the response Struct (None = no body)."""

    status: int
    payload: Any = None


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decode_payload(raw: bytes | None, wire_type: type[T] | Any) -> T | None:
    """JSON bytes → wire Struct; absent, empty or `null` → None. Bad JSON or shape → 400.

    `strict=False` lets numeric strings stand for numbers, as the reference's Jackson does.
    """
    if raw is None or not raw.strip():
        return None
    decoder = _decoders.get(wire_type)
    if decoder is None:
        decoder = _decoders[wire_type] = msgspec.json.Decoder(wire_type | None, strict=False)
    try:
        return decoder.decode(raw)  # type: ignore[no-any-return]
    except (msgspec.DecodeError, RecursionError) as error:  # RecursionError: nesting deeper than Python's limit
        raise invalid(f"Could not parse payload. Reason: {error}") from None
    except UnicodeDecodeError as error:  # msgspec checks UTF-8 only inside the strings it decodes
        raise invalid(f"Could not parse payload. Reason: {invalid_utf8_reason(error)}") from None


def invalid_utf8_reason(error: UnicodeDecodeError) -> str:
    """The decoder's UnicodeDecodeError counts positions inside one string: name the byte instead."""
    bad = error.object[error.start : error.start + 1]
    return f"Invalid UTF-8 in a JSON string: {error.reason} (byte 0x{bad.hex()})"


def lock_response(lock: Lock) -> LockResponse:
    return LockResponse(
        id=lock.id,
        orchestrationJobId=lock.orchestration_job_id,
        serviceInstanceId=lock.service_instance_id,
        owner=lock.owner,
        expiresAt=format_instant(lock.expires_at),
        temporary=lock.temporary,
    )


def rule_response(rule: Rule) -> RuleResponse:
    return RuleResponse(
        id=rule.id,
        consumer=rule.consumer,
        serviceDefinition=rule.service_definition,
        serviceInstanceId=rule.service_instance_id,
        priority=rule.priority,
        createdBy=rule.created_by,
        updatedBy=rule.updated_by,
        createdAt=format_instant(rule.created_at),
        updatedAt=format_instant(rule.updated_at),
    )


def _lock_list(locks: Sequence[Lock], count: int) -> LockListResponse:
    return LockListResponse(entries=[lock_response(lock) for lock in locks], count=count)


def _rule_list(rules: Sequence[Rule], count: int) -> RuleListResponse:
    return RuleListResponse(entries=[rule_response(rule) for rule in rules], count=count)


class Operations:
    """One instance per service; transports hold a reference and call the operations. The actors are
    either backend's (local: actors/lock_actor.py, actors/store_actor.py; etcd: actors/etcd/)."""

    def __init__(self, locks: LockService, store: StoreService, clock: Clock, limits: Limits) -> None:
        self.locks = locks
        self.store = store
        self.clock = clock
        self.limits = limits

    async def lock_create(self, requester: Requester, payload: bytes | None) -> Result:
        request = decode_payload(payload, LockListRequestWire)
        new = lock_requests.validate_create(request, self.clock.now(), self.limits.max_batch)
        created = await _ask(self.locks.create(new))
        return Result(201, _lock_list(created, len(created)))

    async def lock_query(self, requester: Requester, payload: bytes | None) -> Result:
        request = decode_payload(payload, LockQueryRequestWire)
        lock_filter, page = lock_requests.validate_query(request, self.limits.max_page_size)
        entries, count = await _ask(self.locks.query(lock_filter, page))
        return Result(200, _lock_list(entries, count))

    async def lock_remove(
        self, requester: Requester, owner: str | None, instance_ids: Sequence[str | None] | None
    ) -> Result:
        normalized_owner, ids = lock_requests.validate_remove(owner, instance_ids)
        await _ask(self.locks.remove(normalized_owner, ids))
        return Result(200)

    async def store_query(self, requester: Requester, payload: bytes | None) -> Result:
        request = decode_payload(payload, RuleQueryRequestWire)
        rule_filter, page = store_requests.validate_query(request, self.limits.max_page_size)
        entries, count = await _ask(self.store.query(rule_filter, page))
        return Result(200, _rule_list(entries, count))

    async def store_create(self, requester: Requester, payload: bytes | None) -> Result:
        request = decode_payload(payload, RuleListRequestWire)
        new = store_requests.validate_create(request, self.limits.max_batch)
        created = await _ask(self.store.create(new, requester.name))
        return Result(201, _rule_list(created, len(created)))

    async def store_modify_priorities(self, requester: Requester, payload: bytes | None) -> Result:
        request = decode_payload(payload, PriorityMapWire)
        priorities = store_requests.validate_priorities(request)
        named = await _ask(self.store.modify_priorities(priorities, requester.name))
        return Result(200, _rule_list(named, len(named)))

    async def store_remove(self, requester: Requester, ids: Sequence[str | None] | None) -> Result:
        await _ask(self.store.remove(store_requests.validate_remove(ids)))
        return Result(200)


async def _ask(awaitable: Any) -> Any:
    """Await an actor call, turning actor-side failures into Arrowhead errors."""
    try:
        return await awaitable
    except Rejected as error:
        raise invalid(error.message) from None
    except (Unavailable, LogUnavailable, ActorStopped) as error:
        raise ArrowheadError(
            f"Service unavailable: {error}", ExceptionType.EXTERNAL_SERVER_ERROR
        ) from None
