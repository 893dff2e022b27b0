"""A `Report` as Markdown (what a person reads, and pastes into bench/README.md) and the live progress line.

Pure text: no I/O, so the exact output is unit-tested.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from bench.results import LatencySummary, Machine, Removals, Report, RunResult

RUN_HEADERS = [
    "target",
    "transport",
    "mode",
    "load",
    "req/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "errors",
    "server µs/req",
    "peak RSS MiB",
    "client µs/req",
]
OPERATION_HEADERS = ["run", "operation", "requests", "mean ms", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"]


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
        return "n/a" if math.isnan(value) else fmt_ms(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _looks_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,]*\.?\d+(e[-+]?\d+)?\s*(%|×|ms|s)?", text))


def fmt_ms(value: float) -> str:
    """Three significant digits (0.123, 1.23, 12.3) and whole numbers from 100 up (1,234)."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_count(value: float) -> str:
    """Rates and throughputs: whole numbers with separators, one decimal below 100."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def load_text(run: RunResult) -> str:
    """How hard the run pushed: "1,000/s" for open loop, "c=16" for closed loop."""
    if run.mode == "open" and run.offered_rate is not None:
        return f"{fmt_count(run.offered_rate)}/s"
    if run.concurrency is not None:
        return f"c={run.concurrency}"
    return run.mode


def target_text(run: RunResult) -> str:
    """What was measured: "lockstore", "lockstore+tls new conn", "lockstore (100,000 + 5,000 log)"."""
    text = run.target + (" new conn" if run.new_connections else "")
    return f"{text} ({run.dataset})" if run.dataset else text


def run_label(run: RunResult, *, scenario: bool = False) -> str:
    """A run's short name for tables and plot legends: "lockstore http 1,000/s"."""
    parts = [target_text(run), run.scenario] if scenario else [target_text(run)]
    return " ".join([*parts, run.transport, load_text(run)])


def removals_text(removals: Removals) -> str:
    """How many removes hit, counted over the same requests on both sides (every remove sent, warm-up
    and the requests still in flight at the end included; the live count before and after them all)."""
    unit = "a lock" if removals.kind == "locks" else "a rule"
    return (f"{removals.hit:,} of the {removals.sent:,} removes sent hit {unit} (live {removals.kind} "
            f"{removals.before:,} → {removals.after:,}; warm-up and the requests in flight at the end included)")


def error_text(run: RunResult) -> str:
    """The error count with the non-2xx outcomes named, most frequent first: "3 (503×2, timeout×1)"."""
    failed = sorted(
        ((status, n) for status, n in run.statuses.items() if n and not _is_success(status)),
        key=lambda item: (-item[1], item[0]),
    )
    named = ", ".join(f"{status}×{n:,}" for status, n in failed)
    return f"{run.errors:,} ({named})" if named else f"{run.errors:,}"


def _is_success(status: str) -> bool:
    return status.isdigit() and 200 <= int(status) < 300


def server_us_per_request(run: RunResult) -> float | None:
    """CPU per request summed over the server's processes (a peer with a broker or gateway pays for both);
    None for a remote target that was not sampled."""
    return sum(process.cpu_us_per_request for process in run.server) if run.server else None


def server_peak_rss_mib(run: RunResult) -> float | None:
    """Peak RSS summed over the server's processes: the memory the service under test needed."""
    return sum(process.peak_rss_mib for process in run.server) if run.server else None


def _optional(value: float | None) -> str:
    return "" if value is None else fmt_count(value)


def _latency_cells(summary: LatencySummary) -> list[str]:
    return [fmt_ms(v) for v in (summary.p50_ms, summary.p90_ms, summary.p99_ms, summary.p999_ms, summary.max_ms)]


def gc_text(run: RunResult) -> str:
    """Full collections in the window and the longest: "2 × 36" ("0": none); "" where not logged."""
    if run.gc is None:
        return ""
    return f"{run.gc.full} × {fmt_ms(run.gc.full_max_ms)}" if run.gc.full else "0"


def run_row(run: RunResult, *, gc: bool = False) -> list[str]:
    return [
        target_text(run),
        run.transport,
        run.mode,
        load_text(run),
        fmt_count(run.throughput_rps),
        *_latency_cells(run.latency),
        error_text(run),
        _optional(server_us_per_request(run)),
        _optional(server_peak_rss_mib(run)),
        fmt_count(run.client.cpu_us_per_request),
        *([gc_text(run)] if gc else []),
    ]


def commit_text(machine: Machine) -> str:
    """The measured commit, short, with "+dirty" when the tree had local changes; "unknown" outside git."""
    short = machine.git_commit[:12] + ("+dirty" if machine.git_commit.endswith("+dirty") else "")
    return short or "unknown"


