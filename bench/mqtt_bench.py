"""MQTT benchmark: lockstore's request/reply throughput and latency through a real mosquitto, next to a
bare echo responder on the same broker and client library (the transport's ceiling).

    python -m bench.mqtt_bench [--duration 8] [--inflight 64] [--profile]

Load: `--inflight` closed-loop requesters in this one trio process, each with its own response topic
and one request outstanding at a time (QoS 0 both ways), sharing `--connections` MQTT connections.
They speak MQTT 3.1.1 through the minimal codec below instead of paho: on 2 cores the broker, the
responder and the client share the CPUs, and paho spends ~100+ µs of Python per message, CPU the
responder under test would lose. Every run reports the client's CPU, and a run against a responder
built on the same codec (`mqtt_echo --raw`) shows how fast client + broker go on their own.

All responders (the echo, the durable service, the `--fsync never` service) run side by side under
their own topic prefixes, and each operation is run against each of them in turn: on a shared
machine, other jobs then weigh on all of them alike.

The MQTT codec is bench/mqtt_codec.py. Request builders and report rendering are pure
(tests/unit/test_mqtt_bench.py); the rest starts processes and drives sockets.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import trio

from bench import harness as h
from bench.mqtt_codec import PUBLISH, RawMqtt, encode_publish, parse_publish

# Each responder listens under its own topic prefix, so that all of them can run side by side and
# their runs can be interleaved: other jobs on a shared machine then weigh on all of them alike.
PREFIX = "arrowhead/serviceorchestration"  # the service's default; the durable service keeps it
LOCK_PATH = "/orchestration/management/lock/"
STORE_PATH = "/orchestration/management/store/"
ECHO_PATH = "/monitor/echo"
AUTH = "SYSTEM//Sysop"
OWNER = "Owner"
FAR_FUTURE = "2999-01-01T00:00:00Z"
STORE_CONSUMER = "C1"
STORE_RULES = 10  # rules seeded for STORE_CONSUMER, so a store query returns a full page
TARGET_RATIO = 0.60  # the issue: durable MQTT throughput >= 60% of the echo ceiling

# Measured operation → expected success status (order = run order: removes need the creates).
OPERATIONS: dict[str, int] = {"lock create": 201, "lock query": 200, "store query": 200, "lock remove": 200}
# Also run, not part of the target: the service's `monitor/echo` goes through its whole MQTT edge
# (session, worker pool, template decode, authentication, reply encode) but no actor and no log.
DIAGNOSTIC = "monitor echo"

# ------------------------------------------------------------------------------------------ requests


def instance_id(tag: str, requester: int, seq: int) -> str:
    """Unique per (run tag, requester, sequence number): letters and digits only, as names must be."""
    return f"P{tag}x{requester}x{seq}|svc|1.0.0"


def request_template(response_topic: str, payload: str | None, trace_id: str, params: str = "") -> bytes:
    """The Arrowhead MQTT request template. `payload` and `params` are JSON text (None: no payload)."""
    fields = [f'"traceId":"{trace_id}"', f'"authentication":"{AUTH}"', f'"responseTopic":"{response_topic}"',
              '"qosRequirement":0']
    if params:
        fields.append(f'"params":{params}')
    if payload is not None:
        fields.append(f'"payload":{payload}')
    return ("{" + ",".join(fields) + "}").encode()


def build_request(operation: str, prefix: str, response_topic: str, tag: str, requester: int,
                  seq: int) -> tuple[str, bytes]:
    """(topic, body) of request number `seq` of one requester."""
    trace = f"{tag}{requester}x{seq}"
    if operation == "lock create":
        lock = (f'{{"serviceInstanceId":"{instance_id(tag, requester, seq)}","owner":"{OWNER}",'
                f'"expiresAt":"{FAR_FUTURE}"}}')
        return prefix + LOCK_PATH + "create", request_template(response_topic, f'{{"locks":[{lock}]}}', trace)
    if operation == "lock query":
        payload = f'{{"owners":["{OWNER}"],"pagination":{{"page":0,"size":10}}}}'
        return prefix + LOCK_PATH + "query", request_template(response_topic, payload, trace)
    if operation == "lock remove":
        payload = f'["{instance_id(tag, requester, seq)}"]'
        params = f'{{"owner":"{OWNER}"}}'
        return prefix + LOCK_PATH + "remove", request_template(response_topic, payload, trace, params)
    if operation == "store query":
        payload = f'{{"consumerNames":["{STORE_CONSUMER}"]}}'
        return prefix + STORE_PATH + "query", request_template(response_topic, payload, trace)
    if operation in ("echo", DIAGNOSTIC):
        return prefix + ECHO_PATH, request_template(response_topic, None, trace)
    raise ValueError(f"unknown operation {operation!r}")


def store_seed_request(prefix: str, response_topic: str) -> tuple[str, bytes]:
    candidates = ",".join(
        f'{{"consumer":"{STORE_CONSUMER}","serviceInstanceId":"Prov{i}|svc|1.0.0","priority":{i}}}'
        for i in range(1, STORE_RULES + 1)
    )
    payload = f'{{"candidates":[{candidates}]}}'
    return prefix + STORE_PATH + "create", request_template(response_topic, payload, "seed")


class _Status(msgspec.Struct):
    status: int = 0


_status_decoder = msgspec.json.Decoder(_Status)


def reply_status(body: bytes) -> int:
    """The status of a reply template; 0 if it is not one."""
    try:
        return _status_decoder.decode(body).status
    except msgspec.DecodeError:
        return 0


# ------------------------------------------------------------------------------------------ profiles

# Where the trio thread's time goes, by the first layer (in this order) named anywhere in a sample's
# stack. Nested layers come before the layers that contain them (validators run inside
# MqttDispatcher.handle).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lock table query (LockTable.query)", ("LockTable.query (",)),
    ("lock actor: plan, log append, apply (LockActor.run)", ("LockActor.run (",)),
    ("store actor (StoreActor.run)", ("StoreActor.run (",)),
    ("log committer, trio side (WriteAheadLog.run)", ("WriteAheadLog.run (",)),
    ("MQTT in: paho read + parse (MqttSession._reader)", ("MqttSession._reader (",)),
    ("MQTT out: paho publish (MqttSession.publish)", ("MqttSession.publish (",)),
    ("MQTT out: socket writes (MqttSession._writer)", ("MqttSession._writer (",)),
    ("MQTT keep-alive (MqttSession._housekeeper)", ("MqttSession._housekeeper (",)),
    ("request validation (transports/*_requests.py validate_*)", ("validate_",)),
    ("request template decode, auth, reply encode (MqttDispatcher.handle)", ("MqttDispatcher.handle (",)),
    ("worker loop: receive, hand over (MqttServer._worker / echo answer)", ("MqttServer._worker (", ".answer (")),
)
TRIO_THREAD = "unrolled_run ("  # in every stack of the thread that runs trio
REST = "trio scheduler, other tasks"


def attribute(
    collapsed: str, layers: Sequence[tuple[str, Sequence[str]]] = LAYERS, within: str = TRIO_THREAD
) -> list[tuple[str, float]]:
    """py-spy `--format raw` text → (layer, share of the samples), in `layers` order, then REST.

    Only stacks containing `within` count: py-spy cannot tell a worker thread blocked in fsync or in
    its idle wait from a running one (on this VM), so their samples are wall time, not CPU. A sample
    belongs to the first layer one of whose markers occurs in its stack.
    """
    counts = Counter[str]()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if within not in stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        counts[next((name for name, markers in layers if any(m in stack for m in markers)), REST)] += count
    if not total:
        return []
    order = [name for name, _ in layers] + [REST]
    return [(name, counts[name] / total) for name in order if counts[name]]


# ------------------------------------------------------------------------------------------ results


@dataclass
class Cpu:
    """CPU used during a run in % of ONE core (the machine has os.cpu_count() of them)."""

    responder: float = 0.0
    broker: float = 0.0
    client: float = 0.0
    others: float = 0.0  # everything else on the machine

    def describe(self) -> str:
        return f"{self.responder:.0f}/{self.broker:.0f}/{self.client:.0f}/{self.others:.0f}"


@dataclass
class Run:
    responder: str
    operation: str
    completed: int
    seconds: float
    statuses: dict[int, int]
    lost: int
    latency: h.Latency
    cpu: Cpu
    note: str = ""

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def responder_us_per_request(self) -> float:
        return self.cpu.responder / 100 * self.seconds / self.completed * 1e6 if self.completed else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"responder": self.responder, "operation": self.operation, "completed": self.completed,
                "seconds": self.seconds, "rps": self.rps, "statuses": self.statuses, "lost": self.lost,
                "latency_ms": self.latency, "cpu_percent_of_one_core": self.cpu,
                "responder_cpu_us_per_request": self.responder_us_per_request, "note": self.note}


def problems(run: Run, expected_status: int) -> str:
    """'' when every reply had the expected status and none was lost; else what went wrong."""
    wrong = {status: n for status, n in sorted(run.statuses.items()) if status != expected_status}
    parts = [f"status {status}: {n:,}" for status, n in wrong.items()]
    if run.lost:
        parts.append(f"{run.lost} requesters got no reply")
    return "ERRORS " + ", ".join(parts) if parts else ""


def ratio_rows(runs: Sequence[Run], ceiling: str, measured: str) -> list[tuple[str, float, float, float]]:
    """(operation, measured req/s, ceiling req/s, ratio) for each operation run against both."""
    top = {r.operation: r for r in runs if r.responder == ceiling}
    rows = []
    for run in runs:
        ceiling_rps = top[run.operation].rps if run.operation in top else 0.0
        if run.responder == measured and run.operation in OPERATIONS and ceiling_rps:
            rows.append((run.operation, run.rps, ceiling_rps, run.rps / ceiling_rps))
    return rows


def cost_ratio(ceiling: Run, measured_us: float) -> float:
    return ceiling.responder_us_per_request / measured_us if measured_us else 0.0


def render(runs: Sequence[Run], client_ceiling: Run | None, args: argparse.Namespace, note: str,
           durable: str, ceiling: str) -> tuple[str, dict[str, Any]]:
    top = {r.operation: r for r in runs if r.responder == ceiling}
    table = h.markdown_table(
        ["responder", "operation", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "vs echo", "resp. CPU µs/req",
         "CPU % resp/broker/client/other", "note"],
        [
            (r.responder, r.operation, r.rps, r.latency.p50, r.latency.p99, r.latency.p999,
             f"{r.rps / top[r.operation].rps:.2f}×" if r.operation in top and top[r.operation].rps else "",
             r.responder_us_per_request, r.cpu.describe(), r.note)
            for r in runs
        ],
    )
    rows = ratio_rows(runs, ceiling, durable)
    cost = {r.operation: r.responder_us_per_request for r in runs if r.responder == durable}
    targets = {op: {"measured": ratio, "target": TARGET_RATIO, "rps": rps, "ceiling_rps": top_rps,
                    "cpu_cost_ratio": cost_ratio(top[op], cost[op])}
               for op, rps, top_rps, ratio in rows}
    target_table = h.markdown_table(
        ["operation", f"{durable} req/s", "echo req/s", "ratio", "verdict (≥ 60%)", "CPU cost ratio"],
        [(op, rps, top_rps, f"{ratio * 100:.1f}%", h.verdict(ratio, TARGET_RATIO, higher_is_better=True),
          f"{targets[op]['cpu_cost_ratio'] * 100:.1f}%")
         for op, rps, top_rps, ratio in rows],
    )
    parts = [
        f"## MQTT request/reply through mosquitto ({args.inflight} in flight, QoS 0, {args.duration:g} s per run)",
        f"_Machine: {note}. CPU: % of one core used by the responder / mosquitto / the load client / everything "
        "else during the run. `resp. CPU µs/req` = responder CPU per answered request._",
        table,
    ]
    if client_ceiling is not None:
        fastest = max((r.rps for r in runs), default=0.0)
        verdict = ("the load generator is not what limits the rows above" if client_ceiling.rps > 1.5 * fastest
                   else "**too close to the rows above: the client or the broker may be limiting them**")
        client_us = client_ceiling.cpu.client / 100 * client_ceiling.seconds / max(1, client_ceiling.completed) * 1e6
        parts.append(
            f"Client ceiling: the same load client against `mqtt_echo --raw` (a responder on the client's own "
            f"codec, lock create payloads): **{client_ceiling.rps:,.0f} req/s**, client CPU "
            f"{client_ceiling.cpu.client:.0f}% of a core ({client_us:.0f} µs/req) — {verdict}.")
    busy = [r.cpu.others for r in runs]
    if busy and sum(busy) / len(busy) > 25:
        parts.append(f"**Other jobs used {sum(busy) / len(busy):.0f}% of a core on average during these runs "
                     "(column 'other'): absolute numbers are depressed; compare within an operation.**")
    parts += [f"### Target: {durable} ≥ 60% of the echo ceiling", target_table,
              "_CPU cost ratio = echo's responder CPU per request ÷ the service's: what the throughput ratio "
              "would be if each responder had a core to itself (less sensitive to other jobs on the machine)._"]
    return "\n\n".join(parts), targets


# ------------------------------------------------------------------------------------------ trio client


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    lost: int = 0  # requests whose reply did not come within the timeout
    started: float = 0.0
    last_reply: float = 0.0


@dataclass
class Requester:
    """One request in flight at a time, on its own response topic."""

    index: int
    topic: str
    seq: int = 0
    sent: float = 0.0


def spread(count: int, connections: int) -> list[list[int]]:
    """Requester indexes dealt round-robin over `connections` (never more connections than requesters)."""
    used = max(1, min(count, connections))
    return [list(range(first, count, used)) for first in range(used)]


@dataclass(frozen=True)
class Target:
    """A responder under test: its process, the broker it answers through, its topic prefix."""

    label: str
    pid: int
    broker_pid: int
    host: str
    port: int
    prefix: str

    @property
    def is_echo(self) -> bool:
        return self.label.endswith("echo")


async def closed_loop(target: Target, operation: str, *, inflight: int, connections: int, duration: float,
                      tag: str, timeout: float = 10.0) -> Load:
    """`inflight` requesters, each sending its next request as soon as its reply arrives, for `duration`.

    The requesters share `connections` MQTT connections, one trio task each: every read hands over all
    the replies that arrived, and the next requests go out in one write. That keeps the client's CPU
    per request small when it is busy (no task switch or syscall per request).
    """
    load = Load()
    perf_counter = time.perf_counter
    pid = os.getpid()
    conns: list[tuple[RawMqtt, list[Requester]]] = []

    async def connect(number: int, indexes: list[int]) -> None:
        requesters = [Requester(i, f"bench/replies/{tag}/{pid}/{i}") for i in indexes]
        conn = await RawMqtt.open(target.host, target.port, f"bench-{tag}-{pid}-{number}",
                                  [(r.topic, 0) for r in requesters])
        conns.append((conn, requesters))

    def next_request(requester: Requester) -> bytes:
        topic, body = build_request(operation, target.prefix, requester.topic, tag, requester.index, requester.seq)
        return encode_publish(topic, body)

    async def drive(conn: RawMqtt, requesters: list[Requester]) -> None:
        by_topic = {r.topic: r for r in requesters}
        out = [next_request(r) for r in requesters]
        waiting = len(requesters)
        sent = perf_counter()
        for requester in requesters:
            requester.sent = sent
        await conn.stream.send_all(b"".join(out))
        while waiting:
            with trio.move_on_after(timeout) as scope:
                await conn.fill()
            if scope.cancelled_caught:
                load.lost += waiting
                return
            now = perf_counter()
            again: list[Requester] = []
            while conn.pending:
                first, body = conn.pending.popleft()
                if first >> 4 != PUBLISH:
                    continue
                topic, payload = parse_publish(first, body)
                requester = by_topic[topic]
                load.latencies.append(now - requester.sent)
                load.statuses[reply_status(payload)] += 1
                waiting -= 1
                requester.seq += 1
                if now < deadline:
                    again.append(requester)
            load.last_reply = now
            if again:
                out = [next_request(r) for r in again]
                sent = perf_counter()
                for requester in again:
                    requester.sent = sent
                waiting += len(again)
                await conn.stream.send_all(b"".join(out))

    async with trio.open_nursery() as nursery:
        for number, indexes in enumerate(spread(inflight, connections)):
            nursery.start_soon(connect, number, indexes)
    try:
        load.started = perf_counter()
        deadline = load.started + duration
        async with trio.open_nursery() as nursery:
            for conn, requesters in conns:
                nursery.start_soon(drive, conn, requesters)
    finally:
        for conn, _ in conns:
            await conn.aclose()
    return load


async def request_once(target: Target, operation: str, *, timeout: float = 1.0) -> bytes | None:
    """One request on a fresh connection; its reply, or None after `timeout` (nobody answering yet).
    `operation` "store seed" creates the store rules the store queries find."""
    reply_topic = f"bench/replies/probe/{os.getpid()}/{time.monotonic_ns()}"
    conn = await RawMqtt.open(target.host, target.port, f"bench-probe-{time.monotonic_ns()}", [(reply_topic, 0)])
    try:
        if operation == "store seed":
            topic, body = store_seed_request(target.prefix, reply_topic)
        else:
            topic, body = build_request(operation, target.prefix, reply_topic, "Q", 0, 0)
        await conn.stream.send_all(encode_publish(topic, body))
        with trio.move_on_after(timeout):
            return (await conn.next_publish())[1]
        return None
    finally:
        await conn.aclose()


async def wait_answering(target: Target, process: subprocess.Popen[bytes], limit: float = 60) -> None:
    """Until an echo request gets a reply (the responder connects to the broker in the background)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{target.label} exited with {process.returncode} before answering")
        if await request_once(target, "echo", timeout=0.5) is not None:
            return
    raise RuntimeError(f"{target.label}: no reply to an MQTT echo request within {limit} s")


