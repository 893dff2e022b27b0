"""The benchmark harness's results side: HDR histogram maths, the results schema on disk, the Markdown
report, the PNG plots and the comparison of two reports."""

from __future__ import annotations

import math
import os
import platform
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench import compare as compare_module
from bench.compare import compare, ratio
from bench.histogram import LatencyHistogram
from bench.output import save_report
from bench.plots import run_styles, write_plots
from bench.report import error_text, markdown, markdown_table, progress_line, removals_text
from bench.results import (
    ClientUse,
    LatencySummary,
    Removals,
    Report,
    Resources,
    RunResult,
    Second,
    SnapshotEffect,
    Startup,
    load_report,
    machine_facts,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNIFORM_US = range(1, 10_001)  # 1 µs .. 10 ms, one sample each


def uniform() -> LatencyHistogram:
    histogram = LatencyHistogram()
    histogram.record_many(us / 1e6 for us in UNIFORM_US)
    return histogram


def within_hdr_precision(measured_ms: float, exact_ms: float) -> bool:
    """3 significant digits: a value is reported as the top of its bucket, at most 0.1% (or 1 µs) off."""
    return abs(measured_ms - exact_ms) <= max(exact_ms * 1e-3, 0.001)


# ------------------------------------------------------------------------------------------ histogram


@pytest.mark.parametrize("q", [1, 10, 50, 90, 99, 99.9, 99.99, 100])
def test_uniform_percentiles_are_exact_to_hdr_precision(q: float) -> None:
    exact_ms = math.ceil(q * len(UNIFORM_US) / 100) / 1e3  # nearest rank of 1..10000 µs
    assert within_hdr_precision(uniform().percentile_ms(q), exact_ms)


def test_summary_agrees_with_the_single_percentiles() -> None:
    histogram = uniform()
    summary = histogram.summary()
    assert summary.count == 10_000
    assert summary.p50_ms == histogram.percentile_ms(50)
    assert summary.p90_ms == histogram.percentile_ms(90)
    assert summary.p99_ms == histogram.percentile_ms(99)
    assert summary.p999_ms == histogram.percentile_ms(99.9)
    assert summary.max_ms == histogram.max_ms()
    assert within_hdr_precision(summary.mean_ms, 5.0005)
    assert within_hdr_precision(summary.max_ms, 10.0)
    assert histogram.min_ms() == 0.001


def test_a_one_percent_tail_shows_between_p99_and_p999() -> None:
    histogram = LatencyHistogram()
    histogram.record_many([0.001] * 9_900 + [0.1] * 100)  # 99% at 1 ms, 1% at 100 ms
    assert within_hdr_precision(histogram.percentile_ms(99), 1.0)
    assert within_hdr_precision(histogram.percentile_ms(99.9), 100.0)
    assert within_hdr_precision(histogram.mean_ms(), 0.99 * 1 + 0.01 * 100)


def test_merge_equals_recording_both() -> None:
    fast, slow, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    fast_s = [us / 1e6 for us in range(100, 5_000, 3)]
    slow_s = [ms / 1e3 for ms in range(5, 900, 7)]
    fast.record_many(fast_s)
    slow.record_many(slow_s)
    both.record_many(fast_s + slow_s)
    fast.merge(slow)
    assert fast.count == both.count == len(fast_s) + len(slow_s)
    assert fast.summary() == both.summary()
    assert fast.curve() == both.curve()
    assert fast.min_ms() == both.min_ms() == 0.1
    assert fast.encode() == both.encode()


def test_merging_into_an_empty_histogram_keeps_min_and_max() -> None:
    total = LatencyHistogram()
    total.merge(LatencyHistogram())  # empty into empty: still empty
    assert total.count == 0
    total.merge(uniform())
    assert total.summary() == uniform().summary()
    assert total.min_ms() == 0.001


def test_encode_decode_round_trip() -> None:
    histogram = uniform()
    histogram.record(2.5)  # one stall, far out
    text = histogram.encode()
    assert isinstance(text, str) and text.isascii() and text.startswith("HISTF")
    decoded = LatencyHistogram.decode(text)
    assert decoded.count == histogram.count == 10_001
    assert decoded.summary() == histogram.summary()
    assert decoded.curve() == histogram.curve()
    assert (decoded.min_ms(), decoded.max_ms()) == (histogram.min_ms(), histogram.max_ms())
    assert within_hdr_precision(decoded.max_ms(), 2_500.0)


def test_values_outside_the_range_are_clamped_not_lost() -> None:
    histogram = LatencyHistogram()
    histogram.record(0.0)
    histogram.record(1e-9)
    histogram.record(-0.5)  # a clock step backwards is still one request
    histogram.record(3_600.0)  # an hour counts as the 10-minute ceiling
    assert histogram.count == 4
    assert histogram.min_ms() == 0.001
    assert histogram.percentile_ms(50) == 0.001
    assert within_hdr_precision(histogram.max_ms(), 600_000.0)
    assert LatencyHistogram.decode(histogram.encode()).count == 4


def test_empty_histogram() -> None:
    empty = LatencyHistogram()
    assert empty.count == 0
    assert empty.percentile_ms(0) == empty.percentile_ms(99.9) == 0.0
    assert empty.max_ms() == empty.min_ms() == empty.mean_ms() == 0.0
    assert empty.summary() == LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert empty.curve() == []
    assert LatencyHistogram.decode(empty.encode()).count == 0


@pytest.mark.parametrize("q", [-0.1, 100.1])
def test_percentile_out_of_range_is_refused(q: float) -> None:
    with pytest.raises(ValueError):
        uniform().percentile_ms(q)


def test_curve_runs_from_min_to_max_with_a_dense_tail() -> None:
    histogram = uniform()
    curve = histogram.curve()
    percentiles = [q for q, _ in curve]
    values = [ms for _, ms in curve]
    assert curve[0] == (0.0, 0.001)
    assert curve[-1] == (100.0, histogram.max_ms())
    assert percentiles == sorted(percentiles) and values == sorted(values)
    # Ticks halve their distance to 100%: as many points between 99% and 99.9% as between 90% and 99%.
    body, tail = sum(90 <= q < 99 for q in percentiles), sum(99 <= q < 99.9 for q in percentiles)
    assert body >= 10 and abs(tail - body) <= 2
    for q, ms in curve[1:-1]:  # each point is the latency at its percentile
        assert within_hdr_precision(ms, math.ceil(q * 100) / 1e3), (q, ms)


# ------------------------------------------------------------------------------------------ fixtures


def summary_of(*ms: float) -> LatencySummary:
    histogram = LatencyHistogram()
    histogram.record_many(value / 1e3 for value in ms)
    return histogram.summary()


def make_run(**overrides: Any) -> RunResult:
    """A plausible run: 1,000 requests between 1 and 10 ms, three of them failed."""
    histogram = LatencyHistogram()
    histogram.record_many(ms / 1e3 for ms in range(1, 11) for _ in range(100))
    latency = histogram.summary()
    fields: dict[str, Any] = {
        "target": "lockstore",
        "scenario": "churn",
        "transport": "http",
        "mode": "open",
        "offered_rate": 1000.0,
        "concurrency": None,
        "duration_s": 3.0,
        "warmup_s": 1.0,
        "measured_s": 2.0,
        "requests": 1000,
        "errors": 3,
        "throughput_rps": 500.0,
        "statuses": {"201": 997, "503": 2, "timeout": 1},
        "latency": latency,
        "histogram": histogram.encode(),
        "operations": {"create": latency},
        "timeline": [Second(t, 500, 499, 1, 2.0, 9.0, 10.0) for t in (0.0, 1.0)],
        "server": [Resources(4242, 0.5, [40.0, 60.0], [70.0, 75.5], 0.2, 200.0, 75.5)],
        "client": ClientUse(1, 0.05, 50.0, summary_of(0.01, 0.02)),
    }
    fields.update(overrides)
    return RunResult(**fields)


def sweep_report() -> Report:
    """lockstore and etcd at two open-loop rates each."""
    runs = [
        make_run(target=target, offered_rate=rate, throughput_rps=rate * 0.9)
        for target in ("lockstore", "etcd")
        for rate in (500.0, 1000.0)
    ]
    return Report(command="python -m bench run churn --rate 500,1000", machine=machine_facts("always"), runs=runs)


def cells_of(markdown_text: str, first_cell: str) -> list[str]:
    """The cells of the table row that starts with `first_cell`."""
    for line in markdown_text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row starting {first_cell!r} in:\n{markdown_text}")


# ------------------------------------------------------------------------------------------ files


def test_machine_facts() -> None:
    machine = machine_facts("batch")
    assert machine.fsync == "batch"
    assert machine.cores == os.cpu_count()
    assert machine.python == platform.python_version()
    assert machine.memory_gib > 0
    assert len(machine.load_average) == 3
    assert re.fullmatch(r"([0-9a-f]{40}(\+dirty)?)?", machine.git_commit)


def test_report_json_round_trip(tmp_path: Path) -> None:
    report = sweep_report()
    report.runs[0].notes.append("server restarted")
    report.runs[1].concurrency = 8
    written = save_report(report, tmp_path / "out")
    names = sorted(path.name for path in written)
    assert names == ["percentiles.png", "report.json", "report.md", "throughput.png", "timeline.png"]
    assert all(path.is_file() and path.parent == tmp_path / "out" for path in written)
    assert load_report(tmp_path / "out") == report
    assert load_report(tmp_path / "out" / "report.json") == report
    raw = msgspec.json.decode((tmp_path / "out" / "report.json").read_bytes())
    assert raw["format"] == 1 and raw["runs"][0]["latency"]["p999_ms"] == report.runs[0].latency.p999_ms
    assert LatencyHistogram.decode(load_report(tmp_path / "out").runs[0].histogram).count == 1000
    assert (tmp_path / "out" / "report.md").read_text() == markdown(report)


def test_load_report_rejects_a_file_of_the_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text('{"format": 1, "runs": [{"target": "x"}]}')
    with pytest.raises(msgspec.ValidationError):
        load_report(path)


# ------------------------------------------------------------------------------------------ Markdown


def test_markdown_has_a_row_per_run_with_errors_named() -> None:
    report = sweep_report()
    report.runs.append(make_run(mode="closed", offered_rate=None, concurrency=16, errors=0, statuses={"200": 1000}))
    text = markdown(report)
    assert text.startswith("# Benchmark: churn\n")
    assert "`python -m bench run churn --rate 500,1000`" in text
    assert "fsync always" in text and "cores" in text and "Python" in text
    header = cells_of(text, "target")
    row = dict(zip(header, cells_of(text, "etcd"), strict=True))
    assert row["load"] == "500/s"
    assert row["req/s"] == "450"
    assert row["errors"] == "3 (503×2, timeout×1)"
    assert row["server µs/req"] == "200"
    assert row["peak RSS MiB"] == "75.5"
    assert row["client µs/req"] == "50.0"
    assert within_hdr_precision(float(row["p50 ms"]), 5.0)
    assert within_hdr_precision(float(row["max ms"]), 10.0)
    closed = [line for line in text.splitlines() if "c=16" in line]
    assert len(closed) == 1 and "| closed " in closed[0] and re.search(r"\| 0 +\|", closed[0])
    assert text.count("| lockstore ") == 3
    assert "Per operation" not in text and "Notes" not in text


def test_markdown_per_operation_rows_notes_and_scenario_column() -> None:
    mixed = make_run(operations={"create": summary_of(1, 2, 3), "query-owner": summary_of(4, 5, 6)}, notes=["hot"])
    other = make_run(scenario="bulk", target="etcd", server=[])
    text = markdown(Report(runs=[mixed, other]))
    assert text.startswith("# Benchmark: churn, bulk\n")
    header = cells_of(text, "scenario")
    assert header[:2] == ["scenario", "target"]
    bulk = dict(zip(header, cells_of(text, "bulk"), strict=True))
    assert (bulk["target"], bulk["transport"]) == ("etcd", "http")
    assert bulk["server µs/req"] == bulk["peak RSS MiB"] == ""  # no server sampled: blank, not zero
    assert "## Per operation" in text
    query = cells_of(text, "lockstore churn http 1,000/s")
    assert query[1] in {"create", "query-owner"}
    assert any(line.startswith("| lockstore churn http 1,000/s | query-owner |") for line in text.splitlines())
    assert "- lockstore churn http 1,000/s: hot" in text


def test_markdown_table_aligns_numbers_right_and_text_left() -> None:
    table = markdown_table(["name", "req/s"], [("create", 1234.5), ("query", 9.0)])
    lines = table.splitlines()
    assert lines[0] == "| name   | req/s |"
    assert lines[1] == "|--------|------:|"
    assert lines[2] == "| create | 1,234 |"
    assert lines[3] == "| query  |  9.00 |"


def test_markdown_table_formats_ints_blanks_and_nan() -> None:
    table = markdown_table(["rules", "note", "p99"], [(1_000_000, None, math.nan), (1000, "x", 1.5)])
    assert "| 1,000,000 |      | n/a  |" in table  # not measured: said, not printed as "nan"
    assert table.splitlines()[1] == "|----------:|------|------|"


def test_markdown_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [("only one",)])


