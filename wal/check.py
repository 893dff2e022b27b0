"""Offline inspection and repair of a log directory (the `lockstore check` command).

`inspect` reads the data format (wal/format.py: a format this code cannot read raises UnsupportedFormat
before any file is read, so `repair` never cuts files it would misread), every segment and snapshot, and
changes nothing. `repair` keeps the longest valid
prefix of the log: it copies the directory to a backup first, then cuts the log at the first damage
(a torn tail or corruption), deletes the segments after it, and deletes damaged snapshots and
snapshots that cover LSNs past the cut (they would describe changes the log no longer holds, and
new changes would reuse those LSNs).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from wal.batches import parse_segment
from wal.errors import WalCorruption
from wal.format import DataFormat, check_format
from wal.segment import LOCK_NAME, list_segments, read_segment, sync_directory, truncate_segment
from wal.snapshot import TEMP_SUFFIX, list_snapshots, read_snapshot


@dataclass
class SegmentReport:
    path: Path
    first_lsn: int
    size: int
    records: int = 0
    batches: int = 0
    last_lsn: int = 0
    valid_end: int = 0
    problem: str | None = None  # None: intact
    kind: str | None = None  # "torn-tail" or "corruption"
    offset: int | None = None


@dataclass
class SnapshotReport:
    path: Path
    name: str
    lsn: int
    size: int
    problem: str | None = None
    offset: int | None = None


@dataclass
class Inspection:
    directory: Path
    data_format: DataFormat
    segments: list[SegmentReport] = field(default_factory=list)
    snapshots: list[SnapshotReport] = field(default_factory=list)
    temporaries: list[Path] = field(default_factory=list)

    @property
    def first_damage(self) -> SegmentReport | None:
        return next((s for s in self.segments if s.problem is not None), None)

    @property
    def intact(self) -> bool:
        return self.first_damage is None and all(s.problem is None for s in self.snapshots)

    def lines(self) -> list[str]:
        out = [f"log directory {self.directory}", f"  {self.data_format.describe()}"]
        if not self.segments:
            out.append("  no log segment")
        previous_last: int | None = None
        for seg in self.segments:
            if seg.problem is None:
                state = "intact"
            else:
                state = f"{seg.kind.upper() if seg.kind else 'DAMAGED'} at byte offset {seg.offset}: {seg.problem}"
            if previous_last is not None and seg.first_lsn != previous_last + 1:
                out.append(f"  GAP: LSNs {previous_last + 1}..{seg.first_lsn - 1} missing before {seg.path.name}")
            out.append(
                f"  segment {seg.path.name}: {seg.size} bytes, {seg.records} records in {seg.batches} batches, "
                f"LSN {seg.first_lsn}..{seg.last_lsn}, {state}"
            )
            previous_last = seg.last_lsn
        for snap in self.snapshots:
            state = "intact" if snap.problem is None else f"DAMAGED at byte offset {snap.offset}: {snap.problem}"
            out.append(f"  snapshot {snap.path.name}: {snap.name} at LSN {snap.lsn}, {snap.size} bytes, {state}")
        for temp in self.temporaries:
            out.append(f"  half-written snapshot {temp.name} (removed at the next start)")
        out.append("everything intact" if self.intact else "DAMAGE FOUND (see above)")
        return out


def inspect(directory: Path) -> Inspection:
    """Read every file of the log directory; report what is intact and what is not. Read-only.
    Raises UnsupportedFormat for a data format this code cannot read, before reading anything else."""
    result = Inspection(directory, check_format(directory))
    segments = list_segments(directory)
    for position, (first_lsn, path) in enumerate(segments):
        data = read_segment(path)
        parsed = parse_segment(data)
        report = SegmentReport(path, first_lsn, len(data), len(parsed.payloads), parsed.batches,
                               parsed.last_lsn, parsed.valid_end)
        problem = parsed.problem
        if parsed.first_lsn is not None and parsed.first_lsn != first_lsn:
            report.problem, report.kind, report.offset = (
                f"header says first LSN {parsed.first_lsn}", "corruption", 0)
        elif problem is not None:
            is_last = position == len(segments) - 1
            kind = problem.kind if is_last else "corruption"
            report.problem, report.kind, report.offset = problem.reason, kind, problem.offset
        result.segments.append(report)
    for snap in list_snapshots(directory):
        size = snap.path.stat().st_size
        report_snap = SnapshotReport(snap.path, snap.name, snap.lsn, size)
        try:
            read_snapshot(snap.path)
        except WalCorruption as error:
            report_snap.problem, report_snap.offset = error.reason, error.offset
        result.snapshots.append(report_snap)
    result.temporaries = sorted(p for p in directory.iterdir() if p.name.endswith(TEMP_SUFFIX))
    return result


def repair(inspection: Inspection) -> tuple[Path, list[str]]:
    """Back up the directory, then keep the longest valid prefix (see the module docstring)."""
    directory = inspection.directory
    backup = directory.with_name(f"{directory.name}-backup-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copytree(directory, backup, ignore=shutil.ignore_patterns(LOCK_NAME))
    actions: list[str] = []
    damaged = inspection.first_damage
    keep_upto: int | None = None
    if damaged is not None:
        cut_at = damaged.valid_end  # end of the last complete batch before the damage
        keep_upto = damaged.last_lsn
        if damaged.batches == 0 and damaged.valid_end == 0:
            damaged.path.unlink()
            actions.append(f"removed {damaged.path.name} (no valid header)")
        else:
            truncate_segment(damaged.path, cut_at)
            actions.append(f"cut {damaged.path.name} at byte offset {cut_at} (LSN {keep_upto} is the last kept)")
        for seg in inspection.segments:
            if seg.first_lsn > damaged.first_lsn:
                seg.path.unlink()
                actions.append(f"removed {seg.path.name} (after the damage)")
    for snap in inspection.snapshots:
        if snap.problem is not None:
            snap.path.unlink()
            actions.append(f"removed damaged snapshot {snap.path.name}")
        elif keep_upto is not None and snap.lsn > keep_upto:
            snap.path.unlink()
            actions.append(f"removed snapshot {snap.path.name} (covers LSNs past the cut)")
    for temp in inspection.temporaries:
        temp.unlink()
        actions.append(f"removed half-written snapshot {temp.name}")
    sync_directory(directory)
    return backup, actions
