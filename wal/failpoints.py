"""Named failpoints in the write path, armed by an environment variable in tests only.

`LOCKSTORE_FAILPOINTS` is a `;`-separated list of `name=action@N` (fires on the N-th hit only) or
`name=action@N+` (fires on the N-th hit and every hit after it). Actions: `kill` (SIGKILL this
process: a crash at exactly that point), or an errno name such as `EIO` or `ENOSPC` (raise that
OSError, as a failing disk would). Example: `fsync.after=kill@12;io.write=ENOSPC@3+`.

`LOCKSTORE_SYNC_TRACE=<file>` makes every file fsync append "<path>\\t<size>" to that file, so a test
can simulate a power loss by cutting each file back to its last synced length.

Unarmed (the production case) a failpoint costs one global lookup and a falsy test.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from dataclasses import dataclass

ENV = "LOCKSTORE_FAILPOINTS"
TRACE_ENV = "LOCKSTORE_SYNC_TRACE"

NAMES = (
    "append.before",  # WriteAheadLog.append, before the record is buffered
    "append.after",  # after it is buffered (not yet written)
    "io.write",  # every os.write of log batches and snapshot chunks (errors are injected here)
    "fsync.before",  # before the fsync of a log batch
    "io.fsync",  # every file fsync of the log (errors are injected here)
    "fsync.after",  # after the fsync of a log batch, before anyone is told
    "reply.before",  # a durable reply, before it is returned to the transport
    "snapshot.write",  # between two chunks of a snapshot being written
    "snapshot.rename.before",
    "snapshot.rename.after",
    "segments.delete.before",
)


@dataclass
class _Point:
    action: str
    at: int
    forever: bool
    hits: int = 0


_points: dict[str, _Point] = {}
_lock = threading.Lock()  # hits come from the event loop and from worker threads
_trace_path: str | None = None


def configure(spec: str | None, trace: str | None = None) -> None:
    """Arm the failpoints described by `spec` (the LOCKSTORE_FAILPOINTS syntax); None disarms all."""
    global _trace_path
    points: dict[str, _Point] = {}
    for item in (spec or "").split(";"):
        item = item.strip()
        if not item:
            continue
        name, _, rest = item.partition("=")
        action, _, count = rest.partition("@")
        if name not in NAMES:
            raise ValueError(f"unknown failpoint {name!r} (known: {', '.join(NAMES)})")
        if action != "kill" and not hasattr(errno, action):
            raise ValueError(f"failpoint {name}: unknown action {action!r}")
        forever = count.endswith("+")
        at = int(count.rstrip("+") or "1")
        points[name] = _Point(action, at, forever)
    _points.clear()
    _points.update(points)
    _trace_path = trace


def hit(name: str) -> None:
    """Pass failpoint `name`: does nothing unless a test armed it."""
    if not _points:
        return
    point = _points.get(name)
    if point is None:
        return
    with _lock:
        point.hits += 1
        fire = point.hits == point.at or (point.forever and point.hits > point.at)
    if not fire:
        return
    if point.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = getattr(errno, point.action)
    raise OSError(code, f"{os.strerror(code)} (failpoint {name})")


def synced(path: str, size: int) -> None:
    """Record that `path` is durable up to `size` bytes (only when a sync trace is configured)."""
    if _trace_path is None:
        return
    with _lock, open(_trace_path, "a") as trace:
        trace.write(f"{path}\t{size}\n")


def armed() -> bool:
    return bool(_points) or _trace_path is not None


configure(os.environ.get(ENV), os.environ.get(TRACE_ENV))
