"""Start-up (snapshot + segments) time and peak memory, and request latency while a snapshot is written.

    python -m bench.replay [--sizes 100000,1000000] [--tails 50000,200000]

For each size N and tail T: a data directory with N live records in snapshots (3/4 locks, 1/4 rules)
and a log tail of T events after them (lock creates and their expiry: churn). A fresh process loads
it (`open_state`, what `serve` does) and reports the phases and peak RSS; then the real
`lockstore serve` is started on it and timed until it logs "serving HTTP" (ready). The default
snapshot threshold (200,000 records) bounds the tail a restart can meet, so T = 200,000 is the worst
case with default settings. Then, at the largest size, the service runs in-process with a low
snapshot threshold while a trio client sends lock queries and creates; latency is split by whether
a snapshot was being captured/written at the time, and the longest time one capture message held
an actor is reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

import httpx
import trio

from actors.clock import SystemClock
from actors.records import Lock, LocksCreated, LocksRemoved, Rule, encode_event
from actors.snapshot_capture import LOCKS, STORE, Capture, write_capture
from bench.harness import lockstore, machine_note, markdown_table, rss_mib, server, summarize
from transports.config import Settings
from transports.service import run_service
from wal.log import WriteAheadLog

AUTH = {"Authorization": "Bearer SYSTEM//Sysop"}
LOCK = "/serviceorchestration/orchestration/mgmt/lock"


def build(directory: Path, records: int, tail: int) -> None:
    locks_n = records * 3 // 4
    locks = [Lock(i, f"provider{i % 1000}|service{i}|1.0.0", f"Owner{i % 5000}", 4_000_000_000 + i % 86400)
             for i in range(1, locks_n + 1)]
    rules = [Rule(str(uuid.UUID(int=i * 7919 + 1)), f"Consumer{i % 20000}", f"service{i % 500}",
                  f"Provider{i % 300}|service{i % 500}|1.0.0", i // 20000 + 1, "Sysop", "Sysop",
                  1_700_000_000, 1_700_000_000)
             for i in range(records - locks_n)]
    log, _ = WriteAheadLog.open(directory, min_next_lsn=10, from_lsn=10)
    trio.run(log.aclose)
    write_capture(directory, Capture(LOCKS, 9, locks_n + 1, locks))
    write_capture(directory, Capture(STORE, 9, 0, rules))
    del locks, rules

    async def churn() -> None:
        wal, _ = WriteAheadLog.open(directory, from_lsn=10, min_next_lsn=10)
        async with trio.open_nursery() as nursery:
            await nursery.start(wal.run)
            for n in range(tail // 2):  # a day of churn in miniature: create, then expire
                lock_id = locks_n + 1 + n
                wal.append(encode_event(LocksCreated((Lock(lock_id, f"churn|s{n}|1.0.0", "Churn", 4_000_000_000),))))
                lsn = wal.append(encode_event(LocksRemoved((lock_id,), expired=True)))
                if n % 1000 == 999:
                    await wal.wait_durable(lsn)
            await wal.aclose()

    trio.run(churn)


LOAD = """
import json, resource, sys, time
from pathlib import Path
from actors.snapshots import open_state
import trio
t = time.perf_counter()
state = open_state(Path(sys.argv[1]))
seconds = time.perf_counter() - t
trio.run(state.wal.aclose)
print(json.dumps({"seconds": seconds, "snapshot_s": state.loaded.seconds, "replay_s": state.recovery.seconds,
                  "index_s": state.indexing, "replayed": state.replayed, "locks": len(state.locks),
                  "rules": len(state.store), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure_load(directory: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", LOAD, str(directory)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure_serve(data_dir: Path) -> tuple[float, float]:
    """Seconds from starting `lockstore serve` on `data_dir` until it serves HTTP, and its RSS (MiB) then."""
    started = time.perf_counter()
    with server(lockstore(data_dir)) as running:
        ready = time.perf_counter() - started
        return ready, rss_mib(running.process.pid)


async def latency_during_snapshots(data_dir: Path, seconds: float) -> tuple[list[float], list[float], float, int]:
    settings = Settings(host="127.0.0.1", port=0, data_dir=str(data_dir), snapshot_every_records=1000,
                        log_level="WARNING", access_log=False)
    during: list[float] = []
    idle: list[float] = []
    stall = 0.0
    async with trio.open_nursery() as nursery:
        running = await nursery.start(partial(run_service, settings, clock=SystemClock(), handle_signals=False))
        snapshotter = running.snapshotter
        async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=30) as client:
            deadline = trio.current_time() + seconds
            counter = 0

            async def worker(w: int) -> None:
                nonlocal counter, stall
                while trio.current_time() < deadline:
                    counter += 1
                    if counter % 2:
                        body = {"locks": [{"serviceInstanceId": f"Bench{w}x{counter}|svc|1", "owner": "Bench",
                                           "expiresAt": "2999-01-01T00:00:00Z"}]}
                        path = f"{LOCK}/create"
                    else:
                        body = {"pagination": {"page": 0, "size": 10}, "owners": ["Owner7"]}
                        path = f"{LOCK}/query"
                    busy = snapshotter.running
                    started = time.perf_counter()
                    response = await client.post(path, json=body, headers=AUTH)
                    elapsed = time.perf_counter() - started
                    assert response.status_code in (200, 201), response.text
                    (during if busy or snapshotter.running else idle).append(elapsed)
                    stall = max(stall, snapshotter.last_stall)

            async with trio.open_nursery() as workers:
                for w in range(8):
                    workers.start_soon(worker, w)
        stall = max(stall, snapshotter.last_stall)
        taken = snapshotter.taken
        running.shutdown.set()
    return during, idle, stall, taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--tails", "--tail", default="50000,100000,200000",
                        help="log events after the snapshots, a row each (100000 = the default snapshot threshold: "
                        "the worst tail a restart replays)")
    parser.add_argument("--seconds", type=float, default=20.0, help="latency run length")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tails = [int(t) for t in args.tails.split(",")]
    print(machine_note(), file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lockstore-replay-") as tmp:
        for size in sizes:
            for tail in tails:
                data_dir = Path(tmp) / f"n{size}-t{tail}"
                started = time.perf_counter()
                build(data_dir / "wal", size, tail)
                print(f"built {size} records + {tail} log events in {time.perf_counter() - started:.1f} s",
                      file=sys.stderr)
                m = measure_load(data_dir / "wal")
                ready, rss = measure_serve(data_dir)
                rows.append([f"{size:,}", f"{tail:,}", m["snapshot_s"], m["replay_s"], m["index_s"], m["seconds"],
                             m["rss_mb"], ready, rss, int(m["locks"]), int(m["rules"])])
        print(markdown_table(["live records", "log events after", "snapshot load s", "log replay s", "index s",
                              "state ready s", "peak RSS MB", "serve ready s", "serve RSS MB", "locks", "rules"],
                             rows))
        during, idle, stall, taken = trio.run(
            latency_during_snapshots, Path(tmp) / f"n{sizes[-1]}-t{tails[0]}", args.seconds
        )
        lat = [["no snapshot running", *_row(idle)], ["snapshot being written", *_row(during)]]
        print()
        print(f"request latency at {sizes[-1]:,} records, 8 concurrent HTTP clients (lock create + query), "
              f"{taken} snapshot(s) during the run; longest time one capture message held an actor: "
              f"{stall * 1e3:.1f} ms")
        print(markdown_table(["while", "requests", "p50 ms", "p99 ms", "max ms"], lat))


def _row(samples: list[float]) -> list[object]:
    if not samples:
        return [0, None, None, None]
    s = summarize(samples)
    return [s.samples, s.p50, s.p99, s.max]


if __name__ == "__main__":
    main()
