"""Snapshot capture: take an actor's state without stalling it, and write it without holding the loop.

Capturing must not stall the actor: at 10^6 records even copying the list of records (immutable
msgspec Structs) holds it 10-35 ms. So the capture only starts a `CaptureWalk` (O(1)): its instant,
with the log's LSN and `next_id`, is the snapshot's state, and the records are then read out in
pieces of `PIECE`, one actor message each (about a millisecond), with requests served in between;
changes made meanwhile are journaled so that the pieces still add up to that instant (see
actors/capture_walk.py). The mailbox reply already waits until that LSN is durable, so a snapshot
never covers a change a crash could still lose. Each piece is encoded (msgspec) in the trio thread,
which then leaves the loop to others for as long again; a worker thread writes the file (os.write
and fsync release the GIL).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import trio

from actors.capture_walk import CaptureWalk
from actors.locks import LockTable
from actors.records import Lock, Rule
from actors.runtime import ActorStopped, Mailbox
from actors.store import RuleTable
from wal.errors import LogUnavailable
from wal.snapshot import SnapshotWriter, write_snapshot

LOCKS = "locks"
STORE = "store"
CHUNK = 10_000  # records per snapshot frame when the records are at hand (write_capture)
PIECE = 4_000  # records per actor message while a capture is read out (about 1 ms at 10^6 records)
WRITE_BATCH = 1 << 20  # encoded bytes handed to the worker thread per write


class SnapshotMeta(msgspec.Struct, frozen=True):
    count: int
    next_id: int = 0


_meta_encoder = msgspec.msgpack.Encoder()
meta_decoder = msgspec.msgpack.Decoder(SnapshotMeta)
_lock_chunk = msgspec.msgpack.Decoder(list[Lock])
_rule_chunk = msgspec.msgpack.Decoder(list[Rule])


class SnapshotInconsistent(RuntimeError):
    """A capture gave out another number of records than its state held (a bug; the file is not kept)."""


class ActorStream:
    """The records of one capture, read a piece per message to the actor that owns the table."""

    def __init__(
        self, mailbox: Mailbox, walk: CaptureWalk[Any, Any], end: Callable[[CaptureWalk[Any, Any]], None],
        piece: int = PIECE,
    ) -> None:
        self._mailbox = mailbox
        self._walk = walk
        self._end = end
        self._piece = piece
        self.count = walk.count
        self.held = 0.0  # the longest a piece held the actor, in seconds
        self.last_held = 0.0  # how long the latest piece held it
        self._closed = False

    async def next(self) -> list[Any] | None:
        """The next piece (maybe empty); None once every record was given out."""
        if self._closed:
            return None
        return await self._mailbox.ask(self._read)

    def _read(self) -> list[Any] | None:  # runs inside the actor
        started = time.perf_counter()
        records = self._walk.next(self._piece)
        if records is None:
            self._detach()
        self.last_held = time.perf_counter() - started
        self.held = max(self.held, self.last_held)
        return records

    def _detach(self) -> None:  # runs inside the actor
        self._closed = True
        self._end(self._walk)

    async def close(self) -> None:
        """Stop the table journaling for this capture (finished or not); safe to call more than once."""
        if self._closed:
            return
        try:
            await self._mailbox.ask(self._detach)
        except (ActorStopped, LogUnavailable):
            self._closed = True  # the actor is gone (or its reply failed after the message ran)


@dataclass(slots=True)
class Capture:
    """One actor's state as of `lsn` (every change up to it included, none after it): either the
    `records` themselves, or a `stream` that reads them out of the actor."""

    name: str
    lsn: int
    next_id: int
    records: Sequence[Any] = ()
    stream: ActorStream | None = None
    held: float = 0.0  # seconds the capture message held its actor

    @property
    def count(self) -> int:
        return self.stream.count if self.stream is not None else len(self.records)


def capture_locks(table: LockTable, lsn: int) -> Capture:
    """Every lock at hand (a shallow copy, O(n)); the actor streams instead (`stream_locks`)."""
    return Capture(LOCKS, lsn, table.next_id, table.records())


def capture_rules(table: RuleTable, lsn: int) -> Capture:
    return Capture(STORE, lsn, 0, table.records())


def stream_locks(table: LockTable, lsn: int, mailbox: Mailbox) -> Capture:
    """Run inside the lock actor: start a capture of its table, O(1)."""
    started = time.perf_counter()
    walk = table.begin_capture()
    stream = ActorStream(mailbox, walk, table.end_capture)
    return Capture(LOCKS, lsn, table.next_id, stream=stream, held=time.perf_counter() - started)


def stream_rules(table: RuleTable, lsn: int, mailbox: Mailbox) -> Capture:
    """Run inside the store actor: start a capture of its table, O(1)."""
    started = time.perf_counter()
    walk = table.begin_capture()
    stream = ActorStream(mailbox, walk, table.end_capture)
    return Capture(STORE, lsn, 0, stream=stream, held=time.perf_counter() - started)


def encode_chunks(records: Sequence[Any], chunk: int = CHUNK) -> Iterator[bytes]:
    encoder = msgspec.msgpack.Encoder()
    for start in range(0, len(records), chunk):
        yield encoder.encode(records[start : start + chunk])


def _meta(capture: Capture) -> bytes:
    return _meta_encoder.encode(SnapshotMeta(capture.count, capture.next_id))


def write_capture(directory: Path, capture: Capture, *, fsync: bool = True) -> Path:
    """Blocking: encode and write a capture whose records are at hand (no stream)."""
    assert capture.stream is None, "a streamed capture is written with write_streamed"
    return write_snapshot(directory, capture.name, capture.lsn, _meta(capture), encode_chunks(capture.records),
                          fsync=fsync)


async def _pieces(capture: Capture) -> AsyncIterator[list[Any]]:
    if capture.stream is None:
        for start in range(0, len(capture.records), CHUNK):
            yield list(capture.records[start : start + CHUNK])
        return
    while (piece := await capture.stream.next()) is not None:
        yield piece


def _write_chunks(writer: SnapshotWriter, chunks: list[bytes]) -> None:
    for chunk in chunks:
        writer.write_chunk(chunk)


async def write_streamed(directory: Path, capture: Capture, *, fsync: bool = True) -> Path:
    """Write a capture (streamed or not) without holding the event loop: each piece is encoded here,
    then the loop is left to other tasks for as long as the piece cost it (read out + encoding), so a
    snapshot takes at most about half of the loop's time; the file is written, fsync'd and renamed by
    worker threads."""
    writer = await trio.to_thread.run_sync(
        partial(SnapshotWriter, directory, capture.name, capture.lsn, _meta(capture), fsync=fsync)
    )
    try:
        encoder = msgspec.msgpack.Encoder()
        written = 0
        batch: list[bytes] = []
        size = 0
        async for piece in _pieces(capture):
            started = time.perf_counter()
            if piece:
                batch.append(encoder.encode(piece))
                written += len(piece)
                size += len(batch[-1])
            busy = time.perf_counter() - started + (capture.stream.last_held if capture.stream is not None else 0.0)
            if size >= WRITE_BATCH:
                await trio.to_thread.run_sync(_write_chunks, writer, batch)
                batch, size = [], 0
            await trio.sleep(busy)
        await trio.to_thread.run_sync(_write_chunks, writer, batch)
        if written != capture.count:
            raise SnapshotInconsistent(f"{capture.name} capture at LSN {capture.lsn} gave {written} records "
                                       f"of {capture.count}")
        return await trio.to_thread.run_sync(writer.commit)
    except BaseException:
        writer.abort()
        raise


def decode_records(name: str, chunks: Sequence[bytes]) -> list[Any]:
    decoder = _lock_chunk if name == LOCKS else _rule_chunk
    records: list[Any] = []
    for chunk in chunks:
        records.extend(decoder.decode(chunk))
    return records
