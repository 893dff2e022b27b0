"""The write-ahead log as trio sees it: synchronous append, awaitable durability, group commit.

Actors call `append` (never awaits, so an actor's state change and its log record happen in one step)
and hold their reply until `wait_durable` returns. One committer task, `run`, takes everything
buffered, writes and fsyncs it in a worker thread, and meanwhile lets new appends collect into the
next batch: however many requests arrive during one fsync, they share the next one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import trio

from wal.errors import LogUnavailable
from wal.frame import encode_frame
from wal.recovery import Recovery, recover
from wal.segment import SEGMENT_BYTES, SegmentWriter, ensure_directory, lock_directory

_CLOSED = "write-ahead log unavailable: the log is closed"

# Called in the trio thread after each batch: (frames, bytes, write seconds, fsync seconds). For metrics.
CommitHook = Callable[[int, int, float, float], None]


class WriteAheadLog:
    """An append-only log of opaque payloads; LSNs count appends in this process (1, 2, 3, ...)."""

    def __init__(self, writer: SegmentWriter, lock_fd: int, *, fsync: bool) -> None:
        """Use `WriteAheadLog.open`, which recovers the directory first."""
        self._writer = writer
        self._lock_fd = lock_fd
        self._fsync = fsync
        self._buffer: list[bytes] = []
        self._appended = 0
        self._durable = 0
        self._refusal: str | None = None  # set once appends are refused: closing, closed or failed
        self._failed = False
        self._committer_started = False
        self._committing = 0  # highest LSN handed to the writer
        self._wakeup = trio.Event()  # set when the committer has something to do
        # One event per batch, so a waiter wakes once: when its own batch is durable (or the log stops).
        self._inflight_done = trio.Event()  # the batch being written
        self._batch_done = trio.Event()  # the batch collecting in the buffer
        self._stopped = trio.Event()
        # A thread of our own: the fsync never queues behind other to_thread work in the process.
        self._thread_limiter = trio.CapacityLimiter(1)
        self.fsync_count = 0
        self.frames_written = 0
        self.bytes_written = 0
        self.batches = 0
        self.commit_hook: CommitHook | None = None

    @classmethod
    def open(
        cls, directory: Path, *, fsync: bool = True, segment_bytes: int = SEGMENT_BYTES
    ) -> tuple[WriteAheadLog, Recovery]:
        """Lock and recover `directory`, then position for appending to its newest segment.

        Blocking file I/O: call it before serving, or through `trio.to_thread.run_sync`.
        """
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        ensure_directory(directory)
        lock_fd = lock_directory(directory)
        try:
            recovery = recover(directory)
            writer = SegmentWriter(
                directory,
                recovery.last_segment or 1,
                recovery.last_segment_size,
                segment_bytes=segment_bytes,
                fsync=fsync,
            )
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(writer, lock_fd, fsync=fsync), recovery

    # ------------------------------------------------------------------ state

    @property
    def appended_lsn(self) -> int:
        return self._appended

    @property
    def durable_lsn(self) -> int:
        return self._durable

    @property
    def available(self) -> bool:
        """False once the log is closing, closed or failed: `append` would raise."""
        return self._refusal is None

    # ------------------------------------------------------------------ producers

    def append(self, payload: bytes) -> int:
        """Buffer one payload for the next batch and return its LSN; durable only after `wait_durable`."""
        if self._refusal is not None:
            raise LogUnavailable(self._refusal)
        self._buffer.append(encode_frame(payload))
        self._appended += 1
        self._wakeup.set()
        return self._appended

    async def wait_durable(self, lsn: int) -> None:
        """Return once every frame up to `lsn` is written and fsync'd (written, when fsync is off)."""
        if lsn <= self._durable:
            return
        if lsn > self._appended:
            raise ValueError(f"LSN {lsn} has not been appended (the last one is {self._appended})")
        while True:
            if self._failed or self._stopped.is_set():
                raise LogUnavailable(self._refusal or _CLOSED)
            await (self._inflight_done if lsn <= self._committing else self._batch_done).wait()
            if lsn <= self._durable:
                return

    # ------------------------------------------------------------------ committer

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Commit batches until `aclose` (returns after the final flush) or an I/O error (re-raised).

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
                    if self._buffer:
                        await self._commit()
                    elif self._refusal is not None:
                        return
                    else:
                        await self._wakeup.wait()
                        self._wakeup = trio.Event()
            finally:
                if self._refusal is None:
                    self._refusal = _CLOSED
                if self._buffer and not self._failed:
                    with trio.CancelScope(shield=True):
                        await self._commit()
        finally:
            self._stop()

    async def aclose(self) -> None:
        """Flush everything appended, stop the committer and close the files; idempotent."""
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
        upto = self._committing = self._appended
        done = self._inflight_done = self._batch_done
        self._batch_done = trio.Event()
        data = b"".join(batch)
        # Shielded: once the worker thread has synced, the outcome must be recorded even if we are
        # being cancelled (the thread cannot be abandoned mid-write anyway).
        with trio.CancelScope(shield=True):
            try:
                timings = await trio.to_thread.run_sync(self._write_and_sync, data, limiter=self._thread_limiter)
            except Exception as exc:
                self._fail(exc)
                raise
        self._durable = upto
        self.batches += 1
        self.frames_written += len(batch)
        self.bytes_written += len(data)
        if self._fsync:
            self.fsync_count += 1
        done.set()
        if self.commit_hook is not None:
            self.commit_hook(len(batch), len(data), *timings)

    def _write_and_sync(self, data: bytes) -> tuple[float, float]:
        """Runs in a worker thread: the only place batches touch the disk. Returns (write, fsync) seconds."""
        started = time.perf_counter()
        self._writer.append(data)
        written = time.perf_counter()
        self._writer.sync()
        return written - started, time.perf_counter() - written

    def _fail(self, exc: Exception) -> None:
        # Nothing buffered or in flight can be acknowledged now; the service must stop writing.
        self._failed = True
        self._refusal = f"write-ahead log unavailable: {exc}"
        self._buffer.clear()
        self._inflight_done.set()
        self._batch_done.set()

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
