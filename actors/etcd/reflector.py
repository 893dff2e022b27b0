"""List at a revision, then watch from the next one: how a cache follows one key prefix in etcd.

This is Kubernetes' reflector, with the pitfalls its and etcd's issue trackers document handled:

- **Compaction.** A watch started from a compacted revision is cancelled with `compact_revision`
  (Kubernetes: "410 Gone" / "too old resource version", kubernetes#72187): relist, at the current
  revision, with a quorum read (never from a lagging member's serializable view: kubernetes#59848),
  and watch from there. A paginated list is pinned to its first page's revision; if that is compacted
  under it, the list starts over.
- **Partitioned or frozen members.** A watch on a member cut off from the leader can hang silently
  (etcd#8980, kubernetes#89488). Every watch carries `hasleader` metadata (client.py), so a member that
  loses its leader cancels it; a member that is frozen (SIGSTOP) or unreachable cannot even do that, so
  the reflector also restarts the watch on the next endpoint when requests have waited `stall` seconds
  for a revision and no event arrived meanwhile, or when the watch is not confirmed in time.
- **Progress.** etcd 3.4.23's progress notifications can run ahead of the events still to be sent
  (etcd#15220, fixed in 3.4.24), so they are not requested; the cache's revision is the mod_revision of
  the last event applied, and every lockstore txn writes its table's marker key, so each of our
  writes is an event for the watch and a reader always has a revision to wait for (fresh_revision.py).
- **Slow consumers.** Events are handed to the owning actor as they come; a relist's decoding and
  index building (seconds at 10^6 records) runs in a worker thread, off the event loop.

The sink (replica.py) applies what the reflector hands it, inside the actor, and advances the
revision gate.

May import: trio; actors.etcd.wire, .client, .errors, .failover, .revision_gate; actors.runtime. Never
transports or bench.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import trio

from actors.etcd import wire
from actors.etcd.client import EtcdClient
from actors.etcd.errors import OUT_OF_RANGE, Compacted, EtcdError, EtcdRequestError, lone_errors
from actors.etcd.failover import Backoff
from actors.etcd.revision_gate import RevisionGate
from actors.runtime import ActorStopped

log = logging.getLogger("lockstore.etcd")

C = TypeVar("C")
C_contra = TypeVar("C_contra", contravariant=True)
WATCHDOG_TICK = 0.1


class Sink(Protocol[C_contra]):
    async def replace(self, cache: C_contra, revision: int) -> None: ...

    async def apply(self, events: Sequence[wire.Event]) -> None: ...


async def list_prefix(client: EtcdClient, prefix: bytes, page_size: int) -> tuple[list[wire.KeyValue], int]:
    """Every key-value under `prefix` at one revision (a quorum read, then pages pinned to its revision)."""
    end = wire.prefix_end(prefix)
    first = await client.range(wire.RangeRequest(prefix, end, limit=page_size))
    revision = first.header.revision
    kvs = list(first.kvs)
    more = first.more
    while more and kvs:
        page = await client.range(wire.RangeRequest(kvs[-1].key + b"\0", end, limit=page_size, revision=revision))
        kvs.extend(page.kvs)
        more = page.more
    return kvs, revision


class Reflector(Generic[C]):
    def __init__(
        self,
        name: str,
        client: EtcdClient,
        prefix: bytes,
        build: Callable[[list[wire.KeyValue]], C],
        sink: Sink[C],
        gate: RevisionGate,
        *,
        page_size: int = 10_000,
        stall: float = 2.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._prefix = prefix
        self._build = build
        self._sink = sink
        self._gate = gate
        self._page_size = page_size
        self._stall = stall
        self._backoff = backoff if backoff is not None else Backoff(base=0.05, cap=1.0)
        self.lists = 0  # the first list and every relist
        self.relists = 0  # lists after the first (compaction)
        self.watch_restarts = 0
        self.watching = False  # a watch is confirmed (created) and not known to be stalled
        self.endpoint = ""
        self.last_error = ""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """List, report started, then watch for ever (restarting and relisting as needed).

        The first list retries only what may pass (etcd unreachable, no leader); a refusal (wrong
        password, no permission on the prefix) is raised, so start-up stops with etcd's reason instead of
        waiting for ever. Later the same refusal is retried with backoff (and shows in `last_error`)."""
        revision = await self._list(first=True)
        task_status.started()
        try:
            await self._follow(revision)
        except ActorStopped:  # the owner stopped between two of our messages: shutting down
            return

    async def _follow(self, revision: int) -> None:
        failures = 0
        while True:
            try:
                delivered = await self._watch(revision + 1)
            except Compacted:
                log.warning("etcd %s watch: revision %d compacted; relisting", self.name, revision + 1)
                revision = await self._list()
                self.relists += 1
                continue
            except EtcdError as error:
                delivered = False
                self._client.endpoint_failed(self.endpoint)
                self._note(f"watch: {error}")
            self.watching = False
            self.watch_restarts += 1
            failures = 0 if delivered else failures + 1
            if failures:
                await trio.sleep(self._backoff.delay(failures))
            revision = self._gate.applied

    async def _list(self, *, first: bool = False) -> int:
        failures = 0
        while True:
            try:
                kvs, revision = await list_prefix(self._client, self._prefix, self._page_size)
                cache = await trio.to_thread.run_sync(self._build, kvs)
            except EtcdError as error:  # Compacted included: a pinned page lost its revision; start over
                if first and isinstance(error, EtcdRequestError) and not isinstance(error, Compacted):
                    raise
                failures += 1
                self._note(f"list: {error}")
                await trio.sleep(self._backoff.delay(failures))
                continue
            await self._sink.replace(cache, revision)
            self.lists += 1
            return revision

    async def _watch(self, start: int) -> bool:
        """One watch stream from `start` until it ends, fails or stalls; True if it delivered events."""
        delivered = False
        request = wire.WatchCreateRequest(self._prefix, wire.prefix_end(self._prefix), start_revision=start)
        self.watching = False
        self.endpoint = self._client.current_endpoint  # where client.watch connects
        with trio.CancelScope() as scope, lone_errors():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watchdog, scope, trio.current_time())
                async with self._client.watch(request) as stream:
                    async for response in stream:
                        if response.compact_revision:
                            compacted = response.compact_revision
                            raise Compacted(OUT_OF_RANGE, f"watch from {start}: compacted at {compacted}")
                        if response.canceled:
                            self._note(f"watch on {stream.endpoint} cancelled: {response.cancel_reason or 'no reason'}")
                            break
                        if response.created:
                            self.watching = True
                        if response.events:
                            await self._sink.apply(response.events)
                            delivered = True
                nursery.cancel_scope.cancel()
        # A watch never ends by itself: whatever ended it (stall, cancel, the member closing the stream,
        # a transport error), the next one goes to the next endpoint.
        self._client.endpoint_failed(self.endpoint)
        return delivered

    async def _watchdog(self, scope: trio.CancelScope, opened: float) -> None:
        """Cancel the watch if it is not confirmed in time, or if requests wait while nothing arrives."""
        timeout = self._client.config.request_timeout
        while True:
            await trio.sleep(WATCHDOG_TICK)
            if not self.watching and trio.current_time() - opened > timeout:
                self._note(f"watch on {self.endpoint} not confirmed in {timeout:g} s")
                scope.cancel()
                return
            stalled = self._gate.stalled_for()
            if stalled > self._stall:
                self._note(f"watch on {self.endpoint} delivered nothing for {stalled:.1f} s while requests waited")
                self.watching = False
                scope.cancel()
                return

    def _note(self, error: str) -> None:
        if error != self.last_error:
            log.warning("etcd %s: %s", self.name, error)
        self.last_error = error
