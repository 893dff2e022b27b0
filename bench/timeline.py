"""The open-loop schedule and the measured window, as arithmetic (no I/O, no clock), so that it can be
tested exactly.

Open loop: request number g (counted over all load-generator processes) is due at `start + g / rate`.
Process p of P sends the numbers g = p, p + P, p + 2P, ...: together they make one uniform timeline at
the full rate, and each process needs only rate / P of a core's attention. A request's latency runs
from its due time, never from when it was actually sent: a stall delays every later send, and those
requests are then measured as late (coordinated omission shows up instead of being hidden).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Schedule:
    rate: float  # requests per second over all processes
    process: int
    processes: int

    def due(self, start: float, local_index: int) -> float:
        """When this process's `local_index`-th request is due (seconds on the same clock as start)."""
        return start + (local_index * self.processes + self.process) / self.rate

    def count(self, seconds: float) -> int:
        """How many requests this process sends in `seconds` (all processes together: rate x seconds)."""
        total = math.floor(self.rate * seconds + 1e-9)
        return len(range(self.process, total, self.processes))


def split(total: int, parts: int, part: int) -> int:
    """Part `part`'s share when `total` items are dealt out round-robin over `parts`."""
    return len(range(part, total, parts))


@dataclass(frozen=True, slots=True)
class Window:
    """The measured part of a run: after the warm-up, for `duration` seconds (by due or send time)."""

    start: float
    warmup: float
    duration: float

    @property
    def begins(self) -> float:
        return self.start + self.warmup

    @property
    def ends(self) -> float:
        return self.begins + self.duration

    def measured(self, moment: float) -> bool:
        return self.begins <= moment < self.ends

    def second(self, moment: float) -> int:
        """The whole second of the measured window `moment` falls in (0 for the first)."""
        return int(moment - self.begins)

    def seconds(self) -> int:
        return max(1, math.ceil(self.duration - 1e-9))


def processes_for(rate: float | None, concurrency: int | None, cores: int, per_process_rate: float) -> int:
    """Enough load-generator processes that none has to send more than `per_process_rate` requests
    per second, but no more than there are cores (a third process on two cores only takes CPU from
    the server). Closed loop: one process per 64 lanes, same cap."""
    if rate is not None:
        wanted = math.ceil(rate / per_process_rate)
    else:
        wanted = math.ceil((concurrency or 1) / 64)
    return max(1, min(cores, wanted))
