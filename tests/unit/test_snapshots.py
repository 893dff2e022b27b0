"""Snapshot files, start-up from snapshot + log, fallback to the older snapshot, compaction, check/dump,
and snapshots streamed out of live actors while they keep serving."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import trio

from actors.clock import ManualClock
from actors.lock_actor import LockActor
from actors.locks import LockTable
from actors.records import Lock, LocksCreated, LocksRemoved, NewLock, NewRule, Rule, RulesCreated, encode_event
from actors.runtime import ActorStopped
from actors.snapshot_capture import (
    LOCKS,
    STORE,
    Capture,
    capture_locks,
    capture_rules,
    decode_records,
    write_capture,
    write_streamed,
)
from actors.snapshots import Snapshotter, load_snapshots, open_state
from actors.store import RuleTable
from actors.store_actor import StoreActor
from transports import admin
from wal.errors import WalCorruption
from wal.log import WriteAheadLog
from wal.segment import list_segments
from wal.snapshot import SnapshotWriter, list_snapshots, read_snapshot, write_snapshot


def _lock(n: int) -> Lock:
    return Lock(n, f"p|svc-{n}|1.0.0", f"owner-{n % 3}", 1_900_000_000 + n)


def _rule(n: int) -> Rule:
    return Rule(f"{n:08d}-0000-4000-8000-000000000000", f"c{n}", "svc", f"p|svc|{n}.0.0", 1, "S", "S", n, n)


def test_snapshot_file_round_trip_and_every_truncation_is_refused(tmp_path: Path) -> None:
    chunks = [b"a" * 100, b"", b"b" * 7]
    path = write_snapshot(tmp_path, "locks", 42, b"meta", chunks)
    assert path.name == "snap-locks-00000000000000000042.snap"
    snap = read_snapshot(path)
    assert (snap.name, snap.lsn, snap.meta, snap.chunks) == ("locks", 42, b"meta", chunks)
    data = path.read_bytes()
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(WalCorruption) as caught:
            read_snapshot(path)
        assert caught.value.path == path
    assert not list(tmp_path.glob("*.tmp"))


def test_snapshot_write_error_leaves_no_file(tmp_path: Path) -> None:
    def chunks() -> list[bytes]:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_snapshot(tmp_path, "locks", 1, b"", (c for c in chunks()))
    assert list(tmp_path.iterdir()) == []


def test_snapshot_writer_abort_and_failed_commit_leave_no_file(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path, "locks", 5, b"m")
    writer.write_chunk(b"abc")
    assert writer.temp.exists() and not writer.final.exists()
    writer.abort()
    writer.abort()  # idempotent
    assert list(tmp_path.iterdir()) == []
    writer = SnapshotWriter(tmp_path, "locks", 6, b"m")
    writer.write_chunk(b"abc")
    writer.temp.unlink()  # the rename inside commit fails
    with pytest.raises(FileNotFoundError):
        writer.commit()
    assert list(tmp_path.iterdir()) == []
    writer = SnapshotWriter(tmp_path, "locks", 7, b"m")
    for chunk in (b"a", b"", b"bc"):
        writer.write_chunk(chunk)
    path = writer.commit()
    assert read_snapshot(path).chunks == [b"a", b"", b"bc"] and list(tmp_path.iterdir()) == [path]


async def test_snapshot_streamed_from_live_actors_holds_exactly_the_state_of_its_lsn(tmp_path: Path) -> None:
    """Creates, removals, priority changes and expiry purges run while the capture is read out in
    small pieces; the files hold the tables as of the capture's LSN, and the actors' tables end
    up unchanged by the capture (journaling stopped)."""
    directory = tmp_path / "wal"
    wal, _ = WriteAheadLog.open(directory)
    clock = ManualClock(1_900_000_000.0)
    lock_table = LockTable.restore([_lock(n) for n in range(1, 3001)], 3001)
    rule_table = RuleTable(_rule(n) for n in range(1, 801))
    locks = LockActor(lock_table, wal, clock)
    store = StoreActor(rule_table, wal, clock, new_id=lambda: f"{next(fresh):08d}-1111-4000-8000-000000000000")
    fresh = iter(range(10**7, 10**8))
    async with trio.open_nursery() as nursery:
        await nursery.start(wal.run)
        await nursery.start(locks.run)
        await nursery.start(store.run)
        await locks.create([NewLock(f"before|{n}|1", "o", 1_900_000_100) for n in range(5)])
        lock_capture, rule_capture = await locks.capture(), await store.capture()
        lock_state = {lock.id: lock for lock in lock_table.locks()}
        rule_state = {rule.id: rule for rule in rule_table.rules()}
        assert lock_capture.held < 0.05 and lock_capture.count == len(lock_state) == 3005
        lock_capture.stream._piece = rule_capture.stream._piece = 50  # type: ignore[union-attr]
        written: list[Path] = []

        async def write(capture: Capture) -> None:
            written.append(await write_streamed(directory, capture))

        async def churn() -> None:
            for n in range(40):
                await locks.create([NewLock(f"during|{n}|1", "o", 1_900_000_100)])
                await locks.remove("o", [f"before|{n % 5}|1"])
                await store.create([NewRule(f"new{n}", f"p|svc|{n}", "svc", 1)], "S")
                await store.modify_priorities({_rule(800 - n).id: 7}, "S")
                await store.remove([_rule(n + 400).id])
                clock.advance(30)  # locks 1..~1200 expire and are purged meanwhile
                await locks.purge_now()
                await trio.sleep(0)

        async with trio.open_nursery() as work:
            work.start_soon(write, lock_capture)
            work.start_soon(write, rule_capture)
            work.start_soon(churn)
        assert len(lock_table) < 3000  # the churn did change the tables while they were read
        await lock_capture.stream.close()  # type: ignore[union-attr]
        await rule_capture.stream.close()  # type: ignore[union-attr]
        assert lock_table._capture is None and rule_table._capture is None
        assert lock_capture.stream.held < 0.05  # type: ignore[union-attr]
        locks.mailbox.close()
        store.mailbox.close()
        await wal.aclose()
    by_name = {read_snapshot(path).name: read_snapshot(path) for path in written}
    got_locks = decode_records(LOCKS, by_name[LOCKS].chunks)
    got_rules = decode_records(STORE, by_name[STORE].chunks)
    assert len(got_locks) == len(lock_state) and {lock.id: lock for lock in got_locks} == lock_state
    assert len(got_rules) == len(rule_state) and {rule.id: rule for rule in got_rules} == rule_state
    assert by_name[LOCKS].lsn == lock_capture.lsn


async def test_snapshotter_streams_from_actors_and_an_actor_stopping_midway_leaves_no_half_file(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "wal"
    wal, _ = WriteAheadLog.open(directory)
    lock_table = LockTable.restore([_lock(n) for n in range(1, 2001)], 2001)
    locks = LockActor(lock_table, wal, ManualClock(1_900_000_000.0))
    store = StoreActor(RuleTable([_rule(1)]), wal, ManualClock())

    async def capture_in_small_pieces() -> Capture:
        capture = await locks.capture()
        capture.stream._piece = 10  # type: ignore[union-attr]
        return capture

    snapshotter = Snapshotter(directory, wal, [capture_in_small_pieces, store.capture], every_records=10**9,
                              every_bytes=1 << 40)
    async with trio.open_nursery() as nursery:
        await nursery.start(wal.run)
        await nursery.start(locks.run)
        await nursery.start(store.run)
        wal.append(b"x")  # LSN 1: something for the snapshots to cover
        written = await snapshotter.snapshot_now()
        assert [read_snapshot(path).name for path in written] == [LOCKS, STORE]
        assert 0 < snapshotter.last_stall < 0.05  # the longest single message, not the whole read-out
        assert lock_table._capture is None
        await locks.create([NewLock("new|svc|1", "o", 1_900_000_100)])  # LSN 2: the next snapshot is due

        async def stop_the_lock_actor_midway() -> None:
            while lock_table._capture is None or not lock_table._capture._started:
                await trio.sleep(0)
            locks.mailbox.close()

        nursery.start_soon(stop_the_lock_actor_midway)
        with pytest.raises(ActorStopped):
            await snapshotter.snapshot_now()
        assert not list(directory.glob("*.tmp")) and list_snapshots(directory, LOCKS)[-1].path == written[0]
        store.mailbox.close()
        await wal.aclose()


async def _log_events(directory: Path, events: list[bytes], *, segment_bytes: int = 64 << 20) -> None:
    loaded = load_snapshots(directory) if directory.exists() else None
    log, _ = WriteAheadLog.open(
        directory, segment_bytes=segment_bytes,
        from_lsn=loaded.from_lsn if loaded else 1, min_next_lsn=loaded.min_next_lsn if loaded else 1,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        for payload in events:  # one batch each, so that small segments roll over
            await log.wait_durable(log.append(payload))
        await log.aclose()


async def test_start_up_from_snapshots_skips_covered_events_per_actor(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    events = [encode_event(LocksCreated((_lock(n),))) for n in range(1, 6)]
    events.append(encode_event(RulesCreated((_rule(1),))))
    await _log_events(directory, events)  # LSNs 1..6
    locks = LockTable.restore([_lock(n) for n in range(1, 4)], 4)  # as of LSN 3
    write_capture(directory, capture_locks(locks, 3))
    write_capture(directory, capture_rules(RuleTable(), 3))
    await _log_events(directory, [encode_event(LocksRemoved((2,)))])  # LSN 7
    state = open_state(directory)
    try:
        assert state.loaded.lsns == {LOCKS: 3, STORE: 3}
        assert [lock.id for lock in state.locks.locks()] == [1, 3, 4, 5]
        assert [rule.id for rule in state.store.rules()] == [_rule(1).id]
        assert state.replayed == 4  # LSNs 4..7, nothing twice
        assert state.wal.append(b"x") == 8
    finally:
        await state.wal.aclose()


async def test_truncated_newest_snapshot_falls_back_to_the_older_one_and_its_segments(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    await _log_events(directory, [encode_event(LocksCreated((_lock(n),))) for n in range(1, 11)], segment_bytes=300)
    write_capture(directory, Capture(LOCKS, 4, 5, [_lock(n) for n in range(1, 5)]))
    write_capture(directory, Capture(STORE, 4, 0, []))
    newest = write_capture(directory, Capture(LOCKS, 8, 9, [_lock(n) for n in range(1, 9)]))
    write_capture(directory, Capture(STORE, 8, 0, []))
    removed = Snapshotter(directory, None, [], every_records=1, every_bytes=1).compact()  # type: ignore[arg-type]
    assert all(path.name.startswith("wal-") for path in removed)  # only segments covered by LSN 4
    assert 1 < list_segments(directory)[0][0] <= 5
    newest.write_bytes(newest.read_bytes()[:-5])
    state = open_state(directory)
    try:
        assert state.loaded.lsns[LOCKS] == 4
        assert [lock.id for lock in state.locks.locks()] == list(range(1, 11))
        assert any(damage.path == newest for damage in state.loaded.damaged)
    finally:
        await state.wal.aclose()


async def test_no_usable_snapshot_and_no_log_start_refuses_with_the_snapshot_named(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    await _log_events(directory, [encode_event(LocksCreated((_lock(n),))) for n in range(1, 11)], segment_bytes=300)
    only = write_capture(directory, Capture(LOCKS, 9, 10, [_lock(n) for n in range(1, 10)]))
    write_capture(directory, Capture(STORE, 9, 0, []))
    segments = list_segments(directory)
    assert len(segments) > 2
    for _, path in segments[:-1]:
        path.unlink()  # as compaction would, had there been an older snapshot
    data = bytearray(only.read_bytes())
    data[40] ^= 0xFF
    only.write_bytes(bytes(data))
    with pytest.raises(WalCorruption) as caught:
        open_state(directory)
    assert caught.value.path == only


async def test_snapshotter_triggers_on_growth_keeps_two_and_compacts(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    wal, _ = WriteAheadLog.open(directory, segment_bytes=400)
    locks = LockTable()

    async def capture_lock_state() -> Capture:
        return capture_locks(locks, wal.appended_lsn)

    async def capture_store_state() -> Capture:
        return capture_rules(RuleTable(), wal.appended_lsn)

    snapshotter = Snapshotter(
        directory, wal, [capture_lock_state, capture_store_state], every_records=10, every_bytes=1 << 30
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(wal.run)
        await nursery.start(snapshotter.run)
        for n in range(1, 41):
            event = LocksCreated((_lock(n),))
            lsn = wal.append(encode_event(event))
            locks.apply(event)
            await wal.wait_durable(lsn)
            await trio.sleep(0.01)
        with trio.fail_after(5):
            while snapshotter.taken < 3:
                await trio.sleep(0.01)
        snapshotter.stop()
        await wal.aclose()
    snapshotter.compact()  # a round cut short by stop() is compacted by the next one; do it here
    assert [s.name for s in list_snapshots(directory)].count(LOCKS) == 2
    assert [s.name for s in list_snapshots(directory)].count(STORE) == 2
    older = min(s.lsn for s in list_snapshots(directory))
    assert list_segments(directory)[0][0] <= older + 1  # nothing the older snapshots need was deleted
    assert len(list_segments(directory)) < 40 * 70 // 400  # but covered segments were
    state = open_state(directory)
    try:
        assert [lock.id for lock in state.locks.locks()] == list(range(1, 41))
    finally:
        await state.wal.aclose()


async def test_check_reports_repairs_with_a_backup_and_dump_prints_json_lines(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    await _log_events(directory, [encode_event(LocksCreated((_lock(n),))) for n in range(1, 21)], segment_bytes=500)
    write_capture(directory, Capture(LOCKS, 2, 3, [_lock(1), _lock(2)]))
    write_capture(directory, Capture(STORE, 2, 0, []))
    out = io.StringIO()
    assert admin.check(tmp_path, out=out) == 0
    assert "everything intact" in out.getvalue()

    dumped = io.StringIO()
    assert admin.dump(tmp_path, out=dumped) == 0
    rows = [json.loads(line) for line in dumped.getvalue().splitlines()]
    assert [r["record"]["id"] for r in rows if r["kind"] == "snapshot"] == [1, 2]
    log_rows = [r for r in rows if r["kind"] == "log"]
    assert [r["lsn"] for r in log_rows] == list(range(1, 21))
    assert log_rows[0]["event"]["type"] == "LocksCreated"
    assert log_rows[0]["event"]["locks"][0]["service_instance_id"] == "p|svc-1|1.0.0"

    segments = list_segments(directory)
    victim = segments[1][1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x10
    victim.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    report = io.StringIO()
    assert admin.check(tmp_path, out=report) == 1
    assert f"segment {victim.name}" in report.getvalue() and "CORRUPTION at byte offset" in report.getvalue()
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before  # check changed nothing

    repaired = io.StringIO()
    assert admin.check(tmp_path, do_repair=True, out=repaired) == 0
    backups = list(tmp_path.glob("wal-backup-*"))
    assert len(backups) == 1 and (backups[0] / victim.name).read_bytes() == before[victim.name]
    assert [p for _, p in list_segments(directory)] == [segments[0][1], victim]
    again = io.StringIO()
    assert admin.check(tmp_path, out=again) == 0, again.getvalue()
    state = open_state(directory)
    try:
        ids = [lock.id for lock in state.locks.locks()]
        assert ids == list(range(1, len(ids) + 1)) and len(ids) >= segments[1][0] - 1
    finally:
        await state.wal.aclose()
