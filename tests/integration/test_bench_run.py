"""The load generator on tiny durations against real local targets: the no-op responder (which can
stall on purpose) and the real service. These check what the harness measures, not how fast anything
is: counts, the measured window, statuses, and that a stall is charged to every request due during it
(open loop) rather than to one (closed loop)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from bench import processes
from bench.cli import main as bench_main
from bench.fleet import run_load
from bench.framework_ceiling import _raw_connection
from bench.histogram import LatencyHistogram
from bench.http_client import HttpClient
from bench.loadgen import LoadSpec
from bench.operations import Echo, Endpoint, QueryLocks
from bench.results import load_report
from bench.runner import run_once, summarize
from bench.startup import build, phases
from bench.targets import Connection, Target, lockstore_http
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
        assert target.gc_log is not None and target.gc_log.exists()  # the hook opened its log at start
        left = httpx.post(f"{target.endpoint.url}/serviceorchestration/orchestration/mgmt/lock/query",
                          json={"pagination": {"page": 0, "size": 1}},
                          headers={"Authorization": "Bearer SYSTEM//Sysop"}).json()["count"]
    assert result.errors == 0, result.statuses
    assert result.statuses == {"200": 100}  # the measured second; the 0.2 s warm-up sent 20 more
    assert left == 300 - 120  # the setup really created the preload, and every remove hit a lock
    # Hits and removes are counted over the same requests (the 20 of the warm-up too): never more hits
    # than removes, as the old "3,649 of 3,585 removes hit a lock" had.
    assert result.removals is not None
    assert (result.removals.sent, result.removals.hit, result.removals.before) == (120, 120, 300)
    assert any(note.startswith("120 of the 120 removes sent hit a lock") for note in result.notes)
    assert result.server and result.server[0].peak_rss_mib > 10 and result.server[0].cpu_seconds > 0
    assert any("setup: 100 requests" in note for note in result.notes)  # 300 locks of 100 owners
    assert target.gc_log is not None and target.gc_log.parent.name.startswith("lockstore-bench-gc-")
    assert result.gc is not None  # the service ran under the GC hook and its window was read


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


@pytest.mark.parametrize(("tls", "new_connections"), [("on", False), ("mutual", False), ("mutual", True)])
def test_lockstore_over_tls_with_and_without_keep_alive(tmp_path: Path, tls: str, new_connections: bool) -> None:
    spec = _spec("", scenario="lock-query", rate=50.0, duration_s=1.0, warmup_s=0.2, processes=1,
                 sizes=Sizes(preload=100))
    with lockstore_http("never", tmp_path / "data", connection=Connection(tls, new_connections)) as target:
        assert target.endpoint.url.startswith("https://")
        assert target.name == {"on": "lockstore+tls", "mutual": "lockstore+mtls"}[tls]
        result = run_once(target, spec, live=False)
        if tls == "mutual":  # the server really asks for the certificate: without one, no request gets through
            bare = replace(target.endpoint, tls_cert="", tls_key="")

            async def without_certificate() -> None:
                client = await HttpClient.open(bare)
                try:
                    await client.call(QueryLocks("Pre0"))
                finally:
                    await client.aclose()

            with pytest.raises(OSError):
                trio.run(without_certificate)
    assert result.errors == 0, result.statuses
    assert result.statuses == {"200": 50}  # 200s: with mutual TLS the certificate's identity (operator = sysop)
    assert result.server and result.server[0].cpu_seconds > 0


async def test_new_connections_open_one_connection_per_request() -> None:
    accepted: list[int] = []

    async def counting(stream: trio.SocketStream) -> None:
        accepted.append(1)
        await _raw_connection(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, counting, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        for new_connection, expected in ((False, 1), (True, 1 + 5)):  # open() checks it can connect, once
            accepted.clear()
            client = await HttpClient.open(Endpoint("http", f"http://127.0.0.1:{port}", new_connection=new_connection))
            replies = [await client.call(Echo()) for _ in range(5)]
            await client.aclose()
            assert [reply.status for reply in replies] == [201] * 5  # the no-op's fixed reply
            assert len(accepted) == expected
        nursery.cancel_scope.cancel()


def test_startup_scenario_builds_starts_and_measures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = bench_main(["run", "startup", "--records", "2000", "--log-records", "1000", "--duration", "1.5",
                       "--warmup", "0.2", "--snapshot-every", "100", "--quiet", "--out", str(out)])
    assert code == 0
    [run] = load_report(out).runs
    assert run.errors == 0, run.statuses
    assert run.dataset == "2,000 + 1,000 log" and run.operations.keys() == {"create", "query-owner"}
    startup = run.startup
    assert startup is not None and (startup.records, startup.log_records) == (2000, 1000)
    assert 0 < startup.state_ready_s < startup.serve_ready_s
    assert 0 < startup.rss_mib <= startup.peak_rss_mib
    effect = run.snapshots
    assert effect is not None and effect.taken >= 1  # a snapshot every 100 records under ~100s of creates/s
    assert effect.seconds_with >= 1 and effect.with_snapshot.count > 0
    assert effect.with_snapshot.count + effect.without_snapshot.count == run.requests
    assert "## Start-up" in (out / "report.md").read_text()


def test_the_built_data_directory_holds_what_was_asked(tmp_path: Path) -> None:
    build(tmp_path / "data", 2000, 1000)
    pristine = tmp_path / "pristine"
    shutil.copytree(tmp_path / "data", pristine)
    with lockstore_http("never", tmp_path / "data") as target:
        found = phases(target.start_log)
    assert found is not None
    assert (found.locks, found.rules, found.replayed) == (1500, 500, 1000)  # 3/4 locks, the tail replayed
    assert found.snapshot_load_s > 0


def test_without_out_the_files_go_where_help_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert bench_main(["run", "echo", "--rate", "20", "--duration", "0.5", "--warmup", "0", "--peers", "--only",
                       "noop", "--quiet"]) == 0
    [made] = (tmp_path / "bench" / "results").iterdir()
    assert made.name.startswith("echo-http-") and (made / "report.json").is_file()


def test_etcd_mode_target_spreads_the_load_over_its_instances_and_notes_memory_and_a_join() -> None:
    """`--state etcd`: two lockstore instances in etcd mode on a fresh 3-member cluster the harness starts;
    the load generator's connections go to both, the sampled processes are both and the members, and the
    notes give each instance's memory and the start-up of a third that joins."""
    from bench.etcd_targets import lockstore_etcd
    from transports.status import parse_metrics

    spec = _spec("", scenario="lock-query", rate=40.0, duration_s=1.0, warmup_s=0.2, processes=1,
                 lanes=4, connections=4, sizes=Sizes(preload=200))
    with lockstore_etcd(2) as target:
        assert len(target.endpoint.urls) == 2 and len(target.pids) == 2 + 3
        result = run_once(target, spec, live=False)
        served = [parse_metrics(httpx.get(f"{url}/metrics").text).value(
            "lockstore_requests_total", 0.0, operation="lock_query", status="200") for url in target.endpoint.urls]
        assert target.after is not None
        notes = target.after()
    assert result.errors == 0, result.statuses
    assert all(count >= 10 for count in served), served  # each instance answered its share
    assert len(result.server) == 5
    assert any(note.startswith("at the end, 200 locks") and "per etcd member" in note for note in notes), notes
    assert any("one more instance joining this state: serving" in note for note in notes), notes


def test_an_endpoint_of_several_servers_hands_them_out_in_turn() -> None:
    endpoint = Endpoint("http", "http://a:1", urls=("http://a:1", "http://b:2", "http://c:3"))
    assert [endpoint.for_connection(n).url for n in range(4)] == ["http://a:1", "http://b:2", "http://c:3", "http://a:1"]
    assert Endpoint("http", "http://a:1").for_connection(7).url == "http://a:1"