def test_removals_count_hits_and_removes_over_the_same_requests() -> None:
    # The old per-issue script said "3,649 of 3,585 removes hit a lock": wrk counted the removes answered
    # inside its window, the lock count before and after also took the 64 still in flight at its end.
    removals = Removals("locks", sent=3_649, before=10_000, after=6_351)
    assert removals.hit == 3_649
    assert removals_text(removals) == (
        "3,649 of the 3,649 removes sent hit a lock (live locks 10,000 → 6,351; warm-up and the requests "
        "in flight at the end included)")
    assert removals_text(Removals("rules", sent=10, before=5, after=0)).startswith("5 of the 10 removes sent hit a rule")


def test_markdown_start_up_and_snapshot_sections() -> None:
    startup = Startup(records=100_000, log_records=5_000, snapshot_load_s=0.1, log_replay_s=0.02, index_s=0.15,
                      state_ready_s=0.3, serve_ready_s=1.25, rss_mib=120.0, peak_rss_mib=130.5)
    effect = SnapshotEffect(taken=3, capture_hold_ms=2.25, seconds_with=2, seconds_without=8,
                            with_snapshot=summary_of(5, 6, 7), without_snapshot=summary_of(1, 2, 3))
    run = make_run(scenario="startup", dataset="100,000 + 5,000 log", startup=startup, snapshots=effect)
    text = markdown(Report(runs=[run, make_run(scenario="startup", dataset="100,000 + 5,000 log")]))
    assert "## Start-up" in text and "## Latency while snapshots are written" in text
    label = "lockstore (100,000 + 5,000 log) http 1,000/s"
    header = cells_of(text, "run")
    start = dict(zip(header, cells_of(text, label), strict=True))
    assert (start["live records"], start["log records after"], start["serve ready s"]) == ("100,000", "5,000", "1.25")
    assert (start["state ready s"], start["peak RSS MiB"]) == ("0.30", "130")
    rows = [line for line in text.splitlines() if line.startswith(f"| {label} | ")]
    assert len(rows) == 3  # one start-up row (first run only), two snapshot rows
    assert any("| snapshot running " in row and re.search(r"\|\s+2\.25 \|$", row) for row in rows)


