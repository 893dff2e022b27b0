"""Races through three lockstore services in etcd mode, over HTTP (the whole service: transports, operations,
the etcd backend), on the real cluster: many clients lock the same few service instances with expiries
of a second or two, each through its own instance; the histories the clients saw show no instance ever
granted twice, lock ids unique and growing in real time. Concurrent modify-priorities through two
instances keep priorities unique, and every instance ends with the same state."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import trio

from actors.clock import SystemClock
from tests.backends import etcd_settings
from tests.etcd.cluster import EtcdCluster
from tests.etcd.history import check_grants
from tests.etcd.http_load import EVERYTHING, STORE, SYSOP, Record, check_kept, keep, kept_state, race
from tests.integration.conftest import start_service
from transports.service import RunningService

SECONDS = 4.0


def rotated(endpoints: list[str], by: int) -> list[str]:
    return endpoints[by:] + endpoints[:by]


async def three_services(nursery: trio.Nursery, cluster: EtcdCluster, tmp_path: Path) -> list[RunningService]:
    state = etcd_settings(cluster)
    return [await start_service(nursery, tmp_path / f"s{k}", SystemClock(),  # type: ignore[arg-type]
                                **{**state, "etcd_endpoints": rotated(state["etcd_endpoints"], k)})
            for k in range(3)]


async def test_racing_lock_clients_through_three_services_never_see_a_double_grant(
        etcd_cluster: EtcdCluster, tmp_path: Path, nursery: trio.Nursery) -> None:
    services = await three_services(nursery, etcd_cluster, tmp_path)
    urls = [running.http_urls[0] for running in services]
    shared = [f"Shared{i}|svc|1.0.0" for i in range(5)]
    record = Record()
    rng = random.Random(1515)
    keepers = [f"Keeper{k}" for k in range(3)]
    async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_connections=64)) as http:
        until = trio.current_time() + SECONDS
        async with trio.open_nursery() as clients:
            for number in range(12):
                clients.start_soon(race, http, urls, number % 3, f"Racer{number}", shared, until,
                                   random.Random(rng.random()), record)
            for k, keeper in enumerate(keepers):
                clients.start_soon(keep, http, urls, k, keeper, until, random.Random(rng.random()), record)
        views = [await kept_state(http, url, keepers) for url in urls]
    assert check_grants(record.grants) == []
    assert record.outcomes["granted"] >= 15 and record.outcomes["already locked"] >= 20, record.outcomes
    assert record.outcomes["unknown"] == 0, record.outcomes  # no fault here: every request answered
    assert len({grant.client for grant in record.grants}) >= 6  # through every instance, to many clients
    assert views[1] == views[0] and views[2] == views[0]
    check_kept(record, *views[0])
    conflicts = sum(running.etcd.state.stats.txn_conflicts for running in services if running.etcd)
    assert conflicts > 0  # the instances did race each other, lost, re-planned
    for running in services:
        running.shutdown.set()


async def test_modify_priorities_racing_through_two_services_keep_priorities_unique(
        etcd_cluster: EtcdCluster, tmp_path: Path, nursery: trio.Nursery) -> None:
    services = (await three_services(nursery, etcd_cluster, tmp_path))[:2]
    urls = [running.http_urls[0] for running in services]
    rng = random.Random(8)
    outcomes = {"ok": 0, "rejected": 0}
    async with httpx.AsyncClient(timeout=20) as http:
        created = await http.post(f"{urls[0]}{STORE}/create", headers=SYSOP, json={"candidates": [
            {"consumer": "Consumer", "serviceInstanceId": f"P{i}|svc|1.0.0", "priority": i + 1} for i in range(5)]})
        assert created.status_code == 201, created.text
        ids = [entry["id"] for entry in created.json()["entries"]]

        async def modifier(url: str, seed: float) -> None:
            local = random.Random(seed)
            for _ in range(20):
                if local.random() < 0.5:  # a whole permutation: always valid
                    priorities = dict(zip(ids, local.sample(range(1, 6), 5), strict=True))
                else:  # two of them: collides unless it fits the other rules' priorities
                    chosen = local.sample(ids, 2)
                    priorities = dict(zip(chosen, local.sample(range(1, 7), 2), strict=True))
                response = await http.put(f"{url}{STORE}/modify-priorities", headers=SYSOP, json=priorities)
                if response.status_code == 400:
                    assert "should be unique" in response.json()["errorMessage"], response.text
                    outcomes["rejected"] += 1
                    continue
                assert response.status_code == 200, response.text
                outcomes["ok"] += 1
                named = {entry["id"]: entry["priority"] for entry in response.json()["entries"]}
                assert named == priorities

        async with trio.open_nursery() as clients:
            for number in range(6):
                clients.start_soon(modifier, urls[number % 2], rng.random())
        seen = [(await http.post(f"{url}{STORE}/query", headers=SYSOP,
                                 json={"consumerNames": ["Consumer"], "pagination": EVERYTHING})).json()
                for url in urls]
    assert seen[0] == seen[1]
    priorities = [entry["priority"] for entry in seen[0]["entries"]]
    assert len(priorities) == 5 and len(set(priorities)) == 5
    assert outcomes["ok"] >= 40 and outcomes["rejected"] > 0, outcomes
    for running in services:
        running.shutdown.set()
