"""`lockstore status --url URL`: a one-screen summary of a running service, from its own
`/health/ready` and `/metrics` (nothing the service does not already publish; no identity needed, but a
client certificate when the service asks for one: `--cert`/`--key`).

Exit status: 0 ready, 1 answering but not ready, 2 not answering. `--wait SECONDS` asks again until the
service is ready or the time is up (then 1 or 2), so a script can start the service and wait for it.

Latency percentiles come from Prometheus histograms, which only count requests per bucket: the summary
shows the bucket that holds the percentile (`5–10 ms`), not a made-up exact value. It is built by pure
functions (`summarize`, `quantile_bucket`) from parsed metrics, so it is tested without a server.
"""

from __future__ import annotations

import json
import math
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Scrape:
    """The samples of one `/metrics` answer, by sample name."""

    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=lambda: defaultdict(list))

    def value(self, name: str, default: float = math.nan, **labels: str) -> float:
        for sample_labels, value in self.samples.get(name, []):
            if all(sample_labels.get(key) == wanted for key, wanted in labels.items()):
                return value
        return default

    def total(self, name: str, **labels: str) -> float:
        return sum(value for sample_labels, value in self.samples.get(name, [])
                   if all(sample_labels.get(key) == wanted for key, wanted in labels.items()))

    def buckets(self, name: str, **labels: str) -> list[tuple[float, float]]:
        """(upper bound, cumulative count) of a histogram, sorted by bound."""
        found = []
        for sample_labels, value in self.samples.get(f"{name}_bucket", []):
            if all(sample_labels.get(key) == wanted for key, wanted in labels.items()):
                found.append((float(sample_labels["le"]), value))
        return sorted(found)


def parse_metrics(text: str) -> Scrape:
    scrape = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            scrape.samples[sample.name].append((dict(sample.labels), float(sample.value)))
    return scrape