def test_gc_pauses_are_the_collections_inside_the_window(tmp_path: Path) -> None:
    from bench.processes import Collection, parse_gc_log
    from bench.runner import gc_pauses

    log = tmp_path / "gc.log"
    log.write_text("99.5 2 80.000\n100.25 1 2.500\n100.5 2 35.500\n101.0 0 1.500\n101.75 2 12.250\n"
                   "102.5 2 300.000\nnot a line\n103.0 2\n")
    assert parse_gc_log(log.read_text())[:2] == [Collection(99.5, 2, 80.0), Collection(100.25, 1, 2.5)]
    assert len(parse_gc_log(log.read_text())) == 6  # the broken lines are skipped
    pauses = gc_pauses(log, 100.0, 102.0)  # neither the one before nor the one after the window
    assert (pauses.full, pauses.full_max_ms, pauses.longest_ms, pauses.paused_ms) == (2, 35.5, 35.5, 51.75)
    assert gc_pauses(tmp_path / "missing.log", 0, 1).full == 0


def test_the_gc_column_appears_when_the_service_logged_its_collections() -> None:
    from bench.results import GcPauses

    plain = markdown(Report(runs=[make_run()]))
    assert "full GCs" not in plain
    text = markdown(Report(runs=[make_run(gc=GcPauses(2, 35.5, 35.5, 51.75)),
                                 make_run(target="etcd", gc=None),
                                 make_run(target="noop", gc=GcPauses(0, 0.0, 1.5, 1.5))]))
    header = cells_of(text, "target")
    assert dict(zip(header, cells_of(text, "lockstore"), strict=True))["full GCs × max ms"] == "2 × 35.5"
    assert dict(zip(header, cells_of(text, "etcd"), strict=True))["full GCs × max ms"] == ""
    assert dict(zip(header, cells_of(text, "noop"), strict=True))["full GCs × max ms"] == "0"


