"""Samples a server process's CPU and RSS from /proc while the measured window is open.

A thread, so that sampling costs the load generators nothing; it reads two small /proc files twice
a second, which the sampled process does not notice.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

from bench.processes import process_cpu_seconds as cpu_seconds
from bench.processes import rss_mib
from bench.results import Resources


@dataclass
class WindowWatch:
    """A thread that watches something between two wall-clock instants (the measured window): call
    `window(begins, ends)` to arm it and `stop()` to end it; subclasses `_watch` until `ends`."""

    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def window(self, begins: float, ends: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(begins, ends), daemon=True)
        self._thread.start()

    def _run(self, begins: float, ends: float) -> None:
        if not self._stop.wait(max(0.0, begins - time.time())):
            self._watch(begins, ends)

    def _watch(self, begins: float, ends: float) -> None:
        raise NotImplementedError

    def stopped(self, within: float) -> bool:
        """Wait `within` seconds; True if `stop()` was called meanwhile."""
        return self._stop.wait(within)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass(kw_only=True)
class Sampler(WindowWatch):
    """`resources(requests)` gives what it saw. Samples only inside the window, so warm-up and setup
    are not counted."""

    pid: int
    interval_s: float = 0.5
    _cpu: list[float] = field(default_factory=list)
    _rss: list[float] = field(default_factory=list)
    _first: float | None = None
    _last: float | None = None

    def _watch(self, begins: float, ends: float) -> None:
        try:
            previous = self._first = cpu_seconds(self.pid)
            self._rss.append(rss_mib(self.pid))
            while not self.stopped(self.interval_s) and time.time() < ends:
                now = cpu_seconds(self.pid)
                self._cpu.append((now - previous) / self.interval_s * 100)
                self._rss.append(rss_mib(self.pid))
                previous = self._last = now
        except (FileNotFoundError, ProcessLookupError):  # the server went away: keep what we have
            return

    def resources(self, requests: int) -> Resources:
        used = (self._last or 0.0) - (self._first or 0.0) if self._last is not None else 0.0
        return Resources(
            pid=self.pid,
            interval_s=self.interval_s,
            cpu_percent=[round(c, 1) for c in self._cpu],
            rss_mib=[round(r, 1) for r in self._rss],
            cpu_seconds=round(used, 3),
            cpu_us_per_request=used / requests * 1e6 if requests else 0.0,
            peak_rss_mib=max((r for r in self._rss if not math.isnan(r)), default=0.0),
        )
