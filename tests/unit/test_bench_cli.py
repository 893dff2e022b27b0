"""The harness's command line and the small parsers around a run: what `--help` and `list` promise, the
hint a plain install (without the bench extra) gets, the service's start-up line, /metrics text."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bench import metrics
from bench.cli import BENCH_EXTRA_HINT, parser
from bench.options import default_out, numbers
from bench.startup import phases
from bench.workload import SCENARIOS

REPO = Path(__file__).resolve().parents[2]


def _help(*command: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        parser().parse_args([*command, "--help"])
    assert stopped.value.code == 0


def test_run_help_names_the_default_output_directory_the_run_uses(capsys: pytest.CaptureFixture[str]) -> None:
    _help("run")
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, even inside a path
    promised = str(default_out("SCENARIO", "TRANSPORT", "YYYYmmdd-HHMMSS"))
    assert promised == "bench/results/SCENARIO-TRANSPORT-YYYYmmdd-HHMMSS"
    assert f"(default{promised}," in text
    assert default_out("echo", "http", "20260101-000000") == Path("bench/results/echo-http-20260101-000000")


def test_run_help_describes_every_target_option_and_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    _help("run")
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, even inside a name
    for option in ("--tls", "--new-connections", "--peers", "--only", "--fsync", "--target", "--cafile", "--cert",
                   "--snapshot-every", "--preload", "--records", "--log-records", "--rate", "--concurrency"):
        assert option in text
    assert "off,on(HTTPS" in text and "mutual(HTTPS" in text
    for name in SCENARIOS:
        assert name in text


def test_list_names_every_scenario_and_the_target_options(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[: len(SCENARIOS)]] == list(SCENARIOS)
    assert "startup" in out and "lockstore only" in out
    assert "--tls off,on,mutual" in out and "--new-connections" in out


def test_tls_modes_are_checked() -> None:
    assert parser().parse_args(["run", "echo", "--tls", "off,mutual"]).tls == ["off", "mutual"]
    with pytest.raises(SystemExit):
        parser().parse_args(["run", "echo", "--tls", "on,sometimes"])


def test_numbers_sweep() -> None:
    assert numbers("100,200, 400", int) == [100, 200, 400]
    assert numbers("0.5,", float) == [0.5]


def _without_hdrh(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import hdrh` fails, as in a plain `pip install lockstore`."""
    stub = tmp_path / "stub" / "hdrh"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'hdrh'\", name='hdrh')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub.parent), str(REPO)])}


@pytest.mark.parametrize("command", [["run", "echo", "--duration", "1"], ["compare", "a.json", "b.json"]])
def test_the_console_script_without_the_bench_extra_says_how_to_install_it(tmp_path: Path, command: list[str]) -> None:
    script = Path(sys.executable).with_name("lockstore-bench")
    assert script.exists(), "the lockstore-bench console script is installed with the package"
    done = subprocess.run([str(script), *command], env=_without_hdrh(tmp_path), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"{BENCH_EXTRA_HINT} (no module 'hdrh')"]  # one line, no traceback
    assert "pip install 'lockstore[bench]'" in done.stderr
    assert not (tmp_path / "bench").exists()  # nothing ran


def test_list_works_without_the_bench_extra(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "list"], env=_without_hdrh(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "startup" in done.stdout


# ------------------------------------------------------------------------------------------ start-up line

START_UP = (
    'ts=2026-12-05T03:59:20.100Z level=INFO logger=actors.snapshots msg="loaded 10000 records from '
    "snap-locks-9.snap, snap-store-9.snap (812345 bytes) in 0.012 s; replayed 5000 records after LSN 9 from 1 of 1 "
    "segment(s) (301234 bytes) in 0.034 s; indexed 7500 locks, 2500 rules in 0.021 s; next LSN 5010; start-up "
    'state ready in 0.071 s"'
)


def test_start_up_phases_come_from_the_services_own_line() -> None:
    found = phases(["ts=... msg=\"something else\"", START_UP, "serving HTTP on http://127.0.0.1:1"])
    assert found is not None
    assert (found.snapshot_load_s, found.log_replay_s, found.index_s, found.state_ready_s) == (0.012, 0.034, 0.021,
                                                                                               0.071)
    assert (found.replayed, found.locks, found.rules) == (5000, 7500, 2500)


def test_start_up_without_a_snapshot_and_without_the_line() -> None:
    line = ("loaded no snapshot; replayed 3 records after LSN 0 from 1 of 1 segment(s) (99 bytes) in 0.001 s; "
            "indexed 3 locks, 0 rules in 0.000 s; next LSN 4; start-up state ready in 0.002 s")
    found = phases([line])
    assert found is not None and found.snapshot_load_s == 0.0 and found.replayed == 3
    assert phases(["serving HTTP on http://127.0.0.1:1"]) is None


# ------------------------------------------------------------------------------------------ /metrics


def test_metrics_text_is_read_with_and_without_labels() -> None:
    text = "\n".join([
        "# HELP lockstore_locks_live Live locks",
        "# TYPE lockstore_locks_live gauge",
        "lockstore_locks_live 1234.0",
        'lockstore_requests_total{operation="lock create",transport="http",status="201"} 7.0',
        "lockstore_snapshot_capture_stall_seconds 0.0025",
        "not a sample",
        "",
    ])
    values = metrics.parse(text)
    assert values[metrics.LOCKS_LIVE] == 1234.0
    assert values[metrics.CAPTURE_STALL] == 0.0025
    assert values['lockstore_requests_total{operation="lock create",transport="http",status="201"}'] == 7.0
    assert "not" not in values and len(values) == 3


# ------------------------------------------------------------------------------------------ bench/README.md

README = REPO / "bench" / "README.md"
_COMMAND = re.compile(r"\.venv/bin/python -m bench ([^`\n#|]+)")


def test_every_harness_command_in_the_bench_readme_parses() -> None:
    """The README's commands are the harness's: each one (in code blocks and in the figures' captions)
    is accepted by the parser as written, so a renamed option or scenario cannot leave a stale one."""
    commands = [found.strip() for found in _COMMAND.findall(README.read_text())]
    assert len(commands) >= 20
    for command in commands:
        try:
            parser().parse_args(shlex.split(command))
        except SystemExit as stopped:
            if stopped.code != 0:  # `run --help` exits 0
                raise AssertionError(f"bench/README.md: `python -m bench {command}` does not parse") from None


def test_the_bench_readme_names_only_files_that_exist_and_nothing_outside_the_repository() -> None:
    text = README.read_text()
    assert "../" not in text and "/work/" not in text
    removed = {"http_locks.py", "http_store.py", "mqtt_bench.py", "replay.py", "tls.py", "harness.py"}
    for name in set(re.findall(r"`([a-z_]+\.py)`", text)) - removed:
        assert (REPO / "bench" / name).exists(), name
    for path in set(re.findall(r"`((?:bench|tests)/[\w/]+\.py)", text)) - {f"bench/{name}" for name in removed}:
        assert (REPO / path).exists(), path
