"""The deployment files in deploy/ cannot go stale: deploy/lockstore.toml names every setting with its real
default and loads as exactly the defaults; deploy/lockstore.service is a unit systemd accepts
(`systemd-analyze verify`, where installed) that starts lockstore the way our command line reads it; and
the README points at both files instead of repeating them."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from configparser import ConfigParser
from pathlib import Path

import msgspec
import pytest

from transports.cli import build_parser
from transports.config.loading import load_settings
from transports.config.settings import Settings
from transports.startup import CONFIGURATION

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "lockstore.toml"
UNIT = ROOT / "deploy" / "lockstore.service"
README = ROOT / "README.md"
COMMENTED = re.compile(r"^# (\w+) = (.*?)(?:[ \t]+#.*)?$", re.M)


def test_every_setting_is_in_the_config_file_with_its_default() -> None:
    text = CONFIG.read_text()
    active = tomllib.loads(text)
    commented = {match[1] for match in COMMENTED.finditer(text)}
    defaults = Settings()
    for name in Settings.__struct_fields__:
        default = getattr(defaults, name)
        if default is None:
            assert name in commented and name not in active, f"{name}: unset by default, show it commented out"
        else:
            assert name in active, f"{name} is missing from deploy/lockstore.toml"
            assert active[name] == default, f"{name}: deploy/lockstore.toml says {active[name]!r}, the default is {default!r}"
    assert set(active) | commented == set(Settings.__struct_fields__), "deploy/lockstore.toml names a setting that does not exist"


def test_the_config_file_loads_as_the_defaults() -> None:
    assert load_settings({}, {}, CONFIG) == Settings()


def test_each_commented_out_example_is_a_value_of_the_right_type() -> None:
    for match in COMMENTED.finditer(CONFIG.read_text()):
        value = tomllib.loads(f"{match[1]} = {match[2]}")
        msgspec.convert(value, Settings)  # raises on a wrong type


def _unit() -> ConfigParser:
    unit = ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read(UNIT)
    return unit


def test_the_unit_starts_lockstore_as_our_command_line_reads_it() -> None:
    service = _unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/lockstore/bin/lockstore"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve" and args.config == Path("/etc/lockstore/lockstore.toml")
    assert service["RestartPreventExitStatus"] == str(CONFIGURATION)  # a wrong setting: no restart loop
    assert service["KillSignal"] == "SIGTERM" and service["ReadWritePaths"] == service["WorkingDirectory"]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (no systemd); the unit's other checks still ran")
    # The unit names /opt/lockstore/bin/lockstore, which verify wants to exist: point it at ours.
    unit = tmp_path / "lockstore.service"
    unit.write_text(UNIT.read_text().replace("/opt/lockstore/bin/lockstore", str(Path(sys.executable).parent / "lockstore")))
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60,
                            check=False)
    # verify exits 0 even for unknown keys or values it ignores; those warnings name the file.
    complaints = [line for line in result.stderr.splitlines() if "lockstore.service" in line]
    assert result.returncode == 0 and not complaints, result.stderr


def test_the_readme_points_at_the_files_instead_of_repeating_them() -> None:
    text = README.read_text()
    deployment = text[text.index("## Deployment"):]
    deployment = deployment[:deployment.index("\n## ", 1)]
    assert "deploy/lockstore.service" in deployment and "deploy/lockstore.toml" in deployment
    assert "```toml" not in deployment and "[Service]" not in deployment
