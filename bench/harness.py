"""Shared benchmark machinery: start a server process, drive load (wrk, or an open-loop trio client),
account CPU, and turn numbers into Markdown tables.

Pure helpers (percentiles, tables, profile summaries) come first and are unit-tested; everything below
the "processes" line does I/O. Benchmarks are not part of the test suite.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

# Re-exported: the benchmarks use `h.http_request`, `h.HttpConnection`, `h.AUTH`.
from bench.http_wire import AUTH as AUTH
from bench.http_wire import HttpConnection as HttpConnection
from bench.http_wire import http_request as http_request

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_REPO = f"{Path(__file__).resolve().parents[1]}/"
WRK_INSTALL_HINT = (
    "wrk is not installed: as root run `apt-get update && apt-get install -y wrk` (Debian package 'wrk')."
)

# ------------------------------------------------------------------------------------------ pure helpers


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of the samples at or below it.

    Nearest-rank never invents a value between two samples, so a p99.9 of 1,000 samples is the
    slowest one, not an interpolation towards it.
    """
    if not sorted_values:
        raise ValueError("no samples")
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    rank = math.ceil(round(q * len(sorted_values) / 100, 9))  # round: 99.9% of 1000 must be 999, not 1000
    return sorted_values[max(rank, 1) - 1]


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in milliseconds."""

    p50: float
    p99: float
    p999: float
    max: float
    samples: int


def summarize(latencies_s: Sequence[float]) -> Latency:
    """Seconds in, milliseconds out."""
    ordered = sorted(latencies_s)
    return Latency(
        p50=percentile(ordered, 50) * 1e3,
        p99=percentile(ordered, 99) * 1e3,
        p999=percentile(ordered, 99.9) * 1e3,
        max=ordered[-1] * 1e3,
        samples=len(ordered),
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table with columns padded to equal width; text left-aligned, numbers right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, expected {len(headers)}: {row}")
    numeric = [
        bool(cells) and all(_looks_numeric(row[i]) for row in cells if row[i] != "")
        for i in range(len(headers))
    ]
    widths = [max([len(h), 3, *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric, strict=True)
    )
    return "\n".join([line(list(headers)), rule + "|", *(line(row) for row in cells)])


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return fmt_number(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _looks_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,]*\.?\d+(e[-+]?\d+)?\s*(%|×|ms|s)?", text))


def fmt_number(value: float) -> str:
    """Thousands separators for big numbers, three significant digits for small ones."""
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def verdict(measured: float, target: float, *, higher_is_better: bool) -> str:
    """'met (1.43× target)' / 'MISSED (0.21× target)': the ratio always as measured / target."""
    ratio = measured / target if target else math.inf
    ok = measured >= target if higher_is_better else measured < target
    return f"{'met' if ok else 'MISSED'} ({ratio:.2f}× target)"


def summarize_collapsed(
    collapsed: str, top: int = 12
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """py-spy `--format raw` (collapsed stacks: `frame;frame;frame count`) → the `top` functions by own
    (leaf) share and by inclusive share of all samples, as fractions. A function that recurses counts
    once per stack for the inclusive share."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for raw_line in collapsed.splitlines():
        stack, _, count_text = raw_line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return [], []
    return (
        [(name, n / total) for name, n in own.most_common(top)],
        [(name, n / total) for name, n in inclusive.most_common(top)],
    )


def own_by_package(collapsed: str) -> list[tuple[str, float]]:
    """Own (leaf) time per package, as fractions, largest first: how much is our code (`actors`,
    `transports`, `wal`) and how much the framework (`hypercorn`, `h11`, `quart`, ...), trio, stdlib."""
    own: Counter[str] = Counter()
    for raw_line in collapsed.splitlines():
        stack, _, count_text = raw_line.rstrip().rpartition(" ")
        if stack and count_text.isdigit():
            own[_package(stack.rsplit(";", 1)[-1])] += int(count_text)
    total = sum(own.values())
    return [(name, n / total) for name, n in own.most_common()] if total else []


