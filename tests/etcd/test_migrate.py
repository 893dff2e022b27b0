"""`lockstore migrate --data-dir D --to-etcd ...` through the real command line: a data directory written by
the local service (a snapshot and log records after it, a modify, a remove, an expired lock) moves into
the real cluster without a byte of it changing; an instance in etcd mode then serves every live lock
(under new, larger ids, as the id map says) and every rule exactly as the local service did; a second
run into the now non-empty prefix is refused with one line, and a service still running on the
directory is refused too."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from actors.clock import ManualClock
from tests.backends import etcd_settings
from tests.etcd.cluster import EtcdCluster
from tests.integration.conftest import LOCK, STORE, SYSOP, future, start_service

CLI = [sys.executable, "-m", "transports.cli", "migrate", "--to-etcd", "--log-level", "ERROR"]


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False,
                          env=dict(os.environ), stdin=subprocess.DEVNULL)


def digest(directory: Path) -> dict[str, str]:
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.rglob("*")) if path.is_file()}


async def everything(base_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        locks = (await http.post(f"{LOCK}/query", headers=SYSOP, json={})).json()["entries"]
        rules = (await http.post(f"{STORE}/query", headers=SYSOP, json={"createdBy": "Sysop"})).json()["entries"]
    return locks, rules


async def test_a_local_data_directory_moves_into_etcd_and_is_served_from_there(
        etcd_cluster: EtcdCluster, tmp_path: Path, nursery: trio.Nursery) -> None:
    data = tmp_path / "data"
    clock = ManualClock(start=float(int(time.time())) - 600)  # "Soon" below has expired in real time too
    local = await start_service(nursery, data, clock, snapshot_every_records=1_000_000)
    async with httpx.AsyncClient(base_url=local.http_urls[0], timeout=10) as http:
        async def post(path: str, body: Any) -> Any:
            response = await http.post(path, headers=SYSOP, json=body)
            assert response.status_code in (200, 201), response.text
            return response.json()

        await post(f"{LOCK}/create", {"locks": [
            {"serviceInstanceId": f"Before{i}|svc|1", "owner": f"Owner{i % 3}", "expiresAt": future(3600, clock)}
            for i in range(120)]})
        rules = (await post(f"{STORE}/create", {"candidates": [
            {"consumer": f"Consumer{i % 4}", "serviceInstanceId": f"Provider{i}|svc|1.0.0", "priority": i + 1}
            for i in range(30)]}))["entries"]
        assert local.snapshotter is not None
        assert len(await local.snapshotter.snapshot_now()) == 2  # both tables; the rest goes to the log after it
        await post(f"{LOCK}/create", {"locks": [
            {"serviceInstanceId": "Soon|svc|1", "owner": "Owner0", "expiresAt": future(100, clock)},
            {"serviceInstanceId": "After|svc|1", "owner": "Owner1", "expiresAt": future(7200, clock),
             "orchestrationJobId": "job-7", "temporary": True}]})
        removed = await http.delete(f"{LOCK}/remove/Owner1", headers=SYSOP, params={"instanceIds": "Before1|svc|1"})
        assert removed.status_code == 200
        clock.advance(10)
        modified = await http.put(f"{STORE}/modify-priorities", headers=SYSOP,
                                  json={rules[0]["id"]: 4, rules[4]["id"]: 1})  # a swap within Consumer0
        assert modified.status_code == 200, modified.text
        assert (await http.delete(f"{STORE}/remove", headers=SYSOP, params={"uuids": rules[1]["id"]})).status_code == 200
        local_locks, local_rules = await everything(local.http_urls[0])
    largest_local_id = max(lock["id"] for lock in local_locks) + 1  # the removed lock's id, at least, was granted
    assert len(local_locks) == 121 and len(local_rules) == 29
    # "Soon" is live on the service's (manual) clock but expired in real time: it must stay behind.
    local_locks = [lock for lock in local_locks if lock["serviceInstanceId"] != "Soon|svc|1.0.0"]

    # A service still running on the directory: refused, nothing read half-way.
    state = etcd_settings(etcd_cluster)
    endpoints = ",".join(state["etcd_endpoints"])
    busy = migrate("--data-dir", str(data), "--etcd-endpoints", endpoints, "--etcd-prefix", state["etcd_prefix"])
    assert busy.returncode == 1 and busy.stderr.startswith("lockstore: data_dir") and "stop the service" in busy.stderr
    local.shutdown.set()
    await local.stopped.wait()

    before = digest(data)
    id_map = tmp_path / "ids.jsonl"
    moved = migrate("--data-dir", str(data), "--etcd-endpoints", endpoints, "--etcd-prefix", state["etcd_prefix"],
                    "--id-map", str(id_map))
    assert moved.returncode == 0, moved.stderr
    assert "snap-locks-" in moved.stdout and "log records" in moved.stdout  # read the snapshot and the log after it
    assert "locks: 121 held, 1 expired (not moved), 120 written" in moved.stdout, moved.stdout
    assert "rules: 29 written" in moved.stdout, moved.stdout
    assert digest(data) == before  # read-only

    served = await start_service(nursery, tmp_path / "unused", ManualClock(start=clock.now()), **state)
    etcd_locks, etcd_rules = await everything(served.http_urls[0])
    assert etcd_rules == local_rules  # same ids, priorities, audit fields and order
    mapping = {entry["old"]: entry["new"] for entry in map(json.loads, id_map.read_text().splitlines())}
    assert len(mapping) == 120
    renamed = sorted(({**lock, "id": mapping[lock["id"]]} for lock in local_locks), key=lambda lock: lock["id"])
    assert sorted(etcd_locks, key=lambda lock: lock["id"]) == renamed  # every field as before but the id
    old_order = [lock["id"] for lock in sorted(local_locks, key=lambda lock: lock["id"])]
    assert [mapping[old] for old in old_order] == sorted(mapping.values())  # grant order kept
    assert min(lock["id"] for lock in etcd_locks) > largest_local_id  # ids keep growing: fencing tokens
    async with httpx.AsyncClient(base_url=served.http_urls[0], timeout=10) as http:
        taken = await http.post(f"{LOCK}/create", headers=SYSOP, json={"locks": [
            {"serviceInstanceId": "Before0|svc|1", "owner": "Someone", "expiresAt": future(60)}]})
        assert taken.status_code == 400 and "Already locked" in taken.text  # the moved lock holds its instance
        fresh = await http.post(f"{LOCK}/create", headers=SYSOP, json={"locks": [
            {"serviceInstanceId": "Soon|svc|1", "owner": "Someone", "expiresAt": future(60)}]})
        assert fresh.status_code == 201 and fresh.json()["entries"][0]["id"] > max(mapping.values())
    served.shutdown.set()

    again = migrate("--data-dir", str(data), "--etcd-endpoints", endpoints, "--etcd-prefix", state["etcd_prefix"])
    assert again.returncode == 2 and len(again.stderr.splitlines()) == 1, again.stderr
    assert f"etcd_prefix {state['etcd_prefix']!r} already holds" in again.stderr and "--allow-non-empty" in again.stderr


async def test_the_cluster_revision_is_raised_until_new_ids_exceed_the_local_ones(etcd_cluster: EtcdCluster) -> None:
    from actors.etcd import lock_txns
    from actors.etcd.client import EtcdClient
    from actors.etcd.keys import KeyLayout
    from actors.records import Lock
    from tests.etcd.instances import config
    from transports.migrate import raise_revision

    layout = KeyLayout.from_prefix(etcd_settings(etcd_cluster)["etcd_prefix"])
    largest = (etcd_cluster.revision() + 5) * 100_000 + 99_999  # a local log that granted this id needs 6 more
    async with EtcdClient(config(etcd_cluster.endpoints)) as client:
        assert await raise_revision(client, layout, largest) > 0
        assert await raise_revision(client, layout, largest) == 0  # already there
        lock = Lock(0, "Fence|svc|1.0.0", "Owner", 4_000_000_000)
        reply = await client.txn(lock_txns.create_txn(layout, [lock], {}, "t"))
        assert reply.succeeded and lock_txns.granted([lock], reply.header.revision)[0].id > largest
