"""The load-generator processes: start them (spawned, so each has its own interpreter and GIL),
release them at one instant once all are connected, print the live line from their once-a-second
reports, and gather their results.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import trio

from bench.histogram import LatencyHistogram
from bench.loadgen import LoadSpec, Progress, WorkerResult, worker
from bench.report import progress_line

START_DELAY_S = 0.5  # between "every process is connected" and the first due request


def _process_main(spec: LoadSpec, process: int, prepared: tuple[tuple[str, ...], ...],
                  messages: multiprocessing.Queue[Any], start_value: Synchronized[float]) -> None:
    """A client process: run the worker, send its result (or its failure) to the parent."""

    def start_wall() -> float:
        while (value := start_value.value) == 0.0:
            time.sleep(0.005)
        return float(value)

    try:
        result = trio.run(worker, spec, process, prepared, start_wall, messages.put)
    except BaseException as error:
        messages.put(("failed", process, f"{type(error).__name__}: {error}"))
        raise
    messages.put(result)


@dataclass
class LoadResult:
    workers: list[WorkerResult]
    began_wall: float  # when the measured window began (wall clock), for the server samplers
    processes: int


def run_load(
    spec: LoadSpec,
    prepared: list[tuple[str, ...]],
    *,
    on_window: Callable[[float, float], None] | None = None,
    live: bool = True,
) -> LoadResult:
    """Run `spec` in `spec.processes` client processes; blocks until they are done.

    `on_window(begins_wall, ends_wall)` is called once the start time is fixed (the server samplers
    use it). `prepared` (what setup made) is dealt out round-robin to the processes."""
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[Any] = context.Queue()
    start_value: Synchronized[float] = context.Value("d", 0.0)
    shares = [tuple(prepared[p :: spec.processes]) for p in range(spec.processes)]
    processes = [
        context.Process(target=_process_main, args=(spec, p, shares[p], messages, start_value), daemon=True)
        for p in range(spec.processes)
    ]
    for process in processes:
        process.start()
    try:
        return _collect(spec, processes, messages, start_value, on_window, live)
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def _collect(spec: LoadSpec, processes: Sequence[BaseProcess], messages: multiprocessing.Queue[Any],
             start_value: Synchronized[float], on_window: Callable[[float, float], None] | None,
             live: bool) -> LoadResult:
    ready: set[int] = set()
    results: dict[int, WorkerResult] = {}
    totals: dict[int, Progress] = {}
    so_far = LatencyHistogram()
    began = 0.0
    last_print, last_completed = 0.0, 0
    while len(results) < len(processes):
        try:
            message = messages.get(timeout=1.0)
        except queue.Empty:
            if any(not p.is_alive() and p.exitcode not in (0, None) for p in processes) and messages.empty():
                raise RuntimeError("a load-generator process died") from None
            continue
        if isinstance(message, tuple) and message[0] == "ready":
            ready.add(message[1])
            if len(ready) == len(processes):
                began = time.time() + START_DELAY_S
                start_value.value = began
                if on_window is not None:
                    window_end = began + spec.warmup_s + spec.duration_s if spec.total_requests is None else math.inf
                    on_window(began + spec.warmup_s, window_end)
        elif isinstance(message, tuple) and message[0] == "failed":
            raise RuntimeError(f"load-generator process {message[1]} failed: {message[2]}")
        elif isinstance(message, Progress):
            totals[message.process] = message
            so_far.merge(LatencyHistogram.decode(message.interval))
            now = time.time()
            if live and now - last_print >= 1.0:
                completed = sum(t.completed for t in totals.values())
                rate_now = (completed - last_completed) / (now - last_print) if last_print else 0.0
                last_print, last_completed = now, completed
                _print_progress(now - began, totals, so_far, rate_now)
        elif isinstance(message, WorkerResult):
            results[message.process] = message
    if live:
        print(file=sys.stderr)
    return LoadResult([results[p] for p in sorted(results)], began + spec.warmup_s, len(processes))


def _print_progress(elapsed: float, totals: dict[int, Progress], so_far: LatencyHistogram, rate_now: float) -> None:
    """The live line: counts of the measured window so far (warm-up excluded), p99 of it so far."""
    sent = sum(t.sent for t in totals.values())
    completed = sum(t.completed for t in totals.values())
    errors = sum(t.errors for t in totals.values())
    line = progress_line(elapsed, sent, completed, errors, so_far.percentile_ms(99), rate_now)
    end = "\r" if sys.stderr.isatty() else "\n"
    print(line, end=end, file=sys.stderr, flush=True)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