def _package(frame: str) -> str:
    """The top-level package of a frame's file; py-spy gives paths absolute or already shortened
    (`trio/_core/_run.py`, `contextlib.py`), so the standard library is told by module name."""
    match = re.match(r".* \((.*):\d+\)$", frame.strip())
    if not match:
        return "stdlib" if "<frozen" in frame else "other"
    path = re.sub(r"^.*?(site-packages/|/lib/python3\.\d+/)", "", match[1]).removeprefix(_REPO)
    if path.startswith("<"):
        return "stdlib"
    top = path.lstrip("/").split("/", 1)[0].removesuffix(".py")
    return "stdlib" if top in sys.stdlib_module_names or "/lib/python3" in match[1] else top


def _short_frame(frame: str) -> str:
    """`func (/long/path/site-packages/pkg/mod.py:12)` → `func (pkg/mod.py)`: one entry per function, not
    per line (a frame's line is wherever it was when sampled); other labels stay as they are."""
    match = re.match(r"(.*) \((.*):(\d+)\)$", frame.strip())
    if not match:
        return frame.strip()
    name, path, _ = match.groups()
    path = re.sub(r"^.*?(site-packages/|/lib/python3\.\d+/)", "", path).removeprefix(_REPO)
    return f"{name} ({path})"


# ------------------------------------------------------------------------------------------ processes


@dataclass
class Server:
    """A server child process that said on stderr which URL it serves."""

    process: subprocess.Popen[bytes]
    url: str
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_SERVING = re.compile(r"serving HTTP on (https?://[0-9.]+:\d+)")


@contextmanager
def server(argv: Sequence[str], *, ready_timeout: float = 600) -> Iterator[Server]:
    """Run `argv` (which must log `serving HTTP on http[s]://HOST:PORT` on stderr); stop it on exit.

    stderr is drained by a thread for the whole life of the process so it never blocks on a full pipe.
    `ready_timeout` is generous because a service with a big log replays it before serving.
    """
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    tail: deque[str] = deque(maxlen=40)
    found: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            text = raw.decode(errors="replace").rstrip()
            tail.append(text)
            match = _SERVING.search(text)
            if match and not found:
                found.append(match[1])
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    ready.wait(ready_timeout)
    if not found:
        process.kill()
        process.wait()
        raise RuntimeError(f"server {argv} did not start serving:\n" + "\n".join(tail))
    running = Server(process, found[0], tail)
    try:
        yield running
    finally:
        running.stop()


def lockstore(data_dir: Path, *options: str) -> list[str]:
    """The command line of the real service on a free loopback port."""
    return [
        sys.executable,
        "-m",
        "transports.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--log-level",
        "INFO",
        "--no-access-log",
        *options,
    ]


# Runs the real CLI after hooking the garbage collector: every collection of generation 1 or 2, and any
# slower than 1 ms, is appended to a file as `generation milliseconds`. A collection stops the whole
# process, so on a big table a full (generation 2) one is a latency spike every request in flight sees.
_GC_LOGGED = """
import gc, sys, time
_log, _started = open(sys.argv[1], "a", buffering=1), [0.0]
def _hook(phase, info):
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _started[0]) * 1e3
    if info["generation"] or ms > 1:
        _log.write(f"{info['generation']} {ms:.3f}\\n")
gc.callbacks.append(_hook)
sys.argv = ["lockstore", *sys.argv[2:]]
from transports.cli import main
main()
"""


def lockstore_gc_logged(data_dir: Path, gc_log: Path, *options: str) -> list[str]:
    """`lockstore(...)` with its garbage collections logged to `gc_log` (see `GcLog`)."""
    return [sys.executable, "-c", _GC_LOGGED, str(gc_log), *lockstore(data_dir, *options)[3:]]