def quantile_bucket(q: float, buckets: list[tuple[float, float]]) -> tuple[float, float] | None:
    """The histogram bucket (lower bound, upper bound] that holds the q-quantile of the observations,
    from (upper bound, cumulative count) pairs; None without observations. The upper bound is +Inf
    when the quantile lies beyond the last finite bound. Exact values are not in a histogram."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower = 0.0
    for bound, count in buckets:
        if count >= rank and count > 0:
            return lower, bound
        lower = bound
    return lower, math.inf


def _number(value: float) -> str:
    return f"{value:.6g}"


def bucket_text(bucket: tuple[float, float] | None) -> str:
    """`5–10 ms`, `≤ 0.5 ms` (the first bucket), `> 10 s` (beyond the last bound), `-` (no data)."""
    if bucket is None:
        return "-"
    lower, upper = bucket
    in_seconds = (lower if math.isinf(upper) else upper) >= 1
    unit, scale = ("s", 1.0) if in_seconds else ("ms", 1000.0)
    if math.isinf(upper):
        return f"> {_number(lower * scale)} {unit}"
    if lower <= 0:
        return f"≤ {_number(upper * scale)} {unit}"
    return f"{_number(lower * scale)}–{_number(upper * scale)} {unit}"


def _uptime(seconds: float) -> str:
    if math.isnan(seconds) or seconds < 0:
        return "?"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d {hours}h {minutes:02d}m" if days else f"{hours}h {minutes:02d}m {secs:02d}s"


def _bytes(value: float) -> str:
    if math.isnan(value):
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _count(value: float) -> str:
    return "?" if math.isnan(value) else f"{value:.0f}"


def summarize(url: str, health: dict[str, Any], scrape: Scrape, now: float) -> str:
    """The one-screen text."""
    lines = []
    info = next(iter(scrape.samples.get("lockstore_info", [])), ({}, 0.0))[0]
    started = scrape.value("lockstore_start_time_seconds")
    state = "READY" if health.get("status") == "UP" else "NOT READY"
    durability = "state in etcd" if info.get("state") == "etcd" else f"fsync {info.get('fsync', '?')}"
    lines.append(f"lockstore {info.get('version', '?')} at {url}: {state}   up {_uptime(now - started)}, "
                 f"{durability}, RSS {_bytes(scrape.value('process_resident_memory_bytes'))}")
    checks = []
    for name, check in health.get("checks", {}).items():
        detail = f" ({check['detail']})" if check.get("detail") else ""
        checks.append(f"{name} {check.get('status', '?')}{detail}")
    lines.append("checks:  " + " · ".join(checks))
    lines.append(
        f"state:   {_count(scrape.value('lockstore_locks_live'))} locks live "
        f"({_count(scrape.value('lockstore_locks_expired_total'))} expired and purged so far) · "
        f"{_count(scrape.value('lockstore_rules_live'))} rules · mailboxes: locks "
        f"{_count(scrape.value('lockstore_actor_mailbox_depth', actor='locks'))}, store "
        f"{_count(scrape.value('lockstore_actor_mailbox_depth', actor='store'))}"
    )
    if info.get("state") == "etcd":
        lines.extend(_etcd_lines(scrape))
    else:
        batches = scrape.value("lockstore_wal_batch_frames_count")
        frames = scrape.value("lockstore_wal_frames_total")
        per_batch = frames / batches if batches and not math.isnan(batches) else math.nan
        fsync = scrape.buckets("lockstore_wal_fsync_seconds")
        lines.append(
            f"log:     {_bytes(scrape.value('lockstore_wal_bytes_total'))} in {_count(frames)} records, "
            f"{_count(batches)} batches ({'-' if math.isnan(per_batch) else f'{per_batch:.1f}'} records/batch), "
            f"fsync p50 {bucket_text(quantile_bucket(0.5, fsync))}, p99 {bucket_text(quantile_bucket(0.99, fsync))}, "
            f"{_count(scrape.value('lockstore_wal_pending_frames'))} pending"
        )
    if "lockstore_mqtt_connected" in scrape.samples:
        connected = scrape.value("lockstore_mqtt_connected") == 1
        lines.append(
            f"mqtt:    {'connected' if connected else 'NOT connected'} · "
            f"{_count(scrape.value('lockstore_mqtt_reconnects_total'))} reconnects · "
            f"{_count(scrape.value('lockstore_mqtt_dropped_unparseable_total'))} dropped unparseable · "
            f"{_count(scrape.value('lockstore_mqtt_publish_failures_total'))} publish failures"
        )
    else:
        lines.append("mqtt:    off")
    lines.append("")
    lines.append(f"{'operation':<26}{'transport':<10}{'requests':>10}{'errors':>8}{'p50':>14}{'p99':>14}")
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for labels, value in scrape.samples.get("lockstore_requests_total", []):
        key = (labels.get("operation", "?"), labels.get("transport", "?"))
        totals[key][0] += value
        status = labels.get("status", "")
        if status.isdigit() and int(status) >= 400:
            totals[key][1] += value
    if not totals:
        lines.append("(no requests yet)")
    for (operation, transport), (requests, errors) in sorted(totals.items()):
        buckets = scrape.buckets("lockstore_request_duration_seconds", operation=operation, transport=transport)
        lines.append(
            f"{operation:<26}{transport:<10}{requests:>10.0f}{errors:>8.0f}"
            f"{bucket_text(quantile_bucket(0.5, buckets)):>14}{bucket_text(quantile_bucket(0.99, buckets)):>14}"
        )
    lines.append("p50, p99: the histogram bucket that holds them (Prometheus buckets), not exact values")
    return "\n".join(lines)


def _etcd_lines(scrape: Scrape) -> list[str]:
    """etcd mode: the client's requests and txn latency, the write paths' conflicts, each cache's revision."""
    requests = scrape.total("lockstore_etcd_requests_total")
    ok = scrape.total("lockstore_etcd_requests_total", outcome="ok")
    txn = scrape.buckets("lockstore_etcd_request_duration_seconds", path="/v3/kv/txn")
    caches = " · ".join(
        f"{table} at {_count(scrape.value('lockstore_etcd_cache_revision', table=table))} "
        f"(lag {_count(scrape.value('lockstore_etcd_cache_lag_revisions', table=table))}, "
        f"{_count(scrape.value('lockstore_etcd_relists_total', table=table))} relists, "
        f"{_count(scrape.value('lockstore_etcd_watch_restarts_total', table=table))} watch restarts)"
        for table in ("locks", "rules"))
    leader = "leads the expiry" if scrape.value("lockstore_etcd_expiry_leader") == 1 else "not the expiry leader"
    return [
        f"etcd:    {_count(requests)} requests ({_count(requests - ok)} not ok), txn p50 "
        f"{bucket_text(quantile_bucket(0.5, txn))}, p99 {bucket_text(quantile_bucket(0.99, txn))} · "
        f"{_count(scrape.value('lockstore_etcd_txn_conflicts_total'))} conflicts, "
        f"{_count(scrape.value('lockstore_etcd_unknown_outcomes_total'))} lost answers · {leader}",
        f"caches:  {caches}",
    ]


