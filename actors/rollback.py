"""Undo for changes the log lost: memory must never hold what the disk does not.

An actor applies a change to its table as soon as the event is appended, before the fsync (that is
what lets group commit work). If the write or fsync of that batch then fails, the log marks the
LSNs lost (wal/log.py) and the table holds changes that are not on disk. Rebuilding the table from
snapshot + log would take seconds at 10^6 records and needs the failing disk; instead each actor
keeps, for every change not yet durable, the events that reverse it (computed from the table just
before applying), and replays them newest first once the log reports a failure. The cost in normal
operation is a few dict lookups per change and a deque entry until the change is durable.

`settle` runs before every message the actor handles, so no message ever sees an undone change,
and no new change is planned against state that is about to be rolled back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from actors.locks import LockTable
from actors.records import Event, Lock, LocksCreated, LocksRemoved, Rule, RulesCreated, RulesRemoved, RulesUpdated
from actors.store import RuleTable


class FallibleLog(Protocol):
    @property
    def durable_lsn(self) -> int: ...

    @property
    def failures(self) -> int: ...

    def is_lost(self, lsn: int) -> bool: ...


class UndoLog:
    """Reversing events of the changes that are not durable yet, in LSN order."""

    def __init__(self, log: FallibleLog) -> None:
        self._log = log
        self._entries: deque[tuple[int, list[Event]]] = deque()
        self._failures = log.failures
        self.undone = 0  # changes rolled back so far

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, lsn: int, undo: list[Event]) -> None:
        self._entries.append((lsn, undo))

    def settle(self, apply: Callable[[Event], None]) -> int:
        """Drop entries that became durable; after a log failure, undo the lost ones (newest first)."""
        log, entries = self._log, self._entries
        if log.failures == self._failures:
            durable = log.durable_lsn
            while entries and entries[0][0] <= durable:
                entries.popleft()
            return 0
        self._failures = log.failures
        undone = 0
        # Every entry is now either durable or lost: the failure lost everything not yet durable,
        # and this actor appended nothing since (settle runs before each of its messages).
        while entries:
            lsn, undo = entries.pop()
            if log.is_lost(lsn):
                for event in undo:
                    apply(event)
                undone += 1
        self.undone += undone
        return undone


def undo_lock_event(table: LockTable, event: LocksCreated | LocksRemoved) -> list[Event]:
    """Events that take `table` back to its current state after `event` is applied to it."""
    if isinstance(event, LocksCreated):
        replaced: list[Lock] = []
        for lock in event.locks:
            old = table.get_by_instance(lock.service_instance_id)
            if old is not None:
                replaced.append(old)
            same_id = table.get(lock.id)
            if same_id is not None and same_id is not old:
                replaced.append(same_id)
        undo: list[Event] = [LocksRemoved(tuple(lock.id for lock in event.locks))]
        if replaced:
            undo.append(LocksCreated(tuple(replaced)))
        return undo
    removed = tuple(lock for lock in map(table.get, event.ids) if lock is not None)
    return [LocksCreated(removed)] if removed else []


def undo_rule_event(table: RuleTable, event: RulesCreated | RulesUpdated | RulesRemoved) -> list[Event]:
    """Events that take `table` back to its current state after `event` is applied to it."""
    if isinstance(event, RulesCreated):
        undo: list[Event] = [RulesRemoved(tuple(rule.id for rule in event.rules))]
        existing = _existing(table, [rule.id for rule in event.rules])
        if existing:
            undo.append(RulesCreated(existing))
        return undo
    if isinstance(event, RulesUpdated):
        old = _existing(table, [rule.id for rule in event.rules])
        return [RulesUpdated(old)] if old else []
    removed = _existing(table, event.ids)
    return [RulesCreated(removed)] if removed else []


def _existing(table: RuleTable, ids: Sequence[str]) -> tuple[Rule, ...]:
    found = {rule_id: table.get(rule_id) for rule_id in ids}
    return tuple(rule for rule in found.values() if rule is not None)
