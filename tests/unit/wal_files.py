"""Build segment files byte by byte, in the on-disk format (wal/batches.py), for recovery tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wal.batches import encode_commit, encode_segment_header
from wal.frame import encode_frame
from wal.segment import segment_path


@dataclass
class Built:
    data: bytes
    record_offsets: list[int]  # frame offset of each record
    batch_ends: list[int]  # end offset of each batch's commit frame
    last_lsn: int


def build_segment(first_lsn: int, batches: list[list[bytes]]) -> Built:
    parts = [encode_segment_header(first_lsn)]
    pos = len(parts[0])
    offsets: list[int] = []
    ends: list[int] = []
    lsn = first_lsn - 1
    for batch in batches:
        for payload in batch:
            frame = encode_frame(payload)
            offsets.append(pos)
            parts.append(frame)
            pos += len(frame)
        lsn += len(batch)
        commit = encode_commit(lsn, len(batch))
        parts.append(commit)
        pos += len(commit)
        ends.append(pos)
    return Built(b"".join(parts), offsets, ends, lsn)


def write_segment(directory: Path, first_lsn: int, payloads: list[bytes], per_batch: int = 1) -> Built:
    """One batch per `per_batch` payloads; returns the layout. The file is named after `first_lsn`."""
    directory.mkdir(parents=True, exist_ok=True)
    batches = [payloads[i : i + per_batch] for i in range(0, len(payloads), per_batch)]
    built = build_segment(first_lsn, batches)
    segment_path(directory, first_lsn).write_bytes(built.data)
    return built
