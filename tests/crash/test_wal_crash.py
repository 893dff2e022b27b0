"""Real crashes: SIGKILL a writer at random moments; every acknowledged record must survive intact."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.crash.wal_writer import record
from wal.recovery import recover
from wal.segment import list_segments

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 6


def _acknowledged(output: str) -> tuple[int | None, list[int]]:
    """The writer's starting count (if it got that far) and the numbers it acknowledged."""
    complete = output.split("\n")[:-1]  # a line cut by the kill has no newline: it was never complete
    start = None
    numbers = []
    for line in complete:
        if line.startswith("ready "):
            start = int(line.split()[1])
        else:
            numbers.append(int(line))
    return start, numbers


@pytest.mark.slow
def test_acknowledged_records_survive_sigkill(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    directory = tmp_path / "wal"
    expected_start = 0
    total_acknowledged = 0
    for round_number in range(ROUNDS):
        out_path = tmp_path / f"writer-{round_number}.out"
        with out_path.open("wb") as out:
            writer = subprocess.Popen(
                [sys.executable, "-m", "tests.crash.wal_writer", str(directory)], cwd=REPO, stdout=out
            )
        try:
            if round_number % 3 != 2:  # most rounds: kill while records flow; others: anywhere, even in start-up
                deadline = time.monotonic() + 15
                while b"ready" not in out_path.read_bytes():
                    assert writer.poll() is None, f"writer exited early (seed {seed})"
                    assert time.monotonic() < deadline, "writer did not start"
                    time.sleep(0.01)
            time.sleep(rng.uniform(0.02, 0.3))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        assert writer.returncode == -signal.SIGKILL

        start, acknowledged = _acknowledged(out_path.read_text())
        assert start in (None, expected_start), f"seed {seed}"
        recovered = recover(directory).payloads
        for n, payload in enumerate(recovered):  # in order, nothing garbled, nothing duplicated
            assert payload == record(n), f"record {n} differs (seed {seed})"
        missing = [n for n in acknowledged if n >= len(recovered)]
        assert not missing, f"acknowledged but lost: {missing[:10]} (seed {seed})"
        expected_start = len(recovered)
        total_acknowledged += len(acknowledged)

    assert total_acknowledged > 0
    assert len(list_segments(directory)) > 1  # the writer rolled over to new segments along the way
