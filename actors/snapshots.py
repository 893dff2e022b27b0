"""Actor snapshots: when to take them, compaction, and start-up from snapshots plus the log.

Taking one without stalling the actors is actors/snapshot_capture.py.

Start-up loads the newest snapshot of each actor into a loader (records by id, no indexes), replays
the log after it into the loader, and only then builds each table's indexes, once, in bulk.

Compaction keeps the newest `KEEP` snapshots of each actor and deletes the log segments wholly
covered by the *older* kept snapshot of every actor: if the newest snapshot turns out damaged,
start-up falls back to the older one plus the segments after it.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import msgspec
import trio

from actors.locks import LockLoader, LockTable
from actors.records import Event, LocksCreated, LocksRemoved, RulesCreated, RulesRemoved, RulesUpdated
from actors.runtime import ActorStopped
from actors.snapshot_capture import LOCKS, STORE, Capture, SnapshotInconsistent, meta_decoder, write_streamed
from actors.snapshot_capture import decode_records as decode_records  # transports/admin.py reads snapshots
from actors.store import RuleLoader, RuleTable
from wal import failpoints
from wal.errors import LogUnavailable, WalCorruption
from wal.format import check_format
from wal.log import WriteAheadLog
from wal.recovery import Recovery
from wal.segment import SEGMENT_BYTES, ensure_directory, list_segments, lock_directory, sync_directory
from wal.snapshot import SnapshotFile, list_snapshots, read_snapshot, remove_temporaries

KEEP = 2

log = logging.getLogger("lockstore.snapshots")


# ------------------------------------------------------------------------------------------ start-up


@dataclass
class Loaded:
    """What start-up restored from snapshots (not indexed yet), and what it had to skip."""

    locks: LockLoader
    store: RuleLoader
    lsns: dict[str, int] = field(default_factory=dict)  # snapshot LSN per actor (0: none)
    files: list[Path] = field(default_factory=list)
    records: int = 0
    bytes: int = 0
    seconds: float = 0.0
    damaged: list[WalCorruption] = field(default_factory=list)
    removed_temporaries: list[Path] = field(default_factory=list)

    @property
    def from_lsn(self) -> int:
        return min(self.lsns.values()) + 1

    @property
    def min_next_lsn(self) -> int:
        return max(self.lsns.values()) + 1

    def describe(self) -> str:
        if not self.files:
            return "no snapshot"
        names = ", ".join(path.name for path in self.files)
        return f"{self.records} records from {names} ({self.bytes} bytes) in {self.seconds:.3f} s"


def load_snapshots(directory: Path) -> Loaded:
    """Restore each actor from its newest intact snapshot (falling back to older ones, then to an
    empty table if the log still starts at LSN 1). Blocking; call before serving."""
    started = time.perf_counter()
    loaded = Loaded(LockLoader(), RuleLoader(), {LOCKS: 0, STORE: 0})
    loaded.removed_temporaries = remove_temporaries(directory)
    segments = list_segments(directory)
    log_from_start = not segments or segments[0][0] == 1
    for name in (LOCKS, STORE):
        problems: list[WalCorruption] = []
        for candidate in reversed(list_snapshots(directory, name)):
            try:
                snapshot = read_snapshot(candidate.path)
                if snapshot.name != name or snapshot.lsn != candidate.lsn:
                    raise WalCorruption(candidate.path, 0, "snapshot header does not match its file name")
                meta = meta_decoder.decode(snapshot.meta)
                records = decode_records(name, snapshot.chunks)
                snapshot.chunks.clear()  # the encoded bytes are not needed any more: lower peak memory
                if len(records) != meta.count:
                    raise WalCorruption(candidate.path, 0, f"snapshot holds {len(records)} records, says {meta.count}")
            except (WalCorruption, msgspec.DecodeError) as error:
                if not isinstance(error, WalCorruption):
                    error = WalCorruption(candidate.path, 0, f"snapshot records undecodable: {error}")
                problems.append(error)
                continue
            if name == LOCKS:
                loaded.locks = LockLoader(records, meta.next_id)
            else:
                loaded.store = RuleLoader(records)
            loaded.lsns[name] = snapshot.lsn
            loaded.files.append(candidate.path)
            loaded.records += len(records)
            loaded.bytes += snapshot.size
            break
        else:
            if problems and not log_from_start:
                raise problems[0]
        loaded.damaged += problems
    loaded.seconds = time.perf_counter() - started
    return loaded


class _LockSink(Protocol):
    def apply(self, event: LocksCreated | LocksRemoved) -> None: ...


class _StoreSink(Protocol):
    def apply(self, event: RulesCreated | RulesUpdated | RulesRemoved) -> None: ...


_event_decoder = msgspec.msgpack.Decoder(Event)  # decode_event's, without a call per event
_LOCK_EVENTS = frozenset({LocksCreated, LocksRemoved})


class Replayer:
    """Log sink: applies each event to its actor's table (or loader) unless its snapshot covers it."""

    def __init__(self, locks: _LockSink, store: _StoreSink, lsns: dict[str, int]) -> None:
        self.locks, self.store = locks, store
        self.lock_lsn, self.store_lsn = lsns.get(LOCKS, 0), lsns.get(STORE, 0)
        self.applied = 0
        self.skipped = 0

    def __call__(self, lsn: int, payload: bytes) -> None:
        event = _event_decoder.decode(payload)
        if type(event) in _LOCK_EVENTS:
            if lsn > self.lock_lsn:
                self.locks.apply(event)
                self.applied += 1
                return
        elif lsn > self.store_lsn:
            self.store.apply(event)
            self.applied += 1
            return
        self.skipped += 1


