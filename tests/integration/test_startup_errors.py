"""Start-up failures through the real command line (`python -m transports.cli serve …` in a subprocess): each
is exactly ONE line on stderr (`lockstore: …`, naming the setting and the cause), never a traceback, with
exit status 2 when the settings are wrong and 1 when the machine refuses valid settings right now.

Cleanest contract: these checks run before anything is logged, so stderr holds that one line and nothing
else. The same for the settings that would break the service at run time (issue 12 item 10), and for
`lockstore dump | head` / `lockstore check | head`, which stop quietly when the reader goes away.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from actors.records import Lock, LocksCreated, encode_event
from tests.integration.live_server import live_server
from wal.log import WriteAheadLog

CLI = [sys.executable, "-m", "transports.cli"]


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "serve", *args], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def assert_one_line(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == status, result.stderr
    assert lines[0].startswith("lockstore: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def listener() -> Iterator[int]:
    """A port some other process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_in_use(tmp_path: Path, listener: int) -> None:
    data = tmp_path / "data"
    assert_one_line(serve("--data-dir", str(data), "--port", str(listener)), 1,
                    f"port {listener}: already in use on 127.0.0.1")
    assert not data.exists()  # checked before the log is opened


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_port_out_of_range(tmp_path: Path, port: str) -> None:
    assert_one_line(serve("--data-dir", str(tmp_path / "data"), "--port", port), 2,
                    f"port = {port}: must be from 0 to 65535")


def test_port_out_of_range_in_the_environment(tmp_path: Path) -> None:
    assert_one_line(serve("--data-dir", str(tmp_path / "data"), env={"LOCKSTORE_PORT": "65536"}), 2,
                    "in the environment", "port = 65536")


def test_unresolvable_host(tmp_path: Path) -> None:
    assert_one_line(serve("--data-dir", str(tmp_path / "data"), "--port", "0", "--host", "no-such-host.invalid"), 2,
                    "host 'no-such-host.invalid': cannot be resolved")


def test_host_that_is_not_an_address_of_this_machine(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to a real interface
    assert_one_line(serve("--data-dir", str(tmp_path / "data"), "--port", "0", "--host", "192.0.2.1"), 2,
                    "host '192.0.2.1': not an address of this machine")


def test_second_instance_on_the_same_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with live_server(data) as first:
        line = assert_one_line(serve("--data-dir", str(data), "--port", "0"), 1,
                               f"data_dir {data}:", "in use by another process")
        assert first.process.poll() is None  # the running one is untouched
    assert "another lockstore" in line


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "data"
    afile.write_text("not a directory")
    assert_one_line(serve("--data-dir", str(afile), "--port", "0"), 2, f"data_dir {afile}: is not a directory")
    assert_one_line(serve("--data-dir", str(afile / "below"), "--port", "0"), 2,
                    f"data_dir {afile / 'below'}: a part of its path is a file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "wal").write_text("")
    assert_one_line(serve("--data-dir", str(tmp_path / "other"), "--port", "0"), 2, "wal is not a directory")


def _unwritable(tmp_path: Path) -> Path:
    """A directory this process cannot create anything in (root ignores file modes; sysfs refuses it too)."""
    if os.geteuid() == 0:
        return Path("/sys")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return locked


def test_data_dir_that_cannot_be_written(tmp_path: Path) -> None:
    parent = _unwritable(tmp_path)
    assert_one_line(serve("--data-dir", str(parent / "lockstore-test-data"), "--port", "0"), 1,
                    "data_dir ", "cannot use it (")
    assert_one_line(serve("--data-dir", str(parent), "--port", "0"), 1, f"data_dir {parent}: cannot use it (")


# Settings that were accepted and broke the service at run time (issue 12 item 10).
BROKEN_SETTINGS = [
    (["--max-page-size", "0"], "max_page_size = 0: must be at least 1"),
    (["--max-batch", "-5"], "max_batch = -5: must be at least 1"),
    (["--mailbox-capacity", "0"], "mailbox_capacity = 0: must be at least 1"),
    (["--segment-bytes", "10"], "segment_bytes = 10: must be at least 4096"),
    (["--mqtt-url", "mqtt://127.0.0.1:1883/lockstore"], "mqtt_url: MQTT broker URL 'mqtt://127.0.0.1:1883/lockstore': "
                                                       "has a path"),
    (["--management-policy", "whitelist"], "management_policy 'whitelist' needs a non-empty management_whitelist"),
    (["--management-policy", "whitelist", "--management-whitelist", " , "], "needs a non-empty management_whitelist"),
    (["--mqtt-topic-prefix", "a/#"], "mqtt_topic_prefix = 'a/#': must not contain the MQTT wildcards"),
    (["--mqtt-keepalive", "0"], "mqtt_keepalive = 0"),
    (["--tls-cert", "server.pem"], "tls_cert and tls_key go together"),
]


@pytest.mark.parametrize(("args", "fragment"), BROKEN_SETTINGS, ids=[" ".join(a) for a, _ in BROKEN_SETTINGS])
def test_settings_that_would_break_the_service_stop_start_up(tmp_path: Path, args: list[str], fragment: str) -> None:
    data = tmp_path / "data"
    assert_one_line(serve("--data-dir", str(data), "--port", "0", *args), 2, "invalid setting", fragment)
    assert not data.exists()


def test_disabled_management_policy_is_logged_as_a_warning(tmp_path: Path) -> None:
    with live_server(tmp_path / "data", "--management-policy", "disabled") as server:
        warnings = [line for line in server.lines if "level=WARNING" in line and "management_policy" in line]
    assert len(warnings) == 1 and "anybody" in warnings[0], server.log_text()


# ------------------------------------------------------------------------------ dump | head, check | head


@pytest.fixture(scope="module")
def big_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Several MiB of `dump` output and hundreds of segments for `check` (far beyond a pipe's buffer)."""
    data = tmp_path_factory.mktemp("big") / "data"

    async def write() -> None:
        wal, _ = WriteAheadLog.open(data / "wal", fsync=False, segment_bytes=4096)
        async with trio.open_nursery() as nursery:
            await nursery.start(wal.run)
            for n in range(1, 2001):
                lock = Lock(n, f"Provider{n}|svc|1.0.0", "Owner" + "x" * 1000, 4_000_000_000)
                await wal.wait_durable(wal.append(encode_event(LocksCreated((lock,)))))
            await wal.aclose()

    trio.run(write)
    return data


@pytest.mark.parametrize("command", ["dump", "check"])
def test_output_into_a_pipe_that_closes_early(big_data_dir: Path, command: str) -> None:
    """`lockstore dump | head -1`: the reader goes away after one line; no BrokenPipe traceback."""
    process = subprocess.Popen([*CLI, command, "--data-dir", str(big_data_dir)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # as head does after its lines
    stderr = process.stderr.read().decode()
    status = process.wait(timeout=60)
    assert first.startswith(b"{" if command == "dump" else b"log directory"), first
    assert stderr == "", stderr
    assert status == 1  # the output was cut short


@pytest.mark.parametrize("command", ["dump", "check"])
def test_output_into_a_pipe_that_reads_everything(big_data_dir: Path, command: str) -> None:
    result = subprocess.run([*CLI, command, "--data-dir", str(big_data_dir)], capture_output=True, timeout=60,
                            check=False)
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 2000 if command == "dump" else lines[-1] == b"everything intact"
