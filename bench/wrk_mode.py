"""`python -m bench wrk`: durable lock creates driven by wrk (a C load generator) against lockstore with each
HTTP server and, with `--peers`, etcd doing one create-if-absent txn per request through its JSON gateway —
the comparison of issue 14's table ("etcd, one create-if-absent txn per lock, driven by wrk").

Each target is started fresh (bench/targets.py), warmed up with a short wrk run, then measured: wrk's
requests/s and latency percentiles (`bench/wrk/*.lua` print them in one line), the target's CPU over the
measured run divided by its requests, and afterwards a count of what exists, which must cover every
request answered (names are unique per run, so every create succeeds). `--batch N` puts N locks in each
request (the 100-lock create target). wrk shares the machine's cores with the target, as the harness's
Python load generator does.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import string
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from bench import targets
from bench.processes import Unavailable, process_cpu_seconds

SCRIPTS = Path(__file__).parent / "wrk"
WRK_INSTALL_HINT = "wrk is not installed: as root run `apt-get update && apt-get install -y wrk`"
_RESULT = re.compile(r"WRK-RESULT (.*)")


@dataclass
class WrkRun:
    target: str
    batch: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    server_us: float  # the target's CPU per request over the measured run
    created: int  # what the target holds afterwards (warm-up included)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _tag() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(6))


def wrk(url: str, script: str, tag: str, batch: int, args: argparse.Namespace, seconds: float) -> dict[str, int]:
    """One wrk run; its WRK-RESULT fields."""
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s", "--timeout", "10s",
               "-s", str(SCRIPTS / script), url, "--", tag, str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    fields = parse_result(done.stdout)
    if done.returncode != 0 or fields is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    return fields


def parse_result(output: str) -> dict[str, int] | None:
    """The fields of the WRK-RESULT line the scripts' `done` prints, or None."""
    match = _RESULT.search(output)
    if match is None:
        return None
    return {key: int(value) for key, value in (pair.split("=", 1) for pair in match[1].split())}


def _post(url: str, body: dict[str, object], headers: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, object] = json.loads(response.read())
    return answer


def lockstore_count(url: str) -> int:
    body = {"owners": ["WrkOwner"], "pagination": {"page": 0, "size": 1}}
    answer = _post(f"{url}/serviceorchestration/orchestration/mgmt/lock/query", body,
                   {"Authorization": "Bearer SYSTEM//Sysop", "Content-Type": "application/json"})
    return int(str(answer["count"]))


def etcd_count(url: str) -> int:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    answer = _post(f"{url}/v3/kv/range", {"key": b64(b"locks/"), "range_end": b64(b"locks0"), "count_only": True},
                   {"Content-Type": "application/json"})
    return int(str(answer.get("count", 0)))


def measure(name: str, url: str, pid: int, script: str, count: Callable[[str], int],
            args: argparse.Namespace) -> WrkRun:
    tag = _tag()
    if args.warmup > 0:
        wrk(url, script, tag + "W", args.batch, args, args.warmup)
    before = process_cpu_seconds(pid)
    fields = wrk(url, script, tag, args.batch, args, args.duration)
    cpu = process_cpu_seconds(pid) - before
    requests = fields["requests"]
    errors = sum(value for key, value in fields.items() if key.startswith("errors_"))
    created = count(url)
    if created < requests * args.batch:
        raise RuntimeError(f"{name}: {requests} requests of {args.batch} answered, but only {created} locks exist")
    return WrkRun(name, args.batch, requests, fields["duration_us"] / 1e6, errors, fields["p50_us"] / 1000,
                  fields["p90_us"] / 1000, fields["p99_us"] / 1000, fields["p999_us"] / 1000,
                  fields["max_us"] / 1000, cpu / requests * 1e6 if requests else 0.0, created)


def _targets(args: argparse.Namespace) -> Iterator[tuple[str, AbstractContextManager[targets.Target], str,
                                                         Callable[[str], int]]]:
    for server in args.http_server:
        yield (targets.lockstore_name(server), targets.lockstore_http(args.fsync, http_server=server),
               "lock_create.lua", lockstore_count)
    if args.peers:
        yield "etcd", targets.etcd(), "etcd_create_txn.lua", etcd_count


def table(runs: list[WrkRun], load: str) -> str:
    lines = [f"load average at the start: {load}", "",
             "| target | locks/request | req/s | locks/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors "
             "| server µs/req |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        lines.append(f"| {run.target} | {run.batch} | {run.rate:,.0f} | {run.rate * run.batch:,.0f} | "
                     f"{run.p50_ms:.2f} | {run.p90_ms:.2f} | {run.p99_ms:.2f} | {run.p999_ms:.2f} | "
                     f"{run.max_ms:.2f} | {run.errors} | {run.server_us:,.0f} |")
    if len(runs) > 1:
        base = runs[-1] if runs[-1].target == "etcd" else runs[0]
        lines += ["", " · ".join(f"{run.target} / {base.target}: {run.rate / base.rate:.2f}×"
                                 for run in runs if run is not base and base.rate)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print(WRK_INSTALL_HINT, file=sys.stderr)
        return 2
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    runs: list[WrkRun] = []
    for name, starter, script, count in _targets(args):
        try:
            with starter as target:
                print(f"== wrk: {name}, {args.connections} connections, {args.threads} threads, "
                      f"{args.batch} lock(s) per request, {args.duration:g} s", file=sys.stderr, flush=True)
                runs.append(measure(name, target.endpoint.url, target.pids[0], script, count, args))
        except Unavailable as error:
            print(f"!! {name} skipped: {error}", file=sys.stderr, flush=True)
    if not runs:
        return 1
    print(table(runs, load))
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
               http_servers: Callable[[str], list[str]]) -> None:
    wrk_parser = commands.add_parser(
        "wrk", help="durable lock creates driven by wrk: lockstore (per HTTP server) and etcd's one-txn create",
        description="Lock creates driven by wrk (apt-get install -y wrk): lockstore with each --http-server and, "
        "with --peers, etcd doing one create-if-absent txn per request (bench/wrk/*.lua). Prints a table.")
    wrk_parser.add_argument("--http-server", type=http_servers, default=["native"], metavar="SERVERS",
                            help="lockstore's HTTP servers, a comma list (default native)")
    wrk_parser.add_argument("--peers", action="store_true", help="also etcd (one create-if-absent txn per request)")
    wrk_parser.add_argument("--batch", type=int, default=1, help="locks per request (default 1)")
    wrk_parser.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    wrk_parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    wrk_parser.add_argument("--duration", type=float, default=10.0, help="measured seconds (default 10)")
    wrk_parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk first, not measured (default 2)")
    wrk_parser.add_argument("--fsync", choices=("always", "never"), default="always", help="lockstore's --fsync")