# ------------------------------------------------------------------------------------------ processes, CPU


class Meter:
    """CPU of the responder, the broker, this process (the client) and the machine over a `with` body."""

    def __init__(self, responder_pid: int, broker_pid: int) -> None:
        self.pids = (responder_pid, broker_pid)

    def __enter__(self) -> Meter:
        self._wall = time.perf_counter()
        self._procs = [h.process_cpu_seconds(pid) for pid in self.pids]
        self._self = _self_cpu()
        self._busy = h.machine_cpu_seconds()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        responder, broker = (h.process_cpu_seconds(pid) - before
                             for pid, before in zip(self.pids, self._procs, strict=True))
        client = _self_cpu() - self._self
        busy = h.machine_cpu_seconds()[0] - self._busy
        self.cpu = Cpu(100 * responder / wall, 100 * broker / wall, 100 * client / wall,
                       max(0.0, 100 * (busy - responder - broker - client) / wall))


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_run(target: Target, operation: str, args: argparse.Namespace, tag: str, duration: float) -> Load:
    return trio.run(lambda: closed_loop(target, operation, inflight=args.inflight, connections=args.connections,
                                        duration=duration, tag=tag))


def measure(target: Target, operation: str, args: argparse.Namespace, tag: str) -> Run:
    with Meter(target.pid, target.broker_pid) as meter:
        load = load_run(target, operation, args, tag, args.duration)
    seconds = (load.last_reply - load.started) if load.latencies else args.duration
    run = Run(target.label, operation, len(load.latencies), seconds, dict(load.statuses), load.lost,
              h.summarize(load.latencies or [float("nan")]), meter.cpu)
    run.note = problems(run, 200 if target.is_echo else OPERATIONS.get(operation, 200))
    return run


