"""One table cached from etcd: the actor that owns it, the reflector that feeds it, the read barrier.

The house rule stays: the cache (a LockCache or RuleCache) is touched only inside its actor task,
through the same Mailbox as the local mode's actors. The reflector's lists and events are messages
like any request, so a request never sees half of a txn, and the revision gate advances inside the
actor right after the table changed.

- `fresh()`: the linearizable read barrier — a quorum read of the table's revision marker (shared
  by concurrent reads, fresh_revision.py), then a wait until the cache has applied that revision.
- `caught_up(revision)`: a write's reply waits until the cache has applied its own txn.
- `ask(message)`: run `message(cache)` in the actor.

The Mailbox's durability wait is a no-op here: etcd made a change durable (its WAL fsync'd on a
quorum) before any watch event or txn reply mentions it.

May import: trio; actors.etcd.wire, .client, .fresh_revision, .reflector, .revision_gate; actors.runtime.
Never transports or bench.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import trio

from actors.etcd import wire
from actors.etcd.client import EtcdClient
from actors.etcd.fresh_revision import RevisionFetcher
from actors.etcd.reflector import Reflector
from actors.etcd.revision_gate import RevisionGate
from actors.runtime import Mailbox, serve_mailbox

log = logging.getLogger("lockstore.etcd")

T = TypeVar("T")


class Cache(Protocol):
    malformed: int

    def apply(self, events: Sequence[wire.Event]) -> int: ...


C = TypeVar("C", bound=Cache)


class EtcdIsDurable:
    """The DurableLog a Mailbox waits on, for caches of etcd: nothing is pending, ever."""

    appended_lsn = 0
    durable_lsn = 0
    available = True
    failures = 0

    def is_lost(self, lsn: int) -> bool:
        return False

    def append(self, payload: bytes) -> int:
        raise RuntimeError("an etcd cache never appends to a local log")

    async def wait_durable(self, lsn: int) -> None:
        return None


@dataclass(frozen=True)
class CacheSettings:
    catch_up: float = 10.0  # longest wait for the cache to reach a revision before a request gets 503
    stall: float = 2.0  # requests waiting this long with no event: restart the watch on another member
    # Keys per range request of a (re)list. etcd 3.4 visits every key from a page's start to the range's
    # end whatever the limit (etcd-io/etcd#11057), so a list costs ~n²/page_size: at 10^6 locks 2,000-key
    # pages took 56 s, 10,000-key pages 19 s (bench/README.md). A page is then ~2.5-4.5 MB of JSON.
    page_size: int = 10_000
    mailbox_capacity: int = 1024


@dataclass(frozen=True)
class ReplicaStatus:
    """What /health and /metrics report about one cached table."""

    name: str
    loaded: bool  # the first list is in
    watching: bool  # a watch is confirmed and not stalled
    applied_revision: int
    known_revision: int  # the newest revision of this table seen in a txn reply or a quorum read
    lag: int  # known - applied
    lists: int
    relists: int
    watch_restarts: int
    watch_endpoint: str
    waiting_requests: int
    malformed_records: int
    last_error: str


class Replica(Generic[C]):
    def __init__(
        self,
        name: str,
        client: EtcdClient,
        prefix: bytes,
        marker: bytes,
        build: Callable[[list[wire.KeyValue]], C],
        settings: CacheSettings,
        *,
        after_change: Callable[[C], None] | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._marker = marker
        self._settings = settings
        self._after_change = after_change
        self.mailbox = Mailbox(EtcdIsDurable(), settings.mailbox_capacity)
        self.gate = RevisionGate()
        self.fetcher = RevisionFetcher(self._fetch_marker_revision)
        self.reflector: Reflector[C] = Reflector(
            name, client, prefix, build, self, self.gate, page_size=settings.page_size, stall=settings.stall
        )
        self._cache: C | None = None

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The actor, the revision fetcher and the reflector; started once the first list is in. Returns
        when the mailbox is closed (`close`) and drained, stopping the fetcher and the reflector."""
        async with trio.open_nursery() as nursery:
            drained = trio.Event()

            async def actor(*, task_status: trio.TaskStatus[None]) -> None:
                await serve_mailbox(self.mailbox, task_status=task_status)
                drained.set()

            await nursery.start(actor)
            await nursery.start(self.fetcher.run)
            await nursery.start(self.reflector.run)
            task_status.started()
            await drained.wait()
            nursery.cancel_scope.cancel()

    def close(self) -> None:
        """Take no more requests; queued ones are still answered, then `run` returns."""
        self.mailbox.close()

    # ------------------------------------------------------------------ requests

    async def fresh(self) -> None:
        """Wait until the cache reflects every change acknowledged anywhere before this call."""
        revision = await self.fetcher.current()
        await self.gate.wait(revision, self._settings.catch_up)

    async def caught_up(self, revision: int) -> None:
        await self.gate.wait(revision, self._settings.catch_up)

    async def ask(self, message: Callable[[C], T]) -> T:
        return await self.mailbox.ask(lambda: message(self._loaded()))

    def status(self) -> ReplicaStatus:
        reflector, gate = self.reflector, self.gate
        return ReplicaStatus(
            name=self.name,
            loaded=self._cache is not None,
            watching=reflector.watching,
            applied_revision=gate.applied,
            known_revision=gate.known,
            lag=gate.lag,
            lists=reflector.lists,
            relists=reflector.relists,
            watch_restarts=reflector.watch_restarts,
            watch_endpoint=reflector.endpoint,
            waiting_requests=gate.waiting,
            malformed_records=self._cache.malformed if self._cache is not None else 0,
            last_error=reflector.last_error,
        )

    # ------------------------------------------------------------------ the reflector's sink

    async def replace(self, cache: C, revision: int) -> None:
        await self.mailbox.ask(lambda: self._replace(cache, revision))

    async def apply(self, events: Sequence[wire.Event]) -> None:
        await self.mailbox.ask(lambda: self._apply(events))

    # ------------------------------------------------------------------ inside the actor

    def _loaded(self) -> C:
        if self._cache is None:
            raise RuntimeError(f"the {self.name} cache is not loaded yet")
        return self._cache

    def _replace(self, cache: C, revision: int) -> None:
        if cache.malformed:
            log.warning("etcd %s: %d records under the prefix could not be read", self.name, cache.malformed)
        self._cache = cache
        self.gate.advance(revision)
        if self._after_change is not None:
            self._after_change(cache)

    def _apply(self, events: Sequence[wire.Event]) -> None:
        cache = self._loaded()
        newest = cache.apply(events)
        self.gate.advance(newest)
        if self._after_change is not None:
            self._after_change(cache)

    # ------------------------------------------------------------------ the read barrier's fetch

    async def _fetch_marker_revision(self) -> int:
        """The revision of the table's last change, by a quorum read (0 while nothing was ever written)."""
        reply = await self._client.range(wire.RangeRequest(self._marker))
        revision = reply.kvs[0].mod_revision if reply.kvs else 0
        self.gate.learn(revision)
        return revision
