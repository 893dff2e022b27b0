"""Latency histogram: an HDR histogram in microseconds, so percentiles stay exact to 3 significant digits
at any sample count and a whole run's distribution can be saved, merged across client processes and
re-read later (a list of samples cannot be kept for millions of requests; an average hides the tail).
"""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

from bench.results import LatencySummary

LOWEST_US = 1
HIGHEST_US = 600_000_000  # 10 minutes: nothing a benchmark measures is slower; above is clamped
SIGNIFICANT_DIGITS = 3
CURVE_TICKS_PER_HALF_DISTANCE = 5  # HdrHistogram's own default for percentile distributions


def _to_us(seconds: float) -> int:
    """Seconds to whole microseconds, clamped into the tracked range (HDR rejects or misplaces others)."""
    return min(max(round(seconds * 1e6), LOWEST_US), HIGHEST_US)


class LatencyHistogram:
    """HDR histogram of latencies in microseconds, 1 µs .. 10 min, 3 significant digits."""

    def __init__(self) -> None:
        self._hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def record(self, seconds: float) -> None:
        """Record one latency; <1 µs counts as 1 µs and anything above 10 min as 10 min."""
        self._hdr.record_value(_to_us(seconds))

    def record_many(self, seconds: Iterable[float]) -> None:
        record = self._hdr.record_value
        for value in seconds:
            record(_to_us(value))

    def merge(self, other: LatencyHistogram) -> None:
        """Add `other`'s counts (e.g. one histogram per client process into the run's total)."""
        if other.count:
            self._hdr.add(other._hdr)

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    def percentile_ms(self, q: float) -> float:
        """The value at percentile `q` (0..100) in ms, to HDR precision; 0.0 when nothing was recorded."""
        if not 0 <= q <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {q}")
        if not self.count:
            return 0.0
        return float(self._hdr.get_value_at_percentile(q)) / 1e3

    def max_ms(self) -> float:
        return float(self._hdr.get_max_value()) / 1e3 if self.count else 0.0

    def min_ms(self) -> float:
        return float(self._hdr.get_min_value()) / 1e3 if self.count else 0.0

    def mean_ms(self) -> float:
        """The mean of each bucket's midpoint weighted by its count, as hdrh's `get_mean_value` computes it,
        but from the counts array directly: hdrh's per-value iterator is 100× slower in pure Python."""
        if not self.count:
            return 0.0
        hdr = self._hdr
        half_magnitude, half, unit = hdr.sub_bucket_half_count_magnitude, hdr.sub_bucket_half_count, hdr.unit_magnitude
        counts = hdr.counts[: hdr.get_counts_array_index(hdr.max_value) + 1]
        total = 0
        for index, n in enumerate(counts):
            if n:
                bucket = (index >> half_magnitude) - 1
                sub_bucket = index if bucket < 0 else (index & (half - 1)) + half
                shift = max(bucket, 0) + unit
                total += n * ((sub_bucket << shift) + ((1 << shift) >> 1))  # bucket start + half its width
        return total / self.count / 1e3

    def summary(self) -> LatencySummary:
        """All the headline percentiles in one pass over the counts."""
        if not self.count:
            return LatencySummary(count=0, mean_ms=0.0, p50_ms=0.0, p90_ms=0.0, p99_ms=0.0, p999_ms=0.0, max_ms=0.0)
        at = self._hdr.get_percentile_to_value_dict([50.0, 90.0, 99.0, 99.9])
        return LatencySummary(
            count=self.count,
            mean_ms=self.mean_ms(),
            p50_ms=at[50.0] / 1e3,
            p90_ms=at[90.0] / 1e3,
            p99_ms=at[99.0] / 1e3,
            p999_ms=at[99.9] / 1e3,
            max_ms=self.max_ms(),
        )

    def encode(self) -> str:
        """HdrHistogram's standard compressed base64 form ("HISTFAAA..."), readable by every HDR port."""
        encoded: bytes = self._hdr.encode()
        return encoded.decode("ascii")

    @classmethod
    def decode(cls, text: str) -> LatencyHistogram:
        """Read `encode()`'s output back; the decoded counts are re-added into a fresh histogram so the
        range and precision are always ours, whatever histogram wrote the text."""
        decoded = HdrHistogram.decode(text.encode("ascii"))
        histogram = cls()
        if decoded.get_total_count():
            histogram._hdr.add(decoded)
        return histogram

    def curve(self) -> list[tuple[float, float]]:
        """(percentile 0..100, ms) points for a percentile plot, spaced like HDR's percentile distribution
        output (ticks per half-distance to 100%), so the tail gets as many points as the body."""
        if not self.count:
            return []
        return [
            (float(step.percentile_level_iterated_to), float(step.value_iterated_to) / 1e3)
            for step in self._hdr.get_percentile_iterator(CURVE_TICKS_PER_HALF_DISTANCE)
        ]