def lock_count(target: Target) -> int:
    reply = trio.run(lambda: request_once(target, "lock query", timeout=10))
    if reply is None:
        raise RuntimeError(f"{target.label}: lock count query got no reply")
    return int(json.loads(reply)["payload"]["count"])


def show(run: Run) -> None:
    print(f"  {run.responder:<13} {run.operation:<12} {run.rps:>7,.0f} req/s  p50 {run.latency.p50:6.2f}  "
          f"p99 {run.latency.p99:6.2f} ms  {run.responder_us_per_request:5.0f} µs/req  "
          f"CPU resp/broker/client/other {run.cpu.describe()} %  {run.note}", flush=True)


class Processes:
    """The responders' child processes: started together, stopped (SIGINT, then SIGKILL) together."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.started.clear()

    def tail(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def echo_argv(host: str, port: int, prefix: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "bench.mqtt_echo", "--host", host, "--port", str(port), "--prefix", prefix,
            *options]


def service_argv(data_dir: Path, host: str, port: int, prefix: str, fsync: str) -> list[str]:
    # Each service needs its own MQTT client id: the broker drops a connection when the id reconnects.
    return [*h.lockstore(data_dir, "--fsync", fsync, "--log-level", "WARNING"),
            "--mqtt-url", f"mqtt://{host}:{port}", "--mqtt-client-id", f"lockstore-bench-{fsync}",
            "--mqtt-topic-prefix", prefix]


def warm(target: Target, args: argparse.Namespace) -> None:
    if args.warmup > 0:
        load_run(target, "lock create" if not target.is_echo else "echo", args, "W", args.warmup)


def profile(target: Target, operation: str, args: argparse.Namespace, tag: str) -> Path:
    """An extra run under py-spy (not one of the measured ones: sampling costs CPU on 2 cores).

    Blocking sampling (py-spy pauses the process for each sample): with --nonblocking, stacks read while
    the interpreter runs come out torn, and attributing samples to layers needs whole stacks.
    """
    name = target.label.replace("=", "-").replace(" ", "-")
    path = h.RESULTS_DIR / f"profile-mqtt-{name}-{operation.split()[-1]}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    h.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        raise SystemExit(f"--profile needs py-spy: {sys.executable} -m pip install py-spy")
    spy = subprocess.Popen([exe, "record", "--pid", str(target.pid), "--duration", str(max(1, round(args.duration))),
                            "--rate", "250", "--format", "raw", "-o", str(path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # py-spy attaches
    load_run(target, operation, args, tag, args.duration)
    _, err = spy.communicate(timeout=args.duration + 60)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    return path


def hottest(collapsed: str, top: int = 12) -> list[tuple[str, float]]:
    """Own-time shares of the trio thread's samples (worker threads' samples are wall time: left out)."""
    own, _ = h.summarize_collapsed("\n".join(line for line in collapsed.splitlines() if TRIO_THREAD in line), top)
    return own


def profile_tables(profiles: dict[str, Path], runs: Sequence[Run]) -> str:
    """The trio thread's samples by layer, a column per profiled run, as a share and — scaled by the
    responder's CPU per request in the measured run of the same operation — as µs per request."""
    cost = {f"{r.responder}: {r.operation}": r.responder_us_per_request for r in runs}
    shares = {title: dict(attribute(path.read_text())) for title, path in profiles.items()}
    labels = [name for name, _ in LAYERS] + [REST]

    def cell(title: str, label: str) -> str:
        share = shares[title].get(label, 0.0)
        return f"{share * 100:.1f}% · {share * cost[title]:.0f} µs" if title in cost else f"{share * 100:.1f}%"

    rows = [(label, *(cell(t, label) for t in profiles))
            for label in labels if any(shares[t].get(label) for t in profiles)]
    rows.append(("total responder CPU per request (measured run)",
                 *(f"{cost[t]:.0f} µs" if t in cost else "" for t in profiles)))
    return h.markdown_table(["trio thread samples by layer (share · ≈ µs/req)", *profiles], rows)


