"""The load generator: runs one scenario against one endpoint, open loop (a fixed rate on a timeline)
or closed loop (a fixed number of lanes, each sending its next request when the last is answered),
in one or more client processes, and brings back their histograms.

Each process runs its own trio loop with its own connections and its share of the schedule
(`bench.timeline`). It records, for requests in the measured window only (warm-up excluded): the
latency (open loop: from the *due* time; closed loop: from the send), per operation, per second, the
send lag (due → sent: queueing for a free connection, or a client that cannot keep up), statuses,
and its own CPU time. Once a second it reports progress to the parent, which prints the live line.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from bench.clients import open_client
from bench.histogram import LatencyHistogram
from bench.operations import Client, Endpoint, Operation, Reply
from bench.timeline import Schedule, Window, split
from bench.workload import SCENARIOS, Sizes, WorkerContext, Workload


@dataclass(frozen=True)
class LoadSpec:
    """Everything a client process needs (picklable)."""

    scenario: str
    endpoint: Endpoint
    mode: str  # "open" | "closed"
    rate: float | None  # open loop: requests per second over all processes
    lanes: int  # open loop: most requests in flight; closed loop: the concurrency
    connections: int  # clients (connections) over all processes; lanes share them
    duration_s: float
    warmup_s: float
    processes: int
    tag: str
    seed: int = 1
    sizes: Sizes = field(default_factory=Sizes)
    total_requests: int | None = None  # closed loop: stop after this many (bulk loads) instead of a duration
    timeout_s: float = 10.0


@dataclass
class SecondCounts:
    sent: int = 0
    completed: int = 0
    errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass
class WorkerResult:
    """One process's measured window (histograms encoded, to cross the process boundary cheaply)."""

    process: int
    scheduled: int
    started: int
    completed: int
    errors: int
    statuses: dict[str, int]
    latency: str
    operations: dict[str, str]
    seconds: list[tuple[int, int, int, str]]  # (sent, completed, errors, latency) per measured second
    issued: dict[str, int]  # requests handed to a client per operation, warm-up and the end included
    send_lag: str
    scheduler_lag: str
    cpu_s: float
    handled: int
    received: int
    measured_s: float


@dataclass
class Progress:
    process: int
    sent: int
    completed: int
    errors: int
    interval: str  # latencies completed since the last report


