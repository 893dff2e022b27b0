"""Waiting until a cache has applied a revision.

The cache's owner calls `advance(revision)` after applying what etcd had at `revision`; requests
`await wait(revision)` (a write: its own txn's revision; a read: the revision a quorum read reported).
A wait that outlasts its timeout raises `CacheBehind` (a 503 for the client): a cache that cannot catch
up must not answer as if it had. `stalled_for()` tells the reflector how long requests have been
waiting while nothing arrived, which is how a watch stuck on a frozen member is noticed.

May import: trio; actors.errors. Never transports or bench.
"""

from __future__ import annotations

import heapq
import itertools

import trio

from actors.errors import Unavailable


class CacheBehind(Unavailable):
    """The local cache did not reach the revision a request needs in time."""


class RevisionGate:
    def __init__(self) -> None:
        self.applied = 0  # every change up to this revision is in the cache
        self.known = 0  # the newest revision of this table anybody told us about (lag = known - applied)
        self._waiters: list[tuple[int, int, trio.Event]] = []
        self._order = itertools.count()
        self._waiting_since: dict[int, float] = {}  # waiter order -> when it began (trio time)
        self._advanced_at: float | None = None

    @property
    def lag(self) -> int:
        return max(0, self.known - self.applied)

    def learn(self, revision: int) -> None:
        """A revision of this table exists (a txn reply, a quorum read): the lag counts from it."""
        self.known = max(self.known, revision)

    def advance(self, revision: int) -> None:
        """Everything up to `revision` is applied; release the waiters it satisfies."""
        if revision <= self.applied:
            return
        self.applied = revision
        self.learn(revision)
        self._advanced_at = trio.current_time()
        waiters = self._waiters
        while waiters and waiters[0][0] <= revision:
            _, order, event = heapq.heappop(waiters)
            self._waiting_since.pop(order, None)
            event.set()

    async def wait(self, revision: int, timeout: float) -> None:
        self.learn(revision)
        if revision <= self.applied:
            return
        order = next(self._order)
        event = trio.Event()
        heapq.heappush(self._waiters, (revision, order, event))
        self._waiting_since[order] = trio.current_time()
        try:
            with trio.move_on_after(timeout):
                await event.wait()
                return
            raise CacheBehind(
                f"the etcd cache is at revision {self.applied}, behind revision {revision}, for {timeout:g} s"
            )
        finally:
            if not event.is_set():
                self._waiting_since.pop(order, None)
                self._waiters = [entry for entry in self._waiters if entry[1] != order]
                heapq.heapify(self._waiters)

    def stalled_for(self) -> float:
        """How long the oldest waiter has waited with no revision applied since it began (0: none)."""
        if not self._waiting_since:
            return 0.0
        now = trio.current_time()
        since = min(self._waiting_since.values())
        if self._advanced_at is not None:
            since = max(since, self._advanced_at)
        return max(0.0, now - since)

    @property
    def waiting(self) -> int:
        return len(self._waiting_since)