# ------------------------------------------------------------------------------------------ main

@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    pid: int


ECHO_PREFIX = "arrowhead/benchmarkechoceiling"  # as long as PREFIX: the same bytes on the wire
NEVER_PREFIX = "arrowhead/nofsyncorchestration"


def client_ceiling(broker: Broker, args: argparse.Namespace, processes: Processes) -> Run:
    """The load client against a responder on its own light codec: how far client + broker go."""
    process = processes.start("raw-echo", echo_argv(broker.host, broker.port, ECHO_PREFIX, "--raw"))
    target = Target("raw echo", process.pid, broker.pid, broker.host, broker.port, ECHO_PREFIX)
    trio.run(wait_answering, target, process)
    warm(target, args)
    run = measure(target, "lock create", args, "R")
    show(run)
    processes.stop()
    return run


def start_responders(broker: Broker, args: argparse.Namespace, processes: Processes, data: Path) -> list[Target]:
    wanted = [("echo", ECHO_PREFIX, None), ("fsync=always", PREFIX, "always")]
    if not args.no_fsync_never:
        wanted.append(("fsync=never", NEVER_PREFIX, "never"))
    targets = []
    for label, prefix, fsync in wanted:
        name = label.replace("=", "-")
        argv = (echo_argv(broker.host, broker.port, prefix) if fsync is None
                else service_argv(data / name, broker.host, broker.port, prefix, fsync))
        process = processes.start(name, argv)
        targets.append((Target(label, process.pid, broker.pid, broker.host, broker.port, prefix), process))
    for target, process in targets:
        try:
            trio.run(wait_answering, target, process)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{processes.tail(target.label.replace('=', '-'))}") from None
        if not target.is_echo:
            seeded = trio.run(partial(request_once, target, "store seed", timeout=10))
            if seeded is None or reply_status(seeded) != 201:
                raise RuntimeError(f"{target.label}: store seed failed: {seeded!r}")
        warm(target, args)
    return [target for target, _ in targets]


