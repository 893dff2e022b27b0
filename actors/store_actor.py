"""The store actor: the only task that touches simple-store rules."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence

import trio

from actors.clock import Clock
from actors.records import (
    NewRule,
    PageRequest,
    Rule,
    RuleFilter,
    RulesCreated,
    RulesRemoved,
    RulesUpdated,
    encode_event,
)
from actors.rollback import UndoLog, undo_rule_event
from actors.runtime import DurableLog, Mailbox, serve_mailbox
from actors.snapshot_capture import Capture, stream_rules
from actors.store import RuleTable


def random_rule_id() -> str:
    return str(uuid.uuid4())


class StoreActor:
    def __init__(
        self,
        table: RuleTable,
        log: DurableLog,
        clock: Clock,
        new_id: Callable[[], str] = random_rule_id,
        mailbox_capacity: int = 1024,
    ) -> None:
        self._table = table
        self._log = log
        self._clock = clock
        self._new_id = new_id
        self._undo = UndoLog(log)
        self.mailbox = Mailbox(log, mailbox_capacity, before_each=self._settle)

    async def query(self, rule_filter: RuleFilter, page: PageRequest) -> tuple[list[Rule], int]:
        return await self.mailbox.read(lambda: self._table.query(rule_filter, page))

    async def create(self, rules: Sequence[NewRule], requester: str) -> list[Rule]:
        return await self.mailbox.ask(lambda: self._create(rules, requester))

    async def modify_priorities(self, priorities: Mapping[str, int], requester: str) -> list[Rule]:
        return await self.mailbox.ask(lambda: self._modify(priorities, requester))

    async def remove(self, ids: Sequence[str]) -> int:
        return await self.mailbox.ask(lambda: self._remove(ids))

    async def count(self) -> int:
        return await self.mailbox.read(lambda: len(self._table))

    async def capture(self) -> Capture:
        """The table as of the log's LSN, for a snapshot: O(1) here, the records are then read out a
        piece per message (see actors/snapshots.py)."""
        return await self.mailbox.ask(lambda: stream_rules(self._table, self._log.appended_lsn, self.mailbox))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_mailbox(self.mailbox, task_status=task_status)

    # ------------------------------------------------------------------ inside the actor task

    def _now(self) -> int:
        return int(self._clock.now())

    def _create(self, rules: Sequence[NewRule], requester: str) -> list[Rule]:
        event = self._table.plan_create(rules, requester, self._now(), self._new_id)
        self._commit(event)
        return list(event.rules)

    def _modify(self, priorities: Mapping[str, int], requester: str) -> list[Rule]:
        event, named = self._table.plan_modify(priorities, requester, self._now())
        if event is not None:
            self._commit(event)
        return named

    def _remove(self, ids: Sequence[str]) -> int:
        event = self._table.plan_remove(ids)
        if event is None:
            return 0
        self._commit(event)
        return len(event.ids)

    def _settle(self) -> None:
        self._undo.settle(self._table.apply)  # type: ignore[arg-type]

    def _commit(self, event: RulesCreated | RulesUpdated | RulesRemoved) -> None:
        # Append first: if the log refuses (closed or failed), the state is left untouched.
        undo = undo_rule_event(self._table, event)
        lsn = self._log.append(encode_event(event))
        self._table.apply(event)
        self._undo.record(lsn, undo)
