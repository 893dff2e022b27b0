"""Deleting expired locks from etcd: one instance at a time, elected, and never a lock taken over.

Expiry itself needs no deletion: a lock is expired when the wall clock passes its `expiresAt` (stored
in the value, never an etcd lease: lease TTLs are reset on leader changes and revoked at a bounded
rate), and every instance hides expired locks at read time and lets a create take them over. The
records still have to go, and one deleter is enough:

- **Election.** An instance campaigns by creating the key `<prefix>expiry-leader` (create_revision
  == 0) on a lease of `lease_ttl` seconds that it keeps alive; the key's create_revision identifies
  its term. When the leader dies, its lease runs out and another instance's next campaign (every
  `lease_ttl / 3` seconds) wins. Leases are fine here: a lost lease only moves housekeeping around.
- **Fencing.** Each deletion txn compares the leader key's create_revision with the term's, so a
  deposed leader (paused, partitioned, lease lost) deletes nothing; and each lock's delete is a
  nested txn comparing its mod_revision with its grant revision, so a lock taken over meanwhile stays.
- **Clock.** Instances' clocks must agree (NTP); `skew_margin` seconds are added before a lock counts
  as expired for a takeover (lock_backend.py) or a deletion, so a fast clock cannot end a lock early.

The leader sleeps until the earliest expiry in its cache (woken early when a change brings it forward),
deletes up to `batch` locks per txn, and waits for its cache to apply each deletion before planning the
next.

May import: trio; actors.etcd.wire, .client, .errors, .failover, .keys, .lock_cache, .lock_txns, .replica;
actors.clock, actors.errors, actors.records, actors.runtime. Never transports or bench.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from actors.clock import Clock
from actors.errors import Unavailable
from actors.etcd import wire
from actors.etcd.client import EtcdClient
from actors.etcd.errors import EtcdError, OutcomeUnknown, lone_errors
from actors.etcd.failover import Backoff
from actors.etcd.keys import KeyLayout
from actors.etcd.lock_cache import LockCache
from actors.etcd.lock_txns import expire_txn, expired_count
from actors.etcd.replica import Replica
from actors.records import Lock
from actors.runtime import ActorStopped

log = logging.getLogger("lockstore.etcd")


@dataclass(frozen=True)
class ExpirySettings:
    skew_margin: float = 0.0  # seconds after expiresAt before a lock may be taken over or deleted
    lease_ttl: int = 10  # seconds: how long a dead leader keeps the expiry to itself
    batch: int = 100  # deletes per txn (each a nested txn: fits etcd's default --max-txn-ops of 128)
    max_sleep: float = 30.0  # re-check at least this often (a wall-clock jump cannot postpone a purge)


class LostLeadership(Exception):
    """The term ended: the lease is gone or the leader key is someone else's."""


def expired_locks(cache: LockCache, now: float, limit: int) -> list[Lock]:
    """Up to `limit` locks with expiresAt <= now, earliest first (runs in the lock actor)."""
    event = cache.table.plan_expire(now)
    if event is None:
        return []
    table = cache.table
    return [lock for lock in map(table.get, event.ids[:limit]) if lock is not None]