def measure_all(targets: Sequence[Target], args: argparse.Namespace) -> list[Run]:
    """Each operation against each responder in turn (interleaved, so background load hits all alike)."""
    runs = []
    for operation in [DIAGNOSTIC, *OPERATIONS]:
        for target in targets:
            counted = not target.is_echo and operation != DIAGNOSTIC
            before = lock_count(target) if counted else 0
            run = measure(target, operation, args, "C")
            if counted:
                after = lock_count(target)
                extra = (f"{before - after:,} of {run.completed:,} removes hit a lock" if operation == "lock remove"
                         else f"{after:,} locks")
                run.note = f"{run.note} {extra}".strip()
            show(run)
            runs.append(run)
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mqtt_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8, help="seconds per measured run (default 8)")
    parser.add_argument("--warmup", type=float, default=1, help="seconds of warm-up per responder (default 1)")
    parser.add_argument("--inflight", type=int, default=64, help="concurrent requesters (default 64)")
    parser.add_argument("--connections", type=int, default=8,
                        help="MQTT connections the requesters share (default 8)")
    parser.add_argument("--no-fsync-never", action="store_true", help="skip the --fsync never comparison")
    parser.add_argument("--profile", action="store_true",
                        help="extra runs of the echo and the durable service under py-spy (pip install py-spy)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                        help="first wait up to S seconds until other jobs use < 25%% of a core (shared machine)")
    args = parser.parse_args(argv)
    from tests.mqtt.broker import MosquittoBroker  # the tests' real-broker fixture (set_tcp_nodelay true)

    began = time.perf_counter()
    if args.wait_quiet:
        h.wait_until_quiet(args.wait_quiet)
    note = h.machine_note()
    print(f"# MQTT benchmark — {note}", flush=True)
    profiles: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="lockstore-mqtt-bench-") as workdir:
        broker = MosquittoBroker(Path(workdir) / "broker")
        broker.start()
        assert broker._proc is not None  # the fixture keeps its process private; we need its pid for CPU
        endpoint = Broker(broker.host, broker.port, broker._proc.pid)
        processes = Processes(Path(workdir))
        try:
            print("client ceiling:", flush=True)
            ceiling_run = client_ceiling(endpoint, args, processes)
            print("responders (interleaved runs):", flush=True)
            targets = start_responders(endpoint, args, processes, Path(workdir))
            runs = measure_all(targets, args)
            if args.profile:
                for target in targets[:2]:
                    for operation in ["lock create"] if target.is_echo else [DIAGNOSTIC, *OPERATIONS]:
                        profiles[f"{target.label}: {operation}"] = profile(target, operation, args, "P")
        finally:
            processes.stop()
            broker.stop()

    report, targets_met = render(runs, ceiling_run, args, note, durable="fsync=always", ceiling="echo")
    if profiles:
        report += "\n\n### Profiles (extra runs under py-spy)\n\n" + profile_tables(profiles, runs)
        for title, path in profiles.items():
            report += f"\n\n**{title}** — hottest functions of the trio thread (own time)\n\n" + h.markdown_table(
                ["function", "share"], [(name, f"{share * 100:.1f}%") for name, share in hottest(path.read_text())])
    print()
    print(report)
    out = h.write_results("mqtt", {
        "machine": note, "args": vars(args), "client_ceiling": ceiling_run.to_json(),
        "runs": [r.to_json() for r in runs], "targets": targets_met,
        "profiles": {k: str(v) for k, v in profiles.items()}, "seconds": time.perf_counter() - began,
    })
    print(f"\n_JSON: {out}; whole run {time.perf_counter() - began:.0f} s_")


if __name__ == "__main__":
    main()
