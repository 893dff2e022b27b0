"""Snapshot files: one actor's state as of an LSN, written so that a crash never leaves a half file.

Layout (the frame codec of wal/frame.py, so every part is checksummed)::

    HEADER(magic, LSN, name, meta)  RECORD(chunk) ... RECORD(chunk)  COMMIT(LSN, chunk count)

Chunks and meta are opaque bytes here (actors/snapshots.py encodes records into them). A snapshot
is written to `<name>.tmp`, fsync'd, renamed to `snap-<name>-<LSN, 20 digits>.snap`, and the directory
fsync'd: a file with the final name is complete unless the disk damaged it afterwards, which the
reader reports as `WalCorruption` with the file and the byte offset.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wal import failpoints
from wal.errors import WalCorruption
from wal.frame import HEADER_SIZE, KIND_COMMIT, KIND_HEADER, KIND_RECORD, encode_frame, scan
from wal.segment import fsync_file, sync_directory, write_all

SNAPSHOT_MAGIC = b"locksnp1"  # the digit is the data format version (wal/format.py)
_HEADER = struct.Struct("<8sQH")  # magic, LSN, name length; then the name, then meta
_COMMIT = struct.Struct("<QI")
_NAME = re.compile(r"snap-([a-z]+)-(\d{20})\.snap")
TEMP_SUFFIX = ".snap.tmp"


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    name: str
    lsn: int
    path: Path


@dataclass(slots=True)
class Snapshot:
    name: str
    lsn: int
    meta: bytes
    chunks: list[bytes]
    size: int


def snapshot_path(directory: Path, name: str, lsn: int) -> Path:
    return directory / f"snap-{name}-{lsn:020d}.snap"


def list_snapshots(directory: Path, name: str | None = None) -> list[SnapshotFile]:
    """Snapshot files in `directory` (of actor `name`, or all), oldest LSN first."""
    found = []
    for entry in os.scandir(directory):
        match = _NAME.fullmatch(entry.name)
        if match is not None and entry.is_file() and (name is None or match[1] == name):
            found.append(SnapshotFile(match[1], int(match[2]), Path(entry.path)))
    found.sort(key=lambda s: (s.lsn, s.name))
    return found


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete snapshots a crash left half written (they never got their final name)."""
    removed = [Path(e.path) for e in os.scandir(directory) if e.name.endswith(TEMP_SUFFIX)]
    for path in removed:
        path.unlink()
    return removed


class SnapshotWriter:
    """One snapshot file being written, piece by piece: `write_chunk` as often as needed, then `commit`
    (or `abort` on any error). Blocking calls: run them in a worker thread. A failure inside `commit`
    removes the temporary file itself; otherwise the caller must `abort`.
    """

    def __init__(self, directory: Path, name: str, lsn: int, meta: bytes, *, fsync: bool = True) -> None:
        self._directory = directory
        self._lsn = lsn
        self._fsync = fsync
        self.final = snapshot_path(directory, name, lsn)
        self.temp = directory / f"snap-{name}-{lsn:020d}{TEMP_SUFFIX}"
        self.size = 0
        self.chunks = 0
        self._fd: int | None = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            encoded_name = name.encode()
            head = _HEADER.pack(SNAPSHOT_MAGIC, lsn, len(encoded_name)) + encoded_name + meta
            self._write(encode_frame(head, KIND_HEADER))
        except BaseException:
            self.abort()
            raise

    def _write(self, data: bytes) -> None:
        assert self._fd is not None, "snapshot writer already closed"
        write_all(self._fd, data)
        self.size += len(data)

    def write_chunk(self, chunk: bytes) -> None:
        failpoints.hit("snapshot.write")
        self._write(encode_frame(chunk, KIND_RECORD))
        self.chunks += 1

    def commit(self) -> Path:
        """Trailer, fsync, close, rename to the final name, fsync the directory."""
        try:
            self._write(encode_frame(_COMMIT.pack(self._lsn, self.chunks), KIND_COMMIT))
            if self._fsync:
                assert self._fd is not None
                fsync_file(self._fd, self.temp, self.size)
            self._close()
            failpoints.hit("snapshot.rename.before")
            os.rename(self.temp, self.final)
            failpoints.hit("snapshot.rename.after")
            if self._fsync:
                sync_directory(self._directory)
        except BaseException:
            self.abort()
            raise
        return self.final

    def abort(self) -> None:
        """Close and delete the temporary file (never raises for a file already gone)."""
        self._close()
        self.temp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def write_snapshot(
    directory: Path, name: str, lsn: int, meta: bytes, chunks: Iterable[bytes], *, fsync: bool = True
) -> Path:
    """Write, fsync, rename and fsync the directory; blocking (run it in a worker thread).

    `chunks` is consumed lazily. On any error the temporary file is removed and the error re-raised.
    """
    writer = SnapshotWriter(directory, name, lsn, meta, fsync=fsync)
    try:
        for chunk in chunks:
            writer.write_chunk(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.commit()


def read_snapshot(path: Path) -> Snapshot:
    """Read and verify a whole snapshot file; any damage raises WalCorruption (file and offset)."""
    data = path.read_bytes()
    scanned = scan(data)
    payloads, kinds, offsets = scanned.payloads, scanned.kinds, scanned.offsets
    if not payloads or kinds[0] != KIND_HEADER or payloads[0][:8] != SNAPSHOT_MAGIC:
        if payloads and kinds[0] == KIND_HEADER and payloads[0][:7] == SNAPSHOT_MAGIC[:7]:
            raise WalCorruption(path, 0, f"snapshot of another data format (magic {bytes(payloads[0][:8])!r}; "
                                f"this lockstore reads {SNAPSHOT_MAGIC!r})")
        raise WalCorruption(path, 0, "not a snapshot file (bad or missing header)")
    head = payloads[0]
    _, lsn, name_length = _HEADER.unpack_from(head)
    name = head[_HEADER.size : _HEADER.size + name_length].decode()
    meta = head[_HEADER.size + name_length :]
    chunks: list[bytes] = []
    for i in range(1, len(payloads)):
        if kinds[i] == KIND_RECORD:
            chunks.append(payloads[i])
            continue
        if kinds[i] != KIND_COMMIT or len(payloads[i]) != _COMMIT.size:
            raise WalCorruption(path, offsets[i], "unexpected frame in a snapshot")
        commit_lsn, count = _COMMIT.unpack(payloads[i])
        end = offsets[i] + HEADER_SIZE + len(payloads[i])
        if commit_lsn != lsn or count != len(chunks):
            raise WalCorruption(path, offsets[i], f"snapshot trailer says {count} chunks at LSN {commit_lsn}")
        if end != len(data):
            raise WalCorruption(path, end, "bytes after the end of the snapshot")
        return Snapshot(name, lsn, meta, chunks, len(data))
    if scanned.problem is not None:
        raise WalCorruption(path, scanned.problem.offset, f"snapshot damaged: {scanned.problem.reason}")
    raise WalCorruption(path, scanned.valid_end, "snapshot cut short (no trailer)")
