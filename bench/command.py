"""`python -m bench run`: the targets a command line asks for, the sweep of loads (and, for the start-up
scenario, of built data directories), one `run_once` each, then the report and its files."""

from __future__ import annotations

import argparse
import secrets
import shlex
import shutil
import string
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import targets
from bench.fleet import cpu_count
from bench.loadgen import LoadSpec
from bench.operations import Endpoint
from bench.options import default_out, numbers
from bench.output import save_report
from bench.processes import Unavailable
from bench.report import markdown
from bench.results import Report, RunResult, machine_facts
from bench.runner import run_once, startup_result
from bench.startup import build
from bench.timeline import processes_for
from bench.workload import SCENARIOS, Sizes

# What one client process sends comfortably: about 70% of what it can (~3,000 req/s over HTTP against
# the no-op target on this machine; see bench/README.md, "Harness overhead").
PER_PROCESS_RATE = {"http": 2000.0, "mqtt": 2000.0, "etcd": 1500.0}
DEFAULT_CONNECTIONS = {"http": 64, "mqtt": 4, "etcd": 64}
MQTT_IN_FLIGHT_PER_CONNECTION = 64
STARTUP_SNAPSHOT_EVERY = 1000  # the start-up scenario's load runs with a snapshot this often (records)

Starter = Callable[[Path | None], AbstractContextManager[targets.Target]]


@dataclass(frozen=True)
class Dataset:
    """A data directory the harness builds before starting lockstore (the start-up scenario)."""

    records: int
    log_records: int

    def label(self) -> str:
        return f"{self.records:,} + {self.log_records:,} log"


def _run_tag() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(5))


def _lockstore_options(args: argparse.Namespace) -> tuple[str, ...]:
    every = args.snapshot_every
    if every is None and SCENARIOS[args.scenario].startup:
        every = STARTUP_SNAPSHOT_EVERY
    return ("--snapshot-every-records", str(every)) if every is not None else ()


def _targets(args: argparse.Namespace) -> list[tuple[str, Starter]]:
    """(name, starter) of every target this run measures, in order; a starter takes the data directory
    lockstore starts on (None: a fresh one)."""
    scenario = SCENARIOS[args.scenario]
    if args.transport == "mqtt" and (args.tls != ["off"] or args.new_connections or args.http_server != ["native"]):
        raise SystemExit("--tls, --new-connections and --http-server are HTTP options (the MQTT targets reach a "
                         "broker)")
    if args.target:
        connection = targets.Connection(new_per_request=args.new_connections)
        return [(args.target, lambda data: targets.remote(args.target, args.transport, args.target_pid,
                                                          args.mqtt_prefix, connection, args.cafile, args.cert,
                                                          args.key))]
    options = _lockstore_options(args)
    if args.state == "etcd":
        return _etcd_targets(args, options)
    peers = args.peers and not scenario.startup
    if args.peers and scenario.startup:
        print("!! the startup scenario measures lockstore only: --peers ignored", file=sys.stderr)
    chosen: list[tuple[str, Starter]] = []
    if args.transport == "http":
        for mode in args.tls:
            connection = targets.Connection(mode, args.new_connections)
            for server in args.http_server:
                chosen.append(("lockstore", lambda data, c=connection, s=server: targets.lockstore_http(
                    args.fsync, data, options, c, s)))
            if peers:
                chosen.append(("quart-echo", lambda data, c=connection: targets.quart_echo(c)))
                chosen.append(("noop", lambda data, c=connection: targets.noop_http(c)))
    else:
        chosen.append(("lockstore", lambda data: targets.lockstore_mqtt(args.fsync, data, options)))
        if peers:
            chosen.append(("mqtt-echo", lambda data: targets.mqtt_echo()))
            chosen.append(("noop", lambda data: targets.mqtt_echo(raw=True)))
    if peers and scenario.locks_only:  # etcd has no TLS variant here: skipped (with a note) unless plain keep-alive
        plain = args.tls == ["off"] and not args.new_connections
        etcd_connection = targets.Connection() if plain else targets.Connection("on", args.new_connections)
        chosen.append(("etcd", lambda data: targets.etcd(etcd_connection)))
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        chosen = [c for c in chosen if c[0] in wanted]
    return chosen


def _etcd_targets(args: argparse.Namespace, options: tuple[str, ...]) -> list[tuple[str, Starter]]:
    """`--state etcd`: lockstore in etcd mode through each of `--instances`, and with --peers the etcd peer
    driven directly against a 3-member cluster (bench/etcd_targets.py)."""
    from bench import etcd_targets

    scenario = SCENARIOS[args.scenario]
    if args.transport != "http" or args.tls != ["off"] or args.new_connections or scenario.startup:
        raise SystemExit("--state etcd runs over plain HTTP with keep-alive, and not the startup scenario "
                         "(a joining instance's start-up is noted after every etcd-mode target's runs)")
    chosen: list[tuple[str, Starter]] = [
        (f"lockstore-etcd{count}", lambda data, n=count: etcd_targets.lockstore_etcd(n, options))
        for count in numbers(args.instances, int)
    ]
    if args.peers and scenario.locks_only:
        chosen.append(("etcd-cluster", lambda data: etcd_targets.etcd_cluster_peer()))
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        chosen = [c for c in chosen if c[0] in wanted]
    return chosen


