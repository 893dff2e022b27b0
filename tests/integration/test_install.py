"""What a newcomer's first commands rely on: `make run` installs only the runtime dependencies (and the
service really runs without any test or bench extra: they are made unimportable here), `make test` installs
and runs everything, and git ignores what the README's own steps create."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def make_dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands `make <target>` would run with a venv that does not exist yet (a fresh clone)."""
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is not installed: the README's first step needs it")
    result = subprocess.run([make, "-n", "--no-print-directory", "-C", str(ROOT), target, f"VENV={tmp_path / 'venv'}"], capture_output=True,
                            text=True, timeout=60, check=True)
    return result.stdout.splitlines()


def test_make_run_installs_the_runtime_dependencies_only_then_serves(tmp_path: Path) -> None:
    commands = make_dry_run("run", tmp_path)
    installs = [line for line in commands if " install " in line and "--upgrade pip" not in line]
    assert installs == [f"{tmp_path}/venv/bin/pip install -q -e ."], commands
    assert commands[-1] == f"{tmp_path}/venv/bin/lockstore serve --host 127.0.0.1 --port 8441 --data-dir ./data"


def test_make_test_installs_everything_and_runs_every_check(tmp_path: Path) -> None:
    commands = make_dry_run("test", tmp_path)
    assert f"{tmp_path}/venv/bin/pip install -q -e '.[test]'" in commands
    for check in ("ruff check actors transports wal bench tests", "mypy", "pytest -q"):
        assert any(line.endswith(f"/venv/bin/{check}") for line in commands), (check, commands)


def _import_names(distribution: str) -> set[str]:
    """Top-level modules a distribution installs (from the installed metadata)."""
    names = {top for top, dists in importlib.metadata.packages_distributions().items()
             if distribution.lower().replace("_", "-") in {d.lower().replace("_", "-") for d in dists}}
    return {name for name in names if name.isidentifier()}


def _closure(requirements: list[str]) -> set[str]:
    """Distribution names of `requirements` and everything they need (no extras), as installed."""
    seen: set[str] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in seen or (requirement.marker is not None and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            needed = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        pending.extend(Requirement(text) for text in needed)
    return seen


def extras_only_modules() -> set[str]:
    """Modules of the test and bench extras that the runtime dependencies do not bring in themselves."""
    project = PYPROJECT["project"]
    runtime = _closure(project["dependencies"])
    extras = [Requirement(text) for group in ("test", "bench") for text in project["optional-dependencies"][group]]
    blocked: set[str] = set()
    for requirement in extras:
        if requirement.name == "lockstore":
            continue
        if requirement.name.lower().replace("_", "-") not in runtime:
            blocked |= _import_names(requirement.name)
    return blocked


BLOCKING_WRAPPER = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = frozenset(sys.argv[1].split(","))
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"{name} is a test/bench extra, not installed by make run", name=name)
            return None
    sys.meta_path.insert(0, Block())
    from transports.cli import main
    raise SystemExit(main(sys.argv[2:]))
""")


def test_the_service_runs_without_any_test_or_bench_extra(tmp_path: Path) -> None:
    blocked = extras_only_modules()
    assert {"pytest", "hypothesis", "mypy", "schemathesis", "matplotlib", "hdrh", "trustme"} <= blocked, blocked
    assert not blocked & {"httpx", "trio", "quart", "hypercorn", "msgspec", "cryptography"}
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCKING_WRAPPER, ",".join(sorted(blocked)), "serve", "--port", "0",
         "--data-dir", str(tmp_path / "data")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        for line in process.stderr:
            lines.append(line)
            match = re.search(r"serving HTTP on (http://[0-9.]+:\d+)", line)
            if match:
                url = match[1]
                break
        else:
            pytest.fail("the service did not start without the extras:\n" + "".join(lines))
        sysop = {"Authorization": "Bearer SYSTEM//Sysop"}
        with httpx.Client(base_url=url, timeout=10) as client:
            for path in ("/health/ready", "/metrics", "/openapi.json", "/docs"):
                assert client.get(path).status_code == 200, path
            lock = {"serviceInstanceId": "P|svc|1.0.0", "owner": "O", "expiresAt": "2099-01-01T00:00:00Z"}
            assert client.post("/serviceorchestration/orchestration/mgmt/lock/create", json={"locks": [lock]},
                               headers=sysop).status_code == 201
        status = subprocess.run([sys.executable, "-c", BLOCKING_WRAPPER, ",".join(sorted(blocked)), "status",
                                 "--url", url], capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0 and "READY" in status.stdout, status.stderr
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    log = "".join(lines) + (rest or "")
    assert "ModuleNotFoundError" not in log and "Traceback" not in log, log


@pytest.mark.parametrize("path", ["data/wal/LOCK", "data-mqtt/wal/FORMAT", "certs/operator.key", "certs/ca.pem",
                                  "mosquitto.conf", ".venv/bin/lockstore", "bench/results/run/report.md"])
def test_what_the_readme_steps_create_is_ignored(path: str) -> None:
    assert _ignored(path), f"{path} would show up in `git status`"


@pytest.mark.parametrize("path", ["tests/data/format1/data/wal/wal-00000000000000000001.log",
                                  "deploy/lockstore.toml", "tests/certs.py"])
def test_the_projects_own_files_are_not(path: str) -> None:
    assert not _ignored(path)


def _ignored(path: str) -> bool:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.fail("these checks need the git checkout the README starts from")
    result = subprocess.run([git, "-C", str(ROOT), "check-ignore", "--no-index", "-q", path], capture_output=True,
                            timeout=60, check=False)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0
