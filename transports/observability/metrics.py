"""Prometheus metrics (`/metrics`): what an operator graphs and alerts on.

Two kinds of numbers:
- **Observed on the hot path** (per request, per log batch): kept in plain dicts and `Histogram`s
  below, touched only from the trio thread, so no locking. prometheus-client's own Counter/Histogram
  children take a threading lock on every `inc`/`observe` (≈ 5.6 µs per request for a counter and a
  histogram with label lookup, against ≈ 0.6 µs here); the framework already costs ~95% of a request,
  so ours stays small.
- **Read at scrape time** from the components that already count them (mailbox depth, log bytes,
  purged expiries, MQTT connection state …): zero cost between scrapes.

Both are exposed through one custom collector on a registry of the service's own (several services
can live in one process, e.g. in tests), with prometheus-client's process collector beside it.
etcd mode (`Sources.etcd`): the client's requests by path and outcome and their latency (an observer
on `EtcdStats`), the write paths' conflicts, retries and lost answers, each cache's revision, lag,
watch restarts and relists, and the expiry leadership, as `lockstore_etcd_*`.
Snapshots: count, in progress, how long the last capture held an actor, and the age of the newest
snapshot file per actor (its mtime, at scrape). Snapshot duration is not exposed yet: the snapshotter
only logs it. TODO: `Snapshotter.last_seconds` (and then `lockstore_snapshot_duration_seconds`).
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from pathlib import Path

    from actors.etcd.cluster import EtcdState
    from actors.services import LockService, StoreService
    from actors.snapshots import Snapshotter
    from transports.mqtt.server import MqttServer
    from wal.log import WriteAheadLog

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NO_REPLY = 0  # the status recorded for an MQTT request that got no reply (exposed as status="none")

# Requests take ~0.5-20 ms here; the upper buckets catch stalls (a full mailbox, a slow disk).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One batch write or fsync: ~0.05-0.5 ms on a good disk, far more on a busy or networked one.
DISK_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
# One etcd request over its gateway: ~1-5 ms on a LAN (a quorum fsync for writes); seconds when a member is
# frozen or an election runs (the request timeout is 5 s by default).
ETCD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def package_version() -> str:
    try:
        return importlib.metadata.version("lockstore")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Histogram:
    """A cumulative-on-export histogram: per-bucket counts, sum and count. Not thread-safe (by design)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, i.e. Prometheus's `le` (less than or equal) bucket.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, cumulative count) pairs for exposition, ending with +Inf."""
        result: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            result.append((_float_text(bound), running))
        result.append(("+Inf", running + self.counts[-1]))
        return result


def _float_text(value: float) -> str:
    return repr(float(value))


@dataclass
class Sources:
    """The components whose own counters and state are read at scrape time."""

    wal: WriteAheadLog | None = None
    locks: LockService | None = None
    store: StoreService | None = None
    mqtt: MqttServer | None = None
    snapshotter: Snapshotter | None = None
    snapshot_dir: Path | None = None
    etcd: EtcdState | None = None


