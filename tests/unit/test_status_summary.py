"""`lockstore status` without a server: percentiles are reported as the histogram bucket that holds them
(a histogram has no exact values), checked against a sorted-list model, and the summary built from the
service's own metrics rendering shows them so."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.observability.metrics import LATENCY_BUCKETS, Histogram, ServiceMetrics
from transports.status import StatusUsageError, bucket_text, client_context, parse_metrics, quantile_bucket, summarize


def cumulative(histogram: Histogram) -> list[tuple[float, float]]:
    return [(float(le), float(count)) for le, count in histogram.cumulative()]


@given(st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=200), st.sampled_from([0.5, 0.9, 0.99, 1.0]))
def test_the_bucket_holds_the_nearest_rank_quantile(values: list[float], q: float) -> None:
    histogram = Histogram(LATENCY_BUCKETS)
    for value in values:
        histogram.observe(value)
    bucket = quantile_bucket(q, cumulative(histogram))
    assert bucket is not None
    lower, upper = bucket
    exact = sorted(values)[max(math.ceil(q * len(values)), 1) - 1]  # the nearest-rank quantile
    assert lower < exact <= upper or (lower == 0 and exact == 0), (exact, bucket)
    assert lower == 0 or lower in LATENCY_BUCKETS
    assert upper in (*LATENCY_BUCKETS, math.inf)


def test_no_observations_no_bucket() -> None:
    assert quantile_bucket(0.5, []) is None
    assert quantile_bucket(0.5, cumulative(Histogram(LATENCY_BUCKETS))) is None
    assert bucket_text(None) == "-"


@pytest.mark.parametrize(("bucket", "text"), [
    ((0.005, 0.01), "5–10 ms"), ((0.0, 0.0005), "≤ 0.5 ms"), ((0.00025, 0.0005), "0.25–0.5 ms"),
    ((0.5, 1.0), "0.5–1 s"), ((1.0, 2.5), "1–2.5 s"), ((10.0, math.inf), "> 10 s"), ((0.25, math.inf), "> 250 ms"),
    ((0.00005, 0.0001), "0.05–0.1 ms"),
])
def test_bucket_text(bucket: tuple[float, float], text: str) -> None:
    assert bucket_text(bucket) == text


def test_one_request_of_5_97_ms_is_shown_as_its_bucket_not_as_7_50_ms() -> None:
    """The issue's case: the old interpolation printed `p50 7.50 ms` for a single 5.97 ms request."""
    metrics = ServiceMetrics(process=False)
    metrics.observe_request("lock_create", "http", 201, 0.00597)
    metrics.on_wal_commit(1, 100, 0.0001, 0.0007)
    text = summarize("http://x", {"status": "UP", "checks": {}}, parse_metrics(metrics.render().decode()), time.time())
    row = next(line for line in text.splitlines() if line.startswith("lock_create"))
    assert row.split()[2:] == ["1", "0", "5–10", "ms", "5–10", "ms"]
    assert "7.5" not in text
    assert "fsync p50 0.5–1 ms, p99 0.5–1 ms" in text
    assert "p50, p99: the histogram bucket that holds them" in text


def test_client_context_options(tmp_path: Path) -> None:
    assert client_context("http://127.0.0.1:8441", None, None, None) is None
    with pytest.raises(StatusUsageError, match="for an https:// URL"):
        client_context("http://127.0.0.1:8441", None, tmp_path / "c.pem", None)
    with pytest.raises(StatusUsageError, match="--key needs --cert"):
        client_context("https://127.0.0.1:8441", None, None, tmp_path / "c.key")
    with pytest.raises(StatusUsageError, match=r"--cert .*missing.pem: cannot load them"):
        client_context("https://127.0.0.1:8441", None, tmp_path / "missing.pem", None)
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(StatusUsageError, match=r"--cafile .*junk.pem: cannot load it"):
        client_context("https://127.0.0.1:8441", tmp_path / "junk.pem", None, None)
