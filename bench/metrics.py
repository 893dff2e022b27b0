"""What lockstore says about itself on /metrics, read by the harness around and during a run: how many
locks and rules are live (so a remove scenario can say how many removes hit), and whether a snapshot
is being written (so the start-up scenario can split latency by it).

`parse` is pure; `scrape` is one blocking GET (from the watching thread, or between runs).
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field

from bench.http_client import tls_context
from bench.operations import Endpoint
from bench.sampler import WindowWatch

LOCKS_LIVE = "lockstore_locks_live"
RULES_LIVE = "lockstore_rules_live"
SNAPSHOTS = "lockstore_snapshots_total"
SNAPSHOT_IN_PROGRESS = "lockstore_snapshot_in_progress"
CAPTURE_STALL = "lockstore_snapshot_capture_stall_seconds"


def parse(text: str) -> dict[str, float]:
    """Prometheus text format → {sample name with its labels as written: value}; comments skipped."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "}" in line:
            name, _, rest = line.rpartition("}")
            name += "}"
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        try:
            values[name] = float(fields[0])
        except (IndexError, ValueError):
            continue
    return values


def scrape(endpoint: Endpoint, timeout: float = 10.0) -> dict[str, float]:
    """GET /metrics of lockstore's HTTP(S) API."""
    url = endpoint.url.rstrip("/") + "/metrics"
    context = tls_context(endpoint.tls_ca, endpoint.tls_cert, endpoint.tls_key) if url.startswith("https") else None
    with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
        return parse(response.read().decode())


@dataclass(kw_only=True)
class SnapshotWatch(WindowWatch):
    """Polls /metrics every `interval_s` inside the measured window (wall clock): in which whole
    seconds of the window a snapshot was being captured or written, how many were taken, and the
    longest time one capture message held an actor."""

    endpoint: Endpoint
    interval_s: float = 0.1
    busy_seconds: set[int] = field(default_factory=set)
    taken: int = 0
    stall_s: float = 0.0

    def _watch(self, begins: float, ends: float) -> None:
        first: float | None = None
        while (now := time.time()) < ends:
            try:
                values = scrape(self.endpoint, timeout=5)
            except OSError:
                values = {}
            if values:
                if first is None:
                    first = values.get(SNAPSHOTS, 0.0)
                taken = int(values.get(SNAPSHOTS, 0.0) - first)
                if values.get(SNAPSHOT_IN_PROGRESS) or taken > self.taken:  # running, or ran since the last poll
                    self.busy_seconds.add(int(now - begins))
                self.taken = taken
                self.stall_s = max(self.stall_s, values.get(CAPTURE_STALL, 0.0))
            if self.stopped(self.interval_s):
                return
