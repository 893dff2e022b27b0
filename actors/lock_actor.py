"""The lock actor: the only task that touches lock state.

Each command runs inside the actor (see runtime.py): plan the change against the table, append the
event to the log, apply it. Between commands the actor sleeps until the earliest `expiresAt` and
purges what has expired, logging the purge like any other change (DECISIONS.md 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from actors.clock import Clock
from actors.locks import LockTable
from actors.records import Lock, LockFilter, LocksCreated, LocksRemoved, NewLock, PageRequest, encode_event
from actors.rollback import UndoLog, undo_lock_event
from actors.runtime import DurableLog, Mailbox, serve_mailbox
from actors.snapshot_capture import Capture, stream_locks
from wal.errors import LogUnavailable

# Re-check the clock at least this often, so a wall-clock jump cannot postpone a purge for long.
MAX_SLEEP_SECONDS = 30.0
# While the log refuses writes, retry a due purge this often (not in a busy loop).
UNAVAILABLE_RETRY_SECONDS = 0.5


class LockActor:
    def __init__(self, table: LockTable, log: DurableLog, clock: Clock, mailbox_capacity: int = 1024) -> None:
        self._table = table
        self._log = log
        self._clock = clock
        self._undo = UndoLog(log)
        self.mailbox = Mailbox(log, mailbox_capacity, before_each=self._settle)
        self.purged = 0

    # ------------------------------------------------------------------ public face (any task)

    async def create(self, locks: Sequence[NewLock]) -> list[Lock]:
        return await self.mailbox.ask(lambda: self._create(locks))

    async def query(self, lock_filter: LockFilter, page: PageRequest) -> tuple[list[Lock], int]:
        return await self.mailbox.read(lambda: self._table.query(lock_filter, page, self._clock.now()))

    async def remove(self, owner: str, service_instance_ids: Sequence[str]) -> int:
        return await self.mailbox.ask(lambda: self._remove(owner, service_instance_ids))

    async def purge_now(self) -> int:
        """Purge expired locks immediately (tests that move a manual clock use this)."""
        return await self.mailbox.ask(self._purge)

    async def count(self) -> int:
        return await self.mailbox.read(lambda: len(self._table))

    async def capture(self) -> Capture:
        """The table as of the log's LSN, for a snapshot: O(1) here, the records are then read out a
        piece per message (see actors/snapshots.py)."""
        return await self.mailbox.ask(lambda: stream_locks(self._table, self._log.appended_lsn, self.mailbox))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._purge()  # locks that expired while the service was down
        await serve_mailbox(
            self.mailbox, next_wakeup=self._next_wakeup, on_wakeup=self._purge, task_status=task_status
        )

    # ------------------------------------------------------------------ inside the actor task

    def _create(self, locks: Sequence[NewLock]) -> list[Lock]:
        self._purge()
        event = self._table.plan_create(locks, self._clock.now())
        self._commit(event)
        return list(event.locks)

    def _remove(self, owner: str, service_instance_ids: Sequence[str]) -> int:
        event = self._table.plan_remove(owner, service_instance_ids, self._clock.now())
        if event is None:
            return 0
        self._commit(event)
        return len(event.ids)

    def _settle(self) -> None:
        self._undo.settle(self._table.apply)  # type: ignore[arg-type]

    def _purge(self) -> int:
        self._settle()
        earliest = self._table.next_expiry()
        now = self._clock.now()
        if earliest is None or earliest > now:
            return 0
        event = self._table.plan_expire(now)
        if event is None:
            return 0
        try:
            self._commit(event)
        except LogUnavailable:
            return 0  # retried once the log takes writes again (see _next_wakeup)
        self.purged += len(event.ids)
        return len(event.ids)

    def _commit(self, event: LocksCreated | LocksRemoved) -> None:
        # Append first: if the log refuses (closed or failed), the state is left untouched.
        undo = undo_lock_event(self._table, event)
        lsn = self._log.append(encode_event(event))
        self._table.apply(event)
        self._undo.record(lsn, undo)

    def _next_wakeup(self) -> float:
        earliest = self._table.next_expiry()
        delay = MAX_SLEEP_SECONDS if earliest is None else min(MAX_SLEEP_SECONDS, earliest - self._clock.now())
        if not self._log.available:
            delay = max(delay, UNAVAILABLE_RETRY_SECONDS)
        return trio.current_time() + max(0.0, delay)
