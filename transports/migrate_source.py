"""Reading a stopped single-instance data directory for `lockstore migrate`, without changing it.

What the service's start-up does (actors/snapshots.py: the newest intact snapshot of each actor, then
the log after it), minus everything start-up writes: no temporary snapshot is deleted, no torn tail
is cut, nothing is opened for appending. A torn tail at the end of the newest segment held a batch
that was never acknowledged, so its records are left out (and reported), as start-up would; damage
anywhere else is a WalCorruption naming the file and the offset (`lockstore check` says more).

The directory's lock is taken for the read, so a service still running on it is refused instead of
read half-way through a write.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from actors.locks import LockLoader, LockTable
from actors.snapshot_capture import LOCKS, STORE, meta_decoder
from actors.snapshots import Replayer, decode_records
from actors.store import RuleLoader, RuleTable
from wal.batches import parse_segment
from wal.errors import WalCorruption
from wal.segment import list_segments, lock_directory, read_segment
from wal.snapshot import list_snapshots, read_snapshot


@dataclass
class LocalState:
    locks: LockTable
    store: RuleTable
    snapshots: list[str] = field(default_factory=list)  # file names loaded
    log_records: int = 0  # replayed after the snapshots
    segments: int = 0
    torn_tail: str | None = None  # what was left out at the end of the newest segment

    def describe(self) -> str:
        loaded = ", ".join(self.snapshots) if self.snapshots else "no snapshot"
        tail = f"; left out a torn tail ({self.torn_tail})" if self.torn_tail else ""
        return f"{loaded} + {self.log_records} log records from {self.segments} segment(s){tail}"


def read_local_state(data_dir: Path) -> LocalState:
    """The state a service started on `data_dir` would serve. Raises LogUnavailable (a service holds the
    directory), WalCorruption, FileNotFoundError (no `<data_dir>/wal`)."""
    directory = data_dir / "wal"
    if not directory.is_dir():
        raise FileNotFoundError(f"no write-ahead log directory at {directory}")
    lock_fd = lock_directory(directory)
    try:
        return _read(directory)
    finally:
        os.close(lock_fd)


def _read(directory: Path) -> LocalState:
    locks, store = LockLoader(), RuleLoader()
    lsns = {LOCKS: 0, STORE: 0}
    names: list[str] = []
    segments = list_segments(directory)
    log_from_start = not segments or segments[0][0] == 1
    for name in (LOCKS, STORE):
        problems: list[WalCorruption] = []
        for candidate in reversed(list_snapshots(directory, name)):
            try:
                snapshot = read_snapshot(candidate.path)
                meta = meta_decoder.decode(snapshot.meta)
                records = decode_records(name, snapshot.chunks)
                if snapshot.name != name or snapshot.lsn != candidate.lsn or len(records) != meta.count:
                    raise WalCorruption(candidate.path, 0, "snapshot header or count does not match")
            except (WalCorruption, msgspec.DecodeError) as error:
                problems.append(error if isinstance(error, WalCorruption)
                                else WalCorruption(candidate.path, 0, f"snapshot records undecodable: {error}"))
                continue
            if name == LOCKS:
                locks = LockLoader(records, meta.next_id)
            else:
                store = RuleLoader(records)
            lsns[name] = snapshot.lsn
            names.append(candidate.path.name)
            break
        else:
            if problems and not log_from_start:
                raise problems[0]
    replayer = Replayer(locks, store, lsns)
    from_lsn = min(lsns.values()) + 1
    state = LocalState(LockTable(), RuleTable(), names)
    previous_last: int | None = None
    for position, (first_lsn, path) in enumerate(segments):
        is_last = position == len(segments) - 1
        if not is_last and segments[position + 1][0] <= from_lsn:
            previous_last = segments[position + 1][0] - 1  # wholly covered by the snapshots
            continue
        parsed = parse_segment(read_segment(path))
        if previous_last is not None and first_lsn != previous_last + 1:
            raise WalCorruption(path, 0, f"segment missing: the previous one ends at LSN {previous_last}")
        problem = parsed.problem
        if parsed.first_lsn is None and not (is_last and problem is not None and problem.kind == "torn-tail"):
            assert problem is not None
            raise WalCorruption(path, problem.offset, problem.reason)
        if problem is not None:
            if problem.kind == "corruption" or not is_last:
                raise WalCorruption(path, problem.offset, problem.reason)
            state.torn_tail = f"{path.name} from byte {parsed.valid_end}: {problem.reason}"
        for lsn, payload in zip(parsed.lsns, parsed.payloads, strict=True):
            if lsn >= from_lsn:
                replayer(lsn, payload)
        state.segments += 1
        previous_last = parsed.last_lsn
    state.log_records = replayer.applied
    state.locks, state.store = locks.table(), store.table()
    return state
