"""A `Report` as Markdown (what a person reads, and pastes into bench/README.md) and the live progress line.

Pure text: no I/O, so the exact output is unit-tested.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.harness import markdown_table
from bench.results import LatencySummary, Machine, Report, RunResult

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


def run_label(run: RunResult, *, scenario: bool = False) -> str:
    """A run's short name for tables and plot legends: "lockstore http 1,000/s"."""
    parts = [run.target, run.scenario] if scenario else [run.target]
    return " ".join([*parts, run.transport, load_text(run)])


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


def run_row(run: RunResult) -> list[str]:
    return [
        run.target,
        run.transport,
        run.mode,
        load_text(run),
        fmt_count(run.throughput_rps),
        *_latency_cells(run.latency),
        error_text(run),
        _optional(server_us_per_request(run)),
        _optional(server_peak_rss_mib(run)),
        fmt_count(run.client.cpu_us_per_request),
    ]


def machine_line(machine: Machine) -> str:
    commit = machine.git_commit[:12] + ("+dirty" if machine.git_commit.endswith("+dirty") else "")
    load = " ".join(f"{value:.2f}" for value in machine.load_average)
    return " · ".join(
        [
            f"{machine.cores} cores",
            machine.cpu_model or "unknown CPU",
            f"{machine.memory_gib:.1f} GiB",
            f"Python {machine.python}",
            f"kernel {machine.kernel}",
            f"fsync {machine.fsync}",
            f"commit {commit or 'unknown'}",
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
        headers = (["scenario"] if several else []) + RUN_HEADERS
        rows = [([run.scenario] if several else []) + run_row(run) for run in report.runs]
        lines += [markdown_table(headers, rows), ""]
    mixed = [run for run in report.runs if len(run.operations) > 1]
    if mixed:
        rows = [
            [run_label(run, scenario=several), name, f"{op.count:,}", fmt_ms(op.mean_ms), *_latency_cells(op)]
            for run in mixed
            for name, op in run.operations.items()
        ]
        lines += ["## Per operation", "", markdown_table(OPERATION_HEADERS, rows), ""]
    notes = [(run, note) for run in report.runs for note in run.notes]
    if notes:
        lines += ["## Notes", ""]
        lines += [f"- {run_label(run, scenario=several)}: {note}" for run, note in notes]
        lines.append("")
    return "\n".join(lines)


def progress_line(elapsed_s: float, sent: int, completed: int, errors: int, p99_ms: float, rate_now: float) -> str:
    """The live status line (overwritten in place with \\r, so its width barely changes)."""
    return (
        f"{elapsed_s:7.1f} s  {fmt_count(rate_now):>9} req/s  sent {sent:>11,}  done {completed:>11,}  "
        f"errors {errors:>7,}  p99 {fmt_ms(p99_ms):>7} ms"
    )
