"""`python -m bench` / `lockstore-bench`: run a named scenario, list them, compare two runs.

    python -m bench run SCENARIO [--transport http|mqtt] [--rate R[,R...] | --concurrency C[,C...]]
                                 [--duration S] [--warmup S] [--target URL] [--peers] [--out DIR]
    python -m bench list
    python -m bench compare A.json B.json
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import string
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

from bench import targets
from bench.fleet import cpu_count
from bench.loadgen import LoadSpec
from bench.operations import Endpoint
from bench.report import markdown
from bench.results import Report, RunResult, machine_facts, save_report
from bench.runner import run_once
from bench.timeline import processes_for
from bench.workload import SCENARIOS, Sizes

N = TypeVar("N", int, float)
RESULTS = Path(__file__).resolve().parent / "results"
# What one client process sends comfortably: about 70% of what it can (~3,000 req/s over HTTP against
# the no-op target on this machine; see bench/README.md, "Harness overhead").
PER_PROCESS_RATE = {"http": 2000.0, "mqtt": 2000.0, "etcd": 1500.0}
DEFAULT_CONNECTIONS = {"http": 64, "mqtt": 4, "etcd": 64}
MQTT_IN_FLIGHT_PER_CONNECTION = 64


def _numbers(text: str, kind: Callable[[str], N]) -> list[N]:
    """`100,200,400` → [100, 200, 400]: one run per value (a sweep)."""
    return [kind(part) for part in text.split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description="lockstore's benchmark harness")
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a scenario and save the results")
    run.add_argument("scenario", choices=sorted(SCENARIOS), metavar="SCENARIO", help="see `python -m bench list`")
    run.add_argument("--transport", choices=("http", "mqtt"), default="http")
    load = run.add_mutually_exclusive_group()
    load.add_argument("--rate", help="open loop: requests/s on a fixed timeline; a list (500,1000,2000) sweeps")
    load.add_argument("--concurrency", help="closed loop: requests in flight; a list sweeps")
    run.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default 10)")
    run.add_argument("--warmup", type=float, default=2.0, help="seconds sent first and not measured (default 2)")
    run.add_argument("--target", help="an already-running service: http://host:port or mqtt://host:port (broker)")
    run.add_argument("--target-pid", type=int, help="with --target: the service's pid, to sample its CPU and RSS")
    run.add_argument("--mqtt-prefix", default=targets.MQTT_PREFIX, help="with an mqtt:// --target: topic prefix")
    run.add_argument("--peers", action="store_true",
                     help="also run the lock part against the framework/transport echo, the no-op target and etcd")
    run.add_argument("--only", help="comma list of targets to run (lockstore, quart-echo, mqtt-echo, noop, etcd)")
    run.add_argument("--out", type=Path, help="results directory (default bench/results/SCENARIO-TIME)")
    run.add_argument("--fsync", choices=("always", "never"), default="always", help="lockstore's --fsync")
    run.add_argument("--clients", default="auto", help="load-generator processes (default: enough for the rate)")
    run.add_argument("--connections", type=int, help="connections over all processes (http 64, mqtt 4)")
    run.add_argument("--preload", type=int, default=Sizes().preload, help="records the setup loads (default 10000)")
    run.add_argument("--records", type=int, default=Sizes().records, help="bulk loads: records (default 100000)")
    run.add_argument("--timeout", type=float, default=10.0, help="per request (default 10 s)")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--quiet", action="store_true", help="no live progress line")
    commands.add_parser("list", help="the scenarios")
    compare = commands.add_parser("compare", help="ratio table of two runs (B/A)")
    compare.add_argument("a", type=Path)
    compare.add_argument("b", type=Path)
    return top


def _run_tag() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(5))


def _targets(args: argparse.Namespace) -> list[tuple[str, Callable[[], AbstractContextManager[targets.Target]]]]:
    """(name, starter) of every target this run measures, in order."""
    if args.target:
        return [(args.target, lambda: targets.remote(args.target, args.transport, args.target_pid, args.mqtt_prefix))]
    scenario = SCENARIOS[args.scenario]
    chosen: list[tuple[str, Callable[[], AbstractContextManager[targets.Target]]]] = []
    if args.transport == "http":
        chosen.append(("lockstore", lambda: targets.lockstore_http(args.fsync)))
        if args.peers:
            chosen.append(("quart-echo", targets.quart_echo))
            chosen.append(("noop", targets.noop_http))
    else:
        chosen.append(("lockstore", lambda: targets.lockstore_mqtt(args.fsync)))
        if args.peers:
            chosen.append(("mqtt-echo", targets.mqtt_echo))
            chosen.append(("noop", lambda: targets.mqtt_echo(raw=True)))
    if args.peers and scenario.locks_only:
        chosen.append(("etcd", targets.etcd))
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        chosen = [c for c in chosen if c[0] in wanted]
    return chosen


def _loads(args: argparse.Namespace) -> Iterator[tuple[str, float | None, int | None]]:
    """(mode, rate, concurrency) of each run of the sweep."""
    scenario = SCENARIOS[args.scenario]
    if args.rate:
        for rate in _numbers(args.rate, float):
            yield "open", rate, None
    elif args.concurrency:
        for concurrency in _numbers(args.concurrency, int):
            yield "closed", None, concurrency
    elif scenario.mode == "open":
        yield "open", scenario.rate, None
    else:
        yield "closed", None, scenario.concurrency


def _spec(args: argparse.Namespace, kind: str, mode: str, rate: float | None, concurrency: int | None,
          tag: str) -> LoadSpec:
    scenario = SCENARIOS[args.scenario]
    connections = args.connections or DEFAULT_CONNECTIONS[kind]
    if args.clients == "auto":
        processes = processes_for(rate, concurrency, cpu_count(), PER_PROCESS_RATE[kind])
    else:
        processes = int(args.clients)
    per_connection = MQTT_IN_FLIGHT_PER_CONNECTION if kind == "mqtt" else 1
    lanes = concurrency if mode == "closed" and concurrency else connections * per_connection
    sizes = Sizes(preload=args.preload, records=args.records)
    total = scenario.total(sizes) if scenario.total is not None and mode == "closed" else None
    return LoadSpec(
        scenario=args.scenario,
        endpoint=Endpoint(kind, ""),
        mode=mode,
        rate=rate,
        lanes=max(lanes, processes),
        connections=max(min(connections, lanes), processes),
        duration_s=args.duration,
        warmup_s=0.0 if total is not None else args.warmup,
        processes=processes,
        tag=tag,
        seed=args.seed,
        sizes=sizes,
        total_requests=total,
        timeout_s=args.timeout,
    )


def run(args: argparse.Namespace) -> int:
    out = args.out or RESULTS / f"{args.scenario}-{args.transport}-{time.strftime('%Y%m%d-%H%M%S')}"
    report = Report(
        command="python -m bench " + shlex.join(sys.argv[1:]),
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        machine=machine_facts("remote" if args.target else args.fsync),
    )
    skipped: list[str] = []
    for name, start in _targets(args):
        try:
            with start() as target:
                for mode, rate, concurrency in _loads(args):
                    spec = _spec(args, target.endpoint.kind, mode, rate, concurrency, _run_tag())
                    load = f"{rate:g} req/s" if rate else f"{spec.lanes} in flight"
                    print(f"== {args.scenario} on {target.name} over {target.transport}, {mode} loop, {load}, "
                          f"{spec.processes} client process(es)", file=sys.stderr, flush=True)
                    result = run_once(target, spec, live=not args.quiet)
                    report.runs.append(result)
                    print(_one_line(result), file=sys.stderr, flush=True)
        except targets.Unavailable as error:
            skipped.append(f"{name} skipped: {error}")
            print(f"!! {name} skipped: {error}", file=sys.stderr, flush=True)
    if skipped and report.runs:
        report.runs[0].notes.extend(skipped)
    if not report.runs:
        print("nothing ran", file=sys.stderr)
        return 1
    written = save_report(report, out)
    print(markdown(report))
    print(f"\nsaved: {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def _one_line(result: RunResult) -> str:
    latency = result.latency
    return (f"   {result.throughput_rps:,.0f} req/s, p50 {latency.p50_ms:.2f} ms, p99 {latency.p99_ms:.2f} ms, "
            f"p99.9 {latency.p999_ms:.2f} ms, max {latency.max_ms:.2f} ms, errors {result.errors}")


def list_scenarios() -> int:
    for scenario in SCENARIOS.values():
        load = f"open {scenario.rate:g}/s" if scenario.mode == "open" else f"closed {scenario.concurrency}"
        parts = "locks (etcd too)" if scenario.locks_only else "rules"
        print(f"{scenario.name:20} {load:12} {parts:16} {scenario.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "list":
        return list_scenarios()
    if args.command == "compare":
        from bench.compare import main as compare_main

        return compare_main([str(args.a), str(args.b)])
    return run(args)
