"""EIO / ENOSPC on write or fsync at call N (once, and forever): the real log and both real actors.

Invariants after every run: no acknowledged change is missing from the log, no failed change is in
it, and the actors' memory equals the state rebuilt from the durable log alone (the undo worked).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import trio

from actors.clock import ManualClock
from actors.lock_actor import LockActor
from actors.locks import LockTable
from actors.records import (
    Lock,
    LockFilter,
    LocksCreated,
    LocksRemoved,
    NewLock,
    NewRule,
    PageRequest,
    Rule,
    RuleFilter,
    decode_event,
)
from actors.snapshots import Replayer
from actors.store import RuleTable
from actors.store_actor import StoreActor
from wal import failpoints
from wal.batches import parse_segment
from wal.errors import LogUnavailable
from wal.log import WriteAheadLog
from wal.recovery import recover
from wal.segment import list_segments, read_segment

ALL_LOCKS = PageRequest(0, 100_000, "id", False)
ALL_RULES = PageRequest(0, 100_000, "id", False)
FAR = 4_000_000_000


@pytest.fixture(autouse=True)
def _disarm() -> Iterator[None]:
    yield
    failpoints.configure(None)


def _rebuilt(directory: Path) -> tuple[LockTable, RuleTable]:
    locks, store = LockTable(), RuleTable()
    recover(directory, sink=Replayer(locks, store, {}))
    return locks, store


async def _workload(locks: LockActor, store: StoreActor, rng: random.Random, tag: str) -> tuple[int, int]:
    """Mixed writes from several tasks; returns (acknowledged, refused)."""
    counts = [0, 0]
    ids = iter(range(1, 1_000_000))

    async def client(worker: int) -> None:
        for step in range(12):
            kind = rng.randrange(4)
            try:
                if kind == 0:
                    await locks.create([NewLock(f"{tag}w{worker}s{step}|svc|1", "owner", FAR)])
                elif kind == 1:
                    await locks.remove("owner", [f"{tag}w{worker}s{rng.randrange(max(step, 1))}|svc|1"])
                elif kind == 2:
                    await store.create([NewRule(f"{tag}c{worker}", f"p|svc{step}|1", f"svc{step}", 1)], "S")
                else:
                    found, _ = await store.query(RuleFilter(consumers=(f"{tag}c{worker}",)), ALL_RULES)
                    if found:
                        await store.modify_priorities({found[0].id: next(ids) % 50 + 2}, "S")
                counts[0] += 1
            except LogUnavailable:
                counts[1] += 1
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        for worker in range(6):
            nursery.start_soon(client, worker)
    return counts[0], counts[1]


async def _state(locks: LockActor, store: StoreActor) -> tuple[list[Lock], list[Rule]]:
    return (await locks.query(LockFilter(), ALL_LOCKS))[0], (await store.query(RuleFilter(), ALL_RULES))[0]


@pytest.mark.parametrize("errno_name", ["EIO", "ENOSPC"])
@pytest.mark.parametrize("point", ["io.write", "io.fsync"])
async def test_injected_errors_at_call_n_once_and_forever(tmp_path: Path, point: str, errno_name: str) -> None:
    rng = random.Random(f"{point}{errno_name}")
    for n in (1, 2, 3, 5, 8, 13):
        for forever in (False, True):
            directory = tmp_path / f"n{n}{forever}"
            wal, _ = WriteAheadLog.open(directory, segment_bytes=2048)
            clock = ManualClock()
            locks = LockActor(LockTable(), wal, clock)
            store = StoreActor(RuleTable(), wal, clock)
            async with trio.open_nursery() as nursery:
                await nursery.start(wal.run)
                await nursery.start(locks.run)
                await nursery.start(store.run)
                failpoints.configure(f"{point}={errno_name}@{n}{'+' if forever else ''}")
                _, refused = await _workload(locks, store, rng, "a")
                assert wal.failures >= 1 and refused >= 1, (n, forever)
                if forever:
                    assert not wal.available
                    # Reads keep working on durable state while writes are refused.
                    seen = await _state(locks, store)
                    assert seen == _state_of(*_rebuilt_view(directory, wal))
                failpoints.configure(None)
                with trio.fail_after(10):
                    while not wal.available:
                        await trio.sleep(0.01)
                more, _ = await _workload(locks, store, rng, "b")
                assert more > 0
                memory = await _state(locks, store)
                locks.mailbox.close()
                store.mailbox.close()
                await wal.aclose()
            assert memory == _state_of(*_rebuilt(directory)), (n, forever)


def _rebuilt_view(directory: Path, wal: WriteAheadLog) -> tuple[LockTable, RuleTable]:
    """The durable log as another reader sees it while the writer is paused (reads only)."""
    locks, store = LockTable(), RuleTable()
    replay = Replayer(locks, store, {})
    for _, path in list_segments(directory):
        parsed = parse_segment(read_segment(path))
        for lsn, payload in zip(parsed.lsns, parsed.payloads, strict=True):
            if lsn <= wal.durable_lsn and not wal.is_lost(lsn):
                replay(lsn, payload)
    return locks, store


def _state_of(locks: LockTable, store: RuleTable) -> tuple[list[Lock], list[Rule]]:
    return locks.query(LockFilter(), ALL_LOCKS, 0)[0], store.query(RuleFilter(), ALL_RULES)[0]


# --------------------------------------------------------------------------- reads while the log fails


def _durable_states(directory: Path, wal: WriteAheadLog) -> tuple[set[bytes], set[bytes]]:
    """Every state each table passed through in the durable log (encoded query results), prefix by prefix."""
    locks, store = LockTable(), RuleTable()
    lock_states = {msgspec.msgpack.encode(locks.query(LockFilter(), ALL_LOCKS, 0)[0])}
    rule_states = {msgspec.msgpack.encode(store.query(RuleFilter(), ALL_RULES)[0])}
    for _, path in list_segments(directory):
        parsed = parse_segment(read_segment(path))
        for lsn, payload in zip(parsed.lsns, parsed.payloads, strict=True):
            if lsn > wal.durable_lsn or wal.is_lost(lsn):
                continue
            event = decode_event(payload)
            if isinstance(event, LocksCreated | LocksRemoved):
                locks.apply(event)
                lock_states.add(msgspec.msgpack.encode(locks.query(LockFilter(), ALL_LOCKS, 0)[0]))
            else:
                store.apply(event)
                rule_states.add(msgspec.msgpack.encode(store.query(RuleFilter(), ALL_RULES)[0]))
    return lock_states, rule_states


@pytest.mark.parametrize("forever", [False, True])
@pytest.mark.parametrize("point", ["io.write", "io.fsync"])
async def test_reads_behind_a_failing_batch_are_answered_from_durable_state(
    tmp_path: Path, point: str, forever: bool
) -> None:
    """Reads queued behind a write batch that fails are answered (never 503) with durable state only."""
    directory = tmp_path / "wal"
    wal, _ = WriteAheadLog.open(directory)
    clock = ManualClock()
    locks = LockActor(LockTable(), wal, clock)
    store = StoreActor(RuleTable(), wal, clock)
    lock_reads: list[bytes] = []
    rule_reads: list[bytes] = []
    refused_reads = 0
    reads_after_failure = 0
    writers_done = trio.Event()

    async def writer(worker: int) -> None:
        for step in range(40):
            try:
                if step % 3 == 2:
                    await locks.remove("owner", [f"w{worker}s{step - 1}|svc|1"])
                else:
                    await locks.create([NewLock(f"w{worker}s{step}|svc|1", "owner", FAR)])
                await store.create([NewRule(f"c{worker}", f"p|svc{step}|1", f"svc{step}", step + 1)], "S")
            except LogUnavailable:
                pass
            await trio.sleep(0)

    async def reader() -> None:
        nonlocal refused_reads, reads_after_failure
        while not writers_done.is_set():
            failed_before = wal.failures
            try:
                lock_reads.append(msgspec.msgpack.encode((await locks.query(LockFilter(), ALL_LOCKS))[0]))
                rule_reads.append(msgspec.msgpack.encode((await store.query(RuleFilter(), ALL_RULES))[0]))
            except LogUnavailable:
                refused_reads += 1
            reads_after_failure += failed_before > 0
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        await nursery.start(wal.run)
        await nursery.start(locks.run)
        await nursery.start(store.run)
        failpoints.configure(f"{point}=ENOSPC@6{'+' if forever else ''}")
        async with trio.open_nursery() as clients:
            for _ in range(4):
                clients.start_soon(reader)
            async with trio.open_nursery() as writers:
                for worker in range(4):
                    writers.start_soon(writer, worker)
            writers_done.set()
        failpoints.configure(None)
        with trio.fail_after(10):
            while not wal.available:
                await trio.sleep(0.01)
        locks.mailbox.close()
        store.mailbox.close()
        await wal.aclose()

    assert wal.failures >= 1 and reads_after_failure > 0
    assert refused_reads == 0, f"{refused_reads} reads got 503 while the log failed"
    lock_states, rule_states = _durable_states(directory, wal)
    assert all(state in lock_states for state in lock_reads), "a lock read revealed a change that is not durable"
    assert all(state in rule_states for state in rule_reads), "a rule read revealed a change that is not durable"
