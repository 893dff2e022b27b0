"""How `tests/data/format1/data` was made: lockstore 0.1.0 (data format 1, no FORMAT file) served these
requests over HTTP, took a snapshot half-way, and stopped. Kept for the record; the files are what
tests/unit/test_data_format.py opens, so rerunning this with a newer lockstore would defeat the test.

    git archive eaadd88 | tar -x -C /tmp/v010 && cd /tmp/v010   # 0.1.0: before the FORMAT file
    PYTHONPATH=.:$REPO/.venv/lib/python3.11/site-packages $REPO/.venv/bin/python -S \
        $REPO/tests/data/format1/write_fixture.py $REPO/tests/data/format1/data   # -S: not the editable install
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx
import trio

from transports.config.settings import Settings
from transports.service import RunningService, run_service

SYSOP = {"Authorization": "Bearer SYSTEM//Sysop"}
LOCK = "/serviceorchestration/orchestration/mgmt/lock"
STORE = "/serviceorchestration/orchestration/mgmt/simple-store"
FAR = "2099-01-01T00:00:00Z"


async def write(data_dir: Path) -> None:
    settings = Settings(host="127.0.0.1", port=0, data_dir=str(data_dir))
    async with trio.open_nursery() as nursery:
        running: RunningService = await nursery.start(lambda task_status: run_service(
            settings, handle_signals=False, task_status=task_status))
        async with httpx.AsyncClient(base_url=running.http_urls[0], headers=SYSOP) as client:
            async def call(method: str, path: str, body: object = None, status: int = 200) -> object:
                response = await client.request(method, path, json=body)
                assert response.status_code == status, response.text
                return response.json() if response.content else None

            locks = [{"serviceInstanceId": f"TemperatureProvider{n}|kelvinInfo|1.0.0", "owner": "TemperatureManager",
                      "expiresAt": FAR} for n in range(1, 5)]
            await call("POST", f"{LOCK}/create", {"locks": locks}, 201)
            rules = [{"consumer": "TemperatureManager", "serviceInstanceId": f"TemperatureProvider{n}|kelvinInfo|1.0.0",
                      "priority": n} for n in range(1, 4)]
            created = await call("POST", f"{STORE}/create", {"candidates": rules}, 201)
            assert running.snapshotter is not None
            await running.snapshotter.snapshot_now()
            # After the snapshot, in the log only: a remove, a new lock, a priority change, a rule removed.
            await call("DELETE", f"{LOCK}/remove/TemperatureManager?instanceIds=TemperatureProvider1%7CkelvinInfo%7C1.0.0")
            await call("POST", f"{LOCK}/create", {"locks": [{"serviceInstanceId": "Thermostat|setPoint|2.1.0",
                                                             "owner": "HeatingController", "expiresAt": FAR}]}, 201)
            uuids = [entry["id"] for entry in created["entries"]]  # type: ignore[index]
            await call("PUT", f"{STORE}/modify-priorities", {uuids[0]: 7})
            await call("DELETE", f"{STORE}/remove?uuids={uuids[2]}")
        running.shutdown.set()
    (data_dir / "wal" / "LOCK").unlink()


if __name__ == "__main__":
    target = Path(sys.argv[1])
    shutil.rmtree(target, ignore_errors=True)
    trio.run(write, target)
