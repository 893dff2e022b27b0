"""Start-up replay: read every segment in order and return the payloads the log holds.

A torn tail in the newest segment is the expected result of a crash during a write that was never
acknowledged, so it is cut away on disk (and reported, so the service can log it). Any other damage
means acknowledged data may be gone; replaying around it would silently serve a different history,
so recovery stops with `WalCorruption` naming the file and the byte offset.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from wal.errors import WalCorruption
from wal.frame import scan
from wal.segment import ensure_directory, list_segments, read_segment, segment_path, truncate_segment


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
    """The replayed payloads in log order, plus what it took to get them."""

    payloads: list[bytes] = field(default_factory=list)
    segments: int = 0
    frames: int = 0
    bytes: int = 0  # valid frame bytes replayed
    seconds: float = 0.0
    torn_tail: TornTail | None = None
    last_segment: int = 0  # index of the newest segment, 0 when there is none
    last_segment_size: int = 0  # its length after any cut: where appending resumes


def recover(directory: Path) -> Recovery:
    """Replay the log in `directory` (created if missing), cutting a torn tail off the last segment."""
    started = time.perf_counter()
    ensure_directory(directory)
    result = Recovery()
    segments = list_segments(directory)
    _check_sequence(segments)
    for position, (index, path) in enumerate(segments):
        is_last = position == len(segments) - 1
        data = read_segment(path)
        scanned = scan(data)
        result.payloads.extend(scanned.payloads)
        result.frames += len(scanned.payloads)
        result.bytes += scanned.valid_end
        size = len(data)
        problem = scanned.problem
        if problem is not None:
            if problem.kind == "corruption":
                raise WalCorruption(path, problem.offset, problem.reason)
            if not is_last:
                raise WalCorruption(
                    path, problem.offset, f"{problem.reason}, at the end of a segment that is not the newest"
                )
            truncate_segment(path, scanned.valid_end)
            result.torn_tail = TornTail(path, scanned.valid_end, size - scanned.valid_end, problem.reason)
            size = scanned.valid_end
        result.segments += 1
        result.last_segment = index
        result.last_segment_size = size
    result.seconds = time.perf_counter() - started
    return result


def _check_sequence(segments: list[tuple[int, Path]]) -> None:
    """Segments are deleted oldest first, so the ones present must be consecutive."""
    for (previous, previous_path), (index, path) in pairwise(segments):
        if index != previous + 1:
            missing = segment_path(path.parent, previous + 1)
            raise WalCorruption(missing, 0, f"segment missing between {previous_path.name} and {path.name}")
