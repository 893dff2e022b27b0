"""PNG plots of a `Report`: the latency percentile curve, latency over time, and throughput against the
offered load. matplotlib (Agg backend, no display) is imported only when plotting, so recording and
reporting work without it. Each PNG's title names scenario, transport and targets so it stands alone.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.histogram import LatencyHistogram
from bench.report import run_label, target_text
from bench.results import Report, RunResult

PERCENTILE_TICKS = [(50.0, "50%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%")]
PERCENTILE_TICKS += [(99.999, "99.999%"), (99.9999, "99.9999%")]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(report: Report, out_dir: Path) -> list[Path]:
    """percentiles.png, timeline.png and throughput.png in `out_dir`; a plot without data is not written."""
    plt = _pyplot()
    written = []
    for name, draw in (("percentiles", _percentiles), ("timeline", _timeline), ("throughput", _throughput)):
        figure = draw(plt, report)
        if figure is None:
            continue
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def _what(runs: list[RunResult]) -> str:
    """The subject of a figure's title: "churn over http", "churn, bulk over http, mqtt"."""
    scenarios = ", ".join(dict.fromkeys(run.scenario for run in runs))
    transports = ", ".join(dict.fromkeys(run.transport for run in runs))
    return f"{scenarios} over {transports}"


def _labels(report: Report) -> dict[int, str]:
    several = len({run.scenario for run in report.runs}) > 1
    return {id(run): run_label(run, scenario=several) for run in report.runs}


COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
           "tab:olive", "tab:cyan"]
LINE_STYLES = ["-", "--", ":", "-."]
MARKERS = ["", "o", "s", "^", "v", "D"]


