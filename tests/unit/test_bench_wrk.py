"""`python -m bench wrk` without wrk: reading the scripts' result line and the table (bench/wrk_mode.py)."""

from __future__ import annotations

from bench.cli import parser
from bench.wrk_mode import SCRIPTS, WrkRun, parse_result, table

OUTPUT = """Running 10s test @ http://127.0.0.1:8441
  2 threads and 64 connections
Requests/sec:   3373.05
WRK-RESULT requests=10173 duration_us=3015963 errors_status=2 errors_connect=0 errors_read=1 errors_write=0 errors_timeout=0 p50_us=16005 p90_us=34720 p99_us=94615 p999_us=145831 max_us=152044
"""


def test_the_result_line_is_read() -> None:
    fields = parse_result(OUTPUT)
    assert fields is not None and fields["requests"] == 10173 and fields["p99_us"] == 94615
    assert sum(value for key, value in fields.items() if key.startswith("errors_")) == 3
    assert parse_result("Requests/sec: 10\n") is None  # a script without the line: an error, not zeros


def test_both_scripts_print_the_result_line_and_take_tag_and_batch() -> None:
    for name in ("lock_create.lua", "etcd_create_txn.lua"):
        text = (SCRIPTS / name).read_text()
        assert "WRK-RESULT requests=%d" in text and "tag = args[1]" in text and "batch = tonumber(args[2]" in text


def run(target: str, requests: int, batch: int = 1) -> WrkRun:
    return WrkRun(target, batch, requests, 10.0, 0, 1.0, 2.0, 3.0, 4.0, 5.0, 150.0, requests * batch)


def test_the_table_gives_rates_locks_and_ratios_to_etcd() -> None:
    text = table([run("lockstore", 40_000), run("lockstore/hypercorn", 10_000), run("etcd", 20_000)], "0.50 0.40 0.30")
    assert "load average at the start: 0.50 0.40 0.30" in text
    assert "| lockstore | 1 | 4,000 | 4,000 |" in text
    assert "lockstore / etcd: 2.00× · lockstore/hypercorn / etcd: 0.50×" in text
    batch = table([run("lockstore", 1_000, batch=100)], "0")
    assert "| lockstore | 100 | 100 | 10,000 |" in batch


def test_the_command_line() -> None:
    args = parser().parse_args(["wrk", "--http-server", "native,hypercorn", "--peers", "--batch", "100"])
    assert (args.command, args.http_server, args.peers, args.batch, args.connections) == (
        "wrk", ["native", "hypercorn"], True, 100, 64)


def test_run_takes_a_list_of_http_servers() -> None:
    import pytest

    from bench.command import _targets

    args = parser().parse_args(["run", "lock-create", "--http-server", "native,hypercorn", "--peers", "--only",
                                "lockstore,etcd"])
    assert args.http_server == ["native", "hypercorn"]
    assert [name for name, _ in _targets(args)] == ["lockstore", "lockstore", "etcd"]
    with pytest.raises(SystemExit):
        parser().parse_args(["run", "lock-create", "--http-server", "uvicorn"])
    mqtt = parser().parse_args(["run", "lock-create", "--transport", "mqtt", "--http-server", "hypercorn"])
    with pytest.raises(SystemExit, match="HTTP options"):
        _targets(mqtt)
