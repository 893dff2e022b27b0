"""WriteAheadLog under trio: group commit, durability ordering, shutdown and failure."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from actors.records import LocksRemoved, decode_event, encode_event
from wal.batches import SEGMENT_HEADER_SIZE, parse_segment
from wal.errors import LogUnavailable
from wal.log import WriteAheadLog
from wal.recovery import recover
from wal.segment import list_segments, segment_path


def _payload(n: int) -> bytes:
    return encode_event(LocksRemoved((n,)))


def _frames_on_disk(directory: Path) -> int:
    """Committed records on disk (records of a batch whose commit frame is not written yet don't count)."""
    return len(parse_segment(segment_path(directory, 1).read_bytes()).payloads)


async def test_group_commit_with_500_concurrent_appenders(tmp_path: Path) -> None:
    log, recovery = WriteAheadLog.open(tmp_path)
    assert recovery.frames == 0
    acknowledged: list[int] = []

    async def request(n: int) -> None:
        await trio.sleep(0)  # let the appends spread over several scheduling rounds
        lsn = log.append(_payload(n))
        await log.wait_durable(lsn)
        # Durable before visible: the covering batch is written and synced when we get here.
        assert log.durable_lsn >= lsn
        assert log.fsync_count >= 1
        assert _frames_on_disk(tmp_path) >= lsn
        acknowledged.append(n)

    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        async with trio.open_nursery() as clients:
            for n in range(500):
                clients.start_soon(request, n)
        await log.aclose()

    assert sorted(acknowledged) == list(range(500))
    assert log.durable_lsn == log.appended_lsn == 500
    assert log.frames_written == 500
    assert 1 <= log.fsync_count == log.batches < 50
    assert log.bytes_written == segment_path(tmp_path, 1).stat().st_size - SEGMENT_HEADER_SIZE
    replayed = recover(tmp_path).payloads
    assert sorted(decode_event(p).ids[0] for p in replayed) == list(range(500))  # type: ignore[union-attr]


async def test_appends_during_an_fsync_share_the_next_batch(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        first = log.append(b"first")
        await trio.testing.wait_all_tasks_blocked()  # the committer has taken batch 1
        last = 0
        for n in range(99):
            last = log.append(_payload(n))
        await log.wait_durable(first)
        await log.wait_durable(last)
        assert (log.batches, log.fsync_count, log.durable_lsn) == (2, 2, 100)
        await log.aclose()


async def test_wait_durable_for_a_covered_lsn_does_not_checkpoint(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        lsn = log.append(b"x")
        await log.wait_durable(lsn)
        with trio.testing.assert_no_checkpoints():
            await log.wait_durable(lsn)
            await log.wait_durable(0)
        with pytest.raises(ValueError, match="has not been appended"):
            await log.wait_durable(lsn + 1)
        await log.aclose()


async def test_lsns_are_persistent_across_restarts(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path)
    assert [log.append(b"a"), log.append(b"b")] == [1, 2]
    await log.aclose()
    log, recovery = WriteAheadLog.open(tmp_path)
    assert (recovery.payloads, recovery.lsns, recovery.last_lsn) == ([b"a", b"b"], [1, 2], 2)
    assert log.append(b"c") == 3
    await log.aclose()
    log, recovery = WriteAheadLog.open(tmp_path, from_lsn=2)
    assert (recovery.payloads, recovery.lsns) == ([b"b", b"c"], [2, 3])
    assert log.append(b"d") == 4
    await log.aclose()


async def test_min_next_lsn_moves_the_numbering_forward(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path, min_next_lsn=500, from_lsn=500)
    assert log.append(b"x") == 500
    await log.aclose()
    assert [p.name for _, p in list_segments(tmp_path)] == ["wal-00000000000000000500.log"]
    assert recover(tmp_path).lsns == [500]


async def test_aclose_flushes_pending_waiters_and_refuses_later_appends(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path)
    done: list[int] = []

    async def waiter(lsn: int) -> None:
        await log.wait_durable(lsn)
        done.append(lsn)

    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        for n in range(20):
            nursery.start_soon(waiter, log.append(_payload(n)))
        await log.aclose()  # run() returns after the final flush, so the nursery can close
        assert log.durable_lsn == 20
        assert not log.available

    assert sorted(done) == list(range(1, 21))
    with pytest.raises(LogUnavailable, match="write-ahead log unavailable: the log is closed"):
        log.append(b"late")
    await log.aclose()  # idempotent
    assert len(recover(tmp_path).payloads) == 20


async def test_aclose_without_a_committer_still_flushes(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path)
    for n in range(3):
        log.append(_payload(n))
    await log.aclose()
    assert (log.durable_lsn, log.batches, log.fsync_count) == (3, 1, 1)
    assert recover(tmp_path).payloads == [_payload(n) for n in range(3)]


async def test_cancelling_the_committer_flushes_what_is_buffered(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        for n in range(3):
            log.append(_payload(n))
        nursery.cancel_scope.cancel()
    assert log.durable_lsn == 3
    with pytest.raises(LogUnavailable):
        log.append(b"late")
    assert len(recover(tmp_path).payloads) == 3


async def test_committer_runs_once(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        with pytest.raises(RuntimeError, match="already running"):
            await log.run()
        await log.aclose()


async def test_fsync_disabled_still_writes_and_replays(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path, fsync=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        lsns = [log.append(_payload(n)) for n in range(50)]
        await log.wait_durable(lsns[-1])
        assert _frames_on_disk(tmp_path) == 50  # written to the OS before the wait returned
        await log.aclose()
    assert log.fsync_count == 0
    assert log.batches >= 1
    assert recover(tmp_path).payloads == [_payload(n) for n in range(50)]


async def test_io_error_fails_waiters_refuses_writes_then_repairs_itself(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path, segment_bytes=220)
    # A directory where the next segment must be created: every rollover fails for real until it goes.
    blocker = segment_path(tmp_path, 2)
    blocker.mkdir()
    failures: list[str] = []

    async def waiter(lsn: int) -> None:
        try:
            await log.wait_durable(lsn)
        except LogUnavailable as exc:
            failures.append(str(exc))

    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        await log.wait_durable(log.append(b"a" * 150))  # fits in segment 1
        assert log.durable_lsn == 1
        async with trio.open_nursery() as waiters:
            for _ in range(5):
                waiters.start_soon(waiter, log.append(b"b" * 150))  # needs segment 2
        assert len(failures) == 5
        assert all(f.startswith("write-ahead log unavailable: [Errno 17]") for f in failures)
        assert log.failed and not log.available and log.failures == 1
        assert (log.durable_lsn, log.appended_lsn) == (1, 1)  # readers wait for nothing lost
        assert all(log.is_lost(lsn) for lsn in range(2, 7)) and not log.is_lost(1)
        with pytest.raises(LogUnavailable, match=r"^write-ahead log unavailable: \[Errno 17\]"):
            log.append(b"c")
        await trio.sleep(0.3)  # several repair attempts fail (the probe needs segment 2 too)
        assert log.failed and log.retry_delay > 0.05
        blocker.rmdir()
        with trio.fail_after(5):
            while not log.available:
                await trio.sleep(0.01)
        lsn = log.append(b"c")
        assert lsn == 7  # lost LSNs are never reused
        await log.wait_durable(lsn)
        with pytest.raises(LogUnavailable):
            await log.wait_durable(3)
        await log.wait_durable(1)
        await log.aclose()
    replayed = recover(tmp_path)
    assert (replayed.payloads, replayed.lsns) == ([b"a" * 150, b"c"], [1, 7])