def run_styles(runs: list[RunResult]) -> dict[int, dict[str, Any]]:
    """A colour per target (what was measured, transport included) and, within a target, a line style
    per run (its loads): no two runs look alike, and one target's runs share a colour. Past ten targets
    or four loads a marker tells them apart."""
    keys = [f"{target_text(run)} {run.scenario} {run.transport}" for run in runs]
    targets = {key: number for number, key in enumerate(dict.fromkeys(keys))}
    most_loads = max((keys.count(key) for key in targets), default=1)
    marker_groups = -(-most_loads // len(LINE_STYLES))  # marker steps one target's loads need
    seen: dict[str, int] = defaultdict(int)
    styles: dict[int, dict[str, Any]] = {}
    for run, key in zip(runs, keys, strict=True):
        number, within = targets[key], seen[key]
        seen[key] += 1
        marker = MARKERS[(number // len(COLOURS) * marker_groups + within // len(LINE_STYLES)) % len(MARKERS)]
        styles[id(run)] = {"color": COLOURS[number % len(COLOURS)], "linestyle": LINE_STYLES[within % len(LINE_STYLES)],
                           "marker": marker, "markevery": 0.1}
    return styles


def _two_and_five(value: float) -> str:
    text = f"{value:g}"
    return text if text[0] in "25" else ""


def _plain_ms(axes: Any) -> None:
    """Log-scale latency with plain tick labels (0.5, 1, 10, 100 ms), not powers of ten."""
    from matplotlib import ticker

    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    # Between decades, 2 and 5 (20, 50, ...) get a label too, in plain numbers, not "3×10^0".
    axes.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda value, _: _two_and_five(value)))


def percentile_x(q: float) -> float:
    """The classic HDR x axis: 1/(1-q), so 90%, 99%, 99.9% are equally spaced on a log scale."""
    return 1.0 / (1.0 - q / 100.0)


def _percentiles(plt: Any, report: Report) -> Any:
    curves = []
    for run in report.runs:
        histogram = LatencyHistogram.decode(run.histogram) if run.histogram else LatencyHistogram()
        points = [(percentile_x(q), ms) for q, ms in histogram.curve() if q < 100.0]
        if points:
            curves.append((run, points))
    if not curves:
        return None
    labels = _labels(report)
    styles = run_styles([run for run, _ in curves])
    figure, axes = plt.subplots(figsize=(9, 5.5), layout="constrained")
    largest_x = 1.0
    for run, points in curves:
        xs, ys = zip(*points, strict=True)
        style = styles[id(run)]
        if len(xs) < 3:
            style = {**style, "marker": style["marker"] or "o"}
        axes.plot(xs, ys, label=labels[id(run)], linewidth=1.5, **style)
        largest_x = max(largest_x, *xs)
    axes.set_xscale("log")
    _plain_ms(axes)  # fast and slow runs both readable: a factor is the same distance anywhere
    ticks = [(percentile_x(q), text) for q, text in PERCENTILE_TICKS if percentile_x(q) <= largest_x * 10]
    axes.set_xticks([x for x, _ in ticks], [text for _, text in ticks])
    axes.set_xlim(1.0, max(largest_x, 10.0))
    axes.set_xlabel("percentile")
    axes.set_ylabel("latency (ms, log scale)")
    axes.set_title(f"Latency by percentile: {_what([run for run, _ in curves])}")
    axes.grid(True, which="major", alpha=0.3)
    axes.grid(True, which="minor", axis="y", alpha=0.1)
    axes.legend(fontsize="small", loc="upper left")
    return figure


def _legend_entries(all_axes: Any) -> tuple[list[Any], list[str]]:
    """One legend for all subplots: each line style once, including "errors" if any subplot has them."""
    entries: dict[str, Any] = {}
    for axes in all_axes:
        handles, names = axes.get_legend_handles_labels()
        for handle, name in zip(handles, names, strict=True):
            entries.setdefault(name, handle)
    return list(entries.values()), list(entries)


TIMELINE_COLUMNS_FROM = 5  # runs: from this many on, the panels go in two columns


def _timeline(plt: Any, report: Report) -> Any:
    from matplotlib import ticker

    runs = [run for run in report.runs if run.timeline]
    if not runs:
        return None
    labels = _labels(report)
    columns = 1 if len(runs) < TIMELINE_COLUMNS_FROM else 2
    rows = -(-len(runs) // columns)
    # constrained layout keeps the title, the panels and the legend apart whatever their number.
    figure, all_axes = plt.subplots(
        rows, columns, figsize=(9 * columns, 1.2 + 2.1 * rows), sharex=True, sharey=True, squeeze=False,
        layout="constrained",
    )  # one y scale for all: the targets' latencies compare at a glance
    panels = list(all_axes.flat)
    for axes, run in zip(panels, runs, strict=False):
        ts = [second.t for second in run.timeline]
        for field, style in (("max_ms", ":"), ("p99_ms", "-"), ("p50_ms", "-")):
            axes.plot(ts, [getattr(second, field) for second in run.timeline], style, label=field.split("_")[0])
        failed = [second.t for second in run.timeline if second.errors]
        if failed:
            axes.plot(failed, [0.0] * len(failed), "rx", label="errors", clip_on=False)
        axes.set_yscale("symlog", linthresh=1.0)  # linear below 1 ms, log above: p50 and a stall both readable
        axes.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axes.set_ylabel("ms")
        axes.set_title(labels[id(run)], fontsize="medium", loc="left")
        axes.grid(True, alpha=0.3)
    for axes in panels[len(runs):]:
        axes.set_visible(False)
    for column in range(columns):  # the lowest panel drawn in each column carries the time axis
        lowest = max(number for number in range(len(runs)) if number % columns == column)
        panels[lowest].xaxis.set_tick_params(labelbottom=True)
        panels[lowest].set_xlabel("seconds into the measured window")
    # One scale for all runs (sharey), set once from every run's data: a limit fixed per subplot would
    # clip the runs drawn after the first.
    top = max(max(second.max_ms for second in run.timeline) for run in runs)
    panels[0].set_ylim(0, max(top, 1.0) * 1.5)
    handles, names = _legend_entries(panels[: len(runs)])
    figure.legend(handles, names, fontsize="small", loc="outside upper right", ncols=len(names))
    figure.suptitle(f"Latency per second: {_what(runs)}")
    return figure


def _sweeps(report: Report, mode: str) -> dict[str, list[tuple[float, float, float]]]:
    """(load, achieved req/s, p99 ms) per target for every target run at two or more loads in `mode`."""
    points: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for run in report.runs:
        load = run.offered_rate if mode == "open" else run.concurrency
        if run.mode == mode and load is not None:
            points[f"{target_text(run)} {run.scenario} {run.transport}"].append(
                (float(load), run.throughput_rps, run.latency.p99_ms)
            )
    return {key: sorted(series) for key, series in points.items() if len({p[0] for p in series}) > 1}


def _throughput(plt: Any, report: Report) -> Any:
    """Top: achieved throughput against the load; below: p99 against the same load (where latency
    takes off is the usable capacity, usually well before throughput flattens)."""
    panels = [(mode, sweeps) for mode in ("open", "closed") if (sweeps := _sweeps(report, mode))]
    if not panels:
        return None
    figure, all_axes = plt.subplots(2, len(panels), figsize=(7 * len(panels), 9), squeeze=False, sharex="col",
                                    layout="constrained")
    for column, (mode, sweeps) in enumerate(panels):
        axes, latency_axes = all_axes[0, column], all_axes[1, column]
        for number, (key, series) in enumerate(sweeps.items()):
            loads, achieved, p99 = zip(*series, strict=True)
            style = {"color": COLOURS[number % len(COLOURS)], "linestyle": LINE_STYLES[number // len(COLOURS) % 4],
                     "marker": "o"}
            axes.plot(loads, achieved, label=key, **style)
            latency_axes.plot(loads, p99, label=key, **style)
        if mode == "open":
            top = max(point[0] for series in sweeps.values() for point in series)
            axes.plot([0, top], [0, top], "--", color="grey", label="ideal (achieved = offered)")
            latency_axes.set_xlabel("offered rate (req/s)")
            axes.set_title("Open loop: achieved vs offered rate", fontsize="medium")
        else:
            latency_axes.set_xlabel("concurrency (requests in flight)")
            axes.set_title("Closed loop: throughput vs concurrency", fontsize="medium")
        axes.set_xlim(left=0)
        axes.set_ylim(bottom=0)
        axes.set_ylabel("achieved throughput (req/s)")
        _plain_ms(latency_axes)
        latency_axes.set_ylabel("p99 latency (ms, log scale)")
        for each in (axes, latency_axes):
            each.grid(True, which="both", alpha=0.3)
            each.legend(fontsize="small")
    runs = [run for run in report.runs if run.mode in {mode for mode, _ in panels}]
    figure.suptitle(f"Throughput and p99 by load: {_what(runs)}")
    return figure
