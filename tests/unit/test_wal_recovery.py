"""Recovery on real segment files: torn tails are cut on disk, everything else stops start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.records import LocksRemoved, RulesRemoved, decode_event, encode_event
from wal.errors import LogUnavailable, WalCorruption
from wal.frame import HEADER_SIZE, encode_frame
from wal.log import WriteAheadLog
from wal.recovery import recover
from wal.segment import list_segments, segment_path


def _payload(n: int) -> bytes:
    return encode_event(LocksRemoved((n, n + 1), expired=n % 2 == 0))


def _write_segment(directory: Path, index: int, payloads: list[bytes]) -> list[int]:
    """Write a segment file directly; returns the frame offsets."""
    directory.mkdir(parents=True, exist_ok=True)
    offsets, parts, pos = [], [], 0
    for payload in payloads:
        frame = encode_frame(payload)
        offsets.append(pos)
        parts.append(frame)
        pos += len(frame)
    segment_path(directory, index).write_bytes(b"".join(parts))
    return offsets


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
    _write_segment(tmp_path, 1, payloads)
    result = recover(tmp_path)
    assert result.payloads == payloads
    assert (result.segments, result.frames) == (1, 10)
    assert result.bytes == segment_path(tmp_path, 1).stat().st_size
    assert result.seconds >= 0
    assert result.torn_tail is None
    assert (result.last_segment, result.last_segment_size) == (1, result.bytes)


async def test_torn_tail_is_cut_on_disk_and_the_log_continues(tmp_path: Path) -> None:
    payloads = [_payload(n) for n in range(5)]
    offsets = _write_segment(tmp_path, 1, payloads)
    path = segment_path(tmp_path, 1)
    full = path.stat().st_size
    with path.open("r+b") as f:  # the last frame lost its final 3 bytes
        f.truncate(full - 3)

    result = recover(tmp_path)
    assert result.payloads == payloads[:4]
    assert result.torn_tail is not None
    assert result.torn_tail.path == path
    assert result.torn_tail.offset == offsets[4]
    assert result.torn_tail.bytes_cut == full - 3 - offsets[4]
    assert str(offsets[4]) in result.torn_tail.describe()
    assert path.stat().st_size == offsets[4]

    await _append_all(tmp_path, [_payload(100), _payload(101)])
    again = recover(tmp_path)
    assert again.torn_tail is None
    assert again.payloads == [*payloads[:4], _payload(100), _payload(101)]
    assert [decode_event(p) for p in again.payloads][-1] == LocksRemoved((101, 102), expired=False)


def test_zero_filled_tail_is_cut(tmp_path: Path) -> None:
    payloads = [_payload(n) for n in range(3)]
    _write_segment(tmp_path, 1, payloads)
    path = segment_path(tmp_path, 1)
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(bytes(8192))
    result = recover(tmp_path)
    assert result.payloads == payloads
    assert result.torn_tail is not None and result.torn_tail.bytes_cut == 8192
    assert path.stat().st_size == size


def test_torn_tail_in_the_newest_of_several_segments_is_cut(tmp_path: Path) -> None:
    _write_segment(tmp_path, 1, [_payload(1), _payload(2)])
    _write_segment(tmp_path, 2, [_payload(3), _payload(4)])
    newest = segment_path(tmp_path, 2)
    with newest.open("ab") as f:
        f.write(encode_frame(_payload(5))[:HEADER_SIZE - 2])
    result = recover(tmp_path)
    assert result.payloads == [_payload(n) for n in range(1, 5)]
    assert result.torn_tail is not None and result.torn_tail.path == newest
    assert "frame header cut short" in result.torn_tail.reason
    assert (result.segments, result.last_segment, result.last_segment_size) == (2, 2, newest.stat().st_size)


def test_mid_log_corruption_names_file_and_offset(tmp_path: Path) -> None:
    payloads = [_payload(n) for n in range(6)]
    offsets = _write_segment(tmp_path, 1, payloads)
    path = segment_path(tmp_path, 1)
    data = bytearray(path.read_bytes())
    data[offsets[2] + HEADER_SIZE + 1] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorruption) as caught:
        recover(tmp_path)
    error = caught.value
    assert (error.path, error.offset) == (path, offsets[2])
    message = str(error)
    assert str(path) in message
    assert f"byte offset {offsets[2]}" in message
    assert "payload checksum mismatch" in message
    assert path.stat().st_size == len(data)  # nothing was cut


def test_damage_in_a_non_last_segment_raises(tmp_path: Path) -> None:
    first = [_payload(n) for n in range(4)]
    offsets = _write_segment(tmp_path, 1, first)
    _write_segment(tmp_path, 2, [_payload(10)])
    path = segment_path(tmp_path, 1)
    size = path.stat().st_size
    with path.open("r+b") as f:  # a torn tail, but not in the newest segment
        f.truncate(size - 1)
    with pytest.raises(WalCorruption) as caught:
        recover(tmp_path)
    assert caught.value.path == path
    assert caught.value.offset == offsets[3]
    assert "not the newest" in str(caught.value)
    assert path.stat().st_size == size - 1


def test_missing_middle_segment_raises(tmp_path: Path) -> None:
    _write_segment(tmp_path, 1, [_payload(1)])
    _write_segment(tmp_path, 3, [_payload(3)])
    with pytest.raises(WalCorruption, match=r"wal-00000002\.log"):
        recover(tmp_path)


def test_older_segments_may_be_gone(tmp_path: Path) -> None:
    _write_segment(tmp_path, 7, [_payload(7)])
    _write_segment(tmp_path, 8, [_payload(8)])
    (tmp_path / "notes.txt").write_text("ignored")
    result = recover(tmp_path)
    assert result.payloads == [_payload(7), _payload(8)]
    assert (result.segments, result.last_segment) == (2, 8)


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
    assert [index for index, _ in segments] == list(range(1, 21))
    assert all(path.stat().st_size <= 600 for _, path in segments)
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
