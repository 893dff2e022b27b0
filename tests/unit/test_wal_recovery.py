"""Recovery on real segment files: torn tails are cut on disk, everything else stops start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.records import LocksRemoved, RulesRemoved, decode_event, encode_event
from tests.unit.wal_files import write_segment
from wal.batches import SEGMENT_HEADER_SIZE
from wal.errors import LogUnavailable, WalCorruption
from wal.frame import HEADER_SIZE, encode_frame
from wal.log import WriteAheadLog
from wal.recovery import recover
from wal.segment import list_segments, segment_path


def _payload(n: int) -> bytes:
    return encode_event(LocksRemoved((n, n + 1), expired=n % 2 == 0))


async def _append_all(directory: Path, payloads: list[bytes], segment_bytes: int = 64 << 20) -> None:
    log, _ = WriteAheadLog.open(directory, segment_bytes=segment_bytes)
    lsn = 0
    for payload in payloads:
        lsn = log.append(payload)
    await log.aclose()
    assert log.durable_lsn == lsn


def test_missing_directory_is_a_fresh_log(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "wal"
    result = recover(directory)
    assert directory.is_dir()
    assert (result.payloads, result.segments, result.frames, result.torn_tail) == ([], 0, 0, None)


def test_recovery_replays_in_order_with_stats(tmp_path: Path) -> None:
    payloads = [_payload(n) for n in range(10)]
    write_segment(tmp_path, 1, payloads, per_batch=3)
    result = recover(tmp_path)
    assert result.payloads == payloads
    assert result.lsns == list(range(1, 11))
    assert (result.segments, result.frames, result.first_lsn, result.last_lsn) == (1, 10, 1, 10)
    assert result.bytes == segment_path(tmp_path, 1).stat().st_size
    assert result.seconds >= 0
    assert result.torn_tail is None
    assert (result.last_segment, result.last_segment_size) == (1, result.bytes)


async def test_torn_tail_is_cut_on_disk_and_the_log_continues(tmp_path: Path) -> None:
    payloads = [_payload(n) for n in range(5)]
    built = write_segment(tmp_path, 1, payloads)
    path = segment_path(tmp_path, 1)
    full = path.stat().st_size
    with path.open("r+b") as f:  # the last batch lost its final 3 bytes (inside its commit frame)
        f.truncate(full - 3)

    result = recover(tmp_path)
    assert result.payloads == payloads[:4]
    assert result.torn_tail is not None
    assert result.torn_tail.path == path
    assert result.torn_tail.offset == built.batch_ends[3]
    assert result.torn_tail.bytes_cut == full - 3 - built.batch_ends[3]
    assert str(built.batch_ends[3]) in result.torn_tail.describe()
    assert path.stat().st_size == built.batch_ends[3]

    await _append_all(tmp_path, [_payload(100), _payload(101)])
    again = recover(tmp_path)
    assert again.torn_tail is None
    assert again.payloads == [*payloads[:4], _payload(100), _payload(101)]
    assert again.lsns == [1, 2, 3, 4, 5, 6]
    assert [decode_event(p) for p in again.payloads][-1] == LocksRemoved((101, 102), expired=False)


def test_zero_filled_tail_is_cut(tmp_path: Path) -> None:
    payloads = [_payload(n) for n in range(3)]
    write_segment(tmp_path, 1, payloads)
    path = segment_path(tmp_path, 1)
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(bytes(8192))
    result = recover(tmp_path)
    assert result.payloads == payloads
    assert result.torn_tail is not None and result.torn_tail.bytes_cut == 8192
    assert path.stat().st_size == size


def test_records_without_a_commit_frame_are_a_torn_tail(tmp_path: Path) -> None:
    payloads = [_payload(n) for n in range(3)]
    write_segment(tmp_path, 1, payloads)
    path = segment_path(tmp_path, 1)
    size = path.stat().st_size
    with path.open("ab") as f:  # a whole batch written, but its commit frame never made it
        f.write(encode_frame(_payload(7)) + encode_frame(_payload(8)))
    result = recover(tmp_path)
    assert result.payloads == payloads
    assert result.torn_tail is not None and "after the last commit frame" in result.torn_tail.reason
    assert path.stat().st_size == size


def test_hole_in_the_unsynced_last_batch_is_a_torn_tail_even_if_its_commit_survived(tmp_path: Path) -> None:
    payloads = [_payload(n) for n in range(4)]
    built = write_segment(tmp_path, 1, payloads, per_batch=2)  # batches [0, 1] and [2, 3]
    path = segment_path(tmp_path, 1)
    data = bytearray(path.read_bytes())
    hole = built.record_offsets[2]
    data[hole : hole + 20] = bytes(20)  # a page of the last batch never reached the disk
    path.write_bytes(bytes(data))
    result = recover(tmp_path)
    assert result.payloads == payloads[:2]
    assert result.torn_tail is not None and result.torn_tail.offset == built.batch_ends[0]


def test_hole_before_a_later_complete_batch_is_corruption(tmp_path: Path) -> None:
    payloads = [_payload(n) for n in range(6)]
    built = write_segment(tmp_path, 1, payloads, per_batch=2)
    path = segment_path(tmp_path, 1)
    data = bytearray(path.read_bytes())
    hole = built.record_offsets[2]  # in the middle batch: the last batch proves it had been synced
    data[hole : hole + 20] = bytes(20)
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorruption) as caught:
        recover(tmp_path)
    assert (caught.value.path, caught.value.offset) == (path, hole)
    assert "a later complete batch follows" in str(caught.value)


def test_torn_tail_in_the_newest_of_several_segments_is_cut(tmp_path: Path) -> None:
    write_segment(tmp_path, 1, [_payload(1), _payload(2)])
    write_segment(tmp_path, 3, [_payload(3), _payload(4)])
    newest = segment_path(tmp_path, 3)
    with newest.open("ab") as f:
        f.write(encode_frame(_payload(5))[:HEADER_SIZE - 2])
    result = recover(tmp_path)
    assert result.payloads == [_payload(n) for n in range(1, 5)]
    assert result.torn_tail is not None and result.torn_tail.path == newest
    assert "frame header cut short" in result.torn_tail.reason
    assert (result.segments, result.last_segment, result.last_segment_size) == (2, 3, newest.stat().st_size)


def test_a_newest_segment_whose_header_never_landed_is_removed(tmp_path: Path) -> None:
    write_segment(tmp_path, 1, [_payload(1), _payload(2)])
    unborn = segment_path(tmp_path, 3)
    unborn.write_bytes(b"\x00" * 10)
    result = recover(tmp_path)
    assert result.payloads == [_payload(1), _payload(2)]
    assert not unborn.exists()
    assert (result.segments, result.last_segment, result.last_lsn) == (1, 1, 2)


def test_mid_log_corruption_names_file_and_offset(tmp_path: Path) -> None:
    payloads = [_payload(n) for n in range(6)]
    built = write_segment(tmp_path, 1, payloads)
    path = segment_path(tmp_path, 1)
    data = bytearray(path.read_bytes())
    victim = built.record_offsets[2]
    data[victim + HEADER_SIZE + 1] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorruption) as caught:
        recover(tmp_path)
    error = caught.value
    assert (error.path, error.offset) == (path, victim)
    message = str(error)
    assert str(path) in message
    assert f"byte offset {victim}" in message
    assert "payload checksum mismatch" in message
    assert path.stat().st_size == len(data)  # nothing was cut


def test_damage_in_a_non_last_segment_raises(tmp_path: Path) -> None:
    built = write_segment(tmp_path, 1, [_payload(n) for n in range(4)])
    write_segment(tmp_path, 5, [_payload(10)])
    path = segment_path(tmp_path, 1)
    size = path.stat().st_size
    with path.open("r+b") as f:  # a torn tail, but not in the newest segment
        f.truncate(size - 1)
    with pytest.raises(WalCorruption) as caught:
        recover(tmp_path)
    assert caught.value.path == path
    assert caught.value.offset == built.batch_ends[2]
    assert "not the newest" in str(caught.value)
    assert path.stat().st_size == size - 1


def test_missing_middle_segment_raises(tmp_path: Path) -> None:
    write_segment(tmp_path, 1, [_payload(1)])
    write_segment(tmp_path, 3, [_payload(3)])
    with pytest.raises(WalCorruption, match=r"segment missing: the previous segment ends at LSN 1"):
        recover(tmp_path)


def test_header_and_name_must_agree(tmp_path: Path) -> None:
    write_segment(tmp_path, 1, [_payload(1)])
    segment_path(tmp_path, 1).rename(segment_path(tmp_path, 9))
    with pytest.raises(WalCorruption, match="header says first LSN 1, its name 9"):
        recover(tmp_path)


def test_older_segments_may_be_gone_and_covered_ones_are_not_read(tmp_path: Path) -> None:
    write_segment(tmp_path, 7, [_payload(7)])
    write_segment(tmp_path, 8, [_payload(8), _payload(9)])
    (tmp_path / "notes.txt").write_text("ignored")
    result = recover(tmp_path)
    assert result.payloads == [_payload(7), _payload(8), _payload(9)]
    assert (result.segments, result.last_segment, result.first_lsn) == (2, 8, 7)
    segment_path(tmp_path, 7).write_bytes(b"garbage, never read")
    later = recover(tmp_path, from_lsn=9)
    assert (later.lsns, later.segments_read) == ([9], 1)


async def test_rollover_across_segments_replays_in_order(tmp_path: Path) -> None:
    payloads = [encode_event(RulesRemoved((f"{n:032x}",))) for n in range(200)]
    log, _ = WriteAheadLog.open(tmp_path, segment_bytes=600)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        for start in range(0, 200, 10):  # one batch of 10 frames (~500 bytes) per commit
            lsn = 0
            for payload in payloads[start : start + 10]:
                lsn = log.append(payload)
            await log.wait_durable(lsn)
        await log.aclose()
    segments = list_segments(tmp_path)
    assert len(segments) == 20
    assert [first for first, _ in segments] == list(range(1, 201, 10))
    assert all(path.stat().st_size <= 600 + SEGMENT_HEADER_SIZE for _, path in segments)
    result = recover(tmp_path)
    assert result.payloads == payloads
    assert result.segments == 20

    # Reopening appends to the newest segment (and rolls on from there).
    await _append_all(tmp_path, [b"after" * 30], segment_bytes=600)
    assert recover(tmp_path).payloads == [*payloads, b"after" * 30]
    assert len(list_segments(tmp_path)) == 21


async def test_second_open_of_the_same_directory_is_refused(tmp_path: Path) -> None:
    log, _ = WriteAheadLog.open(tmp_path)
    with pytest.raises(LogUnavailable, match="in use"):
        WriteAheadLog.open(tmp_path)
    await log.aclose()
    again, _ = WriteAheadLog.open(tmp_path)
    await again.aclose()
