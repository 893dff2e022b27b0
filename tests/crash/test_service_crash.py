"""kill -9 the real service under concurrent writes; after restart every acknowledged lock is there
and no request is half-applied (each create carries several locks: all or none)."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import httpx
import pytest
import trio

from tests.crash.service_process import all_locks, drain, run_to_exit, start

SYSOP = {"Authorization": "Bearer SYSTEM//Sysop"}
LOCK = "/serviceorchestration/orchestration/mgmt/lock"
PER_REQUEST = 3
EXPIRES = "2999-01-01T00:00:00Z"


async def writer(client: httpx.AsyncClient, name: str, acknowledged: dict[str, int], attempted: set[str]) -> None:
    """Create requests of PER_REQUEST locks until the connection dies; record the acknowledged ones."""
    for n in range(10_000):
        batch = f"{name}N{n}"
        attempted.add(batch)
        body = {"locks": [{"serviceInstanceId": f"{batch}I{i}|svc|1", "owner": "Owner", "expiresAt": EXPIRES}
                          for i in range(PER_REQUEST)]}
        try:
            response = await client.post(f"{LOCK}/create", json=body, headers=SYSOP)
        except httpx.TransportError:
            return
        assert response.status_code == 201, response.text
        acknowledged[batch] = len(response.json()["entries"])


@pytest.mark.slow
async def test_kill_minus_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    data_dir = tmp_path / "data"
    acknowledged: dict[str, int] = {}
    attempted: set[str] = set()
    highest_id = 0
    for round_number in range(6):
        process, url = await start(data_dir)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, process)
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                locks = await all_locks(url)
                by_batch: dict[str, int] = {}
                for lock in locks:
                    by_batch[str(lock["serviceInstanceId"]).split("I")[0]] = by_batch.get(
                        str(lock["serviceInstanceId"]).split("I")[0], 0) + 1
                # every acknowledged request is there, whole; unacknowledged ones are whole or absent
                for batch, count in acknowledged.items():
                    assert by_batch.get(batch) == count, f"round {round_number}: lost {batch}"
                assert all(count == PER_REQUEST for count in by_batch.values()), "a request was half-applied"
                assert set(by_batch) <= attempted
                ids = [int(str(lock["id"])) for lock in locks]
                assert ids == sorted(set(ids))
                if ids:
                    assert ids[0] > 0 and min(ids) > 0
                    assert max(ids) >= highest_id
                    highest_id = max(ids)

                async with trio.open_nursery() as writers:
                    for w in range(8):
                        writers.start_soon(writer, client, f"R{round_number}W{w}", acknowledged, attempted)
                    await trio.sleep(rng.uniform(0.3, 1.2))
                    process.send_signal(signal.SIGKILL)
            await process.wait()
            nursery.cancel_scope.cancel()
    assert len(acknowledged) > 50  # the test really wrote under load


async def test_mid_log_corruption_refuses_to_start_with_file_and_offset(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process, url = await start(data_dir)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, process)
        async with httpx.AsyncClient(base_url=url) as client:
            for n in range(5):
                body = {"locks": [{"serviceInstanceId": f"P{n}|svc|1", "owner": "O", "expiresAt": EXPIRES}]}
                assert (await client.post(f"{LOCK}/create", json=body, headers=SYSOP)).status_code == 201
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
        nursery.cancel_scope.cancel()
    segment = sorted((data_dir / "wal").glob("wal-*.log"))[0]
    data = bytearray(segment.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside an early frame, with good frames after it
    segment.write_bytes(bytes(data))
    result = run_to_exit(data_dir)
    assert result.returncode == 1
    assert "refusing to start" in result.stderr
    assert segment.name in result.stderr and "offset" in result.stderr
    assert "Traceback" not in result.stderr
