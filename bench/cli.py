"""`python -m bench` / `lockstore-bench`: run a named scenario, list them, compare two runs.

    python -m bench run SCENARIO [--transport http|mqtt] [--rate R[,R...] | --concurrency C[,C...]]
                                 [--duration S] [--warmup S] [--target URL] [--peers] [--tls MODES]
                                 [--new-connections] [--out DIR] ...
    python -m bench list
    python -m bench compare A.json B.json
    python -m bench wrk [--http-server native,hypercorn] [--peers] [--batch N]   (needs wrk)

Only argument parsing is imported up front: `list` and `--help` work without the `bench` extra, and
`run`/`compare` without it say how to install it instead of failing on an import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from bench.options import default_out
from bench.workload import SCENARIOS, Sizes

MQTT_PREFIX = "arrowhead/serviceorchestration"
TLS_MODES = ("off", "on", "mutual")
HTTP_SERVERS = ("native", "hypercorn")
TARGET_NAMES = ("lockstore", "quart-echo", "mqtt-echo", "noop", "etcd", "lockstore-etcdN", "etcd-cluster")
BENCH_EXTRA_HINT = "lockstore-bench needs the bench extra: pip install 'lockstore[bench]'"
BENCH_EXTRA_MODULES = ("hdrh", "matplotlib")


def _tls_modes(text: str) -> list[str]:
    modes = [mode.strip() for mode in text.split(",") if mode.strip()]
    wrong = [mode for mode in modes if mode not in TLS_MODES]
    if wrong or not modes:
        raise argparse.ArgumentTypeError(f"TLS modes are {', '.join(TLS_MODES)} (comma list), not {text!r}")
    return modes


def _http_servers(text: str) -> list[str]:
    servers = [server.strip() for server in text.split(",") if server.strip()]
    wrong = [server for server in servers if server not in HTTP_SERVERS]
    if wrong or not servers:
        raise argparse.ArgumentTypeError(f"HTTP servers are {', '.join(HTTP_SERVERS)} (comma list), not {text!r}")
    return servers


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description="lockstore's benchmark harness "
                                  "(see bench/README.md)")
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run a scenario and save the results",
        description="Run a scenario against lockstore (started here, or --target) and optionally its peers; "
        "print the Markdown report and save report.json, report.md and PNG plots.")
    run.add_argument("scenario", choices=sorted(SCENARIOS), metavar="SCENARIO",
                     help=f"one of: {', '.join(SCENARIOS)} (`python -m bench list` says what each does)")
    run.add_argument("--transport", choices=("http", "mqtt"), default="http", help="default http")
    load = run.add_mutually_exclusive_group()
    load.add_argument("--rate", help="open loop: requests/s on a fixed timeline; a list (500,1000,2000) sweeps "
                      "(default: the scenario's)")
    load.add_argument("--concurrency", help="closed loop: requests in flight; a list sweeps (default: the scenario's)")
    run.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default 10)")
    run.add_argument("--warmup", type=float, default=2.0, help="seconds sent first and not measured (default 2)")
    target = run.add_argument_group("targets")
    target.add_argument("--target", help="an already-running service: http(s)://host:port, or mqtt://host:port "
                        "(its broker)")
    target.add_argument("--target-pid", type=int, help="with --target: the service's pid, to sample its CPU and RSS")
    target.add_argument("--mqtt-prefix", default=MQTT_PREFIX, help="with an mqtt:// --target: topic prefix")
    target.add_argument("--cafile", default="", help="with an https:// --target: the CA of its certificate")
    target.add_argument("--cert", default="", help="with an https:// --target: a client certificate (PEM)")
    target.add_argument("--key", default="", help="with --cert: its key")
    target.add_argument("--peers", action="store_true",
                        help="also run the framework/transport echo, the no-op target and etcd (lock scenarios)")
    target.add_argument("--only", help=f"comma list of the targets to run ({', '.join(TARGET_NAMES)})")
    target.add_argument("--fsync", choices=("always", "never"), default="always",
                        help="lockstore's --fsync (default always)")
    target.add_argument("--tls", type=_tls_modes, default=["off"], metavar="MODES",
                        help="HTTP only: off, on (HTTPS, server certificate) or mutual (HTTPS with a client "
                        "certificate; lockstore takes the identity from it); a list (off,on,mutual) runs each "
                        "as its own target (default off). Certificates come from a throw-away CA made for the run")
    target.add_argument("--http-server", type=_http_servers, default=["native"], metavar="SERVERS",
                        help="HTTP only: lockstore's --http-server, native (default) or hypercorn; a list "
                        "(native,hypercorn) runs each as its own target (lockstore, lockstore/hypercorn)")
    target.add_argument("--new-connections", action="store_true",
                        help="HTTP only: a new connection (TCP and TLS handshake) for every request, no keep-alive")
    target.add_argument("--state", choices=("local", "etcd"), default="local",
                        help="local (default): lockstore with its write-ahead log; etcd: lockstore in etcd mode, "
                        "through each count of --instances on a fresh 3-member etcd cluster (targets "
                        "lockstore-etcdN; with --peers also etcd-cluster, the etcd peer on such a cluster)")
    target.add_argument("--instances", default="1,2,3",
                        help="with --state etcd: lockstore instances sharing the state, a list (default 1,2,3)")
    target.add_argument("--snapshot-every", type=int,
                        help="lockstore's --snapshot-every-records (default: the service's; startup: 1000)")
    sizes = run.add_argument_group("sizes")
    sizes.add_argument("--preload", type=int, default=Sizes().preload, help="records the setup loads (default 10000)")
    sizes.add_argument("--records", default=str(Sizes().records),
                       help="bulk loads: records to load; startup: live records in the built snapshots (a list "
                       "sweeps, a freshly built data directory each; default 100000)")
    sizes.add_argument("--log-records", default=str(Sizes().log_records),
                       help="startup: log events after the snapshots (a list sweeps; default 100000)")
    client = run.add_argument_group("load generator")
    client.add_argument("--clients", default="auto",
                        help="load-generator processes (default auto: enough for the rate, at most one per core)")
    client.add_argument("--connections", type=int, help="connections over all processes (default: http 64, mqtt 4)")
    client.add_argument("--timeout", type=float, default=10.0, help="per request, seconds (default 10)")
    client.add_argument("--seed", type=int, default=1, help="the scenarios' random choices (default 1)")
    client.add_argument("--quiet", action="store_true", help="no live progress line")
    run.add_argument("--out", type=Path, help="results directory (default "
                     f"{default_out('SCENARIO', 'TRANSPORT', 'YYYYmmdd-HHMMSS')}, under the current directory)")
    commands.add_parser("list", help="the scenarios, their default load and what they do")
    compare = commands.add_parser("compare", help="ratio table of two runs (B/A)")
    compare.add_argument("a", type=Path)
    compare.add_argument("b", type=Path)
    from bench.wrk_mode import add_parser as add_wrk_parser

    add_wrk_parser(commands, _http_servers)
    auth = commands.add_parser("auth-cost", help="event-loop time of the MQTT certificate check and request "
                               "signature per message, attackers' chains included (no broker; prints a table)")
    auth.add_argument("--repeat", type=int, default=200, help="runs per case (default 200)")
    return top


def list_scenarios() -> int:
    for scenario in SCENARIOS.values():
        load = f"open {scenario.rate:g}/s" if scenario.mode == "open" else f"closed {scenario.concurrency}"
        parts = "lockstore only" if scenario.startup else "locks (etcd too)" if scenario.locks_only else "rules"
        print(f"{scenario.name:20} {load:12} {parts:16} {scenario.description}")
    print("\ntarget options (python -m bench run --help): --transport http|mqtt, --peers (quart-echo or mqtt-echo, "
          "noop, etcd), --http-server native,hypercorn, --tls off,on,mutual, --new-connections, "
          "--fsync always|never, --target URL")
    return 0


def missing_bench_extra() -> str | None:
    """The first module of the bench extra that cannot be imported, if any."""
    for name in BENCH_EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "list":
        return list_scenarios()
    if args.command == "auth-cost":
        from bench.auth_cost import run as auth_cost

        return auth_cost(args.repeat)
    if args.command == "wrk":
        from bench.wrk_mode import run as wrk_run

        return wrk_run(args)
    missing = missing_bench_extra()
    if missing is not None:
        print(f"{BENCH_EXTRA_HINT} (no module {missing!r})", file=sys.stderr)
        return 2
    if args.command == "compare":
        from bench.compare import main as compare_main

        return compare_main([str(args.a), str(args.b)])
    from bench.command import run

    return run(args)
