"""Several etcd-mode instances on one real cluster (each with its own client, caches and tasks): reads
see writes acknowledged anywhere, racing creates never grant an instance twice, racing modifies keep
priorities unique, and a cache whose history was compacted away relists."""

from __future__ import annotations

import random
import time

import trio

from actors.errors import Rejected
from actors.etcd.keys import KeyLayout
from actors.records import LockFilter, NewLock, NewRule, PageRequest, RuleFilter
from tests.etcd.cluster import EtcdCluster
from tests.etcd.history import check_grants
from tests.etcd.instances import instance
from tests.etcd.load import Record, assert_agree, contend, view

ALL = PageRequest(0, 1000, "id", False)


def rotated(endpoints: tuple[str, ...], by: int) -> tuple[str, ...]:
    """The endpoints starting at another member, so instances talk to (and watch) different members."""
    return endpoints[by:] + endpoints[:by]


async def test_a_write_acknowledged_by_one_instance_is_in_the_next_read_of_another(
    cluster: EtcdCluster, layout: KeyLayout
) -> None:
    endpoints = cluster.endpoints
    async with instance(endpoints, layout, name="a") as a, instance(rotated(endpoints, 2), layout, name="b") as b:
        for round_ in range(25):
            instance_id = f"P{round_}|svc|1.0.0"
            created = await a.locks.create([NewLock(instance_id, "Owner", int(time.time()) + 600)])
            seen, _ = await b.locks.query(LockFilter(service_instance_ids=(instance_id,)), ALL)
            assert seen == created, round_
            await b.locks.remove("Owner", [instance_id])
            seen, count = await a.locks.query(LockFilter(service_instance_ids=(instance_id,)), ALL)
            assert (seen, count) == ([], 0), round_
            # A write's answer reflects what another instance acknowledged before it, too: b removed the
            # lock, so a's create of the same instance is not "Already locked" (even if a's cache lags).
            await b.locks.create([NewLock(instance_id, "Other", int(time.time()) + 600)])
            await b.locks.remove("Other", [instance_id])
            again = await a.locks.create([NewLock(instance_id, "Owner", int(time.time()) + 600)])
            assert again[0].id > created[0].id
            await a.locks.remove("Owner", [instance_id])
            rules = await b.store.create([NewRule("C", instance_id, "svc", round_ + 1)], "Sysop")
            found, _ = await a.store.query(RuleFilter(ids=(rules[0].id,)), ALL)
            assert found == rules, round_
        # Reads were batched: far fewer quorum fetches than reads when many reads run at once.
        fetches_before = b.locks.replica.fetcher.fetches
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(b.locks.query, LockFilter(), ALL)
        assert b.locks.replica.fetcher.fetches - fetches_before < 50


async def test_racing_creates_on_shared_instances_never_grant_one_twice(
    cluster: EtcdCluster, layout: KeyLayout
) -> None:
    shared = [f"Shared{i}|svc|1.0.0" for i in range(3)]
    record = Record()
    rng = random.Random(15)
    endpoints = cluster.endpoints
    async with (
        instance(endpoints, layout, name="a") as a,
        instance(rotated(endpoints, 1), layout, name="b") as b,
        instance(rotated(endpoints, 2), layout, name="c") as c,
    ):
        until = trio.current_time() + 6
        async with trio.open_nursery() as nursery:
            for number in range(12):
                state = (a, b, c)[number % 3]
                nursery.start_soon(contend, state, f"Client{number}", shared, until, random.Random(rng.random()),
                                   record)
        await assert_agree([a, b, c])
        conflicts = sum(state.stats.txn_conflicts for state in (a, b, c))
    assert check_grants(record.grants) == []
    assert record.outcomes["granted"] >= 10 and record.outcomes["already locked"] >= 10, record.outcomes
    assert conflicts > 0  # instances did race each other, and lost and re-planned
    granters = {grant.client for grant in record.grants}
    assert len(granters) >= 6  # grants went to many clients, through every instance


async def test_racing_modify_priorities_from_two_instances_keep_priorities_unique(
    cluster: EtcdCluster, layout: KeyLayout
) -> None:
    rng = random.Random(8)
    endpoints = cluster.endpoints
    async with instance(endpoints, layout, name="a") as a, instance(rotated(endpoints, 1), layout, name="b") as b:
        rules = await a.store.create([NewRule("Consumer", f"P{i}|svc|1.0.0", "svc", i + 1) for i in range(5)], "S")
        ids = [rule.id for rule in rules]
        outcomes = {"ok": 0, "rejected": 0}

        async def modifier(state: object, seed: float) -> None:
            local = random.Random(seed)
            store = a.store if state == "a" else b.store
            for _ in range(25):
                if local.random() < 0.5:  # a whole permutation: always valid
                    priorities = dict(zip(ids, local.sample(range(1, 6), 5), strict=True))
                else:  # a part of the set: collides unless it fits the others' priorities
                    chosen = local.sample(ids, 2)
                    priorities = dict(zip(chosen, local.sample(range(1, 7), 2), strict=True))
                try:
                    named = await store.modify_priorities(priorities, "S")
                except Rejected as error:
                    assert "should be unique" in error.message
                    outcomes["rejected"] += 1
                    continue
                outcomes["ok"] += 1
                assert {rule.id: rule.priority for rule in named} == priorities
                assert len({rule.priority for rule in named}) == len(named)

        async with trio.open_nursery() as nursery:
            for number in range(6):
                nursery.start_soon(modifier, "a" if number % 2 else "b", rng.random())
        seen = [await a.store.query(RuleFilter(), ALL), await b.store.query(RuleFilter(), ALL)]
    assert seen[0] == seen[1]
    priorities = [rule.priority for rule in seen[0][0]]
    assert len(priorities) == 5 and len(set(priorities)) == 5
    assert outcomes["ok"] >= 50 and outcomes["rejected"] > 0, outcomes
    assert a.stats.txn_conflicts + b.stats.txn_conflicts > 0


async def test_a_cache_whose_history_was_compacted_away_relists(cluster: EtcdCluster, layout: KeyLayout) -> None:
    """Instance b watches through one member only; while that member is down, a writes and the history
    is compacted; when the member is back, b's watch cannot resume from its revision: it relists."""
    lonely, *others = cluster.members
    async with (
        instance([m.client_url for m in others], layout, name="a") as a,
        instance([lonely.client_url], layout, name="b", deadline=5.0) as b,
    ):
        await a.locks.create([NewLock("Before|svc|1.0.0", "Owner", int(time.time()) + 600)])
        assert len((await b.locks.query(LockFilter(), ALL))[0]) == 1
        lists_before = b.locks.status().lists
        cluster.stop(lonely)
        for number in range(20):
            await a.locks.create([NewLock(f"During{number}|svc|1.0.0", "Owner", int(time.time()) + 600)])
        await a.locks.remove("Owner", ["Before|svc|1.0.0"])
        await a.store.create([NewRule("C", "During|svc|1.0.0", "svc", 1)], "S")
        cluster.compact()
        cluster.restart(lonely)
        with trio.fail_after(20):
            while b.locks.status().relists < 1 or b.store.status().relists < 1:
                await trio.sleep(0.05)
        assert b.locks.status().lists > lists_before
        assert await view(b) == await view(a)
        assert len((await b.locks.query(LockFilter(), ALL))[0]) == 20
        # And it follows the watch again afterwards.
        created = await a.locks.create([NewLock("After|svc|1.0.0", "Owner", int(time.time()) + 600)])
        assert (await b.locks.query(LockFilter(service_instance_ids=("After|svc|1.0.0",)), ALL))[0] == created
