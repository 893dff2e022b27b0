"""The orchestration-lock table: pure state plus the rules that change it.

The lock actor owns one `LockTable` and is the only caller. Commands are *planned* against the
current state (`plan_*` returns the event describing the change, or raises `Rejected`) and then
*applied* (`apply`), so the same code path rebuilds the table from the write-ahead log at start-up.
Nothing here does I/O or reads a clock: `now` is always passed in, which keeps every answer
reproducible in tests and on replay.

A lock is active while `now < expires_at` (DECISIONS.md 3); an expired lock never blocks, is never
removed by request and never matches a query, even before the expiry purge has dropped it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from operator import attrgetter, itemgetter
from typing import Any

from sortedcontainers import SortedList

from actors.bulk_index import grouped_unsorted, keyed_entries, presorted
from actors.capture_walk import CaptureWalk
from actors.errors import Rejected
from actors.records import (
    LOCK_SORT_FIELDS,
    Lock,
    LockFilter,
    LocksCreated,
    LocksRemoved,
    NewLock,
    PageRequest,
)

_second = itemgetter(1)
_lock_id = attrgetter("id")
_job_id = attrgetter("orchestration_job_id")
_owner_entry = attrgetter("owner", "id")
_instance = attrgetter("service_instance_id")
_instance_entry = attrgetter("service_instance_id", "id")
_expiry_entry = attrgetter("expires_at", "id")

_SORT_KEYS: dict[str, Callable[[Lock], Any]] = {
    "id": _lock_id,
    "owner": _owner_entry,
    "serviceInstanceId": _instance_entry,
    "expiresAt": _expiry_entry,
}
assert tuple(_SORT_KEYS) == LOCK_SORT_FIELDS


class LockTable:
    """Locks by id with the indexes every query needs; see ARCHITECTURE.md "Indexes fit the queries".

    Indexes: `_by_id` (id -> Lock), `_id_by_instance` (at most one lock per service instance),
    `_ids_by_job` (orchestration job id -> ids), and four sorted indexes, one per sort field:
    `_ids`, `_by_owner` (owner, id), `_by_instance` (service_instance_id alone: it is unique) and
    `_by_expiry` (expires_at, id). `_by_owner` doubles as the owner filter index (an owner's ids are one
    contiguous, id-ordered run), and `_by_expiry` drives the purge and the expiry-window counts.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, Lock] = {}
        self._id_by_instance: dict[str, int] = {}
        self._ids_by_job: dict[str, set[int]] = {}
        self._ids = SortedList()
        self._by_owner = SortedList()
        self._by_instance = SortedList()
        self._by_expiry = SortedList()
        self._next_id = 1
        self._capture: CaptureWalk[int, Lock] | None = None  # a snapshot being read out (see begin_capture)

    @classmethod
    def restore(cls, locks: Iterable[Lock], next_id: int) -> LockTable:
        """Rebuild a table from a snapshot in one go (see `LockLoader`): much faster than `apply`.

        The snapshot must come from `locks()` / `next_id` of a table: unique ids and instances.
        """
        return LockLoader(locks, next_id).table()

    def same_state(self, other: LockTable) -> bool:
        """Locks, next id and every index equal (O(n); for tests and replay checks)."""
        return (
            self._by_id == other._by_id
            and self._id_by_instance == other._id_by_instance
            and self._ids_by_job == other._ids_by_job
            and self._next_id == other._next_id
            and all(
                list(mine) == list(theirs)
                for mine, theirs in (
                    (self._ids, other._ids),
                    (self._by_owner, other._by_owner),
                    (self._by_instance, other._by_instance),
                    (self._by_expiry, other._by_expiry),
                )
            )
        )

    # ----------------------------------------------------------------------------- snapshot capture

    def begin_capture(self) -> CaptureWalk[int, Lock]:
        """Start reading every held lock as of now, in pieces between other messages (O(1) now)."""
        self._capture = CaptureWalk(self._ids, self._by_id)
        return self._capture

    def end_capture(self, walk: CaptureWalk[int, Lock]) -> None:
        """Stop journaling changes for `walk` (finished or abandoned)."""
        if self._capture is walk:
            self._capture = None

    # ----------------------------------------------------------------------------- reading

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def next_id(self) -> int:
        """The id the next created lock gets: 1 + the highest id ever applied (ids are never reused)."""
        return self._next_id

    def locks(self) -> Iterator[Lock]:
        """Every held lock (expired-but-unpurged included), in id order: what a snapshot stores."""
        by_id = self._by_id
        return (by_id[lock_id] for lock_id in self._ids)

    def get(self, lock_id: int) -> Lock | None:
        return self._by_id.get(lock_id)

    def records(self) -> list[Lock]:
        """Every held lock in no particular order (a shallow copy: O(n), 10-35 ms at 10^6, so the actor's
        snapshots use `begin_capture` instead)."""
        return list(self._by_id.values())

    def get_by_instance(self, service_instance_id: str) -> Lock | None:
        lock_id = self._id_by_instance.get(service_instance_id)
        return None if lock_id is None else self._by_id[lock_id]

    def next_expiry(self) -> int | None:
        """The earliest `expires_at` held: when the actor must wake up to purge."""
        return self._by_expiry[0][0] if self._by_expiry else None

    # ----------------------------------------------------------------------------- planning

    def plan_create(self, new: Sequence[NewLock], now: float) -> LocksCreated:
        """All-or-nothing create (DECISIONS.md 4); expired locks in the way get replaced on apply."""
        if not new:
            raise Rejected("Lock list is missing or empty")
        seen: set[str] = set()
        for entry in new:
            if entry.service_instance_id in seen:
                raise Rejected(f"Duplicate service instance id: {entry.service_instance_id}")
            seen.add(entry.service_instance_id)
        locked = [entry.service_instance_id for entry in new if self._active_on(entry.service_instance_id, now)]
        if locked:
            raise Rejected(f"Already locked: {', '.join(locked)}")
        first = self._next_id
        return LocksCreated(
            tuple(
                Lock(
                    id=first + i,
                    service_instance_id=e.service_instance_id,
                    owner=e.owner,
                    expires_at=e.expires_at,
                )
                for i, e in enumerate(new)
            )
        )

    def plan_remove(self, owner: str, service_instance_ids: Sequence[str], now: float) -> LocksRemoved | None:
        """The owner's active, non-temporary locks on those instances; others are ignored (DECISIONS 5)."""
        ids: list[int] = []
        for instance in dict.fromkeys(service_instance_ids):
            lock = self.get_by_instance(instance)
            if lock is not None and now < lock.expires_at and not lock.temporary and lock.owner == owner:
                ids.append(lock.id)
        return LocksRemoved(tuple(ids)) if ids else None

    def plan_expire(self, now: float) -> LocksRemoved | None:
        """Every lock with `expires_at <= now`, earliest first."""
        stop = self._by_expiry.bisect_right((now, math.inf))
        if not stop:
            return None
        return LocksRemoved(tuple(map(_second, self._by_expiry.islice(0, stop))), expired=True)

    def _active_on(self, service_instance_id: str, now: float) -> bool:
        lock = self.get_by_instance(service_instance_id)
        return lock is not None and now < lock.expires_at

    # ----------------------------------------------------------------------------- applying

    def apply(self, event: LocksCreated | LocksRemoved) -> None:
        """Mutate the state; used live and on replay, so it never consults the clock."""
        if isinstance(event, LocksCreated):
            for lock in event.locks:
                self._insert(lock)
        else:
            for lock_id in event.ids:
                self._discard(lock_id)

    def _insert(self, lock: Lock) -> None:
        # The instance's previous lock (necessarily expired, not yet purged) is replaced, as is a
        # lock with the same id: the table never holds two locks for one instance or one id.
        old_id = self._id_by_instance.get(lock.service_instance_id)
        if old_id is not None:
            self._discard(old_id)
        self._discard(lock.id)
        if self._capture is not None:
            self._capture.touched(lock.id)
        self._by_id[lock.id] = lock
        self._id_by_instance[lock.service_instance_id] = lock.id
        if lock.orchestration_job_id is not None:
            self._ids_by_job.setdefault(lock.orchestration_job_id, set()).add(lock.id)
        self._ids.add(lock.id)
        self._by_owner.add((lock.owner, lock.id))
        self._by_instance.add(lock.service_instance_id)
        self._by_expiry.add((lock.expires_at, lock.id))
        self._next_id = max(self._next_id, lock.id + 1)

    def _discard(self, lock_id: int) -> None:
        if self._capture is not None:
            self._capture.touched(lock_id)
        lock = self._by_id.pop(lock_id, None)
        if lock is None:
            return
        del self._id_by_instance[lock.service_instance_id]
        job = lock.orchestration_job_id
        if job is not None:
            job_ids = self._ids_by_job[job]
            job_ids.discard(lock_id)
            if not job_ids:
                del self._ids_by_job[job]
        self._ids.remove(lock_id)
        self._by_owner.remove((lock.owner, lock_id))
        self._by_instance.remove(lock.service_instance_id)
        self._by_expiry.remove((lock.expires_at, lock_id))

    # ----------------------------------------------------------------------------- querying

    def query(self, f: LockFilter, page: PageRequest, now: float) -> tuple[list[Lock], int]:
        """One page of the active locks matching `f`, sorted as asked (ties by id, same direction),
        and the total number of matches. A page past the end is empty but still carries the count.

        Plan: the expiry window (active and inside expiresAfter/expiresBefore) is an index range
        found by bisection. With list filters we start from the smallest candidate set (a list's
        dict/index lookups or that window), filter and sort only the survivors. Without them the
        count is the window's length and the page is read off the sort index, so a page costs
        the same whatever the table size.
        """
        sort_key = _SORT_KEYS.get(page.sort_field)
        if sort_key is None:
            raise ValueError(f"unknown lock sort field: {page.sort_field!r}")
        if page.number < 0 or page.size < 1:
            raise ValueError(f"invalid page: {page!r}")
        low = now if f.expires_after is None else max(now, f.expires_after)
        high = math.inf if f.expires_before is None else f.expires_before
        start = self._by_expiry.bisect_right((low, math.inf))
        stop = max(start, self._by_expiry.bisect_left((high, -math.inf)))
        if self._is_owner_page(f, page, now):
            return self._owner_page(f.owners[0], page)
        if f.ids or f.orchestration_job_ids or f.service_instance_ids or f.owners:
            matches = self._filtered(f, low, high, start, stop)
            matches.sort(key=sort_key, reverse=page.descending)
            offset = page.number * page.size
            return matches[offset : offset + page.size], len(matches)
        return self._broad_page(page, low, high, start, stop), stop - start

    def _is_owner_page(self, f: LockFilter, page: PageRequest, now: float) -> bool:
        """One owner, nothing else, in id order (an owner sort ties by id), and nothing expired still
        held: then the page is a slice of that owner's run in the (owner, id) index — the query
        orchestrators make most — instead of a sort of all the owner's locks per request."""
        return (
            len(f.owners) == 1
            and not (f.ids or f.orchestration_job_ids or f.service_instance_ids)
            and f.expires_before is None
            and f.expires_after is None
            and page.sort_field in ("id", "owner")
            and (not self._by_expiry or self._by_expiry[0][0] > now)
        )

    def _owner_page(self, owner: str, page: PageRequest) -> tuple[list[Lock], int]:
        first, end = self._owner_run(owner)
        count = end - first
        offset = page.number * page.size
        if offset >= count:
            return [], count
        if page.descending:
            entries = self._by_owner.islice(max(first, end - offset - page.size), end - offset, reverse=True)
        else:
            entries = self._by_owner.islice(first + offset, min(end, first + offset + page.size))
        by_id = self._by_id
        return [by_id[lock_id] for _, lock_id in entries], count

    def _window_ids(self, start: int, stop: int) -> Iterator[int]:
        return map(_second, self._by_expiry.islice(start, stop))

    def _filtered(self, f: LockFilter, low: float, high: float, start: int, stop: int) -> list[Lock]:
        """Every lock matching `f`, gathered from the smallest candidate source."""
        ids = frozenset(f.ids)
        jobs = frozenset(f.orchestration_job_ids)
        instances = frozenset(f.service_instance_ids)
        owners = frozenset(f.owners)
        sources: list[tuple[int, Callable[[], Iterable[int]]]] = [(stop - start, lambda: self._window_ids(start, stop))]
        if ids:
            sources.append((len(ids), lambda: ids))
        if instances:
            found = [self._id_by_instance[i] for i in instances if i in self._id_by_instance]
            sources.append((len(found), lambda: found))
        if jobs:
            job_sets = [self._ids_by_job[j] for j in jobs if j in self._ids_by_job]
            sources.append((sum(map(len, job_sets)), lambda: (i for ids in job_sets for i in ids)))
        if owners:
            runs = [self._owner_run(o) for o in owners]
            sources.append((sum(b - a for a, b in runs), lambda: (i for a, b in runs for i in self._owner_ids(a, b))))
        candidates = min(sources, key=itemgetter(0))[1]()
        by_id = self._by_id
        out: list[Lock] = []
        for lock_id in candidates:
            lock = by_id.get(lock_id)
            if (
                lock is not None
                and low < lock.expires_at < high
                and (not ids or lock.id in ids)
                and (not jobs or lock.orchestration_job_id in jobs)
                and (not instances or lock.service_instance_id in instances)
                and (not owners or lock.owner in owners)
            ):
                out.append(lock)
        return out

    def _owner_run(self, owner: str) -> tuple[int, int]:
        return self._by_owner.bisect_left((owner, -math.inf)), self._by_owner.bisect_right((owner, math.inf))

    def _owner_ids(self, start: int, stop: int) -> Iterator[int]:
        return map(_second, self._by_owner.islice(start, stop))

    def _broad_page(self, page: PageRequest, low: float, high: float, start: int, stop: int) -> list[Lock]:
        """A page when only the expiry window constrains the match (whose index range is [start, stop))."""
        count = stop - start
        offset = page.number * page.size
        if offset >= count:
            return []
        by_id = self._by_id
        size, desc = page.size, page.descending
        if page.sort_field == "expiresAt":  # the window is a contiguous run of the sort index itself
            if desc:
                entries = self._by_expiry.islice(max(start, stop - offset - size), stop - offset, reverse=True)
            else:
                entries = self._by_expiry.islice(start + offset, min(stop, start + offset + size))
            return [by_id[lock_id] for _, lock_id in entries]
        index, key_ids = self._sort_index(page.sort_field)
        total = len(by_id)
        if count == total:  # every lock matches: index straight into the sort index
            if desc:
                entries = index.islice(max(0, total - offset - size), total - offset, reverse=True)
            else:
                entries = index.islice(offset, offset + size)
            return [by_id[lock_id] for lock_id in key_ids(entries)]
        # Walking the sort index visits at most offset + size matches plus every non-match; sorting
        # the window costs about count * log(count). Take whichever bound is smaller.
        if offset + size + (total - count) > count * count.bit_length():
            window = [by_id[lock_id] for lock_id in self._window_ids(start, stop)]
            window.sort(key=_SORT_KEYS[page.sort_field], reverse=desc)
            return window[offset : offset + size]
        walk = (by_id[lock_id] for lock_id in key_ids(reversed(index) if desc else iter(index)))
        matching = (lock for lock in walk if low < lock.expires_at < high)
        return list(islice(matching, offset, offset + size))

    def _sort_index(self, sort_field: str) -> tuple[Any, Callable[[Iterable[Any]], Iterator[int]]]:
        """The sorted index for a field, and how to read lock ids off its entries."""
        if sort_field == "id":
            return self._ids, iter
        if sort_field == "owner":
            return self._by_owner, lambda entries: map(_second, entries)
        return self._by_instance, lambda entries: map(self._id_by_instance.__getitem__, entries)


