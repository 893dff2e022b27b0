"""The on-disk data format version (wal/format.py) through the real command line: a data directory that
lockstore 0.1.0 wrote (format 1, no FORMAT file: tests/data/format1/) opens with everything in it and
gets its FORMAT file, nothing else rewritten; a directory marked with a newer format, or with a FORMAT
file that holds no version, is refused with one line and exit status 1 before any file in it is read
or changed; `lockstore check`, `lockstore dump` and `lockstore --version` say the version."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.live_server import live_server
from tests.integration.test_startup_errors import CLI, assert_one_line, serve
from wal.format import FORMAT_VERSION

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "format1" / "data"
SYSOP = {"Authorization": "Bearer SYSTEM//Sysop"}
LOCK = "/serviceorchestration/orchestration/mgmt/lock"
STORE = "/serviceorchestration/orchestration/mgmt/simple-store"


def lockstore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


def copy_fixture(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    return data


def files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.name != "LOCK"}


def test_a_format_1_directory_written_by_lockstore_0_1_0_opens_and_only_gains_its_format_file(tmp_path: Path) -> None:
    data = copy_fixture(tmp_path)
    before = files(data / "wal")
    assert "FORMAT" not in before
    for start in ("first", "second"):  # unmarked, then marked
        with live_server(data) as server, httpx.Client(base_url=server.url, headers=SYSOP, timeout=10) as client:
            locks = client.post(f"{LOCK}/query", json={}).json()["entries"]
            rules = client.post(f"{STORE}/query", json={"consumerNames": ["TemperatureManager"]}).json()["entries"]
        held = sorted((lock["serviceInstanceId"], lock["owner"]) for lock in locks)
        assert held == [*((f"TemperatureProvider{n}|kelvinInfo|1.0.0", "TemperatureManager") for n in (2, 3, 4)),
                        ("Thermostat|setPoint|2.1.0", "HeatingController")], start
        assert sorted((rule["serviceInstanceId"], rule["priority"]) for rule in rules) == [
            ("TemperatureProvider1|kelvinInfo|1.0.0", 7), ("TemperatureProvider2|kelvinInfo|1.0.0", 2)], start
        after = files(data / "wal")
        assert after.pop("FORMAT") == b"1\n", start
        assert after == before, f"{start} start: a format 1 file was rewritten"


@pytest.mark.parametrize("version", ["2", "99999999999999999999"])
def test_a_newer_format_is_refused_with_one_line_before_anything_is_read_or_cut(tmp_path: Path,
                                                                                  version: str) -> None:
    data = copy_fixture(tmp_path)
    wal = data / "wal"
    (wal / "FORMAT").write_text(f"{version}\n")
    segment = next(wal.glob("wal-*.log"))
    segment.write_bytes(segment.read_bytes() + b"\x00torn")  # a format 1 start would cut this tail ...
    (wal / "snap-locks-00000000000000000009.snap.tmp").write_bytes(b"half")  # ... and delete this
    before = files(wal)
    line = assert_one_line(serve("--data-dir", str(data), "--port", "0"), 1,
                           f"data_dir {data}", f"data format {version} is newer than this lockstore supports",
                           f"(data format {FORMAT_VERSION} and older)")
    assert str(wal / "FORMAT") in line
    assert files(wal) == before


@pytest.mark.parametrize("content", [b"", b"\n", b"banana\n", b"0\n", b"-1\n", b" 1\n", b"1.0\n", b"\xff\xfe1\n",
                                     b"\xd9\xa1\n", b"1" * 40, b"1\n\n"])
def test_a_format_file_without_a_version_is_refused_not_guessed(tmp_path: Path, content: bytes) -> None:
    data = copy_fixture(tmp_path)
    (data / "wal" / "FORMAT").write_bytes(content)
    before = files(data / "wal")
    assert_one_line(serve("--data-dir", str(data), "--port", "0"), 1, f"data_dir {data}",
                    "holds no data format version", "does not guess")
    assert files(data / "wal") == before


def test_check_and_dump_report_the_format(tmp_path: Path) -> None:
    data = copy_fixture(tmp_path)
    checked = lockstore("check", "--data-dir", str(data))
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.splitlines()[1] == "  data format 1 (no FORMAT file: written by lockstore 0.1.0, or new)"
    dumped = lockstore("dump", "--data-dir", str(data))
    assert dumped.returncode == 0 and dumped.stderr == "", dumped.stderr
    rows = [json.loads(line) for line in dumped.stdout.splitlines()]
    assert rows[0] == {"kind": "format", "version": 1, "file": None}
    assert [row["kind"] for row in rows[1:]] == ["snapshot"] * 7 + ["log"] * 6
    assert not (data / "wal" / "FORMAT").exists()  # check and dump change nothing

    (data / "wal" / "FORMAT").write_text("1\n")
    assert lockstore("check", "--data-dir", str(data)).stdout.splitlines()[1] == "  data format 1 (FORMAT)"
    first = lockstore("dump", "--data-dir", str(data)).stdout.splitlines()[0]
    assert json.loads(first) == {"kind": "format", "version": 1, "file": "FORMAT"}


def test_check_repair_and_dump_refuse_a_newer_format(tmp_path: Path) -> None:
    data = copy_fixture(tmp_path)
    wal = data / "wal"
    (wal / "FORMAT").write_text("2\n")
    segment = next(wal.glob("wal-*.log"))
    segment.write_bytes(segment.read_bytes()[:-3])  # what format 1 would call a torn tail, and cut
    before = files(wal)
    for args in (["check"], ["check", "--repair"]):
        result = lockstore(*args, "--data-dir", str(data))
        assert result.returncode == 1, result
        assert "data format 2 is newer than this lockstore supports" in result.stdout
        assert result.stdout.splitlines()[-1] == "NOT INSPECTED (see above)"
    dumped = lockstore("dump", "--data-dir", str(data))
    assert dumped.returncode == 1 and dumped.stdout == ""
    assert len(dumped.stderr.splitlines()) == 1 and "data format 2 is newer" in dumped.stderr
    assert files(wal) == before
    assert not list(tmp_path.glob("data/wal-backup-*"))


def test_version_names_the_package_and_the_data_format() -> None:
    result = lockstore("--version")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"lockstore {importlib.metadata.version('lockstore')} (data format {FORMAT_VERSION})\n"