class ServiceMetrics:
    """All metrics of one service instance; `render()` is the `/metrics` body."""

    def __init__(self, *, info: dict[str, str] | None = None, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.sources = Sources()
        self.info = {"version": package_version(), **(info or {})}
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], Histogram] = {}
        self.wal_write = Histogram(DISK_BUCKETS)
        self.wal_fsync = Histogram(DISK_BUCKETS)
        self.wal_batch_frames = Histogram(BATCH_BUCKETS)
        self.live_locks: int | None = None
        self.live_rules: int | None = None
        self.etcd_latency: dict[str, Histogram] = {}  # by gateway path
        self.started = time.time()
        if process:
            ProcessCollector(registry=self.registry)
        self.registry.register(_ServiceCollector(self))

    # ------------------------------------------------------------------ hot path (trio thread only)

    def observe_request(self, operation: str, transport: str, status: int, seconds: float) -> None:
        key = (operation, transport, status)
        requests = self._requests
        requests[key] = requests.get(key, 0) + 1
        histogram = self._latency.get((operation, transport))
        if histogram is None:
            histogram = self._latency[(operation, transport)] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def on_etcd_request(self, path: str, outcome: str, seconds: float) -> None:
        """`EtcdStats` observer: one call per etcd request attempt, whatever its outcome."""
        histogram = self.etcd_latency.get(path)
        if histogram is None:
            histogram = self.etcd_latency[path] = Histogram(ETCD_BUCKETS)
        histogram.observe(seconds)

    def on_wal_commit(self, frames: int, nbytes: int, write_seconds: float, fsync_seconds: float) -> None:
        """The log's commit hook: one call per batch written (and fsync'd, when fsync is on)."""
        self.wal_write.observe(write_seconds)
        self.wal_fsync.observe(fsync_seconds)
        self.wal_batch_frames.observe(frames)

    # ------------------------------------------------------------------ scrape

    def request_counts(self) -> dict[tuple[str, str, int], int]:
        return dict(self._requests)

    def latency(self, operation: str, transport: str) -> Histogram | None:
        return self._latency.get((operation, transport))

    async def refresh(self, timeout: float = 1.0) -> None:
        """Ask the actors (through their mailboxes: they own the tables) how many locks and rules live."""
        from actors.runtime import ActorStopped
        from wal.errors import LogUnavailable

        with trio.move_on_after(timeout):
            try:
                if self.sources.locks is not None:
                    self.live_locks = await self.sources.locks.count()
                if self.sources.store is not None:
                    self.live_rules = await self.sources.store.count()
            except (ActorStopped, LogUnavailable):
                pass

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _counter(name: str, documentation: str, value: float, labels: Sequence[str] = (),
             label_values: Sequence[str] = ()) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(label_values), value)
    return family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], histogram.cumulative(), histogram.sum)
    return family


