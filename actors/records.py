"""Domain records, log events and normalised queries shared by actors, transports and the log.

Everything here is an immutable msgspec Struct: cheap to create, hashable where needed, and
encodable to msgpack for the write-ahead log without a separate schema.

Times are whole seconds since the Unix epoch (DECISIONS.md 15: whole-second precision).
"""

from __future__ import annotations

import msgspec

# --------------------------------------------------------------------------- records


class Lock(msgspec.Struct, frozen=True, array_like=True):
    """An orchestration lock: `service_instance_id` is held by `owner` while now < `expires_at`."""

    id: int
    service_instance_id: str
    owner: str
    expires_at: int
    temporary: bool = False
    orchestration_job_id: str | None = None


class Rule(msgspec.Struct, frozen=True, array_like=True):
    """A simple-store priority rule: `consumer` prefers `service_instance_id` at `priority` (1 = best)."""

    id: str  # canonical lower-case UUID
    consumer: str
    service_definition: str  # middle part of service_instance_id
    service_instance_id: str
    priority: int
    created_by: str
    updated_by: str
    created_at: int
    updated_at: int


# --------------------------------------------------------------------------- log events
# A state change is described by exactly one event; one request produces one event, which is one
# log frame, so a request is applied whole or not at all, live and on replay alike.


class LocksCreated(msgspec.Struct, frozen=True, array_like=True, tag="lc"):
    locks: tuple[Lock, ...]


class LocksRemoved(msgspec.Struct, frozen=True, array_like=True, tag="lr"):
    ids: tuple[int, ...]
    expired: bool = False  # True when the expiry purge removed them, False for a remove request


class RulesCreated(msgspec.Struct, frozen=True, array_like=True, tag="rc"):
    rules: tuple[Rule, ...]


class RulesUpdated(msgspec.Struct, frozen=True, array_like=True, tag="ru"):
    rules: tuple[Rule, ...]  # the full new versions of the changed rules


class RulesRemoved(msgspec.Struct, frozen=True, array_like=True, tag="rr"):
    ids: tuple[str, ...]


LockEvent = LocksCreated | LocksRemoved
StoreEvent = RulesCreated | RulesUpdated | RulesRemoved
Event = LocksCreated | LocksRemoved | RulesCreated | RulesUpdated | RulesRemoved

_event_encoder = msgspec.msgpack.Encoder()
_event_decoder = msgspec.msgpack.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return _event_encoder.encode(event)


def decode_event(payload: bytes) -> Event:
    event: Event = _event_decoder.decode(payload)
    return event


# --------------------------------------------------------------------------- queries and commands


class PageRequest(msgspec.Struct, frozen=True):
    """A validated, normalised page: zero-based `number`, `size` >= 1, a sort field from the
    record's allowed list (wire name, e.g. "serviceInstanceId"), and the direction."""

    number: int
    size: int
    sort_field: str
    descending: bool


class NewLock(msgspec.Struct, frozen=True):
    """A validated, normalised lock-create entry (no id yet)."""

    service_instance_id: str
    owner: str
    expires_at: int


class LockFilter(msgspec.Struct, frozen=True):
    """Lock query filters. Empty tuple / None = not given. AND across fields, OR within a list."""

    ids: tuple[int, ...] = ()
    orchestration_job_ids: tuple[str, ...] = ()
    service_instance_ids: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    expires_before: float | None = None  # keep expires_at < expires_before
    expires_after: float | None = None  # keep expires_at > expires_after


class NewRule(msgspec.Struct, frozen=True):
    """A validated, normalised store-create candidate (no id, no audit fields yet)."""

    consumer: str
    service_instance_id: str
    service_definition: str
    priority: int


class RuleFilter(msgspec.Struct, frozen=True):
    """Store query filters. Empty tuple / None = not given. AND across fields, OR within a list."""

    ids: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    service_definitions: tuple[str, ...] = ()
    service_instance_ids: tuple[str, ...] = ()
    created_by: str | None = None
    min_priority: int | None = None  # inclusive
    max_priority: int | None = None  # inclusive


LOCK_SORT_FIELDS = ("id", "owner", "serviceInstanceId", "expiresAt")
RULE_SORT_FIELDS = ("id", "consumer", "serviceDefinition", "priority", "serviceInstanceId", "createdAt")
