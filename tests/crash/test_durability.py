"""The real `lockstore serve` killed at every named failpoint, by a simulated power loss, and at random
(kill -9 soak), under mixed HTTP load. After each restart the state must equal the model built from
the acknowledged history: every acknowledged create present (unless an acknowledged remove took it),
every acknowledged remove absent, and every request whole or absent (each create carries 3 locks).
"""

from __future__ import annotations

import os
import random
import signal
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

from tests.crash.service_process import drain, start

SYSOP = {"Authorization": "Bearer SYSTEM//Sysop"}
LOCK = "/serviceorchestration/orchestration/mgmt/lock"
STORE = "/serviceorchestration/orchestration/mgmt/simple-store"
EXPIRES = "2999-01-01T00:00:00Z"
PER_REQUEST = 3
# Small thresholds, so that snapshots, compaction and segment rollover all happen under this load.
SMALL = ("--snapshot-every-records", "40", "--segment-bytes", "6000")


@dataclass
class History:
    created: set[str] = field(default_factory=set)  # acknowledged lock batches
    attempted: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)  # acknowledged removes
    remove_attempted: set[str] = field(default_factory=set)
    rules: set[str] = field(default_factory=set)  # consumers of acknowledged rules
    rules_attempted: set[str] = field(default_factory=set)
    died_by_itself = False  # the last round's process was killed by its failpoint, not by the test


def _instances(batch: str) -> list[str]:
    return [f"{batch}Z{i}|svc|1" for i in range(PER_REQUEST)]


async def _client(client: httpx.AsyncClient, name: str, history: History, rng: random.Random) -> None:
    """Mixed writes until the connection dies."""
    for n in range(100_000):
        choice = rng.random()
        try:
            if choice < 0.6 or not history.created - history.remove_attempted:
                batch = f"{name}n{n}"
                history.attempted.add(batch)
                body = {"locks": [{"serviceInstanceId": i, "owner": "O", "expiresAt": EXPIRES}
                                  for i in _instances(batch)]}
                response = await client.post(f"{LOCK}/create", json=body, headers=SYSOP)
                assert response.status_code == 201, response.text
                history.created.add(batch)
            elif choice < 0.8:
                batch = rng.choice(sorted(history.created - history.remove_attempted))
                history.remove_attempted.add(batch)
                response = await client.delete(
                    f"{LOCK}/remove/O", params=[("instanceIds", i) for i in _instances(batch)], headers=SYSOP
                )
                assert response.status_code == 200, response.text
                history.removed.add(batch)
            else:
                consumer = f"{name}c{n}"
                history.rules_attempted.add(consumer)
                body = {"candidates": [{"consumer": consumer, "serviceInstanceId": f"P|svc{n % 7}|1", "priority": 1}]}
                response = await client.post(f"{STORE}/create", json=body, headers=SYSOP)
                assert response.status_code == 201, response.text
                history.rules.add(consumer)
        except httpx.TransportError:
            return


async def _all(client: httpx.AsyncClient, path: str) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    page = 0
    while True:
        body: dict[str, object] = {"pagination": {"page": page, "size": 1000, "direction": "ASC", "sortField": "id"}}
        if path.startswith(STORE):
            body["createdBy"] = "Sysop"  # a store query needs one filter
        response = (await client.post(path, json=body, headers=SYSOP)).json()
        entries += response["entries"]
        if len(entries) >= response["count"]:
            return entries
        page += 1


async def _verify(client: httpx.AsyncClient, history: History, where: str) -> None:
    locks = await _all(client, f"{LOCK}/query")
    by_batch: dict[str, int] = {}
    for lock in locks:
        batch = str(lock["serviceInstanceId"]).split("Z")[0].lower()  # names come back capitalised
        by_batch[batch] = by_batch.get(batch, 0) + 1
    assert set(by_batch) <= history.attempted, where
    assert all(count == PER_REQUEST for count in by_batch.values()), f"{where}: a request was half-applied"
    for batch in history.created - history.remove_attempted:
        assert by_batch.get(batch) == PER_REQUEST, f"{where}: lost acknowledged create {batch}"
    for batch in history.removed:
        assert batch not in by_batch, f"{where}: acknowledged remove of {batch} undone"
    consumers = {str(rule["consumer"]).lower() for rule in await _all(client, f"{STORE}/query")}
    assert history.rules <= consumers, f"{where}: lost acknowledged rules {sorted(history.rules - consumers)[:5]}"
    assert consumers <= history.rules_attempted, where