def _loads(args: argparse.Namespace, dataset: Dataset | None) -> Iterator[tuple[str, float | None, int | None, Sizes]]:
    """(mode, rate, concurrency, sizes) of each run of the sweep."""
    scenario = SCENARIOS[args.scenario]
    if dataset is not None:
        all_sizes = [Sizes(preload=args.preload, records=dataset.records, log_records=dataset.log_records)]
    else:
        all_sizes = [Sizes(preload=args.preload, records=records) for records in numbers(args.records, int)]
    for sizes in all_sizes:
        if args.rate:
            for rate in numbers(args.rate, float):
                yield "open", rate, None, sizes
        elif args.concurrency:
            for concurrency in numbers(args.concurrency, int):
                yield "closed", None, concurrency, sizes
        elif scenario.mode == "open":
            yield "open", scenario.rate, None, sizes
        else:
            yield "closed", None, scenario.concurrency, sizes


def _datasets(args: argparse.Namespace) -> list[Dataset | None]:
    if not SCENARIOS[args.scenario].startup:
        return [None]
    return [Dataset(records, log) for records in numbers(args.records, int) for log in numbers(args.log_records, int)]


@contextmanager
def _built(dataset: Dataset | None) -> Iterator[Path | None]:
    """The data directory the start-up scenario builds (once per dataset; each target starts on a copy)."""
    if dataset is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="lockstore-bench-startup-") as directory:
        began = time.perf_counter()
        build(Path(directory) / "data", dataset.records, dataset.log_records)
        print(f"== built {dataset.label()} records in {time.perf_counter() - began:.1f} s", file=sys.stderr,
              flush=True)
        yield Path(directory) / "data"


@contextmanager
def _copy(pristine: Path | None) -> Iterator[Path | None]:
    if pristine is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="lockstore-bench-data-") as directory:
        copy = Path(directory) / "data"
        shutil.copytree(pristine, copy)
        yield copy


def _spec(args: argparse.Namespace, kind: str, mode: str, rate: float | None, concurrency: int | None,
          sizes: Sizes, tag: str) -> LoadSpec:
    scenario = SCENARIOS[args.scenario]
    connections = args.connections or DEFAULT_CONNECTIONS[kind]
    if args.clients == "auto":
        processes = processes_for(rate, concurrency, cpu_count(), PER_PROCESS_RATE[kind])
    else:
        processes = int(args.clients)
    per_connection = MQTT_IN_FLIGHT_PER_CONNECTION if kind == "mqtt" else 1
    lanes = concurrency if mode == "closed" and concurrency else connections * per_connection
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


def _measure(args: argparse.Namespace, target: targets.Target, dataset: Dataset | None) -> Iterator[RunResult]:
    """Every run of the sweep against one started target."""
    for number, (mode, rate, concurrency, sizes) in enumerate(_loads(args, dataset)):
        spec = _spec(args, target.endpoint.kind, mode, rate, concurrency, sizes, _run_tag())
        load = f"{rate:g} req/s" if rate else f"{spec.lanes} in flight"
        print(f"== {args.scenario} on {target.name} over {target.transport}, {mode} loop, {load}, "
              f"{spec.processes} client process(es)", file=sys.stderr, flush=True)
        result = run_once(target, spec, live=not args.quiet)
        result.new_connections = target.endpoint.new_connection
        if dataset is not None:
            result.dataset = dataset.label()
            if number == 0:
                result.startup = startup_result(target, sizes)
        print(_one_line(result), file=sys.stderr, flush=True)
        yield result


def run(args: argparse.Namespace) -> int:
    out = args.out or default_out(args.scenario, args.transport, time.strftime("%Y%m%d-%H%M%S"))
    report = Report(
        command="python -m bench " + shlex.join(sys.argv[1:]),
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        machine=machine_facts("remote" if args.target else args.fsync),
    )
    skipped: list[str] = []
    for dataset in _datasets(args):
        with _built(dataset) as pristine:
            for name, start in _targets(args):
                try:
                    with _copy(pristine) as data_dir, start(data_dir) as target:
                        runs = list(_measure(args, target, dataset))
                        if target.after is not None and runs:
                            runs[-1].notes.extend(target.after())
                        report.runs.extend(runs)
                except Unavailable as error:
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
