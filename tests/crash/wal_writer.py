"""Crash-test writer: appends numbered records until killed, printing each number once it is durable.

Run as `python -m tests.crash.wal_writer <directory>`. Record n is the n-th record of the whole log
(counting what recovery found), so a correct log always holds records 0, 1, 2, ... in order.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

from actors.records import Lock, LocksCreated, encode_event
from wal.log import WriteAheadLog

WORKERS = 16
SEGMENT_BYTES = 32 << 10


def record(n: int) -> bytes:
    """The payload of record n: deterministic, of varying size, so damage is detectable."""
    owner = "owner-" + "x" * (n * 37 % 400)
    return encode_event(LocksCreated((Lock(n, f"provider|service-{n}|1.0.0", owner, 1_700_000_000 + n),)))


async def main(directory: Path) -> None:
    log, recovery = WriteAheadLog.open(directory, segment_bytes=SEGMENT_BYTES)
    next_number = recovery.frames
    os.write(1, f"ready {next_number}\n".encode())

    async def worker() -> None:
        nonlocal next_number
        while True:
            number = next_number
            next_number += 1
            await log.wait_durable(log.append(record(number)))
            os.write(1, f"{number}\n".encode())  # only now is it acknowledged

    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        for _ in range(WORKERS):
            nursery.start_soon(worker)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