class LockLoader:
    """The lock table at start-up, before its sorted indexes exist: a snapshot's locks, then the log's
    events after it applied to the id and instance maps only. `table()` then builds every index once
    (actors/bulk_index.py) - at 10^6 locks far cheaper than keeping four sorted indexes up to date
    through a day of churn that mostly cancels out (locks created, then expired).
    """

    def __init__(self, locks: Iterable[Lock] = (), next_id: int = 1) -> None:
        given = locks if isinstance(locks, list) else list(locks)
        self._by_id = {lock.id: lock for lock in given}
        self._id_by_instance = {lock.service_instance_id: lock.id for lock in given}
        if len(self._by_id) != len(given) or len(self._id_by_instance) != len(given):
            _refuse_duplicates(given)
        self._next_id = max(next_id, max(self._by_id) + 1) if given else next_id

    def __len__(self) -> int:
        return len(self._by_id)

    def apply(self, event: LocksCreated | LocksRemoved) -> None:
        """What `LockTable.apply` does to the locks and the next id (the property tests compare them)."""
        by_id, id_by_instance = self._by_id, self._id_by_instance
        if type(event) is LocksCreated:
            for lock in event.locks:
                old_id = id_by_instance.get(lock.service_instance_id)
                if old_id is not None:
                    del id_by_instance[by_id.pop(old_id).service_instance_id]
                old = by_id.pop(lock.id, None)
                if old is not None:
                    del id_by_instance[old.service_instance_id]
                by_id[lock.id] = lock
                id_by_instance[lock.service_instance_id] = lock.id
                if lock.id >= self._next_id:
                    self._next_id = lock.id + 1
        else:
            for lock_id in event.ids:  # type: ignore[union-attr]
                old = by_id.pop(lock_id, None)
                if old is not None:
                    del id_by_instance[old.service_instance_id]

    def table(self) -> LockTable:
        """The table with every index; the loader hands its maps over and must not be used again."""
        held = sorted(self._by_id.values(), key=_lock_id)  # nearly in id order already: about one pass
        table = LockTable()
        table._by_id = self._by_id
        table._id_by_instance = self._id_by_instance
        with_job = [lock for lock in held if lock.orchestration_job_id is not None]
        table._ids_by_job = grouped_unsorted(map(_job_id, with_job), map(_lock_id, with_job))
        table._ids = presorted(list(map(_lock_id, held)))
        table._by_owner = presorted(keyed_entries(held, _owner_entry))
        table._by_instance = presorted(sorted(map(_instance, held)))
        table._by_expiry = presorted(keyed_entries(held, _expiry_entry))
        table._next_id = self._next_id
        self._by_id, self._id_by_instance = {}, {}
        return table


def _refuse_duplicates(locks: Iterable[Lock]) -> None:
    """Name the first lock (in snapshot order) whose id or instance an earlier one already holds."""
    ids: set[int] = set()
    instances: set[str] = set()
    for lock in locks:
        if lock.id in ids or lock.service_instance_id in instances:
            raise ValueError(f"snapshot holds lock {lock.id} / {lock.service_instance_id!r} twice")
        ids.add(lock.id)
        instances.add(lock.service_instance_id)
