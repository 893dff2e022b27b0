"""etcd mode gives the local mode's answers: the same requests, sent to a local LockActor/StoreActor (on a
real write-ahead log) and to an etcd-mode instance on the real cluster, get equal replies and equal
rejection messages — scripted cases from the table tests, then long seeded random sequences.

Lock ids differ by design (a local counter; etcd revisions), so the comparison maps each local id to
the etcd id of the lock created in the same place; both grow in creation order, so sorting by id
agrees. Rule ids come from one deterministic generator per side, so they are equal.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.clock import ManualClock
from actors.errors import Rejected
from actors.etcd.cluster import EtcdState
from actors.etcd.keys import KeyLayout
from actors.lock_actor import LockActor
from actors.locks import LockTable
from actors.records import (
    LOCK_SORT_FIELDS,
    RULE_SORT_FIELDS,
    Lock,
    LockFilter,
    NewLock,
    NewRule,
    PageRequest,
    RuleFilter,
)
from actors.store import RuleTable
from actors.store_actor import StoreActor
from tests.etcd.cluster import EtcdCluster
from tests.etcd.instances import config
from wal.log import WriteAheadLog

START = 1_900_000_000.0


def rule_ids() -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"{next(counter):08x}-0000-4000-8000-000000000000"


@dataclass
class Pair:
    """A local and an etcd-mode instance, and the id map between their locks."""

    local_locks: LockActor
    local_store: StoreActor
    etcd: EtcdState
    clock: ManualClock
    ids: dict[int, int] = field(default_factory=dict)  # local lock id -> etcd lock id

    async def both(self, local: Awaitable[Any], remote: Awaitable[Any]) -> tuple[Any, Any]:
        return await _outcome(local), await _outcome(remote)

    def lock_view(self, locks: list[Lock], *, local: bool) -> list[Lock]:
        return [lock if not local else _with_id(lock, self.ids.get(lock.id, -lock.id)) for lock in locks]

    async def create_locks(self, entries: list[NewLock]) -> None:
        local, remote = await self.both(self.local_locks.create(entries), self.etcd.locks.create(entries))
        if isinstance(local, list) and isinstance(remote, list):
            for mine, theirs in zip(local, remote, strict=True):
                self.ids[mine.id] = theirs.id
            assert self.lock_view(local, local=True) == remote
        else:
            assert local == remote, entries

    async def query_locks(self, f: LockFilter, page: PageRequest) -> None:
        local_filter = f
        if f.ids:  # the same locks by each side's ids
            back = {remote: mine for mine, remote in self.ids.items()}
            local_filter = LockFilter(tuple(back.get(i, -1) for i in f.ids), f.orchestration_job_ids,
                                      f.service_instance_ids, f.owners, f.expires_before, f.expires_after)
        local, remote = await self.both(self.local_locks.query(local_filter, page), self.etcd.locks.query(f, page))
        if isinstance(local, tuple):
            local = (self.lock_view(local[0], local=True), local[1])
        assert local == remote, (f, page)

    async def remove_locks(self, owner: str, instances: list[str]) -> None:
        local, remote = await self.both(self.local_locks.remove(owner, instances),
                                        self.etcd.locks.remove(owner, instances))
        assert local == remote, (owner, instances)

    async def rules(self, local: Awaitable[Any], remote: Awaitable[Any]) -> Any:
        mine, theirs = await self.both(local, remote)
        assert mine == theirs
        return theirs


def _with_id(lock: Lock, lock_id: int) -> Lock:
    return Lock(lock_id, lock.service_instance_id, lock.owner, lock.expires_at, lock.temporary,
                lock.orchestration_job_id)


async def _outcome(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except Rejected as error:
        return ("Rejected", error.message)


@asynccontextmanager
async def pair(cluster: EtcdCluster, layout: KeyLayout, tmp_path: Path) -> AsyncIterator[Pair]:
    clock = ManualClock(START)
    wal, _ = WriteAheadLog.open(tmp_path / "wal")
    local_locks = LockActor(LockTable(), wal, clock)
    local_store = StoreActor(RuleTable(), wal, clock, new_id=rule_ids())
    etcd = EtcdState(config(cluster.endpoints), layout, clock, instance_name="same", new_rule_id=rule_ids())
    async with trio.open_nursery() as nursery:
        await nursery.start(wal.run)
        await nursery.start(local_locks.run)
        await nursery.start(local_store.run)
        await nursery.start(etcd.run)
        try:
            yield Pair(local_locks, local_store, etcd, clock)
        finally:
            local_locks.mailbox.close()
            local_store.mailbox.close()
            etcd.close()
            await wal.aclose()
    await etcd.aclose()


def page(number: int = 0, size: int = 100, sort: str = "id", desc: bool = False) -> PageRequest:
    return PageRequest(number, size, sort, desc)


def new(instance: str, owner: str = "Owner", seconds: int = 60) -> NewLock:
    return NewLock(instance, owner, int(START) + seconds)


async def test_scripted_lock_cases(cluster: EtcdCluster, layout: KeyLayout, tmp_path: Path) -> None:
    async with pair(cluster, layout, tmp_path) as p:
        await p.create_locks([new("B|s|1", "Bob", 5), new("A|s|1", "Alice", 9), new("C|s|1", "Bob", 30)])
        await p.create_locks([])  # Lock list is missing or empty
        await p.create_locks([new("D|s|1"), new("E|s|1"), new("D|s|1")])  # Duplicate service instance id
        await p.create_locks([new("C|s|1"), new("F|s|1"), new("A|s|1")])  # Already locked: C, A (request order)
        await p.create_locks([new("F|s|1", "Carol", 20)])  # F was not created by the rejected request
        for sort in LOCK_SORT_FIELDS:
            for desc in (False, True):
                await p.query_locks(LockFilter(), page(sort=sort, desc=desc))
                await p.query_locks(LockFilter(owners=("Bob",)), page(sort=sort, desc=desc))
        await p.query_locks(LockFilter(), page(1, 2))
        await p.query_locks(LockFilter(), page(7, 2))  # past the end: empty, with the count
        await p.query_locks(LockFilter(service_instance_ids=("A|s|1", "X|s|1")), page())
        await p.query_locks(LockFilter(ids=tuple(p.ids.values())[:2]), page())
        await p.query_locks(LockFilter(expires_before=START + 10, expires_after=START + 6), page(sort="expiresAt"))
        await p.remove_locks("Bob", ["A|s|1", "B|s|1", "Z|s|1"])  # only Bob's B goes
        await p.query_locks(LockFilter(), page())
        p.clock.advance(9)  # A (9 s) expired: hidden, and free to take; F (20 s) still held
        await p.query_locks(LockFilter(), page())
        await p.remove_locks("Alice", ["A|s|1"])  # an expired lock is not removed by request
        await p.create_locks([new("A|s|1", "Dave", 60), new("F|s|1")])  # F still locked
        await p.create_locks([new("A|s|1", "Dave", 60)])  # takes over the expired A
        await p.query_locks(LockFilter(owners=("Dave", "Alice")), page(sort="owner", desc=True))


async def test_scripted_rule_cases(cluster: EtcdCluster, layout: KeyLayout, tmp_path: Path) -> None:
    async with pair(cluster, layout, tmp_path) as p:
        local, etcd = p.local_store, p.etcd.store

        async def create(rules: list[NewRule]) -> Any:
            return await p.rules(local.create(rules, "Sysop"), etcd.create(rules, "Sysop"))

        async def modify(priorities: dict[str, int]) -> Any:
            return await p.rules(local.modify_priorities(priorities, "Op"), etcd.modify_priorities(priorities, "Op"))

        first = await create([NewRule("C", "P1|s|1", "s", 1), NewRule("C", "P2|s|1", "s", 2),
                              NewRule("C", "P3|s|1", "s", 3), NewRule("D", "P1|s|1", "s", 1)])
        await create([NewRule("C", "P4|s|1", "s", 4), NewRule("C", "P5|s|1", "s", 4)])  # conflict inside
        await create([NewRule("C", "P4|s|1", "s", 2)])  # there is already an existing entity
        a, b, c, d = (rule.id for rule in first)
        await modify({a: 2, b: 1})  # swap
        await modify({a: 3, b: 2, c: 1})  # rotation
        await modify({a: 2})  # collides with b
        await modify({a: 1, d: 2})  # two rule sets
        await modify({"ffffffff-0000-4000-8000-000000000000": 1})  # Not existing UUID
        await modify({c: 1})  # changes nothing
        for sort in RULE_SORT_FIELDS:
            for desc in (False, True):
                await p.rules(local.query(RuleFilter(), page(sort=sort, desc=desc)),
                              etcd.query(RuleFilter(), page(sort=sort, desc=desc)))
        await p.rules(local.query(RuleFilter(consumers=("C",), min_priority=2), page()),
                      etcd.query(RuleFilter(consumers=("C",), min_priority=2), page()))
        await p.rules(local.remove([a, "ffffffff-0000-4000-8000-000000000000", a]),
                      etcd.remove([a, "ffffffff-0000-4000-8000-000000000000", a]))
        await create([NewRule("C", "P9|s|1", "s", 3)])  # a's slot is free again
        await p.rules(local.query(RuleFilter(), page(sort="priority")), etcd.query(RuleFilter(), page(sort="priority")))


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_sequences_get_the_same_answers(
    cluster: EtcdCluster, layout: KeyLayout, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    instances = [f"Provider{i}|svc|1.0.0" for i in range(6)]
    owners = ["Alpha", "Beta", "Gamma"]
    async with pair(cluster, layout, tmp_path) as p:
        rules: list[str] = []
        for _ in range(90):
            action = rng.random()
            if action < 0.35:
                chosen = rng.sample(instances, rng.randint(1, 3))
                if rng.random() < 0.1:
                    chosen.append(chosen[0])
                await p.create_locks([new(i, rng.choice(owners), rng.randint(1, 8)) for i in chosen])
            elif action < 0.5:
                await p.remove_locks(rng.choice(owners), rng.sample(instances, rng.randint(1, 4)))
            elif action < 0.65:
                f = rng.choice([LockFilter(), LockFilter(owners=(rng.choice(owners),)),
                                LockFilter(service_instance_ids=tuple(rng.sample(instances, 2))),
                                LockFilter(expires_after=p.clock.now() + rng.randint(0, 5))])
                await p.query_locks(f, page(rng.randint(0, 2), rng.randint(1, 4), rng.choice(LOCK_SORT_FIELDS),
                                            rng.random() < 0.5))
            elif action < 0.75:
                p.clock.advance(rng.randint(1, 3))
            elif action < 0.85:
                new_rules = [NewRule(rng.choice(owners), rng.choice(instances), "svc", rng.randint(1, 5))
                             for _ in range(rng.randint(1, 2))]
                created = await p.rules(p.local_store.create(new_rules, "S"), p.etcd.store.create(new_rules, "S"))
                if isinstance(created, list):
                    rules += [rule.id for rule in created]
            elif action < 0.95 and rules:
                chosen_rules = rng.sample(rules, min(len(rules), rng.randint(1, 3)))
                priorities = {rule_id: rng.randint(1, 5) for rule_id in chosen_rules}
                await p.rules(p.local_store.modify_priorities(priorities, "S"),
                              p.etcd.store.modify_priorities(priorities, "S"))
            else:
                await p.rules(p.local_store.query(RuleFilter(), page(sort="priority")),
                              p.etcd.store.query(RuleFilter(), page(sort="priority")))
        await p.query_locks(LockFilter(), page(size=1000))
        await p.rules(p.local_store.query(RuleFilter(), page(size=1000)), p.etcd.store.query(RuleFilter(), page(size=1000)))
