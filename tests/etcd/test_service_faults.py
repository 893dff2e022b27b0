"""Faults at the service level: three `lockstore serve --state etcd` processes on the real 3-member cluster,
under racing and long-lived client load over HTTP, while, one after the other: an instance is frozen and
the member its watches use is stopped, the history is compacted past its cache, and both come back
(the instance must relist); an instance is killed -9 and started again; the etcd leader is frozen
(SIGSTOP) and thawed. The history is also compacted every second throughout. Afterwards: no double grant in any client's history, no
acknowledged write lost or applied twice, every instance shows the same state and writes again within
seconds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.backends import etcd_settings
from tests.etcd.cluster import EtcdCluster, free_ports
from tests.etcd.history import check_grants
from tests.etcd.http_load import LOCK, SYSOP, Record, check_kept, instant, keep, kept_state, race
from transports.status import parse_metrics

REPOSITORY = Path(__file__).resolve().parents[2]
BACK_WITHIN = 10.0  # seconds after the last fault: every instance writes again
READY_WITHIN = 30.0


class Instance:
    """One `lockstore serve --state etcd` process (it dies with the test: PR_SET_PDEATHSIG is not needed,
    the fixture kills what is left)."""

    def __init__(self, name: str, endpoints: list[str], prefix: str, log: Path) -> None:
        self.name, self.endpoints, self.prefix, self.log = name, endpoints, prefix, log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        (port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "transports.cli", "serve", "--port", str(port), "--state", "etcd",
                   "--etcd-endpoints", ",".join(self.endpoints), "--etcd-prefix", self.prefix,
                   "--etcd-request-timeout", "1", "--etcd-expiry-lease-ttl", "3", "--log-level", "WARNING",
                   "--no-access-log"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPOSITORY)})

    async def ready(self, http: httpx.AsyncClient) -> None:
        with trio.fail_after(READY_WITHIN):
            while True:
                assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await http.get(f"{self.url}/health/ready", timeout=2)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await trio.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)


@pytest.fixture
def instances(etcd_cluster: EtcdCluster, tmp_path: Path) -> Iterator[list[Instance]]:
    endpoints = list(etcd_cluster.endpoints)
    prefix = etcd_settings(etcd_cluster)["etcd_prefix"]
    started = [Instance(f"i{k}", endpoints[k:] + endpoints[:k], prefix, tmp_path / f"i{k}.log") for k in range(3)]
    try:
        yield started
    finally:
        for instance in started:
            instance.kill()


async def test_instances_survive_kill_9_a_frozen_leader_a_member_restart_and_compaction(
        cluster: EtcdCluster, instances: list[Instance]) -> None:
    for instance in instances:
        instance.start()
    record = Record()
    rng = random.Random(2024)
    shared = [f"Shared{i}|svc|1.0.0" for i in range(4)]
    keepers = [f"Keeper{k}" for k in range(3)]
    urls = [""] * 3
    faults: list[str] = []
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:
        for k, instance in enumerate(instances):
            await instance.ready(http)
            urls[k] = instance.url

        async def compact_every_second(stop: trio.Event) -> None:
            while not stop.is_set():
                with trio.move_on_after(1.0):
                    await stop.wait()
                try:
                    cluster.compact()
                    faults.append("compacted")
                except (httpx.HTTPError, StopIteration):
                    pass  # no member answering right now (frozen leader): the next second

        async def faults_in_turn(stop: trio.Event) -> None:
            await trio.sleep(1.0)
            # 1. Compaction past a watch that is down: instance 2 frozen, the member its watches use (its first
            # endpoint) stopped; writes go on through the others; compact; member and instance back.
            assert instances[2].process is not None
            instances[2].process.send_signal(signal.SIGSTOP)
            member = cluster.members[2]
            cluster.stop(member)
            faults.append("member stopped")
            await trio.sleep(1.0)
            try:
                cluster.compact()
            except httpx.HTTPStatusError as error:  # the once-a-second compaction just did it
                assert "compacted" in error.response.text, error.response.text
            faults.append("compacted past a stopped watch")
            cluster.restart(member)
            faults.append("member restarted")
            instances[2].process.send_signal(signal.SIGCONT)
            await trio.sleep(1.5)
            # 2. An instance killed -9 with requests in flight, and started again.
            instances[1].kill()
            faults.append("instance killed -9")
            instances[1].start()
            await instances[1].ready(http)
            urls[1] = instances[1].url  # its clients come back through the new process
            await trio.sleep(1.0)
            # 3. The etcd leader frozen, then thawed.
            leader = cluster.leader()
            cluster.pause(leader)
            faults.append("leader frozen")
            await trio.sleep(2.0)
            cluster.resume(leader)
            await trio.sleep(1.5)
            stop.set()

        stop = trio.Event()
        async with trio.open_nursery() as load:
            until = trio.current_time() + 60  # ended by `stop`
            load.start_soon(compact_every_second, stop)
            load.start_soon(faults_in_turn, stop)
            async with trio.open_nursery() as clients:
                for number in range(9):
                    clients.start_soon(race, http, urls, number % 3, f"Racer{number}", shared, until,
                                       random.Random(rng.random()), record)
                for k, keeper in enumerate(keepers):
                    clients.start_soon(keep, http, urls, k, keeper, until, random.Random(rng.random()), record)
                await stop.wait()
                clients.cancel_scope.cancel()
        healed = trio.current_time()

        # Every instance writes again within seconds, and they all show the same state.
        for k, url in enumerate(urls):
            with trio.fail_after(BACK_WITHIN):
                while True:
                    answer = await http.post(f"{url}{LOCK}/create", headers=SYSOP, json={"locks": [
                        {"serviceInstanceId": f"Back{k}|svc|1.0.0", "owner": "Checker",
                         "expiresAt": instant(time.time() + 600)}]})
                    if answer.status_code == 201:
                        break
                    assert answer.status_code == 503, answer.text
                    await trio.sleep(0.1)
        assert trio.current_time() - healed < BACK_WITHIN
        views = [await kept_state(http, url, keepers) for url in urls]
        metrics = [(await http.get(f"{url}/metrics")).text for url in urls]
    assert views[1] == views[0] and views[2] == views[0]
    assert check_grants(record.grants) == []
    check_kept(record, *views[0])
    assert record.outcomes["granted"] >= 10 and record.outcomes["kept"] >= 30, record.outcomes
    assert record.outcomes["unknown"] > 0, record.outcomes  # the faults were felt by clients ...
    assert faults.count("compacted") >= 5 and "leader frozen" in faults, faults  # ... and all happened
    writers = {entry["owner"] for entry in record.kept_locks.values()}
    assert writers == set(keepers)  # the killed instance's clients wrote again through its new process
    relisted = parse_metrics(metrics[2])
    assert relisted.value("lockstore_etcd_relists_total", table="locks") >= 1  # its history was compacted away
    assert relisted.value("lockstore_etcd_relists_total", table="rules") >= 1
    assert sum(parse_metrics(text).total("lockstore_etcd_watch_restarts_total") for text in metrics) >= 2
    for instance in instances:
        assert instance.stop() == 0  # and each stops cleanly (SIGTERM), faults or not
