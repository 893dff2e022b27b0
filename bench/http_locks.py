"""Issue 2: lock management over HTTP — throughput, latency, and the targets.

`python -m bench.http_locks` starts everything it measures:
1. the client's own ceiling (wrk against a bare trio socket responder),
2. the bare quart-trio framework ceiling (same wrk scripts, same paths),
3. the service with `--fsync always` and with `--fsync never`, each fresh: lock create with 1 and 100
   locks per request, query (one owner of 1,000, page of 10), remove (one lock per request),
4. an open-loop run at half of the durable create throughput, latency from the scheduled send time,
   against the service and, for comparison, the bare framework.
Optionally (`--profile`) py-spy profiles of the durable create and query runs.

Load comes from wrk (C, ~3% of a core at these rates) with Lua scripts that make every body unique;
64 connections over 2 wrk threads. Results: a Markdown report on stdout, JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from bench import harness as h

LOCK_PATH = "/serviceorchestration/orchestration/mgmt/lock"
OWNERS = 1000  # locks are spread over this many owners; a query asks for one of them
FAR_FUTURE = "2999-01-01T00:00:00Z"

TARGET_CREATE_RATIO = 0.70  # durable create req/s ÷ bare-framework create req/s
TARGET_HALF_LOAD_P99_MS = 20.0
TARGET_BATCH_LOCKS_PER_S = 25_000.0

LUA_CREATE_1 = f"""
wrk.method = "POST"
function request()
  n = n + 1
  return wrk.format(nil, "{LOCK_PATH}/create", nil, '{{"locks":[{{"serviceInstanceId":"' .. prefix .. tid ..
    'x' .. n .. '|svc|1.0.0","owner":"Owner' .. (n % {OWNERS}) .. '","expiresAt":"{FAR_FUTURE}"}}]}}')
end
"""

# Batch n of thread t holds instances {{prefix}}{{t}}x{{n}}y0..y99, all owned by Owner{{n % OWNERS}};
# LUA_REMOVE walks the same ids one by one, so every remove hits a lock that exists. It starts at batch 2:
# wrk calls thread 0's request() once to verify the script and throws that first request (batch 1) away.
LUA_CREATE_100 = f"""
wrk.method = "POST"
function request()
  n = n + 1
  local head = '{{"serviceInstanceId":"' .. prefix .. tid .. 'x' .. n .. 'y'
  local tail = '|svc|1.0.0","owner":"Owner' .. (n % {OWNERS}) .. '","expiresAt":"{FAR_FUTURE}"}}'
  local parts = {{}}
  for j = 0, 99 do parts[j + 1] = head .. j .. tail end
  return wrk.format(nil, "{LOCK_PATH}/create", nil, '{{"locks":[' .. table.concat(parts, ",") .. ']}}')
end
"""

LUA_QUERY = f"""
wrk.method = "POST"
function request()
  local body = '{{"owners":["Owner' .. math.random(0, {OWNERS - 1}) ..
    '"],"pagination":{{"page":0,"size":10}}}}'
  return wrk.format(nil, "{LOCK_PATH}/query", nil, body)
end
"""

LUA_REMOVE = f"""
function request()
  local batch = math.floor(n / 100) + 2
  local j = n % 100
  n = n + 1
  return wrk.format("DELETE", "{LOCK_PATH}/remove/Owner" .. (batch % {OWNERS}) .. "?instanceIds=" ..
    prefix .. tid .. "x" .. batch .. "y" .. j .. "%7Csvc%7C1.0.0")
end
"""

# (name, locks per request, script, prefix): the prefixes keep every run's instance ids distinct.
OPERATIONS = [
    ("create ×1", 1, LUA_CREATE_1, "S"),
    ("create ×100", 100, LUA_CREATE_100, "B"),
    ("query", 0, LUA_QUERY, "-"),
    ("remove ×1", 1, LUA_REMOVE, "B"),
]


@dataclass
class Row:
    server: str
    operation: str
    locks_per_request: int
    run: h.WrkRun
    note: str = ""
    gc: h.GcStats | None = None

    @property
    def locks_per_s(self) -> float:
        return self.run.rps * self.locks_per_request

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "operation": self.operation,
            "locks_per_request": self.locks_per_request,
            "locks_per_s": self.locks_per_s,
            "note": self.note,
            **self.run.to_json(),
        }


@dataclass
class HalfLoad:
    """What the half-load run's latency is made of, besides the framework."""

    disk: h.Latency  # fdatasync of a small append in the data directory, just before the run
    gc: h.GcStats  # the service's collections during the run
    locks: int  # table size during the run

    def to_json(self) -> dict[str, Any]:
        return {"fdatasync": self.disk, "gc": self.gc, "locks": self.locks}


