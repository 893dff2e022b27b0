"""`python -m bench compare A.json B.json`: the ratio table of two reports (before/after a change, or two
machines), matching runs by what was measured so that only like is compared with like.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import msgspec

from bench.report import (
    commit_text,
    fmt_count,
    fmt_ms,
    load_text,
    markdown_table,
    run_label,
    server_us_per_request,
    target_text,
)
from bench.results import Report, RunResult, load_report

RunKey = tuple[str, str, str, str, float | None]
LATENCIES = [("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms"), ("max", "max_ms")]


def run_key(run: RunResult) -> RunKey:
    """Target (with its connection mode and data set), scenario, transport, mode and the load (offered
    rate open loop, concurrency closed loop)."""
    load = run.offered_rate if run.mode == "open" else run.concurrency
    return (target_text(run), run.scenario, run.transport, run.mode, None if load is None else float(load))


def ratio(a: float | None, b: float | None) -> str:
    """B/A as "1.23×"; "n/a" where A is zero, blank where either side was not measured."""
    if a is None or b is None:
        return ""
    return f"{b / a:.2f}×" if a else "n/a"


def match_runs(a: Report, b: Report) -> tuple[list[tuple[RunResult, RunResult]], list[RunResult], list[RunResult]]:
    """Pairs of runs with equal keys (repeated keys pair up in order), then the runs only in A, only in B."""
    waiting: dict[RunKey, list[RunResult]] = defaultdict(list)
    for run in b.runs:
        waiting[run_key(run)].append(run)
    pairs, only_a = [], []
    for run in a.runs:
        partners = waiting.get(run_key(run))
        if partners:
            pairs.append((run, partners.pop(0)))
        else:
            only_a.append(run)
    matched_b = {id(run_b) for _, run_b in pairs}
    only_b = [run for run in b.runs if id(run) not in matched_b]
    return pairs, only_a, only_b


def _row(run_a: RunResult, run_b: RunResult) -> list[str]:
    cells = [target_text(run_a), run_a.scenario, run_a.transport, load_text(run_a)]
    cells += [fmt_count(run_a.throughput_rps), fmt_count(run_b.throughput_rps)]
    cells.append(ratio(run_a.throughput_rps, run_b.throughput_rps))
    for _, field in LATENCIES:
        value_a, value_b = getattr(run_a.latency, field), getattr(run_b.latency, field)
        cells += [fmt_ms(value_a), fmt_ms(value_b), ratio(value_a, value_b)]
    cells.append(ratio(server_us_per_request(run_a), server_us_per_request(run_b)))
    return cells


def _source(name: str, report: Report) -> str:
    facts = [report.created_at] if report.created_at else []
    if report.machine is not None:
        facts += [f"commit {commit_text(report.machine)}", f"fsync {report.machine.fsync}"]
        facts.append(f"{report.machine.cores} cores")
    command = f"`{report.command}`" if report.command else "(no command recorded)"
    return f"- {name}: {command}" + (f" ({', '.join(facts)})" if facts else "")


def compare(a: Report, b: Report) -> str:
    """Markdown: one row per matched run with A, B and B/A for throughput and latencies (B/A > 1 is more
    throughput but slower latency), the server CPU per request ratio, then the runs that did not match."""
    pairs, only_a, only_b = match_runs(a, b)
    headers = ["target", "scenario", "transport", "load", "req/s A", "req/s B", "req/s B/A"]
    for name, _ in LATENCIES:
        headers += [f"{name} ms A", f"{name} ms B", f"{name} B/A"]
    headers.append("server µs/req B/A")
    lines = ["# Comparison: A vs B", "", _source("A", a), _source("B", b), ""]
    if pairs:
        lines += [markdown_table(headers, [_row(run_a, run_b) for run_a, run_b in pairs]), ""]
    else:
        lines += ["No runs match (same target, scenario, transport, mode and load).", ""]
    for name, runs in (("A", only_a), ("B", only_b)):
        if runs:
            lines += [f"Only in {name}:", ""]
            lines += [f"- {run_label(run, scenario=True)} ({run.mode} loop)" for run in runs]
            lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """Print the comparison of two saved reports (report.json files, or the directories holding them)."""
    parser = argparse.ArgumentParser(prog="python -m bench compare", description=main.__doc__)
    parser.add_argument("a", type=Path, help="the baseline report (A)")
    parser.add_argument("b", type=Path, help="the report compared with it (B)")
    args = parser.parse_args(list(argv))
    try:
        reports = [load_report(path) for path in (args.a, args.b)]
    except (OSError, msgspec.DecodeError) as error:
        print(f"compare: cannot read a report: {error}", file=sys.stderr)
        return 2
    print(compare(*reports))
    return 0
