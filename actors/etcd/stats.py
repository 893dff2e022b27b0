"""Counters of the etcd mode that the service's /metrics reads at scrape time (as for the local mode, the
components count and the metrics module only reads; nothing here knows Prometheus).

One `EtcdStats` is shared by the client (requests, latency), the write paths (conflicts, retries,
unknown outcomes) and the expiry (deletions). Each cached table keeps its own replica counters
(watch restarts, relists, revision lag): see `ReplicaStatus` in actors/etcd/replica.py.

May import: the standard library. Never transports or bench.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

RequestObserver = Callable[[str, str, float], None]  # (path, outcome, seconds)


@dataclass
class EtcdStats:
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (path, outcome) -> count
    observers: list[RequestObserver] = field(default_factory=list)  # e.g. a latency histogram per path
    txn_conflicts: int = 0  # write txns whose compares failed: another instance changed what they read
    write_retries: int = 0  # write attempts after a request's first (conflicts and unknown outcomes)
    unknown_outcomes: int = 0  # write txns whose answer was lost (timeout, broken connection)
    unknown_committed: int = 0  # ... of which a later read showed that they had been applied
    endpoint_failovers: int = 0  # requests moved on to the next endpoint

    def observe(self, path: str, outcome: str, seconds: float) -> None:
        self.requests[(path, outcome)] += 1
        for observer in self.observers:
            observer(path, outcome, seconds)
