"""The test cluster's cleanup of killed runs (tests/etcd/cluster.py): data directories whose owner process
is gone are removed, live ones and foreign ones are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.etcd.cluster import OWNER_FILE, ROOT_PREFIX, sweep_leftovers


def test_only_the_directories_of_dead_owners_are_swept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    roots = {name: tmp_path / f"{ROOT_PREFIX}{name}" for name in ("dead", "alive", "unmarked")}
    for root in roots.values():
        (root / "m0" / "member").mkdir(parents=True)
    (roots["dead"] / OWNER_FILE).write_text(dead.stdout.decode().strip())
    (roots["alive"] / OWNER_FILE).write_text(str(os.getpid()))
    other = tmp_path / "someone-else"
    other.mkdir()
    assert sweep_leftovers(tmp_path) == [roots["dead"]]
    assert not roots["dead"].exists()
    assert roots["alive"].exists() and roots["unmarked"].exists() and other.exists()
