"""Segment files on disk: naming, listing, reading, and the one writer that appends to them.

Every byte the log writes goes through `write_all` and every fsync through `fsync_file` or
`sync_directory`, which is where the failpoints (wal/failpoints.py) sit. Frames never span segments:
a batch is written whole into one file. A segment is named after the first LSN it may hold
(`wal-<first LSN, 20 digits>.log`) and starts with a header frame that repeats it (wal/batches.py).
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from wal import failpoints
from wal.batches import encode_segment_header
from wal.errors import LogUnavailable

SEGMENT_BYTES = 64 << 20
LOCK_NAME = "LOCK"
_SEGMENT_NAME = re.compile(r"wal-(\d{20})\.log")
_datasync = os.fdatasync if hasattr(os, "fdatasync") else os.fsync  # size is metadata fdatasync flushes


def segment_path(directory: Path, first_lsn: int) -> Path:
    return directory / f"wal-{first_lsn:020d}.log"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(first LSN, path) of every segment file in `directory`, oldest first; other files are ignored."""
    found = []
    for entry in os.scandir(directory):
        match = _SEGMENT_NAME.fullmatch(entry.name)
        if match is not None and entry.is_file():
            found.append((int(match.group(1)), Path(entry.path)))
    found.sort()
    return found


def ensure_directory(directory: Path) -> None:
    """Create the log directory if missing, durably (its entry in the parent is fsync'd too)."""
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        sync_directory(directory.parent)


def read_segment(path: Path) -> bytes:
    return path.read_bytes()


def truncate_segment(path: Path, length: int) -> None:
    """Cut `path` to `length` bytes and make the cut durable before anything is appended after it."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, length)
        fsync_file(fd, path, length)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        failpoints.hit("io.write")
        written = os.write(fd, view)
        view = view[written:]


def fsync_file(fd: int, path: Path, size: int, *, data_only: bool = False) -> None:
    """fsync (or fdatasync) one file; `size` is its length, for the power-loss test trace."""
    failpoints.hit("io.fsync")
    (_datasync if data_only else os.fsync)(fd)
    failpoints.synced(str(path), size)


def sync_directory(directory: Path) -> None:
    """fsync a directory so that files created (or deleted) in it survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        failpoints.hit("io.fsync")
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_directory(directory: Path) -> int:
    """Take an exclusive lock on the log directory (released when the returned fd is closed).

    Two processes appending to one log would interleave frames and corrupt it; the kernel drops the
    lock when the holder dies, so a crash never leaves a stale lock behind.
    """
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LogUnavailable(
            f"write-ahead log unavailable: {directory} is in use by another process"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


class SegmentWriter:
    """Appends batches to the newest segment, rolling over to a new file when it is full, and can
    cut the files back to the last synced state after a failed write or fsync.

    Not thread-safe: the log calls it from one worker thread at a time.
    """

    def __init__(
        self, directory: Path, first_lsn: int, size: int, last_lsn: int, *, segment_bytes: int, fsync: bool
    ) -> None:
        """Append to segment `first_lsn` of `size` bytes (created, with its header, when size is 0);
        `last_lsn` is the last LSN the log accounts for (the next segment is named after it + 1)."""
        self._directory = directory
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._first_lsn = first_lsn
        self._size = size
        self._last_lsn = last_lsn
        self._fd = -1
        if size == 0:
            self._create(first_lsn)
        else:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._durable = (first_lsn, self._size, last_lsn)

    @property
    def first_lsn(self) -> int:
        return self._first_lsn

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> Path:
        return segment_path(self._directory, self._first_lsn)

    def append(self, data: bytes, last_lsn: int) -> None:
        """Write `data` (whole frames ending in a commit for `last_lsn`), rolling over first if full."""
        if self._size + len(data) > self._segment_bytes and self._size > len(encode_segment_header(1)):
            self._roll()
        self._size += len(data)  # counted before the write: a partial write still needs cutting back
        write_all(self._fd, data)
        self._last_lsn = last_lsn

    def sync(self) -> None:
        """Make everything appended so far durable (a no-op when fsync is disabled)."""
        if self._fsync:
            failpoints.hit("fsync.before")
            fsync_file(self._fd, self.path, self._size, data_only=True)
            failpoints.hit("fsync.after")
        self._durable = (self._first_lsn, self._size, self._last_lsn)

    def reset(self) -> None:
        """After a failed write or fsync: drop every byte not known durable, reopen, fsync the cut.

        Segments created since the last good sync are removed; the durable one is truncated to its
        synced length. Raises OSError if the disk still fails (the log then retries later).
        """
        self.close()
        first_lsn, size, last_lsn = self._durable
        removed = False
        for segment_first, path in list_segments(self._directory):
            if segment_first > first_lsn:
                path.unlink()
                removed = True
        if removed:
            sync_directory(self._directory)
        truncate_segment(segment_path(self._directory, first_lsn), size)
        self._first_lsn, self._size, self._last_lsn = first_lsn, size, last_lsn
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def _roll(self) -> None:
        # The previous batch was synced before this one was taken, so the old file is already durable.
        self.close()
        self._create(self._last_lsn + 1)

    def _create(self, first_lsn: int) -> None:
        """A new segment: header written and synced, directory synced, before any batch goes in."""
        path = segment_path(self._directory, first_lsn)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self._fd, self._first_lsn, self._size = fd, first_lsn, 0
        header = encode_segment_header(first_lsn)
        self._size = len(header)
        write_all(fd, header)
        if self._fsync:
            fsync_file(fd, path, self._size)
            sync_directory(self._directory)