def lock_count(server: h.Server) -> int:
    """Active locks in the service (a query without filters carries the total count)."""
    host, port = server.host_port
    request = h.http_request("POST", f"{LOCK_PATH}/query", b'{"pagination":{"page":0,"size":1}}')
    [(status, body)] = trio.run(lambda: h.exchange_all(host, port, [request], connections=1))
    if status != 200:
        raise RuntimeError(f"count query failed: {status} {body[:300]!r}")
    return int(json.loads(body)["count"])


def open_loop_create(prefix: str) -> Any:
    def make(index: int) -> bytes:
        body = (
            f'{{"locks":[{{"serviceInstanceId":"{prefix}{index}|svc|1.0.0","owner":"Owner{index % OWNERS}",'
            f'"expiresAt":"{FAR_FUTURE}"}}]}}'
        ).encode()
        return h.http_request("POST", f"{LOCK_PATH}/create", body)

    return make


def check(row: Row) -> Row:
    bad = {k: v for k, v in row.run.errors.items() if v}
    if bad:
        row.note = (row.note + " " if row.note else "") + f"ERRORS {bad}"
    return row


def run_operations(
    server: h.Server, label: str, args: argparse.Namespace, *, counts: bool, gc_log: h.GcLog | None = None
) -> list[Row]:
    rows = []
    for name, per_request, lua, prefix in OPERATIONS:
        before = lock_count(server) if counts and name.startswith("remove") else 0
        if gc_log:
            gc_log.mark()
        run = h.run_wrk(
            server.url,
            lua,
            duration=args.duration,
            connections=args.connections,
            threads=args.threads,
            server_pid=server.process.pid,
            args=[prefix],
        )
        row = Row(label, name, per_request, run, gc=gc_log.since_mark() if gc_log else None)
        if counts:
            after = lock_count(server)
            if name.startswith("remove"):
                row.note = f"{before - after:,} of {run.requests:,} removes hit a lock"
            else:
                row.note = f"table: {after:,} locks after"
        rows.append(check(row))
        print(
            f"  {label:<16} {name:<12} {run.rps:>9,.0f} req/s  p99 {run.latency.p99:8.2f} ms  "
            f"cpu srv/cli/other {run.cpu.describe()} %  {row.note}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_locks", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8, help="seconds per throughput run (default 8)")
    parser.add_argument("--open-loop-duration", type=float, default=15, help="seconds of the half-load run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--profile", action="store_true", help="also profile the service with py-spy")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="first wait up to S seconds until other jobs use < 25%% of a core (shared machine)",
    )
    args = parser.parse_args(argv)
    h.require_wrk()
    began = time.perf_counter()
    if args.wait_quiet:
        h.wait_until_quiet(args.wait_quiet)
    note = h.machine_note()
    print(f"# lock benchmark — {note}", flush=True)

    print("client ceiling (wrk → bare trio socket responder):", flush=True)
    with h.server(h.framework_ceiling("--raw")) as raw:
        client_ceiling = h.run_wrk(
            raw.url,
            LUA_CREATE_1,
            duration=min(args.duration, 5),
            connections=args.connections,
            threads=args.threads,
            server_pid=raw.process.pid,
            args=["S"],
        )
    print(
        f"  {client_ceiling.rps:,.0f} req/s, wrk CPU {client_ceiling.cpu.client:.0f}% of a core", flush=True
    )

    rows: list[Row] = []
    print("bare quart-trio (framework ceiling):", flush=True)
    with h.server(h.framework_ceiling()) as bare:
        h.run_wrk(
            bare.url,
            LUA_CREATE_1,
            duration=2,
            connections=args.connections,
            threads=args.threads,
            server_pid=bare.process.pid,
            args=["W"],
        )  # warm-up
        rows += run_operations(bare, "bare quart-trio", args, counts=False)

    open_loop: dict[str, h.OpenLoopRun] = {}
    profiles: dict[str, Path] = {}
    results_dir = h.RESULTS_DIR
    results_dir.mkdir(parents=True, exist_ok=True)
    for fsync in ("always", "never"):
        label = f"fsync={fsync}"
        print(f"lockstore {label}:", flush=True)
        with (
            tempfile.TemporaryDirectory(prefix="lockstore-bench-") as data,
            h.server(h.lockstore_gc_logged(Path(data), Path(data) / "gc.log", "--fsync", fsync)) as service,
        ):
            gc_log = h.GcLog(Path(data) / "gc.log")
            h.run_wrk(
                service.url,
                LUA_CREATE_1,
                duration=2,
                connections=args.connections,
                threads=args.threads,
                server_pid=service.process.pid,
                args=["W"],
            )  # warm-up
            rows += run_operations(service, label, args, counts=True, gc_log=gc_log)
            if fsync == "always":
                durable = next(r for r in rows if r.server == label and r.operation == "create ×1")
                rate = durable.run.rps / 2
                host, port = service.host_port
                disk = h.fsync_latency(Path(data))
                table_size = lock_count(service)
                gc_log.mark()
                open_loop["lockstore fsync=always"] = h.run_open_loop(
                    service.process.pid,
                    host,
                    port,
                    open_loop_create("O"),
                    rate=rate,
                    duration=args.open_loop_duration,
                    connections=args.connections,
                )
                open_gc = gc_log.since_mark()
                half_load = HalfLoad(disk, open_gc, table_size)
                print(
                    f"  open loop at {rate:,.0f} req/s: p99 "
                    f"{open_loop['lockstore fsync=always'].latency.p99:.2f} ms; full GCs × max ms "
                    f"{open_gc.describe()}; fdatasync p50 {disk.p50:.2f} ms p99 {disk.p99:.2f} ms",
                    flush=True,
                )
                if args.profile:
                    profiles.update(profile_service(service, args))
    with h.server(h.framework_ceiling()) as bare:
        host, port = bare.host_port
        open_loop["bare quart-trio"] = h.run_open_loop(
            bare.process.pid,
            host,
            port,
            open_loop_create("O"),
            rate=rate,
            duration=args.open_loop_duration,
            connections=args.connections,
        )

    report, targets = render(rows, client_ceiling, open_loop, half_load, args, note)
    for title, path in profiles.items():
        report += "\n\n" + h.profile_report(path, title)
    print()
    print(report)
    out = h.write_results(
        "http_locks",
        {
            "machine": note,
            "args": vars(args),
            "client_ceiling": client_ceiling,
            "rows": rows,
            "open_loop": open_loop,
            "half_load": half_load,
            "targets": targets,
            "profiles": {k: str(v) for k, v in profiles.items()},
            "seconds": time.perf_counter() - began,
        },
    )
    print(f"\n_JSON: {out}; whole run {time.perf_counter() - began:.0f} s_")


