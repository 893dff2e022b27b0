"""The store actor's public face (actors/services.py `StoreService`) with its rules in etcd.

Same operations, answers and error texts as StoreActor (actors/store_actor.py): RuleTable plans on
this instance's cache, one guarded txn commits (rule_txns.py), a lost race is planned again
(writes.py). Rule ids stay random UUIDs, made by the instance that plans the create; etcd's compares
(the rule key and its (consumer, definition, priority) slot both absent) keep them and the triples
unique across instances.

May import: trio; the rule modules of actors.etcd (.rule_txns, .rule_cache) and its shared ones (.client,
.keys, .replica, .writes, .wire); actors.clock, actors.records, actors.runtime. Never transports or bench.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import trio

from actors.clock import Clock
from actors.etcd import rule_txns, wire
from actors.etcd.client import EtcdClient
from actors.etcd.keys import KeyLayout
from actors.etcd.lock_backend import new_request_token
from actors.etcd.replica import CacheSettings, Replica, ReplicaStatus
from actors.etcd.rule_cache import RuleCache
from actors.etcd.writes import Attempt, Done, write
from actors.records import NewRule, PageRequest, Rule, RuleFilter
from actors.runtime import Mailbox


def random_rule_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Create:
    txn: wire.TxnRequest
    rules: tuple[Rule, ...]

    def result(self, revision: int) -> list[Rule]:
        return list(self.rules)


@dataclass(frozen=True)
class Modify:
    txn: wire.TxnRequest
    named: list[Rule]

    def result(self, revision: int) -> list[Rule]:
        return self.named


@dataclass(frozen=True)
class Remove:
    txn: wire.TxnRequest
    removed: int

    def result(self, revision: int) -> int:
        return self.removed


def plan_create(
    cache: RuleCache, rules: Sequence[NewRule], requester: str, now: int, new_id: Callable[[], str], request: str
) -> Create:
    event = cache.table.plan_create(rules, requester, now, new_id)
    return Create(rule_txns.create_txn(cache.layout, event.rules, request), event.rules)


def plan_modify(
    cache: RuleCache, priorities: Mapping[str, int], requester: str, now: int, request: str
) -> Modify | Done[list[Rule]]:
    event, named = cache.table.plan_modify(priorities, requester, now)
    if event is None:
        return Done(named)
    old = [rule for rule in map(cache.table.get, (new.id for new in event.rules)) if rule is not None]
    return Modify(rule_txns.modify_txn(cache.layout, old, event.rules, cache.revisions, request), named)


def plan_remove(cache: RuleCache, ids: Sequence[str]) -> Remove | Done[int]:
    event = cache.table.plan_remove(ids)
    if event is None:
        return Done(0)
    rules = [rule for rule in map(cache.table.get, event.ids) if rule is not None]
    return Remove(rule_txns.remove_txn(cache.layout, rules, cache.revisions), len(rules))


class EtcdStoreActor:
    def __init__(
        self,
        client: EtcdClient,
        layout: KeyLayout,
        clock: Clock,
        *,
        new_id: Callable[[], str] = random_rule_id,
        cache: CacheSettings | None = None,
    ) -> None:
        self._client = client
        self._layout = layout
        self._clock = clock
        self._new_id = new_id
        self._replica: Replica[RuleCache] = Replica(
            "rules",
            client,
            layout.rules,
            layout.rules_marker,
            partial(RuleCache.build, layout),
            cache if cache is not None else CacheSettings(),
        )

    @property
    def mailbox(self) -> Mailbox:
        return self._replica.mailbox

    @property
    def replica(self) -> Replica[RuleCache]:
        return self._replica

    def status(self) -> ReplicaStatus:
        return self._replica.status()

    def _now(self) -> int:
        return int(self._clock.now())

    async def query(self, rule_filter: RuleFilter, page: PageRequest) -> tuple[list[Rule], int]:
        await self._replica.fresh()
        return await self._replica.ask(lambda cache: cache.table.query(rule_filter, page))

    async def create(self, rules: Sequence[NewRule], requester: str) -> list[Rule]:
        request = new_request_token()

        def plan(cache: RuleCache) -> Create:
            return plan_create(cache, rules, requester, self._now(), self._new_id, request)

        async def resolve(unknown: Sequence[Attempt[list[Rule]]]) -> tuple[Attempt[list[Rule]], int] | None:
            for attempt in unknown:  # each at most max_batch keys: one read-back txn each
                if not isinstance(attempt, Create):
                    continue
                ids = [rule.id for rule in attempt.rules]
                reply = await self._client.txn(rule_txns.read_back_txn(self._layout, ids))
                found = rule_txns.applied_at(self._layout, reply, request)
                if found is not None:
                    return attempt, found[1]
            return None

        return await write(self._replica, self._client, plan, resolve, guarded=True)

    async def modify_priorities(self, priorities: Mapping[str, int], requester: str) -> list[Rule]:
        request = new_request_token()

        def plan(cache: RuleCache) -> Modify | Done[list[Rule]]:
            return plan_modify(cache, priorities, requester, self._now(), request)

        # No resolve: planned again after a lost answer, a modify that was applied finds nothing to change
        # and answers the rules as they are (which is what it would have answered).
        return await write(self._replica, self._client, plan, guarded=True)

    async def remove(self, ids: Sequence[str]) -> int:
        return await write(self._replica, self._client, lambda cache: plan_remove(cache, ids))

    async def count(self) -> int:
        return await self._replica.ask(lambda cache: len(cache.table))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the cache (started once it is), then follow etcd until the mailbox is closed and drained."""
        await self._replica.run(task_status=task_status)

    def close(self) -> None:
        self._replica.close()