def test_error_text() -> None:
    assert error_text(make_run(errors=0, statuses={"200": 5, "201": 1})) == "0"
    run = make_run(errors=7, statuses={"200": 3, "404": 1, "connection": 4, "503": 2})
    assert error_text(run) == "7 (connection×4, 503×2, 404×1)"


def test_progress_line() -> None:
    line = progress_line(12.34, 12_000, 11_990, 3, 2.345, 1000.0)
    assert re.search(r"12\.3 s .*1,000 req/s .*sent +12,000 .*done +11,990 .*errors +3 .*p99 +2\.35 ms", line)
    assert len(progress_line(1, 1, 1, 0, 0.1, 1)) == len(line)  # overwritten in place: constant width


# ------------------------------------------------------------------------------------------ plots


def written_pngs(report: Report, out_dir: Path) -> list[str]:
    out_dir.mkdir()
    paths = write_plots(report, out_dir)
    for path in paths:
        assert path.read_bytes().startswith(PNG_SIGNATURE) and path.stat().st_size > 5_000
    assert sorted(path.name for path in out_dir.iterdir()) == sorted(path.name for path in paths)
    return sorted(path.name for path in paths)


def test_plots_with_a_rate_sweep(tmp_path: Path) -> None:
    assert written_pngs(sweep_report(), tmp_path / "p") == ["percentiles.png", "throughput.png", "timeline.png"]


