"""Records as etcd values, and lock ids made from revisions. Pure.

Values are compact JSON (readable with `etcdctl get`), one object per record. The record's identity
is in its key (the service instance of a lock, the id of a rule); each value also names the request
that wrote it (`request`, a random token), which is how a write whose answer was lost finds out
whether it was applied (actors/etcd/writes.py).

**Lock ids are fencing tokens.** A lock created by the txn that committed at revision R, as the
`slot`-th lock of its request (0-based), has id R * LOCK_IDS_PER_REVISION + slot. Revisions are
cluster-wide, unique per txn and strictly increasing, so ids are unique across every instance and
grow with the order in which locks were granted: a lock granted after another (in etcd's order) has a
larger id. A lock record is never rewritten in place (a takeover writes a new lock, at a new
revision), so its key's mod_revision is the revision that granted it, and the id is derived from it
on every instance without being stored. The slot limits one request to LOCK_IDS_PER_REVISION locks.

May import: msgspec; actors.records. Never transports or bench.
"""

from __future__ import annotations

import msgspec

from actors.records import Lock, Rule

LOCK_IDS_PER_REVISION = 100_000


def lock_id(revision: int, slot: int) -> int:
    return revision * LOCK_IDS_PER_REVISION + slot


def lock_revision(lock_id_: int) -> int:
    """The revision of the txn that granted the lock (its key's mod_revision while it is held)."""
    return lock_id_ // LOCK_IDS_PER_REVISION


class LockValue(msgspec.Struct, omit_defaults=True):
    owner: str
    expiresAt: int  # seconds since the epoch
    slot: int = 0
    temporary: bool = False
    orchestrationJobId: str | None = None
    request: str = ""


class RuleValue(msgspec.Struct, omit_defaults=True):
    consumer: str
    serviceDefinition: str
    serviceInstanceId: str
    priority: int
    createdBy: str
    updatedBy: str
    createdAt: int
    updatedAt: int
    request: str = ""


class TokenOnly(msgspec.Struct):
    request: str = ""


_encoder = msgspec.json.Encoder()
_lock_decoder = msgspec.json.Decoder(LockValue)
_rule_decoder = msgspec.json.Decoder(RuleValue)
_token_decoder = msgspec.json.Decoder(TokenOnly)


class MalformedRecord(ValueError):
    """A value under our prefix that lockstore did not write (or another version wrote differently)."""


def encode_lock(lock: Lock, slot: int, request: str) -> bytes:
    return _encoder.encode(
        LockValue(lock.owner, lock.expires_at, slot, lock.temporary, lock.orchestration_job_id, request)
    )


def decode_lock(service_instance_id: str, value: bytes, mod_revision: int) -> Lock:
    try:
        stored = _lock_decoder.decode(value)
    except msgspec.DecodeError as error:
        raise MalformedRecord(f"lock value: {error}") from None
    if not 0 <= stored.slot < LOCK_IDS_PER_REVISION or mod_revision < 1:
        raise MalformedRecord(f"lock slot {stored.slot} at revision {mod_revision}")
    return Lock(
        id=lock_id(mod_revision, stored.slot),
        service_instance_id=service_instance_id,
        owner=stored.owner,
        expires_at=stored.expiresAt,
        temporary=stored.temporary,
        orchestration_job_id=stored.orchestrationJobId,
    )


def encode_rule(rule: Rule, request: str) -> bytes:
    return _encoder.encode(
        RuleValue(
            rule.consumer,
            rule.service_definition,
            rule.service_instance_id,
            rule.priority,
            rule.created_by,
            rule.updated_by,
            rule.created_at,
            rule.updated_at,
            request,
        )
    )


def decode_rule(rule_id: str, value: bytes) -> Rule:
    try:
        stored = _rule_decoder.decode(value)
    except msgspec.DecodeError as error:
        raise MalformedRecord(f"rule value: {error}") from None
    return Rule(
        id=rule_id,
        consumer=stored.consumer,
        service_definition=stored.serviceDefinition,
        service_instance_id=stored.serviceInstanceId,
        priority=stored.priority,
        created_by=stored.createdBy,
        updated_by=stored.updatedBy,
        created_at=stored.createdAt,
        updated_at=stored.updatedAt,
    )


def request_of(value: bytes) -> str:
    """The token of the request that wrote a value ("" if unreadable)."""
    try:
        return _token_decoder.decode(value).request
    except msgspec.DecodeError:
        return ""
