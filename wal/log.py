"""The write-ahead log as trio sees it: synchronous append, awaitable durability, group commit.

Actors call `append` (never awaits, so an actor's state change and its log record happen in one step)
and hold their reply until `wait_durable` returns. One committer task, `run`, takes everything
buffered, writes it followed by a commit frame and fsyncs it in a worker thread, and meanwhile lets
new appends collect into the next batch: however many requests arrive during one fsync, they share
the next one.

LSNs are global and persistent (they continue across restarts, see wal/batches.py) and never
reused. When a write or fsync fails, every LSN not yet durable is *lost*: its waiters get
`LogUnavailable` (a 503, never a false acknowledgement), appends are refused, and actors undo the
lost changes (actors/rollback.py: `failures` and `is_lost` tell them which). The committer then cuts
the files back to the last synced state and probes the disk with an empty batch, with backoff, until
it succeeds; then appends are taken again. Reads never wait on lost LSNs: `appended_lsn` falls back
to the last durable one.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import trio

from wal import failpoints
from wal.batches import encode_commit
from wal.errors import LogUnavailable, WalCorruption
from wal.format import check_format, mark_format
from wal.frame import encode_frame
from wal.recovery import Recovery, Sink, recover
from wal.segment import SEGMENT_BYTES, SegmentWriter, ensure_directory, lock_directory, segment_path

_CLOSED = "write-ahead log unavailable: the log is closed"
RETRY_MIN_SECONDS = 0.05
RETRY_MAX_SECONDS = 2.0

log = logging.getLogger("lockstore.wal")

# Called in the trio thread after each batch: (frames, bytes, write seconds, fsync seconds). For metrics.
CommitHook = Callable[[int, int, float, float], None]


class WriteAheadLog:
    """An append-only log of opaque payloads with persistent LSNs (see the module docstring)."""

    def __init__(self, writer: SegmentWriter, lock_fd: int, *, fsync: bool, last_lsn: int = 0) -> None:
        """Use `WriteAheadLog.open`, which recovers the directory first."""
        self._writer = writer
        self._lock_fd = lock_fd
        self._fsync = fsync
        self._buffer: list[bytes] = []
        self._last_lsn = last_lsn  # last LSN handed out
        self._visible = last_lsn  # last LSN a reader may have seen applied (never a lost one)
        self._durable = last_lsn  # highest LSN made durable by a committed batch
        self._accounted = last_lsn  # highest LSN that is durable or known lost
        self._lost_starts: list[int] = []
        self._lost_ends: list[int] = []
        self._refusal: str | None = None  # set while appends are refused: failed, closing or closed
        self._failed = False
        self._closing = False
        self._last_failure = ""
        self._committer_started = False
        self._committing = 0  # highest LSN handed to the writer
        self._wakeup = trio.Event()  # set when the committer has something to do
        # One event per batch, so a waiter wakes once: when its own batch is durable (or the log stops).
        self._inflight_done = trio.Event()  # the batch being written
        self._batch_done = trio.Event()  # the batch collecting in the buffer
        self._stopped = trio.Event()
        self._snapshot_due = trio.Event()
        self._due_lsn = 1 << 62
        self._due_bytes = 1 << 62
        # A thread of our own: the fsync never queues behind other to_thread work in the process.
        self._thread_limiter = trio.CapacityLimiter(1)
        self.retry_delay = RETRY_MIN_SECONDS
        self.failures = 0  # write/fsync failures so far (actors compare it to know when to undo)
        self.recoveries = 0
        self.fsync_count = 0
        self.frames_written = 0
        self.bytes_written = 0
        self.bytes_appended = 0
        self.batches = 0
        self.commit_hook: CommitHook | None = None

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        fsync: bool = True,
        segment_bytes: int = SEGMENT_BYTES,
        from_lsn: int = 1,
        min_next_lsn: int = 1,
        sink: Sink | None = None,
        lock_fd: int | None = None,
    ) -> tuple[WriteAheadLog, Recovery]:
        """Lock `directory`, check and mark its data format (wal/format.py: UnsupportedFormat), recover
        it, then position for appending to its newest segment.

        `from_lsn`: the first LSN the caller needs replayed (older ones are in its snapshots); the log
        must still hold it. `min_next_lsn`: LSNs handed out from now on are at least this (snapshots
        may cover LSNs whose segments are gone). `lock_fd`: the directory lock, if the caller took it
        (ownership passes to the log). Blocking file I/O: call it before serving, or in a thread.
        """
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        ensure_directory(directory)
        if lock_fd is None:
            lock_fd = lock_directory(directory)
        try:
            # A data format this code cannot read is refused before anything is read or cut (wal/format.py).
            mark_format(directory, check_format(directory))
            recovery = recover(directory, from_lsn=from_lsn, sink=sink)
            if recovery.segments and recovery.first_lsn > from_lsn:
                raise WalCorruption(
                    segment_path(directory, recovery.first_lsn), 0,
                    f"the log starts at LSN {recovery.first_lsn} but must hold LSN {from_lsn} on "
                    "(an older segment is missing)",
                )
            if not recovery.segments and from_lsn < min_next_lsn:
                raise WalCorruption(
                    directory, 0, f"no log segment left, but LSNs {from_lsn}..{min_next_lsn - 1} are needed"
                )
            last_lsn = max(recovery.last_lsn, min_next_lsn - 1)
            if recovery.segments:
                writer = SegmentWriter(
                    directory, recovery.last_segment, recovery.last_segment_size, last_lsn,
                    segment_bytes=segment_bytes, fsync=fsync,
                )
            else:
                writer = SegmentWriter(directory, last_lsn + 1, 0, last_lsn, segment_bytes=segment_bytes, fsync=fsync)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(writer, lock_fd, fsync=fsync, last_lsn=last_lsn), recovery

    # ------------------------------------------------------------------ state

    @property
    def appended_lsn(self) -> int:
        """The last LSN whose change a reader may see: what a reply waits for (never a lost LSN)."""
        return self._visible

    @property
    def durable_lsn(self) -> int:
        return self._durable

    @property
    def available(self) -> bool:
        """False while the log is failed, closing or closed: `append` would raise."""
        return self._refusal is None

    @property
    def failed(self) -> bool:
        return self._failed

    def is_lost(self, lsn: int) -> bool:
        """True if `lsn` was appended but never became durable because a write or fsync failed."""
        i = bisect.bisect_right(self._lost_starts, lsn) - 1
        return i >= 0 and lsn <= self._lost_ends[i]

    # ------------------------------------------------------------------ snapshot trigger

    def arm_snapshot_trigger(self, records: int, bytes_: int, since_lsn: int | None = None) -> None:
        """`snapshot_due()` returns once `records` LSNs or `bytes_` bytes were appended after now
        (or after `since_lsn`, counting records only)."""
        base = self._last_lsn if since_lsn is None else since_lsn
        self._due_lsn = base + max(records, 1)
        self._due_bytes = self.bytes_appended + max(bytes_, 1)
        self._snapshot_due = trio.Event()
        if self._last_lsn >= self._due_lsn:
            self._snapshot_due.set()

    async def snapshot_due(self) -> None:
        await self._snapshot_due.wait()

    # ------------------------------------------------------------------ producers

    def append(self, payload: bytes) -> int:
        """Buffer one payload for the next batch and return its LSN; durable only after `wait_durable`."""
        failpoints.hit("append.before")
        if self._refusal is not None:
            raise LogUnavailable(self._refusal)
        frame = encode_frame(payload)
        self._buffer.append(frame)
        self._last_lsn += 1
        self._visible = self._last_lsn
        self.bytes_appended += len(frame)
        if self._last_lsn >= self._due_lsn or self.bytes_appended >= self._due_bytes:
            self._snapshot_due.set()
        self._wakeup.set()
        failpoints.hit("append.after")
        return self._last_lsn

    async def wait_durable(self, lsn: int) -> None:
        """Return once every frame up to `lsn` is written and fsync'd (written, when fsync is off).

        Raises LogUnavailable if `lsn` was lost to a failed write or fsync, or the log stopped first.
        """
        if lsn <= self._durable and not self._lost_starts:
            return
        if lsn > self._last_lsn:
            raise ValueError(f"LSN {lsn} has not been appended (the last one is {self._last_lsn})")
        while True:
            if self._lost_starts and self.is_lost(lsn):
                raise LogUnavailable(self._last_failure)
            if lsn <= self._durable:
                return
            if self._stopped.is_set():
                raise LogUnavailable(self._refusal or _CLOSED)
            await (self._inflight_done if lsn <= self._committing else self._batch_done).wait()

    # ------------------------------------------------------------------ committer

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Commit batches until `aclose` (returns after the final flush). A failed write or fsync does
        not end it: it fails the waiters, then repairs the files and resumes (see the module docstring).

        If cancelled instead, whatever is still buffered is flushed (shielded) before returning, so
        that a shutdown never drops records whose state change already happened.
        """
        if self._committer_started:
            raise RuntimeError("the write-ahead log's committer is already running")
        self._committer_started = True
        task_status.started()
        try:
            try:
                while True:
                    await trio.lowlevel.checkpoint_if_cancelled()
                    if self._failed:
                        if self._closing:
                            return
                        await self._repair()
                    elif self._buffer:
                        await self._commit()
                    elif self._closing:
                        return
                    else:
                        await self._wakeup.wait()
                        self._wakeup = trio.Event()
            finally:
                self._closing = True
                if self._refusal is None:
                    self._refusal = _CLOSED
                if self._buffer and not self._failed:
                    with trio.CancelScope(shield=True):
                        await self._commit()
        finally:
            self._stop()

    async def aclose(self) -> None:
        """Flush everything appended, stop the committer and close the files; idempotent."""
        self._closing = True
        if self._refusal is None:
            self._refusal = _CLOSED
        self._wakeup.set()
        if self._committer_started:
            await self._stopped.wait()
        else:
            await self.run()

    async def _commit(self) -> None:
        batch, self._buffer = self._buffer, []
        if self._wakeup.is_set():
            self._wakeup = trio.Event()
        upto = self._committing = self._last_lsn
        done = self._inflight_done = self._batch_done
        self._batch_done = trio.Event()
        batch.append(encode_commit(upto, len(batch)))
        data = b"".join(batch)
        # Shielded: once the worker thread has synced, the outcome must be recorded even if we are
        # being cancelled (the thread cannot be abandoned mid-write anyway).
        with trio.CancelScope(shield=True):
            try:
                timings = await trio.to_thread.run_sync(
                    self._write_and_sync, data, upto, limiter=self._thread_limiter
                )
            except OSError as exc:
                self._fail(exc)
                return
        self._durable = self._accounted = upto
        self.batches += 1
        self.frames_written += len(batch) - 1
        self.bytes_written += len(data)
        if self._fsync:
            self.fsync_count += 1
        done.set()
        if self.commit_hook is not None:
            self.commit_hook(len(batch) - 1, len(data), *timings)

    def _write_and_sync(self, data: bytes, last_lsn: int) -> tuple[float, float]:
        """Runs in a worker thread: the only place batches touch the disk. Returns (write, fsync) seconds."""
        started = time.perf_counter()
        self._writer.append(data, last_lsn)
        written = time.perf_counter()
        self._writer.sync()
        return written - started, time.perf_counter() - written

    def _fail(self, exc: OSError) -> None:
        # Nothing buffered or in flight can be acknowledged now: mark it lost and wake its waiters.
        first, last = self._accounted + 1, self._last_lsn
        if last >= first:
            self._lost_starts.append(first)
            self._lost_ends.append(last)
        self._accounted = last
        self._visible = self._durable
        self._failed = True
        self.failures += 1
        self._last_failure = f"write-ahead log unavailable: {exc}"
        if not self._closing:
            self._refusal = self._last_failure
        self._buffer.clear()
        self._inflight_done.set()
        self._batch_done.set()
        self._inflight_done = trio.Event()
        self._batch_done = trio.Event()
        log.error(
            "%s; refusing writes (LSNs %d..%d lost, none acknowledged) until the disk works again",
            self._last_failure, first, last,
        )

    async def _repair(self) -> None:
        """Wait (backoff), cut the files back to the last synced state, probe with an empty batch."""
        with trio.move_on_after(self.retry_delay):
            while not self._closing:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
        if self._closing:
            return
        try:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._reset_and_probe, self._accounted, limiter=self._thread_limiter)
        except OSError as exc:
            self._last_failure = f"write-ahead log unavailable: {exc}"
            if not self._closing:
                self._refusal = self._last_failure
            self.retry_delay = min(self.retry_delay * 2, RETRY_MAX_SECONDS)
            log.warning("%s; retrying in %.2f s", self._last_failure, self.retry_delay)
            return
        self._failed = False
        self.recoveries += 1
        self.retry_delay = RETRY_MIN_SECONDS
        if not self._closing:
            self._refusal = None
        log.warning("write-ahead log writable again (log cut back to LSN %d); accepting writes", self._durable)

    def _reset_and_probe(self, last_lsn: int) -> None:
        self._writer.reset()
        self._writer.append(encode_commit(last_lsn, 0), last_lsn)
        self._writer.sync()

    def _stop(self) -> None:
        try:
            self._writer.close()
        finally:
            if self._lock_fd >= 0:
                fd, self._lock_fd = self._lock_fd, -1
                os.close(fd)
            self._inflight_done.set()
            self._batch_done.set()
            self._stopped.set()