@dataclass
class GcStats:
    """Collections of generations 1 and 2 and their pauses during one run."""

    gen1: int = 0
    gen2: int = 0
    gen2_max_ms: float = 0.0
    max_ms: float = 0.0
    total_ms: float = 0.0

    def describe(self) -> str:
        return f"{self.gen2} × {self.gen2_max_ms:.0f}" if self.gen2 else "0"


def parse_gc_log(text: str) -> GcStats:
    stats = GcStats()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        generation, ms = int(parts[0]), float(parts[1])
        stats.total_ms += ms
        stats.max_ms = max(stats.max_ms, ms)
        if generation == 2:
            stats.gen2 += 1
            stats.gen2_max_ms = max(stats.gen2_max_ms, ms)
        elif generation == 1:
            stats.gen1 += 1
    return stats


class GcLog:
    """Reads the part of a `lockstore_gc_logged` service's GC log written since `mark()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def mark(self) -> None:
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self) -> GcStats:
        if not self.path.exists():
            return GcStats()
        with self.path.open("rb") as log:
            log.seek(self._offset)
            return parse_gc_log(log.read().decode())


def fsync_latency(directory: Path, count: int = 200, size: int = 200) -> Latency:
    """How long the disk takes to make a small append durable (fdatasync, as the log does)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    samples = []
    try:
        for _ in range(count):
            os.write(fd, b"x" * size)
            began = time.perf_counter()
            os.fdatasync(fd)
            samples.append(time.perf_counter() - began)
    finally:
        os.close(fd)
        path.unlink()
    return summarize(samples)


def framework_ceiling(*options: str) -> list[str]:
    return [sys.executable, "-m", "bench.framework_ceiling", "--port", "0", *options]


# ------------------------------------------------------------------------------------------ CPU accounting


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / _TICK, total / _TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


@dataclass
class CpuUse:
    """CPU used during one run, in % of ONE core (the machine has os.cpu_count() cores)."""

    server: float = 0.0
    client: float = 0.0
    others: float = 0.0  # everything else on the machine: other people's jobs skew results

    def describe(self) -> str:
        return f"{self.server:.0f}/{self.client:.0f}/{self.others:.0f}"


class CpuMeter:
    """Measures a server pid, our waited-for children (wrk) or this process, and the whole machine."""

    def __init__(self, server_pid: int, *, client_is_self: bool = False) -> None:
        self.server_pid = server_pid
        self.client_is_self = client_is_self

    def __enter__(self) -> CpuMeter:
        self._t = time.perf_counter()
        self._server = process_cpu_seconds(self.server_pid)
        self._client = self._client_seconds()
        self._busy, _ = machine_cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t
        server = process_cpu_seconds(self.server_pid) - self._server
        client = self._client_seconds() - self._client
        busy = machine_cpu_seconds()[0] - self._busy
        self.use = CpuUse(
            server=100 * server / wall,
            client=100 * client / wall,
            others=max(0.0, 100 * (busy - server - client) / wall),
        )

    def _client_seconds(self) -> float:
        who = resource.RUSAGE_SELF if self.client_is_self else resource.RUSAGE_CHILDREN
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------------------------------ wrk

