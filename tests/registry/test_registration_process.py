"""The real `lockstore serve` process and the ServiceRegistry double: a restart after kill -9 registers cleanly
(the stale system is revoked first), SIGTERM revokes, and a registration that cannot be done stops start-up
with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import trio

from tests.crash.service_process import LOCKSTORE, drain, run_to_exit, start
from tests.registry.sr_double import SrDouble
from tests.registry.test_registration import JOIN, LOCK_ID, NAME, STORE_ID


def ports(sr: SrDouble) -> set[int]:
    return {i["interfaces"][0]["properties"]["accessPort"] for i in sr.services_of(NAME).values()}


async def test_restart_after_kill_9_registers_cleanly(tmp_path: Path, sr: SrDouble) -> None:
    data = tmp_path / "data"
    first, first_url = await start(data, "--service-registry", sr.url, "--service-registry-addresses", "127.0.0.1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, first)
        first_port = int(first_url.rsplit(":", 1)[1])
        assert set(sr.services_of(NAME)) == {LOCK_ID, STORE_ID} and ports(sr) == {first_port}
        first.kill()  # SIGKILL: nothing is revoked
        await first.wait()
    assert ports(sr) == {first_port}  # stale entries
    # The same system cannot simply register again with another address list: the SR refuses that.
    moved = {"metadata": {}, "version": "5.2.0", "addresses": ["localhost"], "deviceName": None}
    refused = httpx.post(f"{sr.url}/serviceregistry/system-discovery/register", json=moved,
                         headers={"Authorization": f"Bearer SYSTEM//{NAME}"})
    assert refused.status_code == 400
    mark = len(sr.requests)
    second, second_url = await start(data, "--service-registry", sr.url, "--service-registry-addresses", "localhost")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, second)
        joined = sr.calls()[mark:]
        assert [(m, p) for m, p, _ in joined] == JOIN
        assert [s for _, _, s in joined] == [200, 200, 201, 200, 201, 201]  # revoke found the stale system
        assert sr.registry.systems[NAME].addresses == [("HOSTNAME", "localhost")]
        assert ports(sr) == {int(second_url.rsplit(":", 1)[1])}
        second.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await second.wait() == 0
    assert sr.services_of(NAME) == {}


def test_an_unreachable_required_registry_stops_start_up_with_one_line(tmp_path: Path, sr: SrDouble) -> None:
    sr.stop()
    result = run_to_exit(tmp_path / "data", "--service-registry", sr.url, "--service-registry-required",
                         "--service-registry-attempts", "2", "--service-registry-retry-interval", "0.1")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"lockstore: refusing to start: service_registry {sr.url}: not reachable after 2 "
                           "attempt(s): POST ")
    assert "Traceback" not in result.stderr


def test_a_bad_registry_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = run_to_exit(tmp_path / "data", "--service-registry", "ftp://sr.example")
    assert result.returncode == 2
    assert result.stderr.strip() == ("lockstore: refusing to start: service_registry 'ftp://sr.example': "
                                     "expected http://host:port or https://host:port")
    assert not (tmp_path / "data").exists()  # refused before the log was opened



async def test_sigterm_while_waiting_for_a_silent_registry_stops_at_once(tmp_path: Path) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    asked = trio.Event()

    async def swallow(stream: trio.SocketStream) -> None:  # takes the request, never answers
        asked.set()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, swallow, listeners)
        for required in ([], ["--service-registry-required"]):
            asked = trio.Event()
            process = await trio.lowlevel.open_process(
                [*LOCKSTORE, "serve", "--port", "0", "--data-dir", str(tmp_path / "data"), "--service-registry",
                 f"http://127.0.0.1:{port}", "--service-registry-timeout", "60", *required],
                stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            with trio.fail_after(20):
                await asked.wait()
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            with trio.fail_after(20):
                assert await process.wait() == 0
            assert time.monotonic() - started < 5, required
        nursery.cancel_scope.cancel()
