"""Frame codec: round trips, and how every kind of damage to a frame is classified."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.records import Lock, LocksCreated, LocksRemoved, decode_event, encode_event
from wal.frame import HEADER_SIZE, MAX_PAYLOAD, encode_frame, find_valid_frame, scan

PAYLOADS = [
    encode_event(LocksCreated((Lock(1, "provider|svc|1.0.0", "owner-a", 1_700_000_000),))),
    b"",
    encode_event(LocksRemoved((1, 2, 3), expired=True)),
    bytes(range(256)) * 3,
    b"\x00" * 40,
    encode_event(LocksCreated((Lock(7, "p|s|2.0.0", "owner-b", 1_700_000_100, True, "job-9"),))),
]


def _log(payloads: list[bytes]) -> tuple[bytes, list[int]]:
    """Concatenated frames and the offset of each."""
    offsets, parts, pos = [], [], 0
    for payload in payloads:
        frame = encode_frame(payload)
        offsets.append(pos)
        parts.append(frame)
        pos += len(frame)
    return b"".join(parts), offsets


def _flip(buf: bytes, bit: int) -> bytes:
    data = bytearray(buf)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def test_frame_layout() -> None:
    frame = encode_frame(b"hello")
    length, payload_crc, header_crc = struct.unpack_from("<III", frame)
    assert (length, payload_crc) == (5, zlib.crc32(b"hello"))
    assert header_crc == zlib.crc32(frame[:8])
    assert frame[HEADER_SIZE:] == b"hello"


def test_round_trip_of_events() -> None:
    buf, offsets = _log(PAYLOADS)
    result = scan(buf)
    assert result.problem is None
    assert result.payloads == PAYLOADS
    assert result.offsets == offsets
    assert result.valid_end == len(buf)
    assert decode_event(result.payloads[0]) == decode_event(PAYLOADS[0])


def test_scan_accepts_memoryview_and_empty_input() -> None:
    buf, _ = _log(PAYLOADS)
    assert scan(memoryview(buf)).payloads == PAYLOADS
    empty = scan(b"")
    assert (empty.payloads, empty.valid_end, empty.problem) == ([], 0, None)


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_round_trip_property(payloads: list[bytes]) -> None:
    buf, _ = _log(payloads)
    result = scan(buf)
    assert result.problem is None
    assert result.payloads == payloads
    assert result.valid_end == len(buf)


def test_oversized_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame(bytes(MAX_PAYLOAD + 1))


def test_truncating_the_last_frame_anywhere_is_a_torn_tail() -> None:
    buf, offsets = _log(PAYLOADS)
    last = offsets[-1]
    for cut in range(last + 1, len(buf)):
        result = scan(buf[:cut])
        assert result.payloads == PAYLOADS[:-1], cut
        assert result.valid_end == last
        assert result.problem is not None
        assert result.problem.kind == "torn-tail"
        assert result.problem.offset == last
        assert "cut short" in result.problem.reason
    # Cutting exactly at a frame boundary is not damage at all.
    assert scan(buf[:last]).problem is None


def test_flipping_any_header_bit_of_the_last_frame_is_a_torn_tail() -> None:
    buf, offsets = _log(PAYLOADS)
    last = offsets[-1]
    for bit in range(last * 8, (last + HEADER_SIZE) * 8):
        result = scan(_flip(buf, bit))
        assert result.payloads == PAYLOADS[:-1], bit
        assert result.valid_end == last
        assert result.problem is not None
        assert (result.problem.kind, result.problem.offset) == ("torn-tail", last)


def test_flipping_payload_bits_of_the_last_frame_is_a_torn_tail() -> None:
    buf, offsets = _log(PAYLOADS)
    last = offsets[-1]
    for bit in range((last + HEADER_SIZE) * 8, len(buf) * 8, 5):
        result = scan(_flip(buf, bit))
        assert result.payloads == PAYLOADS[:-1], bit
        assert result.problem is not None
        assert (result.problem.kind, result.problem.offset) == ("torn-tail", last)
        assert result.problem.reason == "frame payload checksum mismatch"


def test_zeroed_or_garbage_tail_is_a_torn_tail() -> None:
    buf, _ = _log(PAYLOADS)
    for tail in (b"\x00" * 5000, b"\xff" * 13, bytes(range(200)), b"\x00" * 3):
        result = scan(buf + tail)
        assert result.payloads == PAYLOADS
        assert result.valid_end == len(buf)
        assert result.problem is not None
        assert result.problem.kind == "torn-tail"


def test_corrupt_middle_frame_header_is_corruption_at_its_offset() -> None:
    buf, offsets = _log(PAYLOADS)
    victim = 2
    for bit in range(offsets[victim] * 8, (offsets[victim] + HEADER_SIZE) * 8):
        result = scan(_flip(buf, bit))
        assert result.payloads == PAYLOADS[:victim]
        assert result.valid_end == offsets[victim]
        assert result.problem is not None
        assert (result.problem.kind, result.problem.offset) == ("corruption", offsets[victim])
        assert f"a valid frame follows at byte offset {offsets[victim + 1]}" in result.problem.reason


def test_corrupt_middle_frame_payload_is_corruption() -> None:
    buf, offsets = _log(PAYLOADS)
    victim = 3
    result = scan(_flip(buf, (offsets[victim] + HEADER_SIZE + 100) * 8 + 3))
    assert result.payloads == PAYLOADS[:victim]
    assert result.problem is not None
    assert result.problem.kind == "corruption"
    assert result.problem.offset == offsets[victim]
    assert result.problem.reason.startswith("frame payload checksum mismatch")


def test_zeroed_block_in_the_middle_is_corruption() -> None:
    buf, offsets = _log(PAYLOADS)
    start, stop = offsets[1], offsets[4]
    damaged = buf[:start] + bytes(stop - start) + buf[stop:]
    result = scan(damaged)
    assert result.payloads == PAYLOADS[:1]
    assert result.problem is not None
    assert (result.problem.kind, result.problem.offset) == ("corruption", start)
    assert f"follows at byte offset {stop}" in result.problem.reason


def test_garbage_length_with_valid_header_checksum_is_bounded() -> None:
    prefix = struct.pack("<II", MAX_PAYLOAD + 1, 0)
    bogus = prefix + struct.pack("<I", zlib.crc32(prefix)) + b"x" * 10
    result = scan(encode_frame(b"ok") + bogus)
    assert result.payloads == [b"ok"]
    assert result.problem is not None
    assert result.problem.kind == "torn-tail"
    assert "exceeds" in result.problem.reason


def test_find_valid_frame_skips_zero_runs_and_garbage() -> None:
    frame = encode_frame(b"needle")
    buf = b"\x01\x02" + bytes(100_000) + b"\xaa" * 7 + frame + b"\x00" * 9
    assert find_valid_frame(buf, 0) == 100_009
    assert find_valid_frame(buf, 100_010) is None
    assert find_valid_frame(bytes(10), 0) is None
