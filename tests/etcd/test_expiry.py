"""Expiry in etcd mode, on the real cluster: expired locks are hidden at once by every instance, deleted
by the one elected instance only, the election moves when the leader goes, and the skew margin keeps a
lock from being taken over (or deleted) until it has passed. The instances share a manual clock, so
time moves when the test says."""

from __future__ import annotations

import signal
import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from actors.clock import ManualClock
from actors.errors import Rejected
from actors.etcd.client import EtcdClient
from actors.etcd.cluster import EtcdState
from actors.etcd.expiry import ExpirySettings
from actors.etcd.keys import KeyLayout
from actors.etcd.wire import RangeRequest
from actors.records import LockFilter, NewLock, PageRequest
from tests.etcd.cluster import EtcdCluster
from tests.etcd.instances import TEST_EXPIRY, config, instance
from tests.etcd.worker import spawn

ALL = PageRequest(0, 1000, "id", False)
START = 1_900_000_000


async def leader_among(states: list[EtcdState]) -> EtcdState:
    """The one instance that leads the expiry (waits for the election)."""
    with trio.fail_after(15):
        while True:
            leaders = [state for state in states if state.locks.expiry.is_leader]
            assert len(leaders) <= 1
            if leaders:
                return leaders[0]
            await trio.sleep(0.05)


async def held(state: EtcdState) -> int:
    """Locks in the instance's cache, expired ones not yet deleted included."""
    await state.locks.replica.fresh()
    return await state.locks.count()


async def wait_held(states: list[EtcdState], count: int) -> None:
    with trio.fail_after(15):
        while [await held(state) for state in states] != [count] * len(states):
            for state in states:
                state.locks.expiry.wake()
            await trio.sleep(0.05)


async def test_one_elected_instance_deletes_and_another_takes_over_when_it_goes(
    cluster: EtcdCluster, layout: KeyLayout
) -> None:
    clock = ManualClock(START)
    async with AsyncExitStack() as stack:
        states = [await stack.enter_async_context(instance(cluster.endpoints, layout, name=name, clock=clock))
                  for name in ("a", "b", "c")]
        await states[1].locks.create([NewLock(f"Short{i}|svc|1.0.0", "O", START + 5) for i in range(30)])
        await states[2].locks.create([NewLock("Long|svc|1.0.0", "O", START + 600)])
        leader = await leader_among(states)
        clock.advance(5)
        for state in states:  # hidden at once, deleted or not
            assert (await state.locks.query(LockFilter(), ALL))[1] == 1
        await wait_held(states, 1)
        assert [state.locks.purged for state in states if state is not leader] == [0, 0]
        assert leader.locks.purged == 30

    # The leader goes (its lease is revoked as it stops); one of the others is elected and deletes.
    async with AsyncExitStack() as stack:
        states = [await stack.enter_async_context(instance(cluster.endpoints, layout, name=name, clock=clock))
                  for name in ("a", "b")]
        first = await leader_among(states)
        await first.locks.create([NewLock(f"Next{i}|svc|1.0.0", "O", START + 10) for i in range(5)])
        await stack.aclose()  # both go; a third instance must be able to lead
        async with instance(cluster.endpoints, layout, name="d", clock=clock) as alone:
            assert await leader_among([alone]) is alone
            clock.advance(10)
            await wait_held([alone], 1)
            assert alone.locks.purged == 5


async def test_a_killed_leaders_lease_runs_out_and_another_instance_leads(
    cluster: EtcdCluster, layout: KeyLayout, tmp_path: Path
) -> None:
    """A leader killed -9 cannot revoke its lease: it holds the expiry for at most its lease's TTL."""
    worker = spawn(cluster, layout, ["Only|svc|1.0.0"], time.time() + 60, "leader", tmp_path / "leader.jsonl")
    try:
        async with EtcdClient(config(cluster.endpoints)) as etcd:
            with trio.fail_after(20):  # the worker, alone, wins the election
                while not (await etcd.range(RangeRequest(layout.expiry_leader))).kvs:
                    await trio.sleep(0.05)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            killed = trio.current_time()
            async with instance(cluster.endpoints, layout, name="heir") as heir:
                await leader_among([heir])
            took = trio.current_time() - killed
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    # Its lease lasted; then the heir's next campaign (every lease_ttl / 3) won.
    assert 0.5 * TEST_EXPIRY.lease_ttl < took < 2.5 * TEST_EXPIRY.lease_ttl, took


async def test_skew_margin_delays_takeover_and_deletion_but_not_hiding(
    cluster: EtcdCluster, layout: KeyLayout
) -> None:
    clock = ManualClock(START)
    margin = ExpirySettings(skew_margin=3, lease_ttl=3)
    async with instance(cluster.endpoints, layout, name="a", clock=clock, expiry=margin) as a:
        await leader_among([a])
        await a.locks.create([NewLock("P|svc|1.0.0", "Owner", START + 1)])
        clock.advance(2)  # expired 1 s ago: hidden, but inside the margin
        assert (await a.locks.query(LockFilter(), ALL)) == ([], 0)
        with pytest.raises(Rejected, match=r"Already locked: P\|svc\|1\.0\.0"):
            await a.locks.create([NewLock("P|svc|1.0.0", "Other", START + 60)])
        a.locks.expiry.wake()
        assert await a.locks.purge_now() == 0 and await held(a) == 1
        clock.advance(2)  # now past expiresAt + margin
        taken = await a.locks.create([NewLock("P|svc|1.0.0", "Other", START + 60)])
        assert taken[0].owner == "Other"
