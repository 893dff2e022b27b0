"""WriteAheadLog under trio: group commit, durability ordering, shutdown and failure."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from actors.records import LocksRemoved, decode_event, encode_event
from wal.errors import LogUnavailable
from wal.frame import scan
from wal.log import WriteAheadLog
from wal.recovery import recover
from wal.segment import segment_path


def _payload(n: int) -> bytes:
    return encode_event(LocksRemoved((n,)))


def _frames_on_disk(directory: Path) -> int:
    return len(scan(segment_path(directory, 1).read_bytes()).payloads)


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
    assert log.bytes_written == segment_path(tmp_path, 1).stat().st_size
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


async def test_lsns_count_from_one_in_each_process_lifetime(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path)
    assert [log.append(b"a"), log.append(b"b")] == [1, 2]
    await log.aclose()
    log, recovery = WriteAheadLog.open(tmp_path)
    assert recovery.payloads == [b"a", b"b"]
    assert log.append(b"c") == 1
    await log.aclose()


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


async def test_io_error_fails_waiters_and_appends_and_stops_the_committer(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path, segment_bytes=200)
    # A directory where the next segment must be created: the rollover's open fails for real.
    segment_path(tmp_path, 2).mkdir()
    failures: list[str] = []

    async def waiter(lsn: int) -> None:
        try:
            await log.wait_durable(lsn)
        except LogUnavailable as exc:
            failures.append(str(exc))

    with pytest.RaisesGroup(FileExistsError):
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            await log.wait_durable(log.append(b"a" * 150))  # fits in segment 1
            assert log.durable_lsn == 1
            for _ in range(5):
                nursery.start_soon(waiter, log.append(b"b" * 150))  # needs segment 2

    assert len(failures) == 5
    assert all(f.startswith("write-ahead log unavailable: [Errno 17]") for f in failures)
    assert log.durable_lsn == 1
    with pytest.raises(LogUnavailable, match=r"^write-ahead log unavailable: \[Errno 17\]"):
        log.append(b"c")
    with pytest.raises(LogUnavailable):
        await log.wait_durable(log.appended_lsn)
    await log.aclose()  # already stopped: returns at once
    segment_path(tmp_path, 2).rmdir()
    assert recover(tmp_path).payloads == [b"a" * 150]
