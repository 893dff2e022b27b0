"""The revision a linearizable read must wait for, fetched once for many concurrent reads.

A read must reflect every write acknowledged (by any instance) before it began. A quorum read of the
table's revision marker *that starts after the read began* returns a revision at least as new as any
such write; once the cache has applied it, the cache answers for a moment inside the read's lifetime.
Reads that arrive while a fetch is in flight cannot use it (it may have started before them): they
share the next one. So at most one fetch is in flight and one queued, however many reads arrive —
group commit for reads (Kubernetes' "consistent reads from cache", KEP 2340, does the same with etcd's
current revision; we use the marker's mod_revision, which etcd 3.4 delivers through the watch, instead
of progress notifications, which 3.4.23 can send ahead of events: etcd-io/etcd#15220).

`run()` is the fetching task; `current()` is called by reads.

May import: trio. Never transports or bench.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio


class _Round:
    __slots__ = ("done", "error", "revision")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.revision = 0
        self.error: BaseException | None = None


class RevisionFetcher:
    def __init__(self, fetch: Callable[[], Awaitable[int]]) -> None:
        self._fetch = fetch
        self._queued: _Round | None = None
        self._wanted = trio.Event()
        self._in_flight: _Round | None = None
        self.fetches = 0  # for tests and metrics: how many quorum reads were made
        self.stopped = False

    async def current(self) -> int:
        """A revision fetched by a quorum read that began after this call."""
        if self.stopped:
            raise trio.ClosedResourceError("the revision fetcher has stopped")
        round_ = self._queued
        if round_ is None:
            round_ = self._queued = _Round()
            self._wanted.set()
        await round_.done.wait()
        if round_.error is not None:
            raise round_.error
        return round_.revision

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self._wanted.wait()
                self._wanted = trio.Event()
                round_, self._queued = self._queued, None  # later callers queue the next round
                assert round_ is not None
                self._in_flight = round_
                try:
                    round_.revision = await self._fetch()
                    self.fetches += 1
                except Exception as error:  # the waiting reads get it; the task goes on
                    round_.error = error
                self._in_flight = None
                round_.done.set()
        finally:
            self.stopped = True
            for left in (self._in_flight, self._queued):
                if left is not None and not left.done.is_set():
                    left.error = trio.ClosedResourceError("the revision fetcher has stopped")
                    left.done.set()
