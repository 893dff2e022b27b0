"""Frame codec for the write-ahead log: pure functions over bytes, no I/O.

A frame is a 12-byte header followed by the payload::

    <kind:4 bits | length:28 bits, u32 LE> <crc32(payload):u32 LE> <crc32(first 8 header bytes):u32 LE> <payload>

The kind says what the payload is: a log record (0, opaque to this module), a commit marker that
closes a group-commit batch (1), or a file header (2); see wal/batches.py. The header checksum
covers the kind too.

The header carries its own checksum so that a reader can trust the length before it uses it, and can
test any byte offset cheaply for "a valid frame starts here". That test is what separates a torn tail
(a write the crash cut short: nothing valid after the damage) from corruption in the middle of the
log (valid frames follow the damage, so cutting there would silently drop acknowledged data).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import Literal

HEADER_SIZE = 12
MAX_PAYLOAD = 64 << 20
"""Largest payload a frame may carry; a garbage length above it is damage, not an allocation."""

KIND_RECORD = 0
KIND_COMMIT = 1
KIND_HEADER = 2
_KINDS = (KIND_RECORD, KIND_COMMIT, KIND_HEADER)
_LENGTH_BITS = 28
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1

_HEADER = struct.Struct("<III")
_PREFIX = struct.Struct("<II")
_CRC = struct.Struct("<I")
_NONZERO = re.compile(rb"[^\x00]")
_crc32 = zlib.crc32

DamageKind = Literal["torn-tail", "corruption"]


@dataclass(frozen=True, slots=True)
class Damage:
    """The first frame that does not check out: where it starts, what is wrong, and which kind it is."""

    offset: int
    reason: str
    kind: DamageKind


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The valid prefix of a buffer: its payloads (with their frame offsets and kinds) and where it ends."""

    payloads: list[bytes]
    offsets: list[int]
    valid_end: int
    problem: Damage | None
    kinds: list[int]


def encode_frame(payload: bytes, kind: int = KIND_RECORD) -> bytes:
    """Frame one payload; raises ValueError if it exceeds MAX_PAYLOAD (a reader would reject it)."""
    size = len(payload)
    if size > MAX_PAYLOAD:
        raise ValueError(f"log payload of {size} bytes exceeds the {MAX_PAYLOAD} byte limit")
    if kind not in _KINDS:
        raise ValueError(f"unknown frame kind {kind}")
    prefix = _PREFIX.pack(size | (kind << _LENGTH_BITS), _crc32(payload))
    return prefix + _CRC.pack(_crc32(prefix)) + payload


def scan(buf: bytes | memoryview) -> ScanResult:
    """Decode frames from the start of `buf` until its end or the first damaged frame."""
    view = memoryview(buf).cast("B")
    end = len(view)
    payloads: list[bytes] = []
    offsets: list[int] = []
    kinds: list[int] = []
    unpack = _HEADER.unpack_from
    pos = 0
    problem: Damage | None = None
    while pos < end:
        if end - pos < HEADER_SIZE:
            # Fewer bytes than a header: no frame (valid or not) can follow.
            problem = Damage(pos, f"frame header cut short ({end - pos} of {HEADER_SIZE} bytes)", "torn-tail")
            break
        word, payload_crc, header_crc = unpack(view, pos)
        if _crc32(view[pos : pos + 8]) != header_crc:
            problem = _classify(view, pos, pos + 1, "frame header checksum mismatch")
            break
        size, kind = word & _LENGTH_MASK, word >> _LENGTH_BITS
        if kind not in _KINDS:
            problem = _classify(view, pos, pos + 1, f"unknown frame kind {kind}")
            break
        if size > MAX_PAYLOAD:
            problem = _classify(view, pos, pos + 1, f"frame length {size} exceeds the {MAX_PAYLOAD} byte limit")
            break
        body = pos + HEADER_SIZE
        stop = body + size
        if stop > end:
            # The header is trustworthy, so everything up to EOF belongs to this one unfinished frame.
            problem = Damage(pos, f"frame payload cut short ({end - body} of {size} bytes)", "torn-tail")
            break
        payload = view[body:stop]
        if _crc32(payload) != payload_crc:
            problem = _classify(view, pos, stop, "frame payload checksum mismatch")
            break
        payloads.append(payload.tobytes())
        offsets.append(pos)
        kinds.append(kind)
        pos = stop
    return ScanResult(payloads, offsets, pos, problem, kinds)


def _classify(view: memoryview, offset: int, search_from: int, reason: str) -> Damage:
    """A damaged frame is a torn tail unless a valid frame exists somewhere after it."""
    later = find_valid_frame(view, search_from)
    if later is None:
        return Damage(offset, reason, "torn-tail")
    return Damage(offset, f"{reason}; a valid frame follows at byte offset {later}", "corruption")


def find_valid_frame(buf: bytes | memoryview, start: int) -> int | None:
    """Offset of the first complete, checksum-valid frame at or after `start`, or None.

    Every offset is a candidate; the header checksum rejects almost all of them after one 8-byte
    crc32, and runs of zero bytes (a common shape of a torn tail) are skipped in one regex search
    because an all-zero header is never valid.
    """
    view = memoryview(buf).cast("B")
    end = len(view)
    last = end - HEADER_SIZE
    unpack = _HEADER.unpack_from
    zero_run = _NONZERO.search
    pos = max(start, 0)
    while pos <= last:
        if view[pos] == 0 and view[pos + HEADER_SIZE - 1] == 0:
            found = zero_run(view, pos)
            if found is None:
                return None
            nonzero = found.start()
            if nonzero >= pos + HEADER_SIZE:
                pos = nonzero - HEADER_SIZE + 1
                continue
        word, payload_crc, header_crc = unpack(view, pos)
        size = word & _LENGTH_MASK
        if (
            _crc32(view[pos : pos + 8]) == header_crc
            and word >> _LENGTH_BITS in _KINDS
            and size <= MAX_PAYLOAD
            and pos + HEADER_SIZE + size <= end
            and _crc32(view[pos + HEADER_SIZE : pos + HEADER_SIZE + size]) == payload_crc
        ):
            return pos
        pos += 1
    return None
