"""Segment layout on top of frames: a header, then group-commit batches each closed by a commit frame.

Pure functions over bytes, no I/O. A segment is::

    HEADER(magic, first LSN)  RECORD ... RECORD COMMIT(last LSN, count)  RECORD ... COMMIT ...

LSNs are global and persistent: a batch's records take the `count` LSNs that end at its commit's
`last_lsn`. LSNs only grow; a batch may skip some (records lost to a write error were never on disk,
and their numbers are not reused), and an empty batch (count 0) is how the log records such a skip.

The commit frame is what makes "torn tail or corruption?" decidable after a power loss. Only the
newest batch can be unsynced (the committer fsyncs one batch before it writes the next), and the
kernel may have persisted any subset of its pages, so holes *followed by valid frames* can appear in
it. Damage is therefore a torn tail when nothing after it proves a later batch existed — at most the
damaged batch's own frames and commit follow — and corruption when a valid frame follows a commit
frame found after the damage (a complete later batch was written, so the damaged one was synced).
Records after the last commit frame belong to a batch that never completed: a torn tail as well.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from wal.frame import HEADER_SIZE, KIND_COMMIT, KIND_HEADER, KIND_RECORD, Damage, encode_frame, find_valid_frame, scan

SEGMENT_MAGIC = b"lockwal1"  # the digit is the data format version (wal/format.py)
_SEGMENT_HEADER = struct.Struct("<8sQ")
_COMMIT = struct.Struct("<QI")


def encode_segment_header(first_lsn: int) -> bytes:
    return encode_frame(_SEGMENT_HEADER.pack(SEGMENT_MAGIC, first_lsn), KIND_HEADER)


def encode_commit(last_lsn: int, count: int) -> bytes:
    return encode_frame(_COMMIT.pack(last_lsn, count), KIND_COMMIT)


SEGMENT_HEADER_SIZE = len(encode_segment_header(1))
COMMIT_SIZE = len(encode_commit(1, 1))


@dataclass(slots=True)
class SegmentScan:
    """What one segment holds: its committed records (with LSNs) and where its valid part ends."""

    first_lsn: int | None  # from the header; None when the header itself is missing or damaged
    lsns: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # byte offset of each record's frame
    batches: int = 0
    last_lsn: int = 0  # last LSN accounted for by a commit (first_lsn - 1 before any)
    valid_end: int = 0  # end of the last commit frame (or of the header): where a cut would go
    size: int = 0
    problem: Damage | None = None  # torn-tail: cut at valid_end; corruption: stop


def parse_segment(buf: bytes | memoryview) -> SegmentScan:
    """Split a segment into committed batches and classify any damage (see the module docstring)."""
    view = memoryview(buf).cast("B")
    scanned = scan(view)
    result = SegmentScan(first_lsn=None, size=len(view))
    kinds, payloads, offsets = scanned.kinds, scanned.payloads, scanned.offsets
    if not payloads or kinds[0] != KIND_HEADER or not _is_segment_header(payloads[0]):
        if not payloads and scanned.problem is None:
            result.problem = Damage(0, "empty segment (no header)", "torn-tail")
        elif payloads and offsets[0] == 0:
            reason = _foreign_magic(payloads[0]) or "segment does not start with a segment header"
            result.problem = Damage(0, reason, "corruption")
        else:
            assert scanned.problem is not None
            reason = f"segment header unreadable: {scanned.problem.reason}"
            torn = _later_batch_after(view, 0) is None
            result.problem = Damage(0, reason, "torn-tail" if torn else "corruption")
        return result
    _, first_lsn = _SEGMENT_HEADER.unpack(payloads[0])
    result.first_lsn = first_lsn
    result.last_lsn = first_lsn - 1
    result.valid_end = offsets[0] + HEADER_SIZE + len(payloads[0])
    pending: list[int] = []  # indexes of records in the batch being read
    for i in range(1, len(payloads)):
        frame_kind = kinds[i]
        if frame_kind == KIND_RECORD:
            pending.append(i)
            continue
        if frame_kind == KIND_HEADER:
            result.problem = Damage(offsets[i], "a segment header in the middle of a segment", "corruption")
            return result
        payload = payloads[i]
        if len(payload) != _COMMIT.size:
            result.problem = Damage(offsets[i], f"commit frame of {len(payload)} bytes", "corruption")
            return result
        last_lsn, count = _COMMIT.unpack(payload)
        if count != len(pending) or last_lsn - count < result.last_lsn:
            result.problem = Damage(
                offsets[i],
                f"commit frame for {count} records ending at LSN {last_lsn} does not match the "
                f"{len(pending)} records before it after LSN {result.last_lsn}",
                "corruption",
            )
            return result
        first = last_lsn - count + 1
        result.lsns.extend(range(first, last_lsn + 1))
        result.payloads.extend(payloads[j] for j in pending)
        result.offsets.extend(offsets[j] for j in pending)
        result.batches += 1
        result.last_lsn = last_lsn
        result.valid_end = offsets[i] + HEADER_SIZE + len(payload)
        pending = []
    damage = scanned.problem
    if damage is not None:
        later = _later_batch_after(view, damage.offset + 1)
        if later is not None:
            result.problem = Damage(
                damage.offset,
                f"{damage.reason}; a later complete batch follows (commit frame at byte offset {later})",
                "corruption",
            )
        else:
            result.problem = Damage(
                result.valid_end, f"{damage.reason} at byte offset {damage.offset}", "torn-tail"
            )
    elif pending:
        result.problem = Damage(
            result.valid_end, f"{len(pending)} record(s) after the last commit frame (batch never completed)",
            "torn-tail",
        )
    return result


def _is_segment_header(payload: bytes) -> bool:
    return len(payload) == _SEGMENT_HEADER.size and payload[:8] == SEGMENT_MAGIC


def _foreign_magic(payload: bytes) -> str | None:
    """The reason to give for a segment header of another data format (wal/format.py), else None."""
    if payload[:7] == SEGMENT_MAGIC[:7] and payload[:8] != SEGMENT_MAGIC:
        return (f"segment of another data format (magic {bytes(payload[:8])!r}; this lockstore reads "
                f"{SEGMENT_MAGIC!r})")
    return None


def _later_batch_after(view: memoryview, start: int) -> int | None:
    """Offset of a commit frame after `start` that is followed by another valid frame, else None.

    Resynchronises on every valid frame after the damage; the damaged batch's own records and its
    commit may follow (an unsynced batch persisted in pieces), anything valid after a commit may not.
    """
    pos = start
    commit_at: int | None = None
    while True:
        found = find_valid_frame(view, pos)
        if found is None:
            return None
        if commit_at is not None:
            return commit_at
        run = scan(view[found:])
        for offset, kind in zip(run.offsets, run.kinds, strict=True):
            if commit_at is not None:
                return commit_at
            if kind == KIND_COMMIT:
                commit_at = found + offset
        pos = found + max(run.valid_end, 1)
