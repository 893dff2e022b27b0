"""The benchmark results schema: one `Report` (machine facts plus one `RunResult` per run), saved as
report.json (the record: it keeps each run's HDR histogram) and read back for `compare`.

All times are milliseconds unless a field's name ends in `_s`. Typed msgspec structs rather than dicts so
that the load engine, the report, the plots and `compare` cannot drift apart on a field name.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import msgspec

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
_REPO = Path(__file__).resolve().parents[1]


class LatencySummary(msgspec.Struct):
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


class Second(msgspec.Struct):
    """One row of "latency over time"; `t` is seconds since the measured window began."""

    t: float
    sent: int
    completed: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float


class Resources(msgspec.Struct):
    """A server process sampled every `interval_s` during the measured window."""

    pid: int
    interval_s: float
    cpu_percent: list[float]
    rss_mib: list[float]
    cpu_seconds: float
    cpu_us_per_request: float
    peak_rss_mib: float


class ClientUse(msgspec.Struct):
    """The load generator's own cost, so a reader can tell the harness's overhead from the server's."""

    processes: int
    cpu_seconds: float
    cpu_us_per_request: float
    send_lag: LatencySummary


class Startup(msgspec.Struct):
    """How the target came up on a data directory the harness built (the start-up scenario): the
    phases from its own start-up log line, spawn → serving, and its memory when it began to serve."""

    records: int  # live records in the snapshots
    log_records: int  # log events after them
    snapshot_load_s: float
    log_replay_s: float
    index_s: float
    state_ready_s: float  # all of the above: open_state, what `serve` does before it serves
    serve_ready_s: float  # from spawning `lockstore serve` to its "serving HTTP" line (imports included)
    rss_mib: float  # when it began to serve
    peak_rss_mib: float  # the most it had held by then (start-up's high-water mark)


class SnapshotEffect(msgspec.Struct):
    """Latency split by whether a snapshot was being captured or written (per whole second of the
    window, polled from /metrics every 0.1 s), and the longest hold of an actor by one capture message."""

    taken: int
    capture_hold_ms: float
    seconds_with: int
    seconds_without: int
    with_snapshot: LatencySummary
    without_snapshot: LatencySummary


class GcPauses(msgspec.Struct):
    """lockstore's garbage collections during the measured window (a collection stops every request in
    flight): the full (generation 2) ones, and the longest of any generation."""

    full: int
    full_max_ms: float
    longest_ms: float
    paused_ms: float  # all full collections and any other over 1 ms, added up


class Removals(msgspec.Struct):
    """For the remove scenarios: how many removes were sent over the whole run (warm-up and the
    requests still in flight at the end included) and how many of them hit (the live count fell by
    that much over the same requests)."""

    kind: str  # "locks" | "rules"
    sent: int
    before: int  # live locks/rules when the load began (after setup)
    after: int  # and when every request of the run had been answered or abandoned

    @property
    def hit(self) -> int:
        return self.before - self.after


class RunResult(msgspec.Struct):
    target: str  # "lockstore", "lockstore+tls", "quart-echo", "mqtt-echo", "etcd", "noop", or a URL
    scenario: str
    transport: str  # "http" | "mqtt"
    mode: str  # "open" | "closed"
    offered_rate: float | None
    concurrency: int | None
    duration_s: float
    warmup_s: float
    measured_s: float
    requests: int
    errors: int
    throughput_rps: float
    statuses: dict[str, int]  # "200": n, "503": n, "timeout": n, "connection": n
    latency: LatencySummary
    histogram: str  # LatencyHistogram.encode() of the whole measured window
    operations: dict[str, LatencySummary]
    timeline: list[Second]
    server: list[Resources]  # empty for a remote target; a peer may add a second process (broker)
    client: ClientUse
    notes: list[str] = []
    new_connections: bool = False  # HTTP without keep-alive: a connection (and TLS handshake) per request
    dataset: str = ""  # what the target started on, when the run built it ("100,000 + 100,000 log")
    startup: Startup | None = None  # the start-up scenario: on the first run of each target it started
    snapshots: SnapshotEffect | None = None
    removals: Removals | None = None
    gc: GcPauses | None = None  # a lockstore the harness started


class Machine(msgspec.Struct):
    cores: int
    cpu_model: str
    memory_gib: float
    python: str
    platform: str
    kernel: str
    fsync: str
    git_commit: str
    lockstore_version: str
    load_average: list[float]


class Report(msgspec.Struct):
    format: int = 1
    command: str = ""
    created_at: str = ""
    machine: Machine | None = None
    runs: list[RunResult] = []


def machine_facts(fsync: str) -> Machine:
    """What a reader needs to judge the numbers: the hardware, the software and how hard it fsyncs."""
    return Machine(
        cores=os.cpu_count() or 0,
        cpu_model=_proc_field("/proc/cpuinfo", "model name") or platform.processor(),
        memory_gib=round(_meminfo_kib("MemTotal") / 2**20, 1),
        python=platform.python_version(),
        platform=platform.platform(),
        kernel=platform.release(),
        fsync=fsync,
        git_commit=_git_commit(),
        lockstore_version=_lockstore_version(),
        load_average=[round(load, 2) for load in os.getloadavg()],
    )


def _proc_field(path: str, name: str) -> str:
    try:
        text = Path(path).read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return ""


def _meminfo_kib(name: str) -> float:
    value = _proc_field("/proc/meminfo", name).split()
    return float(value[0]) if value and value[0].isdigit() else 0.0


def _git_commit() -> str:
    """The commit measured, with "+dirty" when the tree has local changes; "" outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{commit}+dirty" if commit and dirty else commit


def _lockstore_version() -> str:
    try:
        return metadata.version("lockstore")
    except metadata.PackageNotFoundError:
        return ""


def write_json(report: Report, out_dir: Path) -> Path:
    """report.json in `out_dir` (made if missing): the record, with every run's whole histogram."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_JSON
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    return path


def load_report(path: Path) -> Report:
    """Read a report.json, given its path or the directory it was saved in."""
    if path.is_dir():
        path = path / REPORT_JSON
    return msgspec.json.decode(path.read_bytes(), type=Report)
