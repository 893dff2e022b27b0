"""The start-up scenario's two halves outside the load: a data directory to start on, and what the
service's start-up log says about how long each phase took.

`build` writes `records` live records as snapshots (3/4 locks, 1/4 rules) and a log tail of
`log_records` events after them (lock creates and their expiry: a day of churn in miniature), the way
a long-running service leaves its data directory. With the default snapshot threshold (100,000 records)
a restart never meets a longer tail than that, so `log_records = 100,000` is the worst case.

`phases` reads the service's own start-up lines ("loaded ...; replayed ... in X s; indexed ... in Y s;
... start-up state ready in Z s"), so the figures are the ones an operator sees in the log.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import trio

from actors.records import Lock, LocksCreated, LocksRemoved, Rule, encode_event
from actors.snapshot_capture import LOCKS, STORE, Capture, write_capture
from bench.workload import startup_owner
from wal.log import WriteAheadLog

FAR_FUTURE = 4_000_000_000  # epoch seconds (2096): built locks never expire during a run


def build(data_dir: Path, records: int, log_records: int) -> None:
    """A data directory (`lockstore serve --data-dir data_dir`) holding `records` live records in
    snapshots and `log_records` log events after them."""
    directory = data_dir / "wal"
    locks_n = records * 3 // 4
    locks = [Lock(i, f"provider{i % 1000}|service{i}|1.0.0", startup_owner(i), FAR_FUTURE + i % 86400)
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
            for n in range(log_records // 2):  # a lock created, then expired
                lock_id = locks_n + 1 + n
                wal.append(encode_event(LocksCreated((Lock(lock_id, f"churn|s{n}|1.0.0", "Churn", FAR_FUTURE),))))
                lsn = wal.append(encode_event(LocksRemoved((lock_id,), expired=True)))
                if n % 1000 == 999:
                    await wal.wait_durable(lsn)
            await wal.aclose()

    trio.run(churn)


@dataclass(frozen=True)
class Phases:
    snapshot_load_s: float
    log_replay_s: float
    index_s: float
    state_ready_s: float
    replayed: int  # log records replayed after the snapshots
    locks: int
    rules: int


_LOADED = re.compile(
    r"loaded (?:(?P<snapshot>.*?) in (?P<snapshot_s>[\d.]+) s|no snapshot); replayed (?P<replayed>\d+) records .*? "
    r"in (?P<replay_s>[\d.]+) s; indexed (?P<locks>\d+) locks, (?P<rules>\d+) rules in (?P<index_s>[\d.]+) s; "
    r".*?start-up state ready in (?P<ready_s>[\d.]+) s"
)


def phases(log: Iterable[str]) -> Phases | None:
    """The start-up phases from the service's log lines; None if its start-up line is not among them."""
    for line in log:
        found = _LOADED.search(line)
        if found is not None:
            return Phases(
                snapshot_load_s=float(found["snapshot_s"] or 0.0),
                log_replay_s=float(found["replay_s"]),
                index_s=float(found["index_s"]),
                state_ready_s=float(found["ready_s"]),
                replayed=int(found["replayed"]),
                locks=int(found["locks"]),
                rules=int(found["rules"]),
            )
    return None
