"""Snapshot files, start-up from snapshot + log, fallback to the older snapshot, compaction, check/dump."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import trio

from actors.locks import LockTable
from actors.records import Lock, LocksCreated, LocksRemoved, Rule, RulesCreated, encode_event
from actors.snapshots import (
    LOCKS,
    STORE,
    Capture,
    Snapshotter,
    capture_locks,
    capture_rules,
    load_snapshots,
    open_state,
    write_capture,
)
from actors.store import RuleTable
from transports import admin
from wal.errors import WalCorruption
from wal.log import WriteAheadLog
from wal.segment import list_segments
from wal.snapshot import list_snapshots, read_snapshot, write_snapshot


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