class _ServiceCollector(Collector):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self._m = metrics

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: names are ours alone on this registry

    def collect(self) -> Iterator[Metric]:
        m = self._m
        info = GaugeMetricFamily("lockstore_info", "Build and configuration of this service", labels=sorted(m.info))
        info.add_metric([m.info[key] for key in sorted(m.info)], 1)
        yield info
        yield _gauge("lockstore_start_time_seconds", "Start time of the service (Unix time)", m.started)
        yield from self._requests()
        yield from self._actors()
        yield from self._wal()
        yield from self._snapshots()
        yield from self._mqtt()
        yield from self._etcd()

    def _requests(self) -> Iterator[Metric]:
        m = self._m
        requests = CounterMetricFamily(
            "lockstore_requests", "Requests answered, by operation, transport and status (none: no MQTT reply)",
            labels=["operation", "transport", "status"],
        )
        for (operation, transport, status), count in sorted(m._requests.items()):
            requests.add_metric([operation, transport, str(status) if status != NO_REPLY else "none"], count)
        yield requests
        latency = HistogramMetricFamily(
            "lockstore_request_duration_seconds", "Time from request received to reply sent, by operation and "
            "transport (HTTP: inside the server, after the headers are read)", labels=["operation", "transport"],
        )
        for (operation, transport), histogram in sorted(m._latency.items()):
            latency.add_metric([operation, transport], histogram.cumulative(), histogram.sum)
        yield latency

    def _actors(self) -> Iterator[Metric]:
        m, s = self._m, self._m.sources
        depth = GaugeMetricFamily("lockstore_actor_mailbox_depth", "Messages waiting in an actor's mailbox",
                                  labels=["actor"])
        processed = CounterMetricFamily("lockstore_actor_messages", "Messages an actor has executed",
                                        labels=["actor"])
        for name, actor in (("locks", s.locks), ("store", s.store)):
            if actor is not None:
                depth.add_metric([name], actor.mailbox.depth)
                processed.add_metric([name], actor.mailbox.processed)
        yield depth
        yield processed
        if m.live_locks is not None:
            yield _gauge("lockstore_locks_live", "Active (unexpired) locks, as of the last scrape", m.live_locks)
        if m.live_rules is not None:
            yield _gauge("lockstore_rules_live", "Simple-store rules, as of the last scrape", m.live_rules)
        if s.locks is not None:
            yield _counter("lockstore_locks_expired", "Expired locks purged by the lock actor", s.locks.purged)

    def _wal(self) -> Iterator[Metric]:
        m, wal = self._m, self._m.sources.wal
        yield _histogram("lockstore_wal_write_seconds", "Time to append one group-commit batch to the segment "
                         "file", m.wal_write)
        yield _histogram("lockstore_wal_fsync_seconds", "Time to fsync one group-commit batch (0 when fsync is "
                         "off)", m.wal_fsync)
        yield _histogram("lockstore_wal_batch_frames", "Records per group-commit batch (one write + one fsync)",
                         m.wal_batch_frames)
        if wal is None:
            return
        yield _counter("lockstore_wal_bytes", "Bytes written to the log (frames included)", wal.bytes_written)
        yield _counter("lockstore_wal_frames", "Records written to the log", wal.frames_written)
        yield _counter("lockstore_wal_fsyncs", "fsync calls on the log", wal.fsync_count)
        yield _gauge("lockstore_wal_pending_frames", "Records appended but not yet durable",
                     wal.appended_lsn - wal.durable_lsn)
        yield _gauge("lockstore_wal_available", "1 while the log accepts writes", 1 if wal.available else 0)

    def _snapshots(self) -> Iterator[Metric]:
        s = self._m.sources
        if s.snapshotter is not None:
            yield _counter("lockstore_snapshots", "Snapshots taken since start", s.snapshotter.taken)
            yield _gauge("lockstore_snapshot_in_progress", "1 while a snapshot is captured or written",
                         1 if s.snapshotter.running else 0)
            yield _gauge("lockstore_snapshot_capture_stall_seconds", "How long the slowest capture of the last "
                         "snapshot held its actor", s.snapshotter.last_stall)
        if s.snapshot_dir is None:
            return
        from wal.snapshot import list_snapshots

        age = GaugeMetricFamily("lockstore_snapshot_age_seconds", "Age of the newest snapshot file, by actor",
                                labels=["actor"])
        newest: dict[str, float] = {}
        try:
            for snapshot in list_snapshots(s.snapshot_dir):
                newest[snapshot.name] = max(newest.get(snapshot.name, 0.0), os.stat(snapshot.path).st_mtime)
        except OSError:
            pass  # a snapshot compacted away between listing and stat: the next scrape sees the new state
        now = time.time()
        for name, mtime in sorted(newest.items()):
            age.add_metric([name], max(0.0, now - mtime))
        yield age

    def _mqtt(self) -> Iterator[Metric]:
        server = self._m.sources.mqtt
        if server is None:
            return
        session = server.session
        yield _gauge("lockstore_mqtt_connected", "1 while connected to the broker and subscribed",
                     1 if session.connected else 0)
        yield _counter("lockstore_mqtt_connections", "Times the session became ready (first connect included)",
                       session.connection_count)
        yield _counter("lockstore_mqtt_reconnects", "Times the session became ready again after losing the broker",
                       max(0, session.connection_count - 1))
        yield _gauge("lockstore_mqtt_buffered_messages", "Received requests waiting for a worker", session.buffered)
        yield _counter("lockstore_mqtt_dropped_unparseable", "Requests dropped: unparseable with no readable "
                       "responseTopic, or on an unserved topic", server.dispatcher.unparseable)
        yield _counter("lockstore_mqtt_publish_failures", "Replies that could not be published",
                       server.publish_failures)
        yield _counter("lockstore_mqtt_handler_errors", "Requests whose handling raised (answered by nobody)",
                       server.handler_errors)
        dropped = CounterMetricFamily("lockstore_mqtt_dropped", "Requests dropped unexecuted and unanswered, by "
                                      "reason: reply_topic_invalid (nothing can be published there), "
                                      "reply_topic_not_allowed (outside mqtt_reply_topic_prefix), retained, "
                                      "too_large (over mqtt_max_request_bytes), unreadable (paho could not "
                                      "decode it)", labels=["reason"])
        for reason, count in (("reply_topic_invalid", server.dispatcher.refused_reply_topics),
                              ("reply_topic_not_allowed", server.dispatcher.disallowed_reply_topics),
                              ("retained", server.dropped_retained), ("too_large", session.dropped_too_large),
                              ("unreadable", session.dropped_unreadable)):
            dropped.add_metric([reason], count)
        yield dropped
        yield _counter("lockstore_mqtt_replies_given_up", "QoS 1/2 replies dropped from the resend queue: the broker "
                       "closed the link twice in a row while waiting to acknowledge them", session.given_up)
        yield _counter("lockstore_mqtt_session_taken_over", "Times the broker took the session away: MQTT 5 "
                       "DISCONNECT 'Session taken over', or (3.1.1) links lost soon after connecting, 3 or more in "
                       "a row (another client with the same client id?)", session.taken_over)


    def _etcd(self) -> Iterator[Metric]:
        state = self._m.sources.etcd
        if state is None:
            return
        stats = state.stats
        requests = CounterMetricFamily("lockstore_etcd_requests", "etcd request attempts by gateway path and outcome: "
                                       "ok, unreachable, lost (a write whose answer was lost), retry, reauthenticate, "
                                       "final (refused), unknown_outcome", labels=["path", "outcome"])
        for (path, outcome), count in sorted(stats.requests.items()):
            requests.add_metric([path, outcome], count)
        yield requests
        latency = HistogramMetricFamily("lockstore_etcd_request_duration_seconds", "Time of one etcd request "
                                        "attempt (any outcome), by gateway path", labels=["path"])
        for path, histogram in sorted(self._m.etcd_latency.items()):
            latency.add_metric([path], histogram.cumulative(), histogram.sum)
        yield latency
        yield _counter("lockstore_etcd_txn_conflicts", "Write txns whose compares failed: another instance changed "
                       "what they were planned on (re-planned and retried)", stats.txn_conflicts)
        yield _counter("lockstore_etcd_write_retries", "Write attempts after a request's first (conflicts and lost "
                       "answers)", stats.write_retries)
        yield _counter("lockstore_etcd_unknown_outcomes", "Write txns whose answer was lost (timeout, broken "
                       "connection); settled by reading back, never sent twice", stats.unknown_outcomes)
        yield _counter("lockstore_etcd_unknown_committed", "Lost answers that a read-back showed applied",
                       stats.unknown_committed)
        yield _counter("lockstore_etcd_endpoint_failovers", "Requests moved on to the next etcd endpoint",
                       stats.endpoint_failovers)
        tables = [state.locks.status(), state.store.status()]
        families = [
            (GaugeMetricFamily, "lockstore_etcd_cache_revision", "etcd revision this instance's cache has applied",
             "applied_revision"),
            (GaugeMetricFamily, "lockstore_etcd_cache_lag_revisions", "Revisions of the table known to exist (from "
             "txn replies and quorum reads) that the cache has not applied yet", "lag"),
            (CounterMetricFamily, "lockstore_etcd_watch_restarts", "Watches restarted (ended, failed, stalled or "
             "moved to another member)", "watch_restarts"),
            (CounterMetricFamily, "lockstore_etcd_relists", "Full lists after the first (the watch's history was "
             "compacted away)", "relists"),
            (GaugeMetricFamily, "lockstore_etcd_watching", "1 while the cache's watch is confirmed and not stalled",
             "watching"),
            (GaugeMetricFamily, "lockstore_etcd_cache_waiting_requests", "Requests waiting for the cache to reach a "
             "revision", "waiting_requests"),
            (GaugeMetricFamily, "lockstore_etcd_malformed_records", "Records under the prefix the cache could not "
             "read (ignored)", "malformed_records"),
        ]
        for kind, name, documentation, attribute in families:
            family = kind(name, documentation, labels=["table"])
            for status in tables:
                family.add_metric([status.name], float(getattr(status, attribute)))
            yield family
        expiry = state.locks.expiry
        yield _gauge("lockstore_etcd_expiry_leader", "1 while this instance leads the deletion of expired locks",
                     1 if expiry.is_leader else 0)
        yield _counter("lockstore_etcd_expiry_terms", "Times this instance became the expiry leader", expiry.terms)