class ExpiryLeader:
    def __init__(
        self,
        client: EtcdClient,
        layout: KeyLayout,
        replica: Replica[LockCache],
        clock: Clock,
        settings: ExpirySettings,
        name: str,
    ) -> None:
        self._client = client
        self._layout = layout
        self._replica = replica
        self._clock = clock
        self._settings = settings
        self._name = name.encode("utf-8")
        self._wakeup = trio.Event()
        self._due: float | None = None  # the expiresAt the purge loop sleeps until (None: not sleeping on one)
        self._backoff = Backoff(base=0.2, cap=5.0)
        self.is_leader = False
        self.terms = 0  # terms this instance led
        self.deleted = 0  # expired locks this instance deleted

    def wake(self) -> None:
        """Look at the cache again now (tests that move a manual clock, purge_now)."""
        self._wakeup.set()

    def changed(self, earliest: int | None) -> None:
        """The cache changed and its earliest expiry is `earliest`: wake the purge loop only if that is
        sooner than what it sleeps until (called in the lock actor after every change, so it must be cheap)."""
        if earliest is not None and (self._due is None or earliest < self._due):
            self._wakeup.set()

    async def run(self) -> None:
        """Campaign, lead, and campaign again, until cancelled (or the lock actor stops)."""
        failures = 0
        while True:
            try:
                await self._term()
                failures = 0
            except ActorStopped:
                return
            except (Unavailable, LostLeadership) as error:  # etcd errors, a cache that fell behind
                failures += 1
                log.info("expiry election: %s", error)
                await trio.sleep(self._backoff.delay(failures))

    async def _term(self) -> None:
        grant = await self._client.lease_grant(self._settings.lease_ttl)
        if grant.error or not grant.ID:
            raise EtcdError(f"lease grant refused: {grant.error or 'no lease id'}")
        lease = grant.ID
        try:
            with lone_errors():
                await self._lead(lease)
        finally:
            self.is_leader = False
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                try:
                    await self._client.lease_revoke(lease)  # the next leader need not wait out the TTL
                except EtcdError:
                    pass

    async def _lead(self, lease: int) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_alive, lease, nursery.cancel_scope)
            term = await self._campaign(lease)
            self.is_leader = True
            self.terms += 1
            log.info("expiry: %s leads (term %d)", self._name.decode(), term)
            await self._purge_loop(term)

    async def _campaign(self, lease: int) -> int:
        """Wait until this instance holds the leader key; the key's create_revision (the term)."""
        key = self._layout.expiry_leader
        campaign = wire.TxnRequest(
            compare=[wire.absent(key)], success=[wire.put(key, self._name, lease)], failure=[wire.get(key)]
        )
        while True:
            try:
                reply = await self._client.txn(campaign)
            except OutcomeUnknown:
                reply = wire.TxnResponse()  # look at the key below: it may be ours
            if reply.succeeded:
                return reply.header.revision
            holder = await self._client.range(wire.RangeRequest(key))
            if holder.kvs and holder.kvs[0].lease == lease:
                return holder.kvs[0].create_revision  # a campaign whose answer was lost did win
            await trio.sleep(self._settings.lease_ttl / 3)

    async def _keep_alive(self, lease: int, term: trio.CancelScope) -> None:
        ttl = self._settings.lease_ttl
        last = trio.current_time()
        while True:
            await trio.sleep(ttl / 3)
            try:
                left = await self._client.lease_keepalive(lease)
            except EtcdError as error:
                if trio.current_time() - last > ttl:
                    log.info("expiry: lease %x not refreshed for %d s (%s); term over", lease, ttl, error)
                    term.cancel()
                    return
                continue
            if left <= 0:
                log.info("expiry: lease %x is gone; term over", lease)
                term.cancel()
                return
            last = trio.current_time()

    async def _purge_loop(self, term: int) -> None:
        settings = self._settings
        while True:
            self._wakeup = trio.Event()
            earliest = await self._replica.ask(lambda cache: cache.table.next_expiry())
            now = self._clock.now()
            if earliest is not None and earliest + settings.skew_margin <= now:
                await self._delete_batch(term, now - settings.skew_margin)
                continue
            delay = settings.max_sleep if earliest is None else earliest + settings.skew_margin - now
            self._due = earliest
            try:
                with trio.move_on_after(min(settings.max_sleep, max(0.01, delay))):
                    await self._wakeup.wait()
            finally:
                self._due = None

    async def _delete_batch(self, term: int, cutoff: float) -> None:
        locks = await self._replica.ask(lambda cache: expired_locks(cache, cutoff, self._settings.batch))
        if not locks:
            return
        try:
            reply = await self._client.txn(expire_txn(self._layout, locks, term))
        except OutcomeUnknown:
            await self._replica.fresh()  # whatever happened is in the cache after this; plan again
            return
        if not reply.succeeded:
            raise LostLeadership(f"the expiry leader key is no longer term {term}'s")
        self.deleted += expired_count(reply)
        await self._replica.caught_up(reply.header.revision)
