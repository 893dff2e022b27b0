"""Issue 3: simple-store operations over HTTP as the table grows (10^3, 10^5, 10^6 rules by default).

`python -m bench.http_store` starts one service (`--fsync always`) and, for each table size in turn:
1. preloads through the API (100-rule creates over 16 keep-alive connections, from this process) up to
   exactly that many rules. Preload consumers `PreN` get 100 rules each (10 service definitions ×
   priorities 1..10), so a consumer has the same number of rules at every table size and only the
   number of consumers grows with the table;
2. runs, with wrk at 64 connections: query by consumer (a random full consumer, a random page of 10 of
   its 100 rules), modify-priorities (swaps priorities 1 and 2 within a rule set, alternating, so every
   request is a real change), create ×1 and create ×100 (new consumers of their own);
3. runs the same query open loop at a fixed, modest rate: its p99 is the service time plus little
   queueing, where the saturated p99 above is mostly the queue of 64 connections.
The creates grow the table while they run; the report says from what to what. The next size is
topped up from there. Results: a Markdown report on stdout, JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import trio

from bench import harness as h

STORE_PATH = "/serviceorchestration/orchestration/mgmt/simple-store"
DEFINITIONS = 10
PRIORITIES = 10
RULES_PER_CONSUMER = DEFINITIONS * PRIORITIES
MAX_PAIRS = 20_000  # rule sets a modify run cycles through
TARGET_QUERY_GROWTH = 2.0  # p99 of an indexed query at the largest size ÷ at the smallest

LUA_QUERY = f"""
wrk.method = "POST"
consumers = 1
function setup_thread(args) consumers = tonumber(args[2]) end
function request()
  local body = '{{"consumerNames":["Pre' .. math.random(0, consumers - 1) ..
    '"],"pagination":{{"page":' .. math.random(0, {RULES_PER_CONSUMER // 10 - 1}) .. ',"size":10}}}}'
  return wrk.format(nil, "{STORE_PATH}/query", nil, body)
end
"""

# Each line of the pairs file: the ids of priority 1 and 2 of one untouched rule set. Request i goes to
# pair i mod P (threads interleave, P a multiple of the thread count, so a pair belongs to one thread);
# even visits swap the two to 2/1, odd visits back to 1/2: always a permutation of {1, 2} inside the set,
# so never a conflict, and always a change.
LUA_MODIFY = f"""
wrk.method = "PUT"
first, second, count, threads = {{}}, {{}}, 0, 1
function setup_thread(args)
  for line in io.lines(args[2]) do
    local a, b = line:match("(%S+) (%S+)")
    count = count + 1
    first[count], second[count] = a, b
  end
  threads = tonumber(args[3])
end
function request()
  local i = n * threads + tid
  n = n + 1
  local p = i % count + 1
  local body
  if math.floor(i / count) % 2 == 0 then
    body = '{{"' .. first[p] .. '":2,"' .. second[p] .. '":1}}'
  else
    body = '{{"' .. first[p] .. '":1,"' .. second[p] .. '":2}}'
  end
  return wrk.format(nil, "{STORE_PATH}/modify-priorities", nil, body)
end
"""

LUA_CREATE_1 = f"""
wrk.method = "POST"
function request()
  n = n + 1
  return wrk.format(nil, "{STORE_PATH}/create", nil, '{{"candidates":[{{"consumer":"' .. prefix .. tid ..
    'x' .. n .. '","serviceInstanceId":"Prov1|svc|1.0.0","priority":1}}]}}')
end
"""

LUA_CREATE_100 = f"""
wrk.method = "POST"
function request()
  n = n + 1
  local consumer = prefix .. tid .. 'x' .. n
  local parts = {{}}
  for d = 0, {DEFINITIONS - 1} do
    for p = 1, {PRIORITIES} do
      parts[#parts + 1] = '{{"consumer":"' .. consumer .. '","serviceInstanceId":"Prov' .. p .. '|svc' .. d ..
        '|1.0.0","priority":' .. p .. '}}'
    end
  end
  return wrk.format(nil, "{STORE_PATH}/create", nil, '{{"candidates":[' .. table.concat(parts, ",") .. ']}}')
end
"""


class _Entry(msgspec.Struct):
    id: str
    consumer: str
    serviceDefinition: str
    priority: int


class _Created(msgspec.Struct):
    entries: list[_Entry]


_decode_created = msgspec.json.Decoder(_Created).decode


def candidates_body(consumer: str, rules: int = RULES_PER_CONSUMER) -> bytes:
    """`rules` candidates for one consumer: definitions svc0..svc9 × priorities 1..10, in that order."""
    items = [
        f'{{"consumer":"{consumer}","serviceInstanceId":"Prov{p}|svc{d}|1.0.0","priority":{p}}}'
        for d in range(DEFINITIONS)
        for p in range(1, PRIORITIES + 1)
    ][:rules]
    return ('{"candidates":[' + ",".join(items) + "]}").encode()


@dataclass
class Preload:
    size: int
    added: int
    seconds: float
    consumers: int  # full preload consumers in the table so far
    rss_mib: float
    pairs: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "added": self.added,
            "seconds": self.seconds,
            "consumers": self.consumers,
            "rss_mib": self.rss_mib,
        }


def rule_count(server: h.Server) -> int:
    """Every rule (all are created by Sysop; the createdBy index's size is the total)."""
    host, port = server.host_port
    request = h.http_request(
        "POST", f"{STORE_PATH}/query", b'{"createdBy":"Sysop","pagination":{"page":0,"size":1}}'
    )
    [(status, body)] = trio.run(lambda: h.exchange_all(host, port, [request], connections=1))
    if status != 200:
        raise RuntimeError(f"count query failed: {status} {body[:300]!r}")
    return int(json.loads(body)["count"])


def preload(server: h.Server, size: int, consumers: int, partial_tag: str) -> Preload:
    """Create rules until the table holds `size`: full consumers Pre{consumers}..., then one partial one."""
    began = time.perf_counter()
    current = rule_count(server)
    need = max(0, size - current)
    full, rest = divmod(need, RULES_PER_CONSUMER)
    bodies = [candidates_body(f"Pre{consumers + k}") for k in range(full)]
    if rest:
        bodies.append(candidates_body(f"Part{partial_tag}", rest))
    host, port = server.host_port
    pairs: list[tuple[str, str]] = []
    chunk = 500
    for at in range(0, len(bodies), chunk):
        requests = [h.http_request("POST", f"{STORE_PATH}/create", b) for b in bodies[at : at + chunk]]
        for status, body in trio.run(partial(h.exchange_all, host, port, requests, connections=16)):
            if status != 201:
                raise RuntimeError(f"preload create failed: {status} {body[:300]!r}")
            by_key = {(e.serviceDefinition, e.priority): e.id for e in _decode_created(body).entries}
            pairs += [(by_key[(d, 1)], by_key[(d, 2)]) for d in {d for d, _ in by_key} if (d, 2) in by_key]
        print(
            f"\r  preload to {size:,}: {min((at + chunk) * RULES_PER_CONSUMER, need):,} of {need:,} "
            "rules "
            f"({time.perf_counter() - began:.0f} s)",
            end="",
            flush=True,
        )
    print(flush=True)
    return Preload(
        size, need, time.perf_counter() - began, consumers + full, h.rss_mib(server.process.pid), pairs
    )


@dataclass
class Row:
    size: int
    operation: str
    rules_per_request: int
    run: h.WrkRun
    note: str = ""
    gc: h.GcStats | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "gc": self.gc,
            "size": self.size,
            "operation": self.operation,
            "rules_per_request": self.rules_per_request,
            "note": self.note,
            **self.run.to_json(),
        }


def query_request(consumers: int, rng: random.Random) -> Any:
    def make(index: int) -> bytes:
        body = (
            f'{{"consumerNames":["Pre{rng.randrange(consumers)}"],'
            f'"pagination":{{"page":{rng.randrange(RULES_PER_CONSUMER // 10)},"size":10}}}}'
        ).encode()
        return h.http_request("POST", f"{STORE_PATH}/query", body)

    return make


def measure_size(
    server: h.Server,
    loaded: Preload,
    args: argparse.Namespace,
    pairs_file: Path,
    level: int,
    gc_log: h.GcLog,
) -> tuple[list[Row], h.OpenLoopRun, h.GcStats]:
    size = loaded.size
    runs = [
        ("query (consumer, page of 10)", 0, LUA_QUERY, ["-", str(loaded.consumers)]),
        ("modify-priorities (swap 2)", 2, LUA_MODIFY, ["-", str(pairs_file), str(args.threads)]),
        ("create ×1", 1, LUA_CREATE_1, [f"New{level}x1T"]),
        ("create ×100", 100, LUA_CREATE_100, [f"New{level}x100T"]),
    ]
    if not pairs_file.read_text():  # the last size's creates already grew the table past this size
        print(f"  {size:>9,} no fresh rule sets to modify: modify-priorities skipped", flush=True)
        runs = [run for run in runs if run[2] is not LUA_MODIFY]
    rows: list[Row] = []
    for name, per_request, lua, script_args in runs:
        before = rule_count(server) if name.startswith("create") else size
        gc_log.mark()
        run = h.run_wrk(
            server.url,
            lua,
            duration=args.duration,
            connections=args.connections,
            threads=args.threads,
            server_pid=server.process.pid,
            args=script_args,
        )
        row = Row(size, name, per_request, run, gc=gc_log.since_mark())
        if name.startswith("create"):
            row.note = f"table {before:,} → {rule_count(server):,}"
        elif name.startswith("query"):
            row.note = f"{loaded.consumers:,} consumers × {RULES_PER_CONSUMER}"
        bad = {k: v for k, v in row.run.errors.items() if v}
        if bad:
            row.note += f" ERRORS {bad}"
        rows.append(row)
        print(
            f"  {size:>9,} {row.operation:<30} {row.run.rps:>8,.0f} req/s  "
            f"p99 {row.run.latency.p99:8.2f} ms  full GCs × max ms {row.gc.describe() if row.gc else ''}  "
            f"cpu {row.run.cpu.describe()} %  {row.note}",
            flush=True,
        )
    host, port = server.host_port
    gc_log.mark()
    fixed = h.run_open_loop(
        server.process.pid,
        host,
        port,
        query_request(loaded.consumers, random.Random(level)),
        rate=args.query_rate,
        duration=args.duration,
        connections=16,
    )
    fixed_gc = gc_log.since_mark()
    print(
        f"  {size:>9,} query open loop at {args.query_rate:g} req/s: p99 {fixed.latency.p99:.2f} ms, "
        f"full GCs × max ms {fixed_gc.describe()}",
        flush=True,
    )
    return rows, fixed, fixed_gc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_store", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="1000,100000,1000000", help="table sizes, ascending (comma-separated)"
    )
    parser.add_argument("--duration", type=float, default=5, help="seconds per run (default 5)")
    parser.add_argument(
        "--query-rate", type=float, default=100, help="open-loop query rate (default 100 req/s)"
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--fsync", choices=["always", "never"], default="always")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy profile of the query at the largest size"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="first wait up to S seconds until other jobs use < 25%% of a core (shared machine)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    h.require_wrk()
    began = time.perf_counter()
    if args.wait_quiet:
        h.wait_until_quiet(args.wait_quiet)
    note = h.machine_note()
    print(f"# store benchmark — {note}", flush=True)
    rows: list[Row] = []
    preloads: list[Preload] = []
    fixed: dict[int, h.OpenLoopRun] = {}
    fixed_gc: dict[int, h.GcStats] = {}
    profile: Path | None = None
    rng = random.Random(3)
    with (
        tempfile.TemporaryDirectory(prefix="lockstore-bench-") as data,
        h.server(h.lockstore_gc_logged(Path(data), Path(data) / "gc.log", "--fsync", args.fsync)) as service,
    ):
        gc_log = h.GcLog(Path(data) / "gc.log")
        consumers = 0
        for level, size in enumerate(sizes):
            loaded = preload(service, size, consumers, str(level))
            consumers = loaded.consumers
            preloads.append(loaded)
            pairs = loaded.pairs if len(loaded.pairs) <= MAX_PAIRS else rng.sample(loaded.pairs, MAX_PAIRS)
            pairs = pairs[: len(pairs) - len(pairs) % args.threads]
            pairs_file = Path(data) / f"pairs-{level}.txt"
            pairs_file.write_text("".join(f"{a} {b}\n" for a, b in pairs))
            level_rows, fixed[size], fixed_gc[size] = measure_size(
                service, loaded, args, pairs_file, level, gc_log
            )
            rows += level_rows
        if args.profile:
            profile = h.RESULTS_DIR / f"profile-store-query-{time.strftime('%Y%m%d-%H%M%S')}.txt"
            h.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            with h.py_spy(service.process.pid, args.duration, profile):
                h.run_wrk(
                    service.url,
                    LUA_QUERY,
                    duration=args.duration,
                    connections=args.connections,
                    threads=args.threads,
                    server_pid=service.process.pid,
                    args=["-", str(consumers)],
                )
        final_rss = h.rss_mib(service.process.pid)
    report, growth = render(rows, preloads, fixed, fixed_gc, args, note, final_rss)
    if profile is not None:
        report += "\n\n" + h.profile_report(profile, f"profile: store query at {sizes[-1]:,} rules")
    print()
    print(report)
    out = h.write_results(
        "http_store",
        {
            "machine": note,
            "args": vars(args),
            "preloads": preloads,
            "rows": rows,
            "query_open_loop": {str(k): v for k, v in fixed.items()},
            "query_open_loop_gc": {str(k): v for k, v in fixed_gc.items()},
            "growth": growth,
            "seconds": time.perf_counter() - began,
        },
    )
    print(f"\n_JSON: {out}; whole run {time.perf_counter() - began:.0f} s_")


def render(
    rows: list[Row],
    preloads: list[Preload],
    fixed: dict[int, h.OpenLoopRun],
    fixed_gc: dict[int, h.GcStats],
    args: argparse.Namespace,
    note: str,
    final_rss: float,
) -> tuple[str, dict[str, Any]]:
    main_table = h.markdown_table(
        [
            "rules",
            "operation",
            "req/s",
            "rules/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "srv CPU µs/req",
            "full GCs × max ms",
            "CPU % srv/wrk/other",
            "note",
        ],
        [
            (
                r.size,
                r.operation,
                r.run.rps,
                (r.run.rps * r.rules_per_request) or None,
                r.run.latency.p50,
                r.run.latency.p99,
                r.run.latency.p999,
                r.run.server_us_per_request,
                r.gc.describe() if r.gc else None,
                r.run.cpu.describe(),
                r.note,
            )
            for r in rows
        ],
    )
    fixed_table = h.markdown_table(
        [
            "rules",
            "rate req/s",
            "sent",
            "statuses",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "full GCs × max ms",
        ],
        [
            (
                size,
                run.rate,
                run.sent,
                " ".join(f"{k}:{v}" for k, v in sorted(run.statuses.items())),
                run.latency.p50,
                run.latency.p99,
                run.latency.p999,
                run.latency.max,
                fixed_gc[size].describe(),
            )
            for size, run in fixed.items()
        ],
    )
    preload_table = h.markdown_table(
        ["table size", "rules added", "seconds", "rules/s", "service RSS MiB after"],
        [
            (p.size, p.added, p.seconds, p.added / p.seconds if p.seconds else math.nan, p.rss_mib)
            for p in preloads
        ],
    )
    small, large = min(fixed), max(fixed)
    growth: dict[str, Any] = {}
    growth_rows = []
    for operation in dict.fromkeys(r.operation for r in rows):
        by_size = {r.size: r for r in rows if r.operation == operation}
        if small not in by_size or large not in by_size:
            continue
        ratio_p99 = by_size[large].run.latency.p99 / by_size[small].run.latency.p99
        ratio_rps = by_size[large].run.rps / by_size[small].run.rps
        growth[operation] = {"p99_ratio": ratio_p99, "rps_ratio": ratio_rps}
        growth_rows.append(
            (
                operation + " (64 conns)",
                by_size[small].run.latency.p99,
                by_size[large].run.latency.p99,
                f"{ratio_p99:.2f}×",
                f"{ratio_rps:.2f}×",
                "",
            )
        )
    open_ratio = fixed[large].latency.p99 / fixed[small].latency.p99
    growth["query open loop"] = {"p99_ratio": open_ratio}
    growth_rows.append(
        (
            f"query, open loop {args.query_rate:g} req/s",
            fixed[small].latency.p99,
            fixed[large].latency.p99,
            f"{open_ratio:.2f}×",
            "",
            h.verdict(open_ratio, TARGET_QUERY_GROWTH, higher_is_better=False),
        )
    )
    query = growth["query (consumer, page of 10)"]["p99_ratio"]
    growth_rows[0] = (*growth_rows[0][:5], h.verdict(query, TARGET_QUERY_GROWTH, higher_is_better=False))
    growth_table = h.markdown_table(
        [
            "operation",
            f"p99 ms at {small:,}",
            f"p99 ms at {large:,}",
            "p99 ratio",
            "req/s ratio",
            "target ≤ 2× (indexed query)",
        ],
        growth_rows,
    )
    report = "\n\n".join(
        [
            f"## Simple store over HTTP (fsync={args.fsync}, {args.connections} connections, "
            f"{args.duration:g} s per run)",
            f"_Machine: {note}. CPU: % of one core used by the service / wrk / everything else during "
            "the run._",
            "### Preload (through the API: 100-rule creates, 16 connections, same durable service)",
            preload_table,
            "### Operations by table size (wrk, closed loop)",
            main_table,
            f"### Query by consumer, open loop at {args.query_rate:g} req/s "
            "(latency from the scheduled send time)",
            fixed_table,
            f"### Growth from {small:,} to {large:,} rules",
            growth_table,
            f"_Service RSS at the end: {final_rss:,.0f} MiB._",
        ]
    )
    return report, growth


if __name__ == "__main__":
    main()
