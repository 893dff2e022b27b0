"""A consistent read of a whole table in small pieces, while the table keeps changing in between.

A snapshot must hold the table exactly as of one log position, but copying 10^6 records inside the
actor holds it 10-35 ms, and every request waits meanwhile. `CaptureWalk` starts in O(1) (that
instant is the snapshot's state) and then gives the records out in id order, a few thousand per
actor message, so requests run between the pieces. Changes made in between are reconciled with a
journal of pre-images:

- the walk's `cursor` is the last id given out; ids above it are still to come;
- before the table changes an id above the cursor for the first time, it reports the id and its
  record at that moment (`touched`) - which is its record as of the start, or None if the id did
  not exist then. Ids at or below the cursor were already given out as of the start; later
  changes to them do not matter;
- a piece gives the current records of the next ids in the id index, skipping journaled ids;
- at the end the journaled pre-images of ids that existed at the start are given out.

So every record present at the start comes out exactly once, as it was then, and nothing created
later does. Pure: the table calls `touched`; the actor calls `next`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class CaptureWalk(Generic[K, V]):
    """One capture of `records` (id -> record), walked in the order of `ids` (a SortedList of its keys)."""

    def __init__(self, ids: Any, records: Mapping[K, V]) -> None:
        self._ids = ids
        self._records = records
        self.count = len(records)  # records in the captured state
        self._journal: dict[K, V | None] = {}
        self._cursor: K | None = None
        self._started = False
        self.finished = False

    def touched(self, key: K) -> None:
        """Call before the table changes (adds, replaces or removes) `key`."""
        if self._started and key <= self._cursor:  # type: ignore[operator]
            return
        if key not in self._journal:
            self._journal[key] = self._records.get(key)

    def next(self, limit: int) -> list[V] | None:
        """Up to `limit` records of the captured state (possibly none); None once all were given."""
        if self.finished:
            return None
        start = self._ids.bisect_right(self._cursor) if self._started else 0
        keys: list[K] = list(self._ids.islice(start, start + limit))
        if not keys:
            self.finished = True
            return [record for record in self._journal.values() if record is not None]
        self._started = True
        self._cursor = keys[-1]
        journal = self._journal
        records = self._records
        return [records[key] for key in keys if key not in journal]