def _get(url: str, timeout: float, context: ssl.SSLContext | None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:  # 503 from /health/ready still has the report
        return int(error.code), error.read()


class StatusUsageError(Exception):
    """The options cannot work (a client certificate that does not load, --cert for http://)."""


def client_context(url: str, cafile: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The TLS context for an https:// URL: the CA to trust and the client certificate to present."""
    if not url.startswith("https:"):
        if cert or key or cafile:
            raise StatusUsageError(f"--cafile, --cert and --key are for an https:// URL, not {url}")
        return None
    if key and not cert:
        raise StatusUsageError("--key needs --cert (the client certificate it belongs to)")
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as error:
        raise StatusUsageError(f"--cafile {cafile}: cannot load it ({error})") from None
    if cert:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as error:
            named = f"--cert {cert} --key {key}" if key else f"--cert {cert}"
            raise StatusUsageError(f"{named}: cannot load them ({error})") from None
    return context


@dataclass
class Probe:
    """One look at the service: the exit status it means, and the text to print (summary or error)."""

    status: int
    text: str
    final: bool = True  # False: not answering (yet); worth asking again while waiting


def probe(base: str, timeout: float, context: ssl.SSLContext | None, *, with_certificate: bool = False) -> Probe:
    try:
        ready_status, ready_body = _get(f"{base}/health/ready", timeout, context)
        metrics_status, metrics_body = _get(f"{base}/metrics", timeout, context)
    except OSError as error:  # urllib.error.URLError included
        cause = error.reason if isinstance(error, urllib.error.URLError) else error
        hint = ""
        if context is not None and not with_certificate and isinstance(cause, ConnectionError | ssl.SSLError) \
                and not isinstance(cause, ConnectionRefusedError | ssl.SSLCertVerificationError):
            hint = " (a service with tls_client_auth = required closes the connection: give --cert and --key)"
        # Refused: nothing listens yet (a service replaying its log binds HTTP afterwards): worth asking again.
        return Probe(2, f"lockstore status: {base} does not answer: {cause}{hint}",
                     final=not isinstance(cause, ConnectionRefusedError))
    try:
        health = json.loads(ready_body)
        if not isinstance(health, dict) or not isinstance(health.get("checks", {}), dict):
            raise ValueError("/health/ready did not answer a health report")
        if metrics_status != 200:
            raise ValueError(f"/metrics answered {metrics_status}")
        scrape = parse_metrics(metrics_body.decode())
    except ValueError as error:
        return Probe(2, f"lockstore status: {base} is not a lockstore service (or an incompatible one): {error}")
    return Probe(0 if ready_status == 200 else 1, summarize(base, health, scrape, time.time()),
                 final=ready_status == 200)


def run_status(url: str, *, timeout: float = 5.0, cafile: Path | None = None, cert: Path | None = None,
               key: Path | None = None, wait: float = 0.0) -> int:
    """Print the summary; with `wait` > 0, ask again (every 0.25 s) while the service refuses connections or
    is not ready, until it is ready or `wait` seconds have passed. Exit status 0 ready, 1 answering but not
    ready, 2 not answering (or not lockstore)."""
    base = url.rstrip("/")
    try:
        context = client_context(base, cafile, cert, key)
    except StatusUsageError as error:
        print(f"lockstore status: {error}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        result = probe(base, timeout, context, with_certificate=cert is not None)
        if result.final or time.monotonic() + _POLL_SECONDS > deadline:
            break
        time.sleep(_POLL_SECONDS)  # a service starting up has nothing to wait on but its port
    if result.status == 2 and not result.final and wait > 0:
        result.text += f" (waited {wait:g} s)"
    print(result.text, file=sys.stdout if result.status < 2 else sys.stderr)
    return result.status


_POLL_SECONDS = 0.25
