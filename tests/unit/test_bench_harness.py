"""The benchmark harness's pure logic: percentiles, tables, verdicts, profile summaries."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.harness import (
    fmt_number,
    markdown_table,
    own_by_package,
    parse_gc_log,
    percentile,
    summarize,
    summarize_collapsed,
    verdict,
)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100  # never interpolated past the data
    assert percentile(values, 100) == 100
    assert percentile(values, 0.5) == 1


def test_p999_of_a_thousand_samples_is_the_slowest_but_one() -> None:
    values = [float(v) for v in range(1000)]
    assert percentile(values, 99.9) == 998
    assert percentile([7.0], 99.9) == 7.0


@pytest.mark.parametrize("q", [0, -1, 100.01])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=300), st.floats(0.01, 100))
def test_percentile_bounds(values: list[float], q: float) -> None:
    ordered = sorted(values)
    p = percentile(ordered, q)
    assert p in ordered
    assert sum(v <= p for v in ordered) >= q / 100 * len(ordered)
    assert sum(v < p for v in ordered) < q / 100 * len(ordered)


def test_summarize_converts_to_milliseconds_and_sorts() -> None:
    latency = summarize([0.003, 0.001, 0.002])
    assert (latency.p50, latency.max, latency.samples) == (2.0, 3.0, 3)
    assert latency.p99 == 3.0


def test_markdown_table_aligns_numbers_right_and_text_left() -> None:
    table = markdown_table(["name", "req/s"], [("create", 1234.5), ("query", 9.0)])
    lines = table.splitlines()
    assert lines[0] == "| name   | req/s |"
    assert lines[1] == "|--------|------:|"
    assert lines[2] == "| create | 1,234 |"
    assert lines[3] == "| query  |  9.00 |"


def test_markdown_table_formats_ints_and_blanks() -> None:
    table = markdown_table(["rules", "note"], [(1_000_000, None), (1000, "x")])
    assert "| 1,000,000 |      |" in table
    assert table.splitlines()[1] == "|----------:|------|"


def test_markdown_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [("only one",)])


def test_fmt_number_keeps_three_significant_digits_when_small() -> None:
    assert fmt_number(0.1234) == "0.12"
    assert fmt_number(12.345) == "12.3"
    assert fmt_number(123456.7) == "123,457"


def test_verdict_ratio_and_direction() -> None:
    assert verdict(30_000, 25_000, higher_is_better=True) == "met (1.20× target)"
    assert verdict(5_000, 25_000, higher_is_better=True) == "MISSED (0.20× target)"
    assert verdict(30.0, 20.0, higher_is_better=False) == "MISSED (1.50× target)"
    assert verdict(10.0, 20.0, higher_is_better=False) == "met (0.50× target)"


def test_summarize_collapsed_own_and_inclusive_shares() -> None:
    repo = Path(__file__).resolve().parents[2]
    main, handle = f"main ({repo}/app.py:1)", "handle (/x/site-packages/quart/app.py:5)"
    collapsed = "\n".join(
        [
            f"{main};{handle};decode ({repo}/transports/codec.py:9) 6",
            f"{main};{handle} 2",
            f"{main};idle (/usr/lib/python3.11/selectors.py:3) 2",
            "garbage line without count",
        ]
    )
    own, inclusive = summarize_collapsed(collapsed, top=3)
    assert own[0] == ("decode (transports/codec.py)", 0.6)
    assert dict(own)["handle (quart/app.py)"] == 0.2
    assert dict(own)["idle (selectors.py)"] == 0.2
    assert inclusive[0] == ("main (app.py)", 1.0)
    assert dict(inclusive)["handle (quart/app.py)"] == 0.8


def test_summarize_collapsed_counts_a_recursive_frame_once_per_stack() -> None:
    own, inclusive = summarize_collapsed("f (a.py:1);f (a.py:7);g (a.py:2) 4\nf (a.py:3) 4\n")
    assert dict(inclusive)["f (a.py)"] == 1.0  # lines 1, 7 and 3 are one function
    assert own == [("g (a.py)", 0.5), ("f (a.py)", 0.5)]


def test_summarize_collapsed_of_nothing() -> None:
    assert summarize_collapsed("") == ([], [])
    assert own_by_package("") == []


def test_own_by_package_tells_our_code_from_the_framework() -> None:
    repo = Path(__file__).resolve().parents[2]
    collapsed = "\n".join(
        [
            f"run (/v/site-packages/trio/_core/_run.py:1);apply ({repo}/actors/locks.py:3) 4",
            "run (trio/_core/_run.py:1);apply (actors/locks.py:3) 1",  # py-spy's own short paths
            "run (/v/site-packages/trio/_core/_run.py:1);send (/v/site-packages/h11/_connection.py:9) 3",
            "run (/v/site-packages/trio/_core/_run.py:1);__exit__ (/usr/lib/python3.11/contextlib.py:4) 1",
            "main (<frozen runpy>:3);helper (collections/__init__.py:2) 1",
            "run (trio/_core/_run.py:1) 1",
        ]
    )
    assert own_by_package(collapsed) == [
        ("actors", 5 / 11),
        ("h11", 3 / 11),
        ("stdlib", 2 / 11),
        ("trio", 1 / 11),
    ]


def test_parse_gc_log_counts_full_collections_and_pauses() -> None:
    stats = parse_gc_log("1 2.000\n2 35.500\n0 1.500\n2 12.250\nnot a line\n")
    assert (stats.gen1, stats.gen2) == (1, 2)
    assert stats.gen2_max_ms == 35.5
    assert stats.max_ms == 35.5
    assert stats.total_ms == 51.25
    assert stats.describe() == "2 × 36"
    assert parse_gc_log("").describe() == "0"