def test_plots_without_a_sweep_skip_throughput(tmp_path: Path) -> None:
    report = Report(runs=[make_run(), make_run(target="etcd")])  # two targets, one rate each
    assert written_pngs(report, tmp_path / "p") == ["percentiles.png", "timeline.png"]


def test_closed_loop_sweep_plots_throughput_against_concurrency(tmp_path: Path) -> None:
    runs = [make_run(mode="closed", offered_rate=None, concurrency=c, timeline=[]) for c in (1, 4, 16)]
    assert written_pngs(Report(runs=runs), tmp_path / "p") == ["percentiles.png", "throughput.png"]


def test_every_run_has_its_own_colour_and_line_style_and_a_target_keeps_its_colour() -> None:
    runs = [*sweep_report().runs, make_run(target="lockstore+tls", offered_rate=500.0)]
    styles = run_styles(runs)
    looks = [(styles[id(run)]["color"], styles[id(run)]["linestyle"], styles[id(run)]["marker"]) for run in runs]
    assert len(set(looks)) == len(runs)  # two targets at two rates no longer share blue
    colours = {run.target: {styles[id(r)]["color"] for r in runs if r.target == run.target} for run in runs}
    assert all(len(c) == 1 for c in colours.values()) and len({c.pop() for c in colours.values()}) == 3
    many = [make_run(target=f"t{n}", offered_rate=rate) for n in range(12) for rate in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert len({tuple(run_styles(many)[id(run)].values()) for run in many}) == len(many)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def test_percentiles_have_a_log_latency_axis_and_distinct_lines() -> None:
    from bench.plots import _percentiles

    plt = _pyplot()
    fast = LatencyHistogram()
    fast.record_many(us / 1e6 for us in range(100, 300))
    report = sweep_report()
    report.runs.append(make_run(target="noop", histogram=fast.encode()))
    figure = _percentiles(plt, report)
    try:
        axes = figure.axes[0]
        assert axes.get_yscale() == "log"
        lines = [(line.get_color(), line.get_linestyle(), line.get_marker()) for line in axes.get_lines()]
        assert len(lines) == 5 and len(set(lines)) == 5
    finally:
        plt.close(figure)


@pytest.mark.parametrize("count", [1, 3, 13])
def test_timeline_title_and_panels_do_not_overlap(count: int) -> None:
    from bench.plots import _timeline

    plt = _pyplot()
    report = Report(runs=[make_run(target=f"target{n}") for n in range(count)])
    figure = _timeline(plt, report)
    try:
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        title = figure._suptitle.get_window_extent(renderer)
        panels = [axes for axes in figure.axes if axes.get_visible()]
        assert len(panels) == count
        boxes = [axes.get_tightbbox(renderer) for axes in panels]  # the panel with its title and tick labels
        assert all(title.y0 >= box.y1 for box in boxes)  # the figure title sits above every panel
        for i, box in enumerate(boxes):
            for other in boxes[i + 1 :]:
                assert not box.overlaps(other)
        width, height = figure.get_size_inches() * 110
        assert height < 2000, (width, height)  # 13 runs: two columns, not 3,230 px of one
    finally:
        plt.close(figure)


def test_no_data_no_plots(tmp_path: Path) -> None:
    empty = make_run(histogram=LatencyHistogram().encode(), timeline=[])
    assert written_pngs(Report(runs=[empty]), tmp_path / "p") == []


# ------------------------------------------------------------------------------------------ compare


def test_compare_ratios_and_unmatched_runs() -> None:
    a = Report(
        command="A",
        runs=[
            make_run(throughput_rps=1000.0, latency=summary_of(1, 2), server=[]),
            make_run(target="etcd"),
            make_run(offered_rate=2000.0),
        ],
    )
    faster = summary_of(0.5, 1)
    server = [Resources(1, 0.5, [], [], 0.1, 150.0, 60.0)]
    b = Report(
        command="B",
        runs=[
            make_run(throughput_rps=1500.0, latency=faster, server=server),
            make_run(mode="closed", offered_rate=None, concurrency=4),
            make_run(offered_rate=2000.0, scenario="bulk"),
        ],
    )
    text = compare(a, b)
    header = cells_of(text, "target")
    row = dict(zip(header, cells_of(text, "lockstore"), strict=True))
    assert (row["load"], row["req/s A"], row["req/s B"], row["req/s B/A"]) == ("1,000/s", "1,000", "1,500", "1.50×")
    assert row["p50 B/A"] == f"{faster.p50_ms / a.runs[0].latency.p50_ms:.2f}×"
    assert row["max B/A"] == "0.50×"
    assert row["server µs/req B/A"] == ""  # A had no server sample
    assert text.count("| lockstore ") == 1  # only one pair matched
    only_a = text.split("Only in A:")[1].split("Only in B:")[0]
    only_b = text.split("Only in B:")[1]
    assert "etcd churn http 1,000/s" in only_a and "lockstore churn http 2,000/s" in only_a
    assert "lockstore churn http c=4 (closed loop)" in only_b and "lockstore bulk http 2,000/s" in only_b


def test_compare_server_ratio_and_repeated_runs_pair_in_order() -> None:
    a = Report(runs=[make_run(throughput_rps=100.0), make_run(throughput_rps=200.0)])
    cheaper = [Resources(1, 0.5, [], [], 0.1, 50.0, 60.0)]
    b = Report(runs=[make_run(throughput_rps=300.0, server=cheaper), make_run(throughput_rps=400.0)])
    rows = [line for line in compare(a, b).splitlines() if line.startswith("| lockstore")]
    assert len(rows) == 2
    assert "3.00×" in rows[0] and rows[0].rstrip(" |").endswith("0.25×")
    assert "2.00×" in rows[1] and rows[1].rstrip(" |").endswith("1.00×")
    assert "Only in" not in compare(a, b)


def test_ratio() -> None:
    assert ratio(2.0, 3.0) == "1.50×"
    assert ratio(0.0, 3.0) == "n/a"
    assert ratio(None, 3.0) == ratio(2.0, None) == ""


def test_compare_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_report(Report(command="A", runs=[make_run()]), tmp_path / "a")
    save_report(Report(command="B", runs=[make_run(throughput_rps=250.0)]), tmp_path / "b")
    assert compare_module.main([str(tmp_path / "a" / "report.json"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "# Comparison: A vs B" in out and "0.50×" in out
    assert compare_module.main([str(tmp_path / "missing.json"), str(tmp_path / "b")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_timeline_scale_covers_every_run_not_just_the_first() -> None:
    from bench.plots import _timeline

    plt = _pyplot()

    slow = [Second(t, 100, 100, 0, 150.0, 400.0, 500.0) for t in (0.0, 1.0)]
    report = Report(runs=[make_run(), make_run(target="etcd", timeline=slow)])
    figure = _timeline(plt, report)
    try:
        for axes in figure.axes:
            assert axes.get_ylim()[1] >= 500.0  # the etcd run's max is inside the shared scale
    finally:
        plt.close(figure)
