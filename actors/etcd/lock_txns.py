"""Planned lock changes as etcd txns whose compares guard every assumption of the plan. Pure.

The plan itself is LockTable's (actors/locks.py), made on the instance's cache; the txn commits it
only if etcd still holds what the cache showed:

- create: per lock, `create_revision == 0` (the instance is free) or, to take over an expired lock,
  `mod_revision == the revision that granted it`; all the locks of one request in one txn, so a bulk
  create is all-or-nothing. The ids are known only once the txn has committed (values.py).
- remove: per lock, `mod_revision == its grant revision`, so a lock that expired and was taken over
  meanwhile is never removed.
- expire: the expiry leader's deletes, each a nested txn with its own `mod_revision` compare (one lock
  taken over meanwhile must not stop the others), all under the outer compare that the leader key is
  still the one this instance created (its create_revision): a deposed leader deletes nothing.

Every txn also puts the locks' revision marker (keys.py), which is what reads wait for; a create or
remove that fails reads the marker instead (`failure`), so the writer knows which revision its cache
must reach before it plans again (writes.conflict_revision).

May import: msgspec; actors.etcd.wire, .keys, .values; actors.records. Never transports or bench.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from actors.etcd import wire
from actors.etcd.keys import KeyLayout
from actors.etcd.values import encode_lock, lock_id, lock_revision, request_of
from actors.records import Lock


def create_txn(layout: KeyLayout, locks: Sequence[Lock], held: Mapping[str, int], request: str) -> wire.TxnRequest:
    """`locks` as planned (their ids are placeholders); `held[instance]` is the grant revision of the
    expired lock that the create takes over on that instance (absent: the instance is free)."""
    compare: list[wire.Compare] = []
    success: list[wire.RequestOp] = []
    for slot, lock in enumerate(locks):
        key = layout.lock_key(lock.service_instance_id)
        revision = held.get(lock.service_instance_id)
        compare.append(wire.absent(key) if revision is None else wire.unchanged(key, revision))
        success.append(wire.put(key, encode_lock(lock, slot, request)))
    success.append(wire.put(layout.locks_marker))
    return wire.TxnRequest(compare=compare, success=success, failure=[wire.get(layout.locks_marker)])


def granted(locks: Sequence[Lock], revision: int) -> list[Lock]:
    """The planned locks with their ids, once their create txn committed at `revision`."""
    return [msgspec.structs.replace(lock, id=lock_id(revision, slot)) for slot, lock in enumerate(locks)]


def remove_txn(layout: KeyLayout, locks: Sequence[Lock]) -> wire.TxnRequest:
    keys = [layout.lock_key(lock.service_instance_id) for lock in locks]
    return wire.TxnRequest(
        compare=[wire.unchanged(key, lock_revision(lock.id)) for key, lock in zip(keys, locks, strict=True)],
        success=[*map(wire.delete, keys), wire.put(layout.locks_marker)],
        failure=[wire.get(layout.locks_marker)],
    )


def expire_txn(layout: KeyLayout, locks: Sequence[Lock], leader_revision: int) -> wire.TxnRequest:
    """Delete each lock unless it changed since it was granted, if this instance still leads the expiry."""
    deletes = [
        wire.nested(
            wire.TxnRequest(
                compare=[wire.unchanged(layout.lock_key(lock.service_instance_id), lock_revision(lock.id))],
                success=[wire.delete(layout.lock_key(lock.service_instance_id))],
            )
        )
        for lock in locks
    ]
    return wire.TxnRequest(
        compare=[wire.created_at(layout.expiry_leader, leader_revision)],
        success=[*deletes, wire.put(layout.locks_marker)],
    )


def expired_count(reply: wire.TxnResponse) -> int:
    """How many of an expire txn's deletes happened (0 if this instance no longer leads)."""
    if not reply.succeeded:
        return 0
    return sum(1 for op in reply.responses if op.response_txn is not None and op.response_txn.succeeded)


def read_back_txn(layout: KeyLayout, service_instance_ids: Sequence[str]) -> wire.TxnRequest:
    """One linearizable read of the lock keys of these instances (a txn of ranges only)."""
    return wire.TxnRequest(success=[wire.get(layout.lock_key(instance)) for instance in service_instance_ids])


def applied_at(reply: wire.TxnResponse, request: str) -> int | None:
    """The revision of a lock a read-back shows written by `request`, or None: the request's create
    committed at that revision (every lock of one create shares its txn's revision)."""
    for op in reply.responses:
        if op.response_range is not None:
            for kv in op.response_range.kvs:
                if request_of(kv.value) == request:
                    return kv.mod_revision
    return None