def machine_line(machine: Machine) -> str:
    commit = commit_text(machine)
    load = " ".join(f"{value:.2f}" for value in machine.load_average)
    return " · ".join(
        [
            f"{machine.cores} cores",
            machine.cpu_model or "unknown CPU",
            f"{machine.memory_gib:.1f} GiB",
            f"Python {machine.python}",
            f"kernel {machine.kernel}",
            f"fsync {machine.fsync}",
            f"commit {commit}",
            f"load {load}",
        ]
    )


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def markdown(report: Report) -> str:
    """Title, machine facts, one row per run, per-operation latencies for mixed runs, then notes."""
    scenarios = _unique(run.scenario for run in report.runs)
    several = len(scenarios) > 1
    title = f"# Benchmark: {', '.join(scenarios) or 'no runs'}"
    lines = [title, ""]
    if report.command:
        lines.append(f"Command: `{report.command}`" + (f" ({report.created_at})" if report.created_at else ""))
        lines.append("")
    if report.machine is not None:
        lines += [f"Machine: {machine_line(report.machine)}", ""]
    if report.runs:
        gc = any(run.gc is not None for run in report.runs)
        headers = (["scenario"] if several else []) + RUN_HEADERS + (["full GCs × max ms"] if gc else [])
        rows = [([run.scenario] if several else []) + run_row(run, gc=gc) for run in report.runs]
        lines += [markdown_table(headers, rows), ""]
    mixed = [run for run in report.runs if len(run.operations) > 1]
    if mixed:
        rows = [
            [run_label(run, scenario=several), name, f"{op.count:,}", fmt_ms(op.mean_ms), *_latency_cells(op)]
            for run in mixed
            for name, op in run.operations.items()
        ]
        lines += ["## Per operation", "", markdown_table(OPERATION_HEADERS, rows), ""]
    lines += _startup_section(report, several) + _snapshot_section(report, several)
    notes = [(run, note) for run in report.runs for note in run.notes]
    if notes:
        lines += ["## Notes", ""]
        lines += [f"- {run_label(run, scenario=several)}: {note}" for run, note in notes]
        lines.append("")
    return "\n".join(lines)


STARTUP_HEADERS = ["run", "live records", "log records after", "snapshot load s", "log replay s", "index s",
                   "state ready s", "serve ready s", "RSS MiB", "peak RSS MiB"]
SNAPSHOT_HEADERS = ["run", "while", "seconds", "requests", "p50 ms", "p99 ms", "max ms", "snapshots",
                    "longest capture hold ms"]


def _startup_section(report: Report, several: bool) -> list[str]:
    rows = [
        [run_label(run, scenario=several), f"{s.records:,}", f"{s.log_records:,}", f"{s.snapshot_load_s:.2f}",
         f"{s.log_replay_s:.2f}", f"{s.index_s:.2f}", f"{s.state_ready_s:.2f}", f"{s.serve_ready_s:.2f}",
         fmt_count(s.rss_mib), fmt_count(s.peak_rss_mib)]
        for run in report.runs
        if (s := run.startup) is not None
    ]
    if not rows:
        return []
    return ["## Start-up", "", "The phases are the service's own start-up log line; serve ready is spawn → "
            "\"serving HTTP\" (interpreter and imports included).", "", markdown_table(STARTUP_HEADERS, rows), ""]


def _snapshot_section(report: Report, several: bool) -> list[str]:
    rows = []
    for run in report.runs:
        if (effect := run.snapshots) is None:
            continue
        for name, seconds, summary in (("snapshot running", effect.seconds_with, effect.with_snapshot),
                                       ("no snapshot", effect.seconds_without, effect.without_snapshot)):
            rows.append([run_label(run, scenario=several), name, f"{seconds:,}", f"{summary.count:,}",
                         fmt_ms(summary.p50_ms), fmt_ms(summary.p99_ms), fmt_ms(summary.max_ms),
                         f"{effect.taken:,}", fmt_ms(effect.capture_hold_ms)])
    if not rows:
        return []
    return ["## Latency while snapshots are written", "",
            "By whole seconds of the window in which /metrics showed a snapshot being captured or written.", "",
            markdown_table(SNAPSHOT_HEADERS, rows), ""]


def progress_line(elapsed_s: float, sent: int, completed: int, errors: int, p99_ms: float, rate_now: float) -> str:
    """The live status line (overwritten in place with \\r, so its width barely changes)."""
    return (
        f"{elapsed_s:7.1f} s  {fmt_count(rate_now):>9} req/s  sent {sent:>11,}  done {completed:>11,}  "
        f"errors {errors:>7,}  p99 {fmt_ms(p99_ms):>7} ms"
    )
