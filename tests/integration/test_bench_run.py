"""The load generator on tiny durations against real local targets: the no-op responder (which can
stall on purpose) and the real service. These check what the harness measures, not how fast anything
is: counts, the measured window, statuses, and that a stall is charged to every request due during it
(open loop) rather than to one (closed loop)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench import processes
from bench.cli import main as bench_main
from bench.fleet import run_load
from bench.histogram import LatencyHistogram
from bench.loadgen import LoadSpec
from bench.operations import Endpoint
from bench.results import load_report
from bench.runner import run_once, summarize
from bench.targets import Target, lockstore_http
from bench.workload import Sizes

pytestmark = pytest.mark.slow


@pytest.fixture
def noop() -> Iterator[str]:
    with processes.server(processes.framework_ceiling("--raw")) as server:
        yield server.url


@pytest.fixture
def stalling() -> Iterator[str]:
    """Every 100th request is answered 300 ms late."""
    with processes.server(processes.framework_ceiling("--raw", "--stall-every", "100", "--stall-ms", "300")) as server:
        yield server.url


def _spec(url: str, **changes: object) -> LoadSpec:
    values: dict[str, object] = dict(
        scenario="lock-create",
        endpoint=Endpoint("http", url),
        mode="open",
        rate=200.0,
        lanes=4,
        connections=4,
        duration_s=1.0,
        warmup_s=0.5,
        processes=2,
        tag="TEST",
    )
    values.update(changes)
    return LoadSpec(**values)  # type: ignore[arg-type]


def test_open_loop_sends_the_scheduled_count_and_measures_only_the_window(noop: str) -> None:
    spec = _spec(noop)
    load = run_load(spec, [], live=False)
    result = summarize(Target("noop", "http", spec.endpoint), spec, load)
    assert len(load.workers) == 2
    assert result.requests == 200  # 1 s at 200/s; the 0.5 s warm-up (100 requests) is not counted
    assert result.errors == 0 and result.statuses == {"201": 200}
    assert sum(w.completed for w in load.workers) == 200
    assert {w.completed for w in load.workers} == {100}  # the schedule is shared evenly
    assert [row.sent for row in result.timeline] == [200]
    assert result.throughput_rps == pytest.approx(200, rel=0.03)  # answers that arrived in the window
    assert result.operations.keys() == {"create"}
    assert LatencyHistogram.decode(result.histogram).count == 200
    assert result.client.processes == 2 and result.client.cpu_seconds > 0


def test_a_stall_is_charged_to_every_request_due_during_it_in_open_loop(stalling: str) -> None:
    # One connection, 100 req/s, a 300 ms stall every 100 requests: ~30 requests are due during
    # each stall, and measured from their due times they are all late (no coordinated omission).
    spec = _spec(stalling, rate=100.0, lanes=1, connections=1, processes=1, duration_s=2.0, warmup_s=0.0)
    open_result = summarize(Target("noop", "http", spec.endpoint), spec, run_load(spec, [], live=False))
    late = LatencyHistogram.decode(open_result.histogram)
    assert open_result.requests == 200
    assert late.percentile_ms(90) > 100, open_result.latency  # well over 10% of requests saw the stall
    # Closed loop on the same server: the client waits, sends nothing meanwhile, and only the stalled
    # requests themselves are slow — the p90 hides the stall.
    closed = _spec(stalling, mode="closed", rate=None, lanes=1, connections=1, processes=1, duration_s=2.0,
                   warmup_s=0.0)
    closed_result = summarize(Target("noop", "http", closed.endpoint), closed, run_load(closed, [], live=False))
    assert closed_result.latency.p90_ms < 50, closed_result.latency
    assert closed_result.latency.max_ms >= 290


def test_closed_loop_bulk_load_sends_exactly_the_total(noop: str) -> None:
    spec = _spec(noop, scenario="bulk-load-locks", mode="closed", rate=None, lanes=4, total_requests=37,
                 warmup_s=0.0, sizes=Sizes(records=3700))
    result = summarize(Target("noop", "http", spec.endpoint), spec, run_load(spec, [], live=False))
    assert result.requests == 37 and result.errors == 0
    assert result.operations.keys() == {"create-100"}


def test_a_refused_connection_is_an_error_not_a_crash(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = _spec(f"http://127.0.0.1:{port}", processes=1, duration_s=0.5, warmup_s=0.0, rate=20.0)
    with pytest.raises(RuntimeError, match="failed"):
        run_load(spec, [], live=False)  # cannot even connect before the clock starts: said, loudly


def test_the_real_service_churn_with_setup_and_samples(tmp_path: Path) -> None:
    spec = _spec("", scenario="lock-remove", rate=100.0, duration_s=1.0, warmup_s=0.2, processes=1,
                 sizes=Sizes(preload=300))
    with lockstore_http("never", tmp_path / "data") as target:
        result = run_once(target, spec, live=False)
        left = httpx.post(f"{target.endpoint.url}/serviceorchestration/orchestration/mgmt/lock/query",
                          json={"pagination": {"page": 0, "size": 1}},
                          headers={"Authorization": "Bearer SYSTEM//Sysop"}).json()["count"]
    assert result.errors == 0, result.statuses
    assert result.statuses == {"200": 100}  # the measured second; the 0.2 s warm-up sent 20 more
    assert left == 300 - 120  # the setup really created the preload, and every remove hit a lock
    assert result.server and result.server[0].peak_rss_mib > 10 and result.server[0].cpu_seconds > 0
    assert any("setup: 100 requests" in note for note in result.notes)  # 300 locks of 100 owners


@pytest.mark.parametrize("scenario", ["rule-churn", "rule-modify", "rule-remove", "orchestrator-churn"])
def test_every_request_of_the_stateful_scenarios_succeeds_on_the_real_service(tmp_path: Path, scenario: str) -> None:
    """The scenarios send what the service accepts: no 400 from a malformed or conflicting request
    (modify-priorities takes one rule set only; churn removes only locks it holds)."""
    spec = _spec("", scenario=scenario, rate=100.0, duration_s=1.0, warmup_s=0.3, processes=1,
                 sizes=Sizes(preload=200))
    with lockstore_http("never", tmp_path / "data") as target:
        result = run_once(target, spec, live=False)
    assert result.errors == 0, result.statuses
    assert result.requests == 100
    assert len(result.operations) >= (3 if scenario.endswith("churn") else 1)


def test_cli_runs_a_scenario_and_saves_json_markdown_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = bench_main(["run", "echo", "--rate", "50,100", "--duration", "1", "--warmup", "0.2", "--peers",
                       "--only", "noop", "--out", str(out), "--quiet"])
    assert code == 0
    report = load_report(out)
    assert [(r.target, r.offered_rate) for r in report.runs] == [("noop", 50.0), ("noop", 100.0)]
    assert [r.requests for r in report.runs] == [50, 100]
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "percentiles.png", "timeline.png",
                                               "throughput.png"}
    assert bench_main(["compare", str(out / "report.json"), str(out / "report.json")]) == 0
