"""Instances in separate OS processes (tests/etcd/worker.py) and one in this process race for the same
service instances; one worker is killed -9 half-way and started again. Every client's acknowledged
grants and writes are written down as they come; together they must show no double grant, and every
acknowledged long-lived write — the killed process's included — must be on the cluster at the end."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import trio

from actors.etcd.keys import KeyLayout
from tests.etcd.cluster import EtcdCluster
from tests.etcd.history import check_grants
from tests.etcd.instances import instance
from tests.etcd.load import Record, check_durable, contend, durable, view
from tests.etcd.worker import line_decoder, spawn

SECONDS = 6.0


def read_journal(path: Path, into: Record) -> None:
    if not path.exists():
        return
    for raw in path.read_bytes().splitlines():
        line = line_decoder.decode(raw)
        entry = line.grant or line.lock or line.rule
        assert entry is not None
        into.add(entry)


async def test_instances_in_separate_processes_and_one_killed(cluster: EtcdCluster, layout: KeyLayout,
                                                                 tmp_path: Path) -> None:
    shared = [f"Shared{i}|svc|1.0.0" for i in range(6)]
    until = time.time() + SECONDS
    journals = {name: tmp_path / f"{name}.jsonl" for name in ("w1", "w2", "w1again")}
    workers = [spawn(cluster, layout, shared, until, name, journals[name]) for name in ("w1", "w2")]
    record = Record()
    try:
        async with instance(cluster.endpoints, layout, name="here") as here:
            rng = random.Random(7)
            deadline = trio.current_time() + (until - time.time())
            async with trio.open_nursery() as nursery:
                for number in range(3):
                    nursery.start_soon(contend, here, f"here{number}", shared, deadline, random.Random(rng.random()),
                                       record)
                nursery.start_soon(durable, here, "hereKeeper", deadline, random.Random(rng.random()), record)
                await trio.sleep(SECONDS / 2)
                workers[0].send_signal(signal.SIGKILL)  # an instance dies with requests in flight
                workers[0].wait()
                workers.append(spawn(cluster, layout, shared, until, "w1again", journals["w1again"]))
            for worker, name in zip(workers[1:], ("w2", "w1again"), strict=True):
                with trio.fail_after(30):
                    while worker.poll() is None:
                        await trio.sleep(0.05)
                assert worker.returncode == 0, journals[name].with_suffix(".log").read_text()[-3000:]
            locks, rules = await view(here)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for path in journals.values():
        read_journal(path, record)
    writers = {lock.owner.removesuffix("Keeper") for lock in record.durable_locks}
    assert writers == {"here", "w1", "w2", "w1again"}, writers  # every process wrote, the restarted one too
    assert len({grant.client[:2] for grant in record.grants}) >= 2  # the history spans processes
    assert check_grants(record.grants) == []
    check_durable(record, locks, rules)