async def _round(
    data_dir: Path, history: History, rng: random.Random, where: str, *, load_seconds: float,
    env: dict[str, str] | None = None, extra: tuple[str, ...] = SMALL, verify: bool = True,
) -> trio.Process:
    """Start, verify, load until the process dies (a failpoint) or `load_seconds`, then SIGKILL."""
    process, url = await start(data_dir, *extra, env=env)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, process)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            if verify:
                await _verify(client, history, where)
            async with trio.open_nursery() as clients:
                tag = "r" + str(len(history.attempted) + len(history.rules_attempted))  # unique per round
                for w in range(6):
                    clients.start_soon(_client, client, f"{tag}w{w}", history, rng)
                with trio.move_on_after(load_seconds):
                    await process.wait()
                history.died_by_itself = process.returncode is not None
                if process.returncode is None:
                    process.send_signal(signal.SIGKILL)
        await process.wait()
        nursery.cancel_scope.cancel()
    return process


async def _final_check(data_dir: Path, history: History, where: str) -> None:
    process, url = await start(data_dir, *SMALL)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, process)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            await _verify(client, history, where)
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
        nursery.cancel_scope.cancel()


FAILPOINTS = [
    ("append.before", 60), ("append.after", 60), ("fsync.before", 40), ("fsync.after", 40),
    ("reply.before", 60), ("snapshot.write", 2), ("snapshot.rename.before", 2), ("snapshot.rename.after", 2),
    ("segments.delete.before", 1),
]


@pytest.mark.slow
async def test_kill_at_every_failpoint_under_load(tmp_path: Path) -> None:
    rng = random.Random(5)
    data_dir = tmp_path / "data"
    history = History()
    for name, hit in FAILPOINTS:
        env = {"LOCKSTORE_FAILPOINTS": f"{name}=kill@{hit}"}
        # Armed, the process may die anywhere (even in a start-up snapshot): verify on an unarmed start.
        process = await _round(data_dir, history, rng, name, load_seconds=8, env=env, verify=False)
        assert process.returncode == -signal.SIGKILL and history.died_by_itself, name
        await _final_check(data_dir, history, f"after a kill at {name}")
    assert len(history.created) > 100 and history.removed and history.rules
    assert list((data_dir / "wal").glob("snap-*.snap"))


def _power_loss(trace: Path, directory: Path) -> int:
    """Cut every file back to its last fsync'd length (files never synced disappear); returns bytes cut."""
    synced: dict[str, int] = {}
    if trace.exists():
        for line in trace.read_text().splitlines():
            path, size = line.rsplit("\t", 1)
            synced[path] = int(size)
    cut = 0
    for path in directory.iterdir():
        if path.name == "LOCK":
            continue
        size = path.stat().st_size
        keep = synced.get(str(path))
        if keep is None:
            if path.name.startswith("wal-") or path.suffix == ".tmp":
                path.unlink()  # a file created but never synced does not survive
                cut += size
            continue
        if size > keep:
            os.truncate(path, keep)
            cut += size - keep
    return cut


async def test_power_loss_drops_only_unsynced_bytes(tmp_path: Path) -> None:
    rng = random.Random(7)
    data_dir = tmp_path / "data"
    history = History()
    total_cut = 0
    for round_number in range(4):
        trace = tmp_path / f"trace-{round_number}"
        await _round(data_dir, history, rng, f"power{round_number}", load_seconds=rng.uniform(0.5, 1.0),
                     env={"LOCKSTORE_SYNC_TRACE": str(trace)})
        total_cut += _power_loss(trace, data_dir / "wal")
    await _final_check(data_dir, history, "after power losses")
    assert len(history.created) > 20


@pytest.mark.slow
async def test_kill_minus_9_soak_with_mixed_load(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    history = History()
    with trio.fail_after(170):
        for iteration in range(50):
            await _round(data_dir, history, rng, f"soak{iteration}", load_seconds=rng.uniform(0.05, 0.6))
        await _final_check(data_dir, history, f"after the soak (seed {seed})")
    assert len(history.created) > 200, seed