# Shared by every wrk script: a thread number per wrk thread (ids stay unique across threads), the
# script's arguments (`-- PREFIX ...`), and a JSON summary line from `done`.
LUA_PRELUDE = r"""
local thread_counter = 0
function setup(thread)
  thread:set("tid", thread_counter)
  thread_counter = thread_counter + 1
end
tid = 0
n = 0
prefix = "R"
function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 0
  prefix = args[1] or prefix
  math.randomseed(os.time() + tid * 7919)
  if setup_thread then setup_thread(args) end
end
wrk.headers["Authorization"] = "Bearer SYSTEM//Sysop"
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


@dataclass
class WrkRun:
    requests: int
    seconds: float
    errors: dict[str, int]
    latency: Latency
    cpu: CpuUse

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def server_us_per_request(self) -> float:
        """Server CPU per completed request: unlike req/s, barely moved by other jobs on the machine."""
        return self.cpu.server / 100 * self.seconds / self.requests * 1e6 if self.requests else math.nan

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rps": self.rps, "server_us_per_request": self.server_us_per_request}


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(WRK_INSTALL_HINT)
    return path


def run_wrk(
    url: str,
    lua: str,
    *,
    duration: float,
    connections: int,
    threads: int,
    server_pid: int,
    args: Sequence[str] = (),
    timeout_s: int = 10,
) -> WrkRun:
    """Closed-loop load: `connections` keep-alive connections, each sending its next request when the
    previous response arrives. Latency is wrk's (send → response), fine for saturation runs."""
    wrk = require_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA_PRELUDE + lua)
    try:
        command = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={timeout_s}s",
            "-s",
            script.name,
            url,
            "--",
            *args,
        ]
        with CpuMeter(server_pid) as meter:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        os.unlink(script.name)
    found = re.search(r"BENCHJSON (\{.*\})", done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(found[1])
    errors = {
        k: data[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    }
    return WrkRun(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        latency=Latency(
            p50=data["p50_us"] / 1e3,
            p99=data["p99_us"] / 1e3,
            p999=data["p999_us"] / 1e3,
            max=data["max_us"] / 1e3,
            samples=data["requests"],
        ),
        cpu=meter.use,
    )


# ------------------------------------------------------------------------------------------ trio client


async def exchange_all(
    host: str, port: int, requests: Sequence[bytes], *, connections: int = 16
) -> list[tuple[int, bytes]]:
    """Send every request (spread over `connections` keep-alive connections); responses in order."""
    results: list[tuple[int, bytes]] = [(0, b"")] * len(requests)
    send, receive = trio.open_memory_channel[int](len(requests))
    for index in range(len(requests)):
        send.send_nowait(index)
    send.close()

    async def worker() -> None:
        connection = await HttpConnection.open(host, port)
        async with connection.stream:
            async for index in receive.clone():
                results[index] = await connection.exchange(requests[index])

    async with trio.open_nursery() as nursery:
        for _ in range(min(connections, len(requests))):
            nursery.start_soon(worker)
    return results


@dataclass
class OpenLoopRun:
    rate: float
    sent: int
    seconds: float
    statuses: dict[int, int]
    latency: Latency  # from each request's *scheduled* send time to its response
    send_lag: Latency  # scheduled → actually sent (client or connection-pool queueing)
    cpu: CpuUse

    @property
    def achieved_rps(self) -> float:
        return self.sent / self.seconds


async def open_loop(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    rate: float,
    duration: float,
    connections: int = 64,
) -> tuple[list[float], list[float], Counter[int], float]:
    """Fixed-rate, open-loop load: request i is due at start + i/rate whether or not earlier ones
    have been answered. Latency counts from the due time, so a stall that delays later sends shows up
    in their latency instead of silently lowering the rate (no coordinated omission)."""
    total = max(1, int(rate * duration))
    send, receive = trio.open_memory_channel[tuple[int, float]](total)
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter[int] = Counter()
    pool = [await HttpConnection.open(host, port) for _ in range(connections)]

    async def worker(connection: HttpConnection) -> None:
        async with connection.stream:
            async for index, due in receive.clone():
                lags.append(trio.current_time() - due)
                status, _ = await connection.exchange(make_request(index))
                latencies.append(trio.current_time() - due)
                statuses[status] += 1

    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for connection in pool:
            nursery.start_soon(worker, connection)
        start = trio.current_time() + 0.05
        async with send:
            for index in range(total):
                due = start + index / rate
                await trio.sleep_until(due)
                send.send_nowait((index, due))
        await receive.aclose()
    return latencies, lags, statuses, time.perf_counter() - began


def run_open_loop(
    server_pid: int,
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    rate: float,
    duration: float,
    connections: int = 64,
) -> OpenLoopRun:
    """`open_loop` in this process (which is otherwise idle), with CPU accounting."""
    with CpuMeter(server_pid, client_is_self=True) as meter:
        latencies, lags, statuses, seconds = trio.run(
            lambda: open_loop(host, port, make_request, rate=rate, duration=duration, connections=connections)
        )
    return OpenLoopRun(
        rate=rate,
        sent=len(latencies),
        seconds=seconds,
        statuses=dict(statuses),
        latency=summarize(latencies),
        send_lag=summarize(lags),
        cpu=meter.use,
    )


# ------------------------------------------------------------------------------------------ profiling


@contextmanager
def py_spy(pid: int, seconds: float, output: Path) -> Iterator[None]:
    """Sample `pid` with py-spy while the body runs (collapsed stacks into `output`), if py-spy exists."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        print(f"(py-spy not found: `{sys.executable} -m pip install py-spy` to profile)", file=sys.stderr)
        yield
        return
    # --gil: only the thread holding the GIL, i.e. where the service's one core of Python goes.
    options = ["--duration", str(max(1, round(seconds))), "--rate", "200", "--format", "raw", "--gil"]
    spy = subprocess.Popen(
        [exe, "record", "--pid", str(pid), *options, "--nonblocking", "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        _, err = spy.communicate(timeout=seconds + 60)
        if spy.returncode != 0:
            print(f"(py-spy failed: {err.decode(errors='replace')[-500:]})", file=sys.stderr)


def profile_report(collapsed_file: Path, title: str, top: int = 12) -> str:
    """Markdown tables from a py-spy raw file: own time by package, the hottest functions by own time,
    and by inclusive time (leaving out the root chain — runpy, main, trio.run — that is in every stack)."""
    if not collapsed_file.exists():
        return f"_{title}: no profile (py-spy missing or failed)_"
    collapsed = collapsed_file.read_text()
    own, inclusive = summarize_collapsed(collapsed, top + 12)
    if inclusive:
        root = inclusive[0][1] - 0.01
        inclusive = [(name, share) for name, share in inclusive if share < root]
    percent = [(name, f"{share * 100:.1f}%") for name, share in own_by_package(collapsed) if share >= 0.005]
    parts = [f"**{title}** — own time by package", "", markdown_table(["package", "share"], percent)]
    parts += ["", f"**{title}** — own time (where the CPU is spent)", ""]
    parts.append(markdown_table(["function", "share"], [(n, f"{s * 100:.1f}%") for n, s in own[:top]]))
    parts += ["", f"**{title}** — inclusive time", ""]
    parts.append(markdown_table(["function", "share"], [(n, f"{s * 100:.1f}%") for n, s in inclusive[:top]]))
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------ output


def machine_note() -> str:
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, load average at start "
        f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


def machine_busy_percent(sample_s: float = 2.0) -> float:
    """CPU in use on the whole machine right now, in % of one core (2 cores busy = 200)."""
    busy, _ = machine_cpu_seconds()
    time.sleep(sample_s)
    return 100 * (machine_cpu_seconds()[0] - busy) / sample_s


def wait_until_quiet(max_wait_s: float, threshold: float = 25.0) -> float:
    """Wait (at most `max_wait_s`) until other jobs use less than `threshold`% of a core: on a shared
    2-core machine anybody else's test run halves our numbers. Returns the last busy figure."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = machine_busy_percent()
        if busy < threshold or time.monotonic() >= deadline:
            return busy
        print(f"  (machine busy: {busy:.0f}% of a core used by others; waiting for quiet)", flush=True)


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2, default=_jsonable))
    return path


def _jsonable(value: object) -> object:
    if hasattr(value, "to_json"):
        return value.to_json()
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)  # type: ignore[call-overload]
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value)}")