def profile_service(service: h.Server, args: argparse.Namespace) -> dict[str, Path]:
    """Extra runs under py-spy (separate from the measured ones: sampling costs CPU on 2 cores)."""
    found = {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name, _, lua, prefix in OPERATIONS[:3]:
        path = h.RESULTS_DIR / f"profile-locks-{name.split()[0]}{name.split()[-1]}-{stamp}.txt"
        with h.py_spy(service.process.pid, args.duration, path):
            h.run_wrk(
                service.url,
                lua,
                duration=args.duration,
                connections=args.connections,
                threads=args.threads,
                server_pid=service.process.pid,
                args=["P" + prefix],
            )
        found[f"profile: lockstore fsync=always, {name}"] = path
    return found


def render(
    rows: list[Row],
    client_ceiling: h.WrkRun,
    open_loop: dict[str, h.OpenLoopRun],
    half_load: HalfLoad,
    args: argparse.Namespace,
    note: str,
) -> tuple[str, dict[str, Any]]:
    bare = {r.operation: r for r in rows if r.server == "bare quart-trio"}
    table = h.markdown_table(
        [
            "server",
            "operation",
            "req/s",
            "locks/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "vs bare",
            "srv CPU µs/req",
            "full GCs × max ms",
            "CPU % srv/wrk/other",
            "note",
        ],
        [
            (
                r.server,
                r.operation,
                r.run.rps,
                r.locks_per_s or None,
                r.run.latency.p50,
                r.run.latency.p99,
                r.run.latency.p999,
                f"{r.run.rps / bare[r.operation].run.rps:.2f}×",
                r.run.server_us_per_request,
                r.gc.describe() if r.gc else None,
                r.run.cpu.describe(),
                r.note,
            )
            for r in rows
        ],
    )
    durable = {r.operation: r for r in rows if r.server == "fsync=always"}
    service_open = open_loop["lockstore fsync=always"]
    targets = {
        "durable create ×1 / bare": (
            durable["create ×1"].run.rps / bare["create ×1"].run.rps,
            TARGET_CREATE_RATIO,
        ),
        "p99 at half saturation (ms)": (service_open.latency.p99, TARGET_HALF_LOAD_P99_MS),
        "durable create ×100 locks/s": (durable["create ×100"].locks_per_s, TARGET_BATCH_LOCKS_PER_S),
    }
    cpu_ratio = bare["create ×1"].run.server_us_per_request / durable["create ×1"].run.server_us_per_request
    per_core_locks = 100 * 1e6 / durable["create ×100"].run.server_us_per_request
    targets["durable create ×1 / bare, by CPU per request"] = (cpu_ratio, TARGET_CREATE_RATIO)
    targets["durable create ×100 locks per CPU-second"] = (per_core_locks, TARGET_BATCH_LOCKS_PER_S)
    target_table = h.markdown_table(
        ["target", "measured", "target", "verdict"],
        [
            (
                "durable create throughput ≥ 70% of bare quart-trio (64 conns)",
                f"{targets['durable create ×1 / bare'][0] * 100:.1f}%",
                "70%",
                h.verdict(*targets["durable create ×1 / bare"], higher_is_better=True),
            ),
            (
                f"p99 < 20 ms at half saturation ({service_open.rate:,.0f} req/s open loop)",
                f"{service_open.latency.p99:.2f} ms",
                "20 ms",
                h.verdict(*targets["p99 at half saturation (ms)"], higher_is_better=False),
            ),
            (
                "100-lock creates ≥ 25,000 locks/s (fsync=always)",
                f"{durable['create ×100'].locks_per_s:,.0f}",
                "25,000",
                h.verdict(*targets["durable create ×100 locks/s"], higher_is_better=True),
            ),
            (
                "— same two throughput targets by server CPU cost (robust to other jobs on the machine):",
                "",
                "",
                "",
            ),
            (
                "durable create ×1: bare CPU µs/req ÷ service CPU µs/req ≥ 70%",
                f"{cpu_ratio * 100:.1f}%",
                "70%",
                h.verdict(cpu_ratio, TARGET_CREATE_RATIO, higher_is_better=True),
            ),
            (
                "durable create ×100: locks per second of one full core ≥ 25,000",
                f"{per_core_locks:,.0f}",
                "25,000",
                h.verdict(per_core_locks, TARGET_BATCH_LOCKS_PER_S, higher_is_better=True),
            ),
        ],
    )
    open_table = h.markdown_table(
        [
            "server",
            "rate req/s",
            "sent",
            "statuses",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "send lag p99 ms",
            "full GCs × max ms",
            "CPU % srv/client/other",
        ],
        [
            (
                name,
                run.rate,
                run.sent,
                " ".join(f"{k}:{v}" for k, v in sorted(run.statuses.items())),
                run.latency.p50,
                run.latency.p99,
                run.latency.p999,
                run.latency.max,
                run.send_lag.p99,
                half_load.gc.describe() if name.startswith("lockstore") else None,
                run.cpu.describe(),
            )
            for name, run in open_loop.items()
        ],
    )
    fastest_service = max(r.run.rps for r in rows if r.server != "bare quart-trio")
    client_note = (
        f"Client ceiling: wrk ({args.threads} threads, {args.connections} connections, create ×1 script) "
        f"against a bare trio socket responder: **{client_ceiling.rps:,.0f} req/s** using "
        f"{client_ceiling.cpu.client:.0f}% "
        f"of a core — {client_ceiling.rps / fastest_service:.0f}× the fastest service run, so wrk is not the "
        "bottleneck (its CPU in every run is the middle CPU figure)."
    )
    report = "\n\n".join(
        [
            f"## Lock management over HTTP ({args.connections} connections, {args.duration:g} s per run)",
            f"_Machine: {note}. CPU columns: % of one core used by the server / the client / everything "
            "else on the machine during the run (other people's jobs show up as 'other')._",
            table,
            client_note,
            f"### Half of saturation, open loop ({args.open_loop_duration:g} s, "
            "latency from the scheduled send time)",
            open_table,
            f"The durable service held {half_load.locks:,} locks during this run. Disk: fdatasync of a "
            f"200-byte append in the data directory, measured just before: p50 {half_load.disk.p50:.2f} ms, "
            f"p99 {half_load.disk.p99:.2f} ms, max {half_load.disk.max:.2f} ms; a durable reply waits for "
            "the batch being synced, then for its own batch (up to two fsyncs). Full (generation-2) garbage "
            f"collections during the run: {half_load.gc.gen2}, the longest {half_load.gc.gen2_max_ms:.1f} ms "
            f"(all collections: {half_load.gc.total_ms:.0f} ms in total); a collection stops every request "
            "in flight.",
            "### Targets (issue 2)",
            target_table,
        ]
    )
    return report, {k: {"measured": v[0], "target": v[1]} for k, v in targets.items()}


if __name__ == "__main__":
    main()
