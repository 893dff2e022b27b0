"""Client load for the multi-instance tests, recording what each client was told.

- `contend`: a client creating locks on a few shared service instances with expiries of a second or
  two, sometimes removing its lock; every grant it is acknowledged goes into the history that
  tests/etcd/history.py checks for double grants.
- `durable`: a client creating long-lived locks on instances of its own and rules of its own; every
  acknowledged one must still be there, exactly once, at the end ("no acknowledged write lost, none
  applied twice").

Failures are counted, never fatal: a 503 (`Unavailable`: etcd unreachable, a cache behind) is what a
client sees during a fault, and it retries.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import trio

from actors.errors import Rejected, Unavailable
from actors.etcd.cluster import EtcdState
from actors.records import Lock, LockFilter, NewLock, NewRule, PageRequest, Rule, RuleFilter
from tests.etcd.history import Grant

EVERYTHING = PageRequest(0, 100_000, "id", False)


@dataclass
class Record:
    grants: list[Grant] = field(default_factory=list)
    durable_locks: list[Lock] = field(default_factory=list)
    durable_rules: list[Rule] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    on_entry: Callable[[Grant | Lock | Rule], None] | None = None  # e.g. write it to a file at once

    def add(self, entry: Grant | Lock | Rule) -> None:
        if isinstance(entry, Grant):
            self.grants.append(entry)
        elif isinstance(entry, Lock):
            self.durable_locks.append(entry)
        else:
            self.durable_rules.append(entry)
        if self.on_entry is not None:
            self.on_entry(entry)


async def contend(state: EtcdState, client: str, instances: list[str], until: float, rng: random.Random,
                  record: Record, *, remove_share: float = 0.3) -> None:
    while trio.current_time() < until:
        instance = rng.choice(instances)
        requested = time.time()
        try:
            locks = await state.locks.create([NewLock(instance, client, int(requested) + rng.choice((1, 2)))])
        except Rejected:
            record.outcomes["already locked"] += 1
            await trio.sleep(rng.uniform(0, 0.02))
            continue
        except Unavailable:
            record.outcomes["unavailable"] += 1
            await trio.sleep(0.05)
            continue
        grant = Grant(instance, locks[0].id, client, requested, time.time(), locks[0].expires_at)
        record.outcomes["granted"] += 1
        if rng.random() < remove_share:
            await trio.sleep(rng.uniform(0, 0.05))
            released = time.time()
            try:
                await state.locks.remove(client, [instance])
                record.outcomes["removed"] += 1
            except Unavailable:
                record.outcomes["unavailable"] += 1  # it was sent: it may have been removed
            grant = replace(grant, released=released)
        record.add(grant)


async def durable(state: EtcdState, client: str, until: float, rng: random.Random, record: Record) -> None:
    number = 0
    while trio.current_time() < until:
        number += 1
        try:
            if number % 3:
                created = await state.locks.create([NewLock(f"{client}-{number}|svc|1.0.0", client, 4_000_000_000)])
                record.add(created[0])
            else:
                rules = await state.store.create([NewRule(client, f"P{number}|svc|1.0.0", "svc", number)], "Sysop")
                record.add(rules[0])
            record.outcomes["durable ok"] += 1
        except Unavailable:
            record.outcomes["unavailable"] += 1
            await trio.sleep(0.05)
        await trio.sleep(rng.uniform(0, 0.01))


async def view(state: EtcdState) -> tuple[list[Lock], list[Rule]]:
    """Everything an instance shows (a linearizable read of both tables)."""
    locks, _ = await state.locks.query(LockFilter(), EVERYTHING)
    rules, _ = await state.store.query(RuleFilter(), EVERYTHING)
    return locks, rules


async def raw_state(state: EtcdState) -> tuple[list[Lock], list[Rule]]:
    """An instance's caches as they are (expired locks not yet deleted included), after a read barrier,
    so they hold everything acknowledged anywhere before the call."""
    locks, store = state.locks.replica, state.store.replica
    await locks.fresh()
    await store.fresh()
    return await locks.ask(lambda cache: list(cache.table.locks())), await store.ask(lambda c: list(c.table.rules()))


async def assert_agree(states: list[EtcdState], attempts: int = 40) -> None:
    """Every instance holds the same records. (Comparing query answers taken one after the other would
    not do: a lock expiring in between hides from the later query.) The expiry leader may delete
    between two instances' reads, so a difference is read again; one that lasts is a failure."""
    for _ in range(attempts):
        seen = [await raw_state(state) for state in states]
        if all(state == seen[0] for state in seen[1:]):
            return
        await trio.sleep(0.05)
    raise AssertionError(f"instances disagree: {[(len(locks), len(rules)) for locks, rules in seen]}")


def check_durable(record: Record, locks: list[Lock], rules: list[Rule]) -> None:
    """Every acknowledged long-lived write is present with what its client was told, exactly once."""
    by_instance = {lock.service_instance_id: lock for lock in locks}
    missing = [lock for lock in record.durable_locks if by_instance.get(lock.service_instance_id) != lock]
    assert not missing, f"acknowledged locks lost or changed: {missing[:5]}"
    by_id = {rule.id: rule for rule in rules}
    lost = [rule for rule in record.durable_rules if by_id.get(rule.id) != rule]
    assert not lost, f"acknowledged rules lost or changed: {lost[:5]}"
    slots = [(rule.consumer, rule.service_definition, rule.priority) for rule in rules]
    assert len(slots) == len(set(slots)), "a (consumer, definition, priority) held twice"
    ids = [lock.id for lock in locks]
    assert len(ids) == len(set(ids))
