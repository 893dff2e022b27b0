"""Start-up replay: read the segments in order and hand over the committed records with their LSNs.

A torn tail in the newest segment is the expected result of a crash during a batch that was never
acknowledged, so it is cut away on disk (and reported, so the service can log it). Any other damage
means acknowledged data may be gone; replaying around it would silently serve a different history,
so recovery stops with `WalCorruption` naming the file and the byte offset.

Segments that end before `from_lsn` (everything in them is covered by snapshots) are not read at
all: start-up time depends on the log since the snapshots, not on the log's whole history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wal.batches import SEGMENT_HEADER_SIZE, parse_segment
from wal.errors import WalCorruption
from wal.segment import ensure_directory, list_segments, read_segment, sync_directory, truncate_segment

Sink = Callable[[int, bytes], None]
"""Receives each replayed record: (LSN, payload), in log order."""


@dataclass(frozen=True, slots=True)
class TornTail:
    """What recovery cut from the end of the newest segment."""

    path: Path
    offset: int
    bytes_cut: int
    reason: str

    def describe(self) -> str:
        return (
            f"cut a torn tail of {self.bytes_cut} bytes from {self.path} "
            f"at byte offset {self.offset} ({self.reason})"
        )


@dataclass(slots=True)
class Recovery:
    """The replayed records (when no sink was given), plus what it took to get them."""

    payloads: list[bytes] = field(default_factory=list)
    lsns: list[int] = field(default_factory=list)
    segments: int = 0  # segments present
    segments_read: int = 0
    frames: int = 0  # records replayed (at or after from_lsn)
    bytes: int = 0  # valid bytes of the segments read
    seconds: float = 0.0
    torn_tail: TornTail | None = None
    first_lsn: int = 0  # first LSN the oldest segment may hold (0: no segment)
    last_lsn: int = 0  # last LSN the log accounts for (0: empty log)
    last_segment: int = 0  # first LSN of the newest segment, 0 when there is none
    last_segment_size: int = 0  # its length after any cut: where appending resumes


def recover(directory: Path, *, from_lsn: int = 1, sink: Sink | None = None) -> Recovery:
    """Replay the log in `directory` (created if missing) from `from_lsn`, cutting a torn tail off
    the newest segment. Records go to `sink`, or into `Recovery.payloads`/`lsns` without one."""
    started = time.perf_counter()
    ensure_directory(directory)
    result = Recovery()
    if sink is None:
        lsns, payloads = result.lsns, result.payloads

        def collect(lsn: int, payload: bytes) -> None:
            lsns.append(lsn)
            payloads.append(payload)

        sink = collect
    segments = list_segments(directory)
    while segments and _drop_unborn_newest(segments):
        segments.pop()
        sync_directory(directory)
    result.segments = len(segments)
    if segments:
        result.first_lsn = segments[0][0]
    previous_last: int | None = None
    for position, (first_lsn, path) in enumerate(segments):
        is_last = position == len(segments) - 1
        next_first = segments[position + 1][0] if not is_last else None
        if next_first is not None and next_first <= from_lsn:
            previous_last = next_first - 1  # wholly covered by snapshots: not read
            continue
        data = read_segment(path)
        parsed = parse_segment(data)
        problem = parsed.problem
        if parsed.first_lsn is None:
            assert problem is not None
            raise WalCorruption(path, problem.offset, problem.reason)
        if parsed.first_lsn != first_lsn:
            raise WalCorruption(path, 0, f"segment header says first LSN {parsed.first_lsn}, its name {first_lsn}")
        if previous_last is not None and first_lsn != previous_last + 1:
            raise WalCorruption(
                path, 0, f"segment missing: the previous segment ends at LSN {previous_last}, this one "
                f"starts at LSN {first_lsn}",
            )
        size = len(data)
        if problem is not None:
            if problem.kind == "corruption":
                raise WalCorruption(path, problem.offset, problem.reason)
            if not is_last:
                raise WalCorruption(
                    path, problem.offset, f"{problem.reason}, at the end of a segment that is not the newest"
                )
            truncate_segment(path, parsed.valid_end)
            result.torn_tail = TornTail(path, parsed.valid_end, size - parsed.valid_end, problem.reason)
            size = parsed.valid_end
        for lsn, payload in zip(parsed.lsns, parsed.payloads, strict=True):
            if lsn >= from_lsn:
                sink(lsn, payload)
                result.frames += 1
        result.segments_read += 1
        result.bytes += parsed.valid_end
        previous_last = parsed.last_lsn
        result.last_lsn = parsed.last_lsn
        result.last_segment = first_lsn
        result.last_segment_size = size
    result.seconds = time.perf_counter() - started
    return result


def _drop_unborn_newest(segments: list[tuple[int, Path]]) -> bool:
    """A newest segment whose header never became durable holds nothing: remove it (crash in a roll)."""
    _, path = segments[-1]
    with path.open("rb") as file:
        head = file.read(SEGMENT_HEADER_SIZE)
    if parse_segment(head).first_lsn is not None:
        return False
    parsed = parse_segment(read_segment(path))
    if parsed.first_lsn is not None or parsed.problem is None or parsed.problem.kind != "torn-tail":
        return False
    path.unlink()
    return True