class _Recorder:
    """The per-process tallies. Only requests whose due/send time is in the window are counted."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.latency = LatencyHistogram()
        self.operations: dict[str, LatencyHistogram] = {}
        self.seconds: dict[int, SecondCounts] = {}
        self.send_lag = LatencyHistogram()
        self.scheduler_lag = LatencyHistogram()
        self.statuses: Counter[str] = Counter()
        self.issued: Counter[str] = Counter()
        self.scheduled = self.started = self.completed = self.errors = 0
        self.handled = 0  # every answer, warm-up included: what the client's CPU time was spent on
        # Successful answers that *arrived* inside the window, whenever they were due: the throughput.
        # (Counting by due time would credit an overloaded target with the offered rate, its backlog
        # being answered after the window.)
        self.received = 0
        self.interval = LatencyHistogram()
        self.last_answer = 0.0

    def sent(self, name: str, origin: float, now: float) -> None:
        self.issued[name] += 1
        if self.window.measured(origin):
            self.started += 1
            self.send_lag.record(now - origin)
            self._second(origin).sent += 1

    def answered(self, name: str, origin: float, now: float, status: str, ok: bool) -> None:
        self.handled += 1
        if ok and self.window.measured(now):
            self.received += 1
        if not self.window.measured(origin):
            return
        latency = now - origin
        second = self._second(origin)
        self.statuses[status] += 1
        self.last_answer = max(self.last_answer, now)
        if not ok:
            self.errors += 1
            second.errors += 1
            return
        self.completed += 1
        second.completed += 1
        self.latency.record(latency)
        second.latency.record(latency)
        self.interval.record(latency)
        per_operation = self.operations.get(name)
        if per_operation is None:
            per_operation = self.operations[name] = LatencyHistogram()
        per_operation.record(latency)

    def _second(self, moment: float) -> SecondCounts:
        number = self.window.second(moment)
        counts = self.seconds.get(number)
        if counts is None:
            counts = self.seconds[number] = SecondCounts()
        return counts

    def take_interval(self) -> str:
        text = self.interval.encode()
        self.interval = LatencyHistogram()
        return text


class _Slots:
    """The process's clients. Lanes share them round-robin; a broken client is replaced once, by
    whichever lane notices first."""

    def __init__(self, endpoint: Endpoint, count: int) -> None:
        self.endpoint = endpoint
        self.clients: list[Client | None] = [None] * count
        self.opening = [trio.Lock() for _ in range(count)]

    async def get(self, slot: int) -> Client:
        async with self.opening[slot]:
            client = self.clients[slot]
            if client is None:
                client = self.clients[slot] = await open_client(self.endpoint.for_connection(slot))
            return client

    async def broken(self, slot: int, client: Client) -> None:
        if self.clients[slot] is client:
            self.clients[slot] = None
            with trio.move_on_after(1) as scope:
                scope.shield = True
                try:
                    await client.aclose()
                except Exception:
                    pass

    async def aclose(self) -> None:
        for client in self.clients:
            if client is not None:
                with trio.move_on_after(2):
                    await client.aclose()


async def _call(
    slots: _Slots, slot: int, workload: Workload, name: str, operation: Operation, timeout: float
) -> tuple[str, bool]:
    """One request → (status text, success). Failures never escape: they are the measurement."""
    try:
        client = await slots.get(slot)
    except OSError:
        return "connection", False
    reply: Reply | None = None
    with trio.move_on_after(timeout):
        try:
            reply = await client.call(operation)
        except OSError:
            await slots.broken(slot, client)
            return "connection", False
    if reply is None:
        if slots.endpoint.kind != "mqtt":  # an HTTP/1.1 connection with a request in flight is unusable;
            await slots.broken(slot, client)  # an MQTT one goes on (the late reply is dropped)
        return "timeout", False
    workload.answered(operation, reply)
    return str(reply.status), reply.ok


async def _run_open(spec: LoadSpec, process: int, start: float, recorder: _Recorder, slots: _Slots,
                    workload: Workload, lanes: int) -> None:
    assert spec.rate is not None
    schedule = Schedule(spec.rate, process, spec.processes)
    count = schedule.count(spec.warmup_s + spec.duration_s)
    send, receive = trio.open_memory_channel[tuple[float, str, Operation]](math.inf)

    async def lane(number: int) -> None:
        async for due, name, operation in receive:
            now = trio.current_time()
            recorder.sent(name, due, now)
            status, ok = await _call(slots, number % len(slots.clients), workload, name, operation, spec.timeout_s)
            recorder.answered(name, due, trio.current_time(), status, ok)

    async with trio.open_nursery() as nursery:
        for number in range(lanes):
            nursery.start_soon(lane, number)
        async with send:
            for index in range(count):
                due = schedule.due(start, index)
                if due > trio.current_time():  # when late, hand out the backlog without a checkpoint each
                    await trio.sleep_until(due)
                if recorder.window.measured(due):
                    recorder.scheduled += 1
                    recorder.scheduler_lag.record(trio.current_time() - due)
                name, operation = workload.next()
                send.send_nowait((due, name, operation))
        # Everything scheduled has been handed out; what is still queued or in flight gets the
        # timeout to finish, then is cut off (and counted as unsent / timed out).
        nursery.cancel_scope.deadline = trio.current_time() + spec.timeout_s


async def _run_closed(spec: LoadSpec, process: int, start: float, recorder: _Recorder, slots: _Slots,
                      workload: Workload, lanes: int) -> None:
    limit = split(spec.total_requests, spec.processes, process) if spec.total_requests is not None else None
    issued = 0
    await trio.sleep_until(start)

    async def lane(number: int) -> None:
        nonlocal issued
        while True:
            now = trio.current_time()
            if limit is not None:
                if issued >= limit:
                    return
            elif now >= recorder.window.ends:
                return
            issued += 1
            if recorder.window.measured(now):
                recorder.scheduled += 1
            name, operation = workload.next()
            recorder.sent(name, now, now)
            status, ok = await _call(slots, number % len(slots.clients), workload, name, operation, spec.timeout_s)
            recorder.answered(name, now, trio.current_time(), status, ok)

    async with trio.open_nursery() as nursery:
        for number in range(lanes):
            nursery.start_soon(lane, number)


async def worker(spec: LoadSpec, process: int, prepared: tuple[tuple[str, ...], ...],
                  start_wall: Callable[[], float], report: Callable[[object], None]) -> WorkerResult:
    lanes = split(spec.lanes, spec.processes, process)
    slots = _Slots(spec.endpoint, max(1, min(lanes, split(spec.connections, spec.processes, process))))
    context = WorkerContext(process, spec.processes, spec.seed * 1000 + process, spec.tag, spec.sizes, prepared)
    workload = SCENARIOS[spec.scenario].workload(context)
    for slot in range(len(slots.clients)):  # connect before the clock starts
        await slots.get(slot)
    report(("ready", process))
    wall = await trio.to_thread.run_sync(start_wall)
    start = trio.current_time() + (wall - time.time())
    open_ended = spec.total_requests is not None  # a bulk load: measured until its last answer
    recorder = _Recorder(Window(start, spec.warmup_s, 10.0**7 if open_ended else spec.duration_s))
    cpu_before = time.process_time()
    run = _run_open if spec.mode == "open" else _run_closed

    async def progress() -> None:
        while True:
            await trio.sleep(1)
            report(Progress(process, recorder.started, recorder.completed, recorder.errors, recorder.take_interval()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress)
        await run(spec, process, start, recorder, slots, workload, max(1, lanes))
        nursery.cancel_scope.cancel()
    await slots.aclose()
    ended = trio.current_time()
    unsent = recorder.scheduled - recorder.started
    in_flight = recorder.started - recorder.completed - recorder.errors
    if unsent:
        recorder.statuses["unsent"] += unsent
    if in_flight:
        recorder.statuses["timeout"] += in_flight
    measured_end = min(ended, recorder.window.ends) if spec.total_requests is None else recorder.last_answer
    return WorkerResult(
        process=process,
        scheduled=recorder.scheduled,
        started=recorder.started,
        completed=recorder.completed,
        errors=recorder.errors + unsent + in_flight,
        statuses=dict(recorder.statuses),
        latency=recorder.latency.encode(),
        operations={name: h.encode() for name, h in recorder.operations.items()},
        seconds=_seconds(recorder),
        issued=dict(recorder.issued),
        send_lag=recorder.send_lag.encode(),
        scheduler_lag=recorder.scheduler_lag.encode(),
        cpu_s=time.process_time() - cpu_before,
        handled=recorder.handled,
        received=recorder.received,
        measured_s=max(1e-9, measured_end - recorder.window.begins),
    )


def _seconds(recorder: _Recorder) -> list[tuple[int, int, int, str]]:
    """Every second from the first to the last with anything in it (empty ones too: a stall shows)."""
    last = max(recorder.seconds, default=-1)
    rows = []
    for number in range(last + 1):
        counts = recorder.seconds.get(number) or SecondCounts()
        rows.append((counts.sent, counts.completed, counts.errors, counts.latency.encode()))
    return rows
