"""One run, start to finish: prepare the target (the scenario's setup), drive the load, sample the
server, and turn the client processes' histograms into a `RunResult`."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import trio

from bench import metrics
from bench.clients import open_client
from bench.fleet import LoadResult, run_load
from bench.histogram import LatencyHistogram
from bench.loadgen import LoadSpec, WorkerResult
from bench.operations import CreateRules, Operation
from bench.processes import parse_gc_log, peak_rss_mib, rss_mib
from bench.report import removals_text
from bench.results import ClientUse, GcPauses, Removals, RunResult, Second, SnapshotEffect, Startup
from bench.sampler import Sampler
from bench.startup import phases
from bench.targets import Target
from bench.workload import SCENARIOS, Sizes

SETUP_CONNECTIONS = 16
SLOW_SCHEDULER_MS = 5.0  # the dispatcher this late at p99: the client, not the target, is the limit


@dataclass
class Prepared:
    ids: list[tuple[str, ...]]  # what each create reply of the setup named (rule ids)
    failed: int
    requests: int


async def _prepare(target: Target, operations: list[Operation]) -> Prepared:
    """Send the setup operations, 16 at a time, keeping the ids creates answer with, in order."""
    ids: list[tuple[str, ...]] = [()] * len(operations)
    failed = 0
    send, receive = trio.open_memory_channel[int](len(operations))
    for index in range(len(operations)):
        send.send_nowait(index)
    send.close()

    async def lane() -> None:
        nonlocal failed
        client = await open_client(target.endpoint)
        try:
            async for index in receive.clone():
                reply = await client.call(operations[index])
                if not reply.ok:
                    failed += 1
                elif isinstance(operations[index], CreateRules):
                    ids[index] = reply.ids
        finally:
            await client.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(min(SETUP_CONNECTIONS, max(1, len(operations)))):
            nursery.start_soon(lane)
    return Prepared([i for i in ids if i], failed, len(operations))


def prepare(target: Target, spec: LoadSpec) -> Prepared:
    operations = SCENARIOS[spec.scenario].setup(spec.tag, spec.sizes)
    if not operations:
        return Prepared([], 0, 0)
    return trio.run(_prepare, target, operations)


def run_once(target: Target, spec: LoadSpec, *, live: bool = True) -> RunResult:
    """Setup, then the measured load against `target`, sampling its processes meanwhile (and, where
    the scenario asks, lockstore's own /metrics: live counts around a remove run, snapshots during it)."""
    spec = replace(spec, endpoint=target.endpoint)
    scenario = SCENARIOS[spec.scenario]
    prepared = prepare(target, spec)
    counts = _live_count(target, scenario.removes)
    samplers = [Sampler(pid=pid) for pid in target.pids]
    watch = metrics.SnapshotWatch(endpoint=target.metrics) if scenario.startup and target.metrics else None
    measured: list[float] = []

    def window(begins: float, ends: float) -> None:
        measured.extend((begins, ends))
        for sampler in samplers:
            sampler.window(begins, ends)
        if watch is not None:
            watch.window(begins, ends)

    try:
        load = run_load(spec, prepared.ids, on_window=window, live=live)
    finally:
        for sampler in samplers:
            sampler.stop()
        if watch is not None:
            watch.stop()
    result = summarize(target, spec, load)
    result.server = [s.resources(result.requests) for s in samplers]
    if prepared.requests:
        result.notes.append(
            f"setup: {prepared.requests} requests before the run ({spec.sizes.preload} records), "
            f"{prepared.failed} failed"
        )
    if counts is not None and scenario.removes is not None:
        sent = sum(worker.issued.get("remove", 0) for worker in load.workers)
        after = _live_count(target, scenario.removes)
        result.removals = Removals(scenario.removes, sent, counts, after if after is not None else counts)
        result.notes.append(removals_text(result.removals))
    if target.gc_log is not None and measured:
        result.gc = gc_pauses(target.gc_log, measured[0], min(measured[1], time.time()))
    if watch is not None:
        result.snapshots = snapshot_effect(load.workers, watch.busy_seconds, watch.taken, watch.stall_s)
    result.notes.extend(target.notes)
    return result


def gc_pauses(log: Path, begins: float, ends: float) -> GcPauses:
    """The collections the service logged that ended inside the window."""
    text = log.read_text() if log.exists() else ""
    inside = [c for c in parse_gc_log(text) if begins <= c.at < ends]
    full = [c.ms for c in inside if c.generation == 2]
    return GcPauses(full=len(full), full_max_ms=max(full, default=0.0),
                    longest_ms=max((c.ms for c in inside), default=0.0), paused_ms=sum(c.ms for c in inside))


def _live_count(target: Target, kind: str | None) -> int | None:
    """Live locks or rules in a lockstore the harness started (None: not such a target, or no kind)."""
    if kind is None or target.metrics is None:
        return None
    name = metrics.LOCKS_LIVE if kind == "locks" else metrics.RULES_LIVE
    return int(metrics.scrape(target.metrics)[name])


def snapshot_effect(workers: list[WorkerResult], busy: set[int], taken: int, stall_s: float) -> SnapshotEffect:
    """The window's per-second histograms merged into the seconds with a snapshot running and those without."""
    during, outside = LatencyHistogram(), LatencyHistogram()
    seconds = max((len(w.seconds) for w in workers), default=0)
    for worker in workers:
        for number, (_, _, _, latency) in enumerate(worker.seconds):
            (during if number in busy else outside).merge(LatencyHistogram.decode(latency))
    with_snapshot = len([n for n in range(seconds) if n in busy])
    return SnapshotEffect(taken=taken, capture_hold_ms=stall_s * 1e3, seconds_with=with_snapshot,
                          seconds_without=seconds - with_snapshot, with_snapshot=during.summary(),
                          without_snapshot=outside.summary())


def startup_result(target: Target, sizes: Sizes) -> Startup:
    """The start-up facts of a lockstore the harness just started on a data directory it built."""
    found = phases(target.start_log)
    if found is None:
        raise RuntimeError("lockstore's start-up line is not in its log:\n" + "\n".join(target.start_log))
    pid = target.pids[0]
    return Startup(
        records=sizes.records,
        log_records=sizes.log_records,
        snapshot_load_s=found.snapshot_load_s,
        log_replay_s=found.log_replay_s,
        index_s=found.index_s,
        state_ready_s=found.state_ready_s,
        serve_ready_s=target.ready_s,
        rss_mib=target.ready_rss_mib or rss_mib(pid),
        peak_rss_mib=target.ready_peak_rss_mib or peak_rss_mib(pid),
    )


def _merged(texts: list[str]) -> LatencyHistogram:
    merged = LatencyHistogram()
    for text in texts:
        merged.merge(LatencyHistogram.decode(text))
    return merged


def _timeline(workers: list[WorkerResult]) -> list[Second]:
    rows: list[Second] = []
    for number in range(max((len(w.seconds) for w in workers), default=0)):
        parts = [w.seconds[number] for w in workers if number < len(w.seconds)]
        latency = _merged([p[3] for p in parts])
        rows.append(
            Second(
                t=float(number),
                sent=sum(p[0] for p in parts),
                completed=sum(p[1] for p in parts),
                errors=sum(p[2] for p in parts),
                p50_ms=latency.percentile_ms(50),
                p99_ms=latency.percentile_ms(99),
                max_ms=latency.max_ms(),
            )
        )
    return rows


def _throughput(spec: LoadSpec, workers: list[WorkerResult], measured: float) -> float:
    """Successful answers per second that arrived in the window (bulk loads: all of them over the time
    they took). An overloaded open-loop target thus shows what it sustained, not the offered rate."""
    if measured <= 0:
        return math.nan
    if spec.total_requests is not None:
        return sum(w.completed for w in workers) / measured
    return sum(w.received for w in workers) / spec.duration_s


def summarize(target: Target, spec: LoadSpec, load: LoadResult) -> RunResult:
    """The client processes' tallies → one result (histograms merged, not percentiles averaged)."""
    workers = load.workers
    latency = _merged([w.latency for w in workers])
    names = sorted({name for w in workers for name in w.operations})
    operations = {
        name: _merged([w.operations[name] for w in workers if name in w.operations]).summary() for name in names
    }
    statuses: Counter[str] = Counter()
    for worker in workers:
        statuses.update(worker.statuses)
    requests = sum(w.completed for w in workers)
    errors = sum(w.errors for w in workers)
    measured = max(w.measured_s for w in workers)
    cpu = sum(w.cpu_s for w in workers)
    scheduler_lag = _merged([w.scheduler_lag for w in workers])
    notes: list[str] = []
    if spec.mode == "open" and scheduler_lag.percentile_ms(99) > SLOW_SCHEDULER_MS:
        notes.append(
            f"the load generator fell behind its own schedule (p99 {scheduler_lag.percentile_ms(99):.1f} ms late"
            f" with {load.processes} process(es)): the latencies include that lag; try --clients N or a lower rate"
        )
    return RunResult(
        target=target.name,
        scenario=spec.scenario,
        transport=target.transport,
        mode=spec.mode,
        offered_rate=spec.rate if spec.mode == "open" else None,
        concurrency=spec.lanes if spec.mode == "closed" else None,
        duration_s=spec.duration_s if spec.total_requests is None else round(measured, 3),
        warmup_s=spec.warmup_s,
        measured_s=round(measured, 3),
        requests=requests,
        errors=errors,
        throughput_rps=_throughput(spec, workers, measured),
        statuses=dict(sorted(statuses.items())),
        latency=latency.summary(),
        histogram=latency.encode(),
        operations=operations,
        timeline=_timeline(workers),
        server=[],
        client=ClientUse(
            processes=load.processes,
            cpu_seconds=round(cpu, 3),
            cpu_us_per_request=cpu / handled * 1e6 if (handled := sum(w.handled for w in workers)) else 0.0,
            send_lag=_merged([w.send_lag for w in workers]).summary(),
        ),
        notes=notes,
    )

