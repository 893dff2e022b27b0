"""Segment files on disk: naming, listing, reading, and the one writer that appends to them.

Every byte the log writes goes through `SegmentWriter.append` and every fsync through
`SegmentWriter.sync` or `sync_directory`, so that snapshots, segment deletion and failpoints can be
added in one place. Frames never span segments: a batch is written whole into one file.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from wal.errors import LogUnavailable

SEGMENT_BYTES = 64 << 20
LOCK_NAME = "LOCK"
_SEGMENT_NAME = re.compile(r"wal-(\d{8})\.log")
_datasync = os.fdatasync if hasattr(os, "fdatasync") else os.fsync  # size is metadata fdatasync flushes


def segment_path(directory: Path, index: int) -> Path:
    return directory / f"wal-{index:08d}.log"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(index, path) of every segment file in `directory`, oldest first; other files are ignored."""
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
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_directory(directory: Path) -> None:
    """fsync a directory so that files created (or deleted) in it survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
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
    """Appends batches of frames to the newest segment, rolling over to a new file when it is full.

    Not thread-safe: the log calls it from one worker thread at a time.
    """

    def __init__(self, directory: Path, index: int, size: int, *, segment_bytes: int, fsync: bool) -> None:
        """Open segment `index` (creating it if missing) for appending; `size` is its current length."""
        self._directory = directory
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._index = index
        self._size = size
        self._fd = self._open(index, create_new=False)

    @property
    def index(self) -> int:
        return self._index

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> Path:
        return segment_path(self._directory, self._index)

    def append(self, data: bytes) -> None:
        """Write `data` (whole frames) to the current segment, starting a new one first if it is full."""
        if self._size > 0 and self._size + len(data) > self._segment_bytes:
            self._roll()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            self._size += written
            view = view[written:]

    def sync(self) -> None:
        """Make everything appended so far durable (a no-op when fsync is disabled)."""
        if self._fsync:
            _datasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def _roll(self) -> None:
        # The previous batch was synced before this one was taken, so the old file is already durable.
        self.close()
        self._fd = self._open(self._index + 1, create_new=True)
        self._index += 1
        self._size = 0

    def _open(self, index: int, *, create_new: bool) -> int:
        path = segment_path(self._directory, index)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        if create_new:
            flags |= os.O_EXCL
        existed = not create_new and path.exists()
        fd = os.open(path, flags, 0o644)
        if not existed and self._fsync:
            try:
                sync_directory(self._directory)
            except BaseException:
                os.close(fd)
                raise
        return fd
