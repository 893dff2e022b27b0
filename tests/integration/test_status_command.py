"""`lockstore status` through the real command line against the real service: a service that requires
client certificates (`--cert`/`--key`), and `--wait` until a service is ready or the time is up."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import trio

from actors.clock import ManualClock
from tests.certs import CertSet, make_cert_set
from tests.integration.conftest import start_service
from transports.config.settings import Settings
from transports.service import RunningService, run_service

STATUS = [sys.executable, "-m", "transports.cli", "status"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_cert_set(tmp_path_factory.mktemp("certs"))


async def status(*args: str) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[bytes] = await trio.run_process(
        [*STATUS, *args], capture_stdout=True, capture_stderr=True, check=False, stdin=subprocess.DEVNULL)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_status_presents_a_client_certificate_to_a_service_that_requires_one(
        tmp_path: Path, nursery: trio.Nursery, certs: CertSet) -> None:
    running = await start_service(
        nursery, tmp_path / "data", ManualClock(start=float(int(time.time()))), tls_cert=str(certs.server.cert),
        tls_key=str(certs.server.key), tls_ca=str(certs.ca), tls_client_auth="required")
    url = running.http_urls[0].replace("http://", "https://")
    assert url.startswith("https://127.0.0.1:")

    refused = await status("--url", url, "--cafile", str(certs.ca))
    assert refused.returncode == 2 and refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1 and "Traceback" not in refused.stderr
    assert "does not answer" in refused.stderr and "give --cert and --key" in refused.stderr

    answered = await status("--url", url, "--cafile", str(certs.ca), "--cert", str(certs.operator.cert),
                            "--key", str(certs.operator.key))
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.startswith("lockstore ") and f"at {url}: READY" in answered.stdout.splitlines()[0]

    stranger = await status("--url", url, "--cafile", str(certs.ca), "--cert", str(certs.stranger.cert),
                            "--key", str(certs.stranger.key))  # a certificate from another CA: the handshake fails
    assert stranger.returncode == 2 and "does not answer" in stranger.stderr
    assert "give --cert" not in stranger.stderr  # it did give one
    running.shutdown.set()


async def test_wait_until_a_service_started_later_is_ready(tmp_path: Path, nursery: trio.Nursery) -> None:
    port = free_port()
    started = time.monotonic()
    waiting = trio.Event()
    result: list[subprocess.CompletedProcess[str]] = []

    async def run_status() -> None:
        waiting.set()
        result.append(await status("--url", f"http://127.0.0.1:{port}", "--wait", "60"))

    nursery.start_soon(run_status)
    await waiting.wait()
    # The command gives no sign while it waits: give it time to find nothing listening (it would exit 2
    # at once without --wait), then start the service on its port.
    await trio.sleep(1.0)
    assert not result
    settings = Settings(host="127.0.0.1", port=port, data_dir=str(tmp_path / "data"))
    running: RunningService = await nursery.start(partial(run_service, settings, handle_signals=False))
    with trio.fail_after(30):
        while not result:
            await trio.sleep(0.05)
    [done] = result
    assert done.returncode == 0, done.stderr
    assert f"at http://127.0.0.1:{port}: READY" in done.stdout.splitlines()[0]
    assert time.monotonic() - started >= 1.0
    running.shutdown.set()


async def test_wait_ends_with_not_ready_when_the_time_is_up(tmp_path: Path, nursery: trio.Nursery) -> None:
    # MQTT configured towards a port where no broker listens: HTTP answers, /health/ready says 503.
    running = await start_service(nursery, tmp_path / "data", ManualClock(start=float(int(time.time()))),
                                  mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    before = time.monotonic()
    result = await status("--url", running.http_urls[0], "--wait", "1.5")
    assert result.returncode == 1, result.stderr
    assert "NOT READY" in result.stdout.splitlines()[0] and "mqtt DOWN" in result.stdout
    assert time.monotonic() - before >= 1.5
    running.shutdown.set()


async def test_wait_ends_with_not_answering_when_nothing_listens() -> None:
    before = time.monotonic()
    result = await status("--url", f"http://127.0.0.1:{free_port()}", "--wait", "1")
    assert result.returncode == 2 and result.stdout == ""
    assert "does not answer" in result.stderr and "(waited 1 s)" in result.stderr
    assert 1.0 <= time.monotonic() - before < 30


async def test_without_wait_a_service_that_is_not_there_is_reported_at_once() -> None:
    result = await status("--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2 and "does not answer" in result.stderr and "waited" not in result.stderr
