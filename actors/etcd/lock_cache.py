"""The lock table as a cache of etcd: built from a list, then changed by watch events. Pure.

The table is the local mode's LockTable, with the same indexes and the same query code. A lock
record's key names its service instance; its id comes from the key's mod_revision (values.py), so the
cache needs nothing beside the table to write compares. Events of one revision (one txn) are applied
together: first what it deleted, then what it put (a takeover replaces the instance's expired lock).

A value that does not decode is counted in `malformed` (with the last key in `last_malformed`) and
treated as no lock, never as a crash: the prefix is shared with whatever else can write to etcd.

May import: actors.etcd.wire, .keys, .values; actors.locks, actors.records. Never transports or bench.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import attrgetter

from actors.etcd import wire
from actors.etcd.keys import KeyLayout
from actors.etcd.values import MalformedRecord, decode_lock
from actors.locks import LockLoader, LockTable
from actors.records import Lock, LocksCreated, LocksRemoved

_mod_revision = attrgetter("kv.mod_revision")


class LockCache:
    def __init__(self, layout: KeyLayout, table: LockTable | None = None) -> None:
        self.layout = layout
        self.table = table if table is not None else LockTable()
        self.malformed = 0
        self.last_malformed = ""

    @classmethod
    def build(cls, layout: KeyLayout, kvs: Iterable[wire.KeyValue]) -> LockCache:
        """The cache of a list's key-values, indexed in one go (LockLoader: as at start-up from a snapshot)."""
        cache = cls(layout)
        locks: dict[int, Lock] = {}
        for kv in kvs:
            lock = cache._decode(kv)
            if lock is None:
                continue
            if lock.id in locks:  # two records claim one id: only a foreign writer can do that
                cache._count(kv.key, "duplicate lock id")
                continue
            locks[lock.id] = lock
        cache.table = LockLoader(list(locks.values())).table()
        return cache

    def apply(self, events: Sequence[wire.Event]) -> int:
        """Apply a watch response's events; the newest revision among them (0 if none)."""
        newest = 0
        for revision, group in groupby(events, key=_mod_revision):
            removed: list[int] = []
            created: list[Lock] = []
            for event in group:
                instance = self.layout.instance_of(event.kv.key)
                if instance is None:
                    continue  # the revision marker
                held = self.table.get_by_instance(instance)
                if event.type == wire.DELETE_EVENT:
                    if held is not None:
                        removed.append(held.id)
                    continue
                lock = self._decode(event.kv)
                if lock is not None:
                    created.append(lock)
                elif held is not None:
                    removed.append(held.id)
            if removed:
                self.table.apply(LocksRemoved(tuple(removed)))
            if created:
                self.table.apply(LocksCreated(tuple(created)))
            newest = max(newest, revision)
        return newest

    def _decode(self, kv: wire.KeyValue) -> Lock | None:
        instance = self.layout.instance_of(kv.key)
        if instance is None:
            return None
        try:
            return decode_lock(instance, kv.value, kv.mod_revision)
        except MalformedRecord as error:
            self._count(kv.key, str(error))
            return None

    def _count(self, key: bytes, why: str) -> None:
        self.malformed += 1
        self.last_malformed = f"{key.decode('utf-8', 'replace')}: {why}"