def without_gc(work: Callable[[], Any]) -> Any:
    """Run a bulk load with the cyclic GC paused, then freeze what it built.

    Millions of new long-lived objects otherwise trigger full collections over and over (seconds at
    10^6 records); frozen, they are also never scanned again by later collections.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return work()
    finally:
        if was_enabled:
            gc.enable()
        gc.freeze()


# ------------------------------------------------------------------------------------------ running


class Snapshotter:
    """Takes snapshots of every actor when the log has grown enough, then compacts (see module doc)."""

    def __init__(
        self,
        directory: Path,
        wal: WriteAheadLog,
        captures: Sequence[Callable[[], Awaitable[Capture]]],
        *,
        every_records: int,
        every_bytes: int,
        fsync: bool = True,
        since_lsn: int = 0,
    ) -> None:
        self._directory = directory
        self._wal = wal
        self._captures = captures
        self._every_records = every_records
        self._every_bytes = every_bytes
        self._fsync = fsync
        self._since_lsn = since_lsn
        self.taken = 0
        self.running = False  # True while a snapshot is being captured or written (for benchmarks)
        self.last_stall = 0.0  # seconds the slowest capture of the last snapshot held its actor
        self._scope = trio.CancelScope()

    def stop(self) -> None:
        """End `run` (at shutdown, before the actors stop). A snapshot being written is finished if its
        actor still answers, else abandoned (its temporary file removed; the log still has everything)."""
        self._scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._wal.arm_snapshot_trigger(self._every_records, self._every_bytes, since_lsn=self._since_lsn)
        task_status.started()
        with self._scope:
            await self._loop()

    async def _loop(self) -> None:
        delay = 1.0
        while True:
            await self._wal.snapshot_due()
            self._wal.arm_snapshot_trigger(self._every_records, self._every_bytes)
            try:
                await self.snapshot_now()
                delay = 1.0
            except ActorStopped:
                return
            except (OSError, LogUnavailable, SnapshotInconsistent) as error:
                log.error("snapshot failed (will retry in %.0f s): %s", delay, error)
                await trio.sleep(delay)
                delay = min(delay * 2, 60.0)
                self._wal.arm_snapshot_trigger(0, 0)

    async def snapshot_now(self) -> list[Path]:
        """Snapshot every actor now, then delete what the kept snapshots make redundant."""
        written: list[Path] = []
        self.running = True
        try:
            started = time.perf_counter()
            stall = 0.0
            for capture_state in self._captures:
                capture = await capture_state()
                try:
                    newest = list_snapshots(self._directory, capture.name)
                    if newest and newest[-1].lsn >= capture.lsn:
                        continue
                    with trio.CancelScope(shield=True):
                        written.append(await write_streamed(self._directory, capture, fsync=self._fsync))
                finally:
                    if capture.stream is not None:
                        with trio.CancelScope(shield=True):
                            await capture.stream.close()
                    stall = max(stall, capture.held, capture.stream.held if capture.stream is not None else 0.0)
            removed = await trio.to_thread.run_sync(self.compact)
        finally:
            self.running = False
        self.taken += 1
        self.last_stall = stall
        log.info(
            "snapshot written: %s in %.3f s (longest hold of an actor %.1f ms); removed %d old file(s)",
            ", ".join(p.name for p in written) or "nothing new", time.perf_counter() - started, stall * 1e3,
            len(removed),
        )
        return written

    def compact(self) -> list[Path]:
        """Keep KEEP snapshots per actor; delete segments wholly covered by the older kept ones."""
        removed: list[Path] = []
        kept: dict[str, list[SnapshotFile]] = {}
        for name in (LOCKS, STORE):
            files = list_snapshots(self._directory, name)
            for old in files[:-KEEP]:
                old.path.unlink()
                removed.append(old.path)
            kept[name] = files[-KEEP:]
        covered = min((files[0].lsn if len(files) >= KEEP else 0) for files in kept.values())
        segments = list_segments(self._directory)
        for (_, path), (next_first, _) in pairwise(segments):
            if next_first - 1 > covered:
                break
            failpoints.hit("segments.delete.before")
            path.unlink()
            removed.append(path)
        if removed and self._fsync:
            sync_directory(self._directory)
        return removed


# ------------------------------------------------------------------------------------------ composition


@dataclass
class OpenedState:
    """The log, opened for appending, and the tables rebuilt from snapshots plus the log after them."""

    wal: WriteAheadLog
    recovery: Recovery
    loaded: Loaded
    locks: LockTable
    store: RuleTable
    replayed: int
    seconds: float
    indexing: float = 0.0  # seconds spent building the tables' indexes after the replay


def open_state(directory: Path, *, fsync: bool = True, segment_bytes: int = SEGMENT_BYTES) -> OpenedState:
    """Lock the log directory, load the snapshots, replay the log after them, index, log what it loaded.

    Raises UnsupportedFormat (wal/format.py) for a data format this code cannot read, before it touches
    anything; WalCorruption (file and offset) when the snapshots and the log cannot give back the
    acknowledged state. Blocking; call before serving.
    """
    started = time.perf_counter()
    ensure_directory(directory)
    lock_fd = lock_directory(directory)
    try:
        check_format(directory)  # before any file is read or removed (wal/format.py); the log marks it
        loaded = without_gc(lambda: load_snapshots(directory))
    except BaseException:
        os.close(lock_fd)
        raise
    for path in loaded.removed_temporaries:
        log.warning("removed a snapshot left half written by a crash: %s", path)
    for damage in loaded.damaged:
        log.error("ignoring a damaged snapshot (an older one or the log replaces it): %s", damage)
    replayer = Replayer(loaded.locks, loaded.store, loaded.lsns)
    wal, recovery = without_gc(
        lambda: WriteAheadLog.open(
            directory, fsync=fsync, segment_bytes=segment_bytes, from_lsn=loaded.from_lsn,
            min_next_lsn=loaded.min_next_lsn, sink=replayer, lock_fd=lock_fd,
        )
    )
    if recovery.torn_tail is not None:
        log.warning("write-ahead log: %s", recovery.torn_tail.describe())
    indexing_started = time.perf_counter()
    locks, store = without_gc(lambda: (loaded.locks.table(), loaded.store.table()))
    indexing = time.perf_counter() - indexing_started
    seconds = time.perf_counter() - started
    log.info(
        "loaded %s; replayed %d records after LSN %d from %d of %d segment(s) (%d bytes) in %.3f s; "
        "indexed %d locks, %d rules in %.3f s; next LSN %d; start-up state ready in %.3f s",
        loaded.describe(), replayer.applied, loaded.from_lsn - 1, recovery.segments_read, recovery.segments,
        recovery.bytes, recovery.seconds, len(locks), len(store), indexing, wal.appended_lsn + 1, seconds,
    )
    return OpenedState(wal, recovery, loaded, locks, store, replayer.applied, seconds, indexing)
