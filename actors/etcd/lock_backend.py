"""The lock actor's public face (actors/services.py `LockService`) with its state in etcd.

Same operations, same answers and error texts as LockActor (actors/lock_actor.py): the planning is
LockTable's, run on this instance's cache (a LockTable fed by a watch, replica.py); the commit is one
guarded txn (lock_txns.py), retried on conflict (writes.py). What differs, and why:

- ids are fencing tokens made from the granting txn's revision (values.py), not a local counter;
- a create may take over an expired lock only `skew_margin` seconds after its expiresAt (clock skew
  between instances); reads hide a lock at its expiresAt, as in the local mode;
- the expiry purge deletes records on one elected instance (expiry.py); `purged` counts this
  instance's deletions, and `purge_now` deletes what is due if this instance leads.

May import: trio; the lock modules of actors.etcd (.lock_txns, .lock_cache, .expiry, ...) and its shared ones
(.client, .keys, .replica, .writes, .values, .wire); actors.clock, actors.records, actors.runtime. Never
transports or bench.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import trio

from actors.clock import Clock
from actors.etcd import wire
from actors.etcd.client import EtcdClient
from actors.etcd.expiry import ExpiryLeader, ExpirySettings
from actors.etcd.keys import KeyLayout
from actors.etcd.lock_cache import LockCache
from actors.etcd.lock_txns import applied_at, create_txn, granted, read_back_txn, remove_txn
from actors.etcd.replica import CacheSettings, Replica, ReplicaStatus
from actors.etcd.values import lock_revision
from actors.etcd.writes import Attempt, Done, write
from actors.records import Lock, LockFilter, NewLock, PageRequest
from actors.runtime import Mailbox


def new_request_token() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Create:
    txn: wire.TxnRequest
    planned: tuple[Lock, ...]

    def result(self, revision: int) -> list[Lock]:
        return granted(self.planned, revision)


@dataclass(frozen=True)
class Remove:
    txn: wire.TxnRequest
    removed: int

    def result(self, revision: int) -> int:
        return self.removed


def plan_create(cache: LockCache, locks: Sequence[NewLock], now: float, request: str) -> Create:
    """LockTable's create plan on the cache (Rejected with its messages) as a guarded txn. `now` is
    the takeover instant: the wall clock minus the skew margin."""
    table = cache.table
    event = table.plan_create(locks, now)
    held: dict[str, int] = {}
    for lock in event.locks:
        old = table.get_by_instance(lock.service_instance_id)
        if old is not None:  # expired (the plan checked): taken over if still as seen
            held[lock.service_instance_id] = lock_revision(old.id)
    return Create(create_txn(cache.layout, event.locks, held, request), event.locks)


def plan_remove(cache: LockCache, owner: str, service_instance_ids: Sequence[str], now: float) -> Remove | Done[int]:
    event = cache.table.plan_remove(owner, service_instance_ids, now)
    if event is None:
        return Done(0)
    locks = [lock for lock in map(cache.table.get, event.ids) if lock is not None]
    return Remove(remove_txn(cache.layout, locks), len(locks))


class EtcdLockActor:
    def __init__(
        self,
        client: EtcdClient,
        layout: KeyLayout,
        clock: Clock,
        *,
        cache: CacheSettings | None = None,
        expiry: ExpirySettings | None = None,
        instance_name: str = "lockstore",
    ) -> None:
        self._client = client
        self._layout = layout
        self._clock = clock
        self._expiry_settings = expiry if expiry is not None else ExpirySettings()
        self._replica: Replica[LockCache] = Replica(
            "locks",
            client,
            layout.locks,
            layout.locks_marker,
            partial(LockCache.build, layout),
            cache if cache is not None else CacheSettings(),
            after_change=lambda cache: self.expiry.changed(cache.table.next_expiry()),
        )
        self.expiry = ExpiryLeader(client, layout, self._replica, clock, self._expiry_settings, instance_name)

    # ------------------------------------------------------------------ public face (any task)

    @property
    def mailbox(self) -> Mailbox:
        return self._replica.mailbox

    @property
    def purged(self) -> int:
        return self.expiry.deleted

    @property
    def replica(self) -> Replica[LockCache]:
        return self._replica

    def status(self) -> ReplicaStatus:
        return self._replica.status()

    async def create(self, locks: Sequence[NewLock]) -> list[Lock]:
        request = new_request_token()
        instances = [entry.service_instance_id for entry in locks]

        def plan(cache: LockCache) -> Create:
            return plan_create(cache, locks, self._clock.now() - self._expiry_settings.skew_margin, request)

        async def resolve(unknown: Sequence[Attempt[list[Lock]]]) -> tuple[Attempt[list[Lock]], int] | None:
            reply = await self._client.txn(read_back_txn(self._layout, instances))
            revision = applied_at(reply, request)
            return None if revision is None else (unknown[-1], revision)

        return await write(self._replica, self._client, plan, resolve, guarded=True)

    async def query(self, lock_filter: LockFilter, page: PageRequest) -> tuple[list[Lock], int]:
        await self._replica.fresh()
        return await self._replica.ask(lambda cache: cache.table.query(lock_filter, page, self._clock.now()))

    async def remove(self, owner: str, service_instance_ids: Sequence[str]) -> int:
        def plan(cache: LockCache) -> Remove | Done[int]:
            return plan_remove(cache, owner, service_instance_ids, self._clock.now())

        # No resolve: after a lost answer the request is planned again, and finds its locks gone or not.
        return await write(self._replica, self._client, plan)

    async def count(self) -> int:
        """Locks held in this instance's cache (expired ones not yet deleted included, as in local mode)."""
        return await self._replica.ask(lambda cache: len(cache.table))

    async def purge_now(self) -> int:
        """Delete the expired locks now if this instance leads the expiry; how many it deleted."""
        if not self.expiry.is_leader:
            return 0
        before = self.expiry.deleted
        self.expiry.wake()
        with trio.move_on_after(self._client.config.deadline):
            while True:
                await self._replica.fresh()
                due = await self._replica.ask(lambda cache: cache.table.next_expiry())
                if due is None or due + self._expiry_settings.skew_margin > self._clock.now():
                    break
                await trio.sleep(0.01)
        return self.expiry.deleted - before

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the cache (started once it is), then follow etcd and lead the expiry when elected, until
        the mailbox is closed (`close()`, or `mailbox.close()` as for the local actor): the queued
        requests are answered, then everything stops."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self._run_replica, nursery.cancel_scope)
            nursery.start_soon(self.expiry.run)
            task_status.started()

    async def _run_replica(
        self, everything: trio.CancelScope, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await self._replica.run(task_status=task_status)
        everything.cancel()  # the expiry too

    def close(self) -> None:
        """Stop taking requests; `run` returns once the queued ones are answered."""
        self._replica.close()
