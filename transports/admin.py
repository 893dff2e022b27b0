"""Operator commands on a stopped service's data directory: `lockstore check` and `lockstore dump`.

Both read the files directly (the service must not be running: `check --repair` takes the
directory lock first and refuses otherwise).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any

import msgspec

from actors.records import decode_event
from actors.snapshots import decode_records
from wal.batches import parse_segment
from wal.check import inspect, repair
from wal.errors import LogUnavailable, WalCorruption
from wal.format import FORMAT_FILE, UnsupportedFormat, check_format
from wal.segment import list_segments, lock_directory, read_segment
from wal.snapshot import list_snapshots, read_snapshot

_json = msgspec.json.Encoder()


def log_directory(data_dir: Path) -> Path:
    return data_dir / "wal"


def check(data_dir: Path, *, do_repair: bool = False, out: IO[str] = sys.stdout) -> int:
    """Print what is intact and what is not; 0 if everything is, 1 if not (after a repair: 0)."""
    directory = log_directory(data_dir)
    if not directory.is_dir():
        print(f"lockstore: no log directory at {directory}", file=out)
        return 1
    try:
        inspection = inspect(directory)
    except UnsupportedFormat as error:  # a newer lockstore's directory: not read, and never "repaired"
        print(f"log directory {directory}", file=out)
        print(f"  {error}", file=out)
        print("NOT INSPECTED (see above)", file=out)
        return 1
    for line in inspection.lines():
        print(line, file=out)
    if not do_repair or inspection.intact:
        return 0 if inspection.intact else 1
    try:
        lock_fd = lock_directory(directory)
    except LogUnavailable as error:
        print(f"lockstore: cannot repair: {error}", file=out)
        return 1
    try:
        backup, actions = repair(inspection)
    finally:
        os.close(lock_fd)
    print(f"backup copy: {backup}", file=out)
    for action in actions:
        print(f"repair: {action}", file=out)
    return 0


def _plain(value: Any) -> Any:
    """Structs as objects with their field names (and event type), for humans and jq."""
    if isinstance(value, msgspec.Struct):
        fields = {name: _plain(getattr(value, name)) for name in value.__struct_fields__}
        tag = value.__struct_config__.tag
        return {"type": type(value).__name__, **fields} if tag else fields
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def dump(data_dir: Path, out: IO[str] = sys.stdout) -> int:
    """Print the data format, then every snapshot record and every committed log record, as one JSON
    object per line (`{"kind": "format", "version": 1, "file": "FORMAT"}`; `"file": null` when the
    directory has no FORMAT file: written by lockstore 0.1.0)."""
    directory = log_directory(data_dir)
    if not directory.is_dir():
        print(f"lockstore: no log directory at {directory}", file=sys.stderr)
        return 1
    try:
        data_format = check_format(directory)
    except UnsupportedFormat as error:  # a newer lockstore's records: printing them as ours would mislead
        print(f"lockstore: {error}", file=sys.stderr)
        return 1
    status = 0
    write = out.write
    marker = FORMAT_FILE if data_format.marked else None
    write(_json.encode({"kind": "format", "version": data_format.version, "file": marker}).decode() + "\n")
    for snap in list_snapshots(directory):
        try:
            snapshot = read_snapshot(snap.path)
        except WalCorruption as error:
            print(f"lockstore: {error}", file=sys.stderr)
            status = 1
            continue
        base = {"file": snap.path.name, "kind": "snapshot", "actor": snapshot.name, "lsn": snapshot.lsn}
        for record in decode_records(snapshot.name, snapshot.chunks):
            write(_json.encode({**base, "record": _plain(record)}).decode() + "\n")
    for _, path in list_segments(directory):
        parsed = parse_segment(read_segment(path))
        for lsn, offset, payload in zip(parsed.lsns, parsed.offsets, parsed.payloads, strict=True):
            entry = {"file": path.name, "kind": "log", "lsn": lsn, "offset": offset,
                     "event": _plain(decode_event(payload))}
            write(_json.encode(entry).decode() + "\n")
        if parsed.problem is not None:
            print(f"lockstore: {path} at byte offset {parsed.problem.offset}: {parsed.problem.reason} "
                  f"({parsed.problem.kind})", file=sys.stderr)
            status = 1
    return status
