"""Child processes the harness measures: start one, know when it serves, stop it; and what /proc says
about it (CPU, RSS). Every target (`bench.targets`, `bench.mqtt_targets`) is built on these.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


class Unavailable(Exception):
    """A peer that is not installed: the message says how to install it; the run skips it."""


@dataclass
class Server:
    """A server child process that said on stderr which URL it serves."""

    process: subprocess.Popen[bytes]
    url: str
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    ready_s: float = 0.0  # from spawning the process to its "serving HTTP on" line

    def stop(self, timeout: float = 30) -> None:
        stop(self.process, signal.SIGTERM, timeout)


_SERVING = re.compile(r"serving HTTP on (https?://[0-9.]+:\d+)")


@contextmanager
def server(argv: Sequence[str], *, ready_timeout: float = 600) -> Iterator[Server]:
    """Run `argv` (which must log `serving HTTP on http[s]://HOST:PORT` on stderr); stop it on exit.

    stderr is drained by a thread for the whole life of the process so it never blocks on a full pipe.
    `ready_timeout` is generous because a service with a big log replays it before serving.
    """
    began = time.perf_counter()
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    tail: deque[str] = deque(maxlen=40)
    found: list[tuple[str, float]] = []
    ready = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            text = raw.decode(errors="replace").rstrip()
            tail.append(text)
            match = _SERVING.search(text)
            if match and not found:
                found.append((match[1], time.perf_counter() - began))
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    ready.wait(ready_timeout)
    if not found:
        process.kill()
        process.wait()
        raise RuntimeError(f"server {argv} did not start serving:\n" + "\n".join(tail))
    running = Server(process, found[0][0], tail, found[0][1])
    try:
        yield running
    finally:
        running.stop()


SERVICE_MODULE = "transports.cli"  # what `lockstore` runs (python -m SERVICE_MODULE serve ...)

# Runs the service's CLI after hooking the garbage collector: every full (generation 2) collection, and
# any other slower than 1 ms, is appended to a file as `wall-time generation milliseconds`. A collection
# stops the whole process, so on a big table a full one is a pause every request in flight sees.
_GC_LOGGED = """
import gc, runpy, sys, time
_log, _started = open(sys.argv[1], "a", buffering=1), [0.0]
def _hook(phase, info):
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _started[0]) * 1e3
    if info["generation"] == 2 or ms > 1:
        _log.write(f"{time.time():.6f} {info['generation']} {ms:.3f}\\n")
gc.callbacks.append(_hook)
module, sys.argv = sys.argv[2], ["lockstore", *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def lockstore(data_dir: Path, *options: str, gc_log: Path | None = None) -> list[str]:
    """The command line of the real service on a free loopback port; with `gc_log`, its garbage
    collections are logged there (`parse_gc_log` reads them)."""
    start = [sys.executable, "-c", _GC_LOGGED, str(gc_log), SERVICE_MODULE] if gc_log else [
        sys.executable, "-m", SERVICE_MODULE]
    return [*start, "serve", "--host", HOST, "--port", "0", "--data-dir", str(data_dir), "--log-level", "INFO",
            "--no-access-log", *options]


@dataclass(frozen=True)
class Collection:
    at: float  # wall clock, when it ended
    generation: int
    ms: float


def parse_gc_log(text: str) -> list[Collection]:
    """The lines `lockstore(gc_log=...)` wrote; anything else (a line cut by a crash) is skipped."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        try:
            found.append(Collection(float(parts[0]), int(parts[1]), float(parts[2])))
        except (IndexError, ValueError):
            continue
    return found


def framework_ceiling(*options: str) -> list[str]:
    """`bench.framework_ceiling` (the quart echo, or with `--raw` the no-op) on a free loopback port."""
    return [sys.executable, "-m", "bench.framework_ceiling", "--port", "0", *options]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Send `sig`, wait up to `timeout`, then kill."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def file_tail(path: Path, size: int = 2000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


# ------------------------------------------------------------------------------------------ /proc

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _status_mib(pid: int, name: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name):
            return int(line.split()[1]) / 1024
    return math.nan


def rss_mib(pid: int) -> float:
    """Resident memory now."""
    return _status_mib(pid, "VmRSS:")


def peak_rss_mib(pid: int) -> float:
    """The most resident memory the process has had (its high-water mark)."""
    return _status_mib(pid, "VmHWM:")
