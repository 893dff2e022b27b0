"""A ServiceRegistry that misbehaves (garbage, oversized answers, redirects, silence) hurts nothing: the
service keeps serving, `/health/ready` says why it is not registered, and it registers once the registry
behaves; shutdown never waits long for a registry that does not answer."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest
import trio

from tests.integration.conftest import SYSOP
from tests.registry.sr_double import SrDouble
from tests.registry.test_registration import LOCK_BASE, NAME, ready, registration, start, stop
from transports.service_registry import lifecycle


@pytest.mark.parametrize(("answer", "reason"), [
    ((200, b"<html>hello</html>"), "lookup of systemDiscovery: the lookup answer is not a service list"),
    ((200, b'{"entries": [], "count": 0}'), "lookup of systemDiscovery: the lookup found no generic_http interface"),
    ((200, b"[" * (2 << 20)), "answer longer than 1048576 bytes"),
    ((302, b""), "lookup of systemDiscovery answered 302"),
    ((503, b'{"errorMessage": "Database operation error"}'), "failed with 503: Database operation error"),
    ((404, b"<html>no</html>"), "refused with 404: <html>no</html>"),
])
async def test_a_misbehaving_registry_is_reported_and_retried(tmp_path: Path, nursery: trio.Nursery, sr: SrDouble,
                                                              answer: tuple[int, bytes], reason: str) -> None:
    sr.override = lambda method, path: answer if path.endswith("/lookup") else None
    running = await start(nursery, tmp_path, sr, service_registry_retry_interval=0.1)
    status, checks = await ready(running)
    assert status == 503
    assert reason in checks["service_registry"]["detail"]
    async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=10) as client:
        assert (await client.post(f"{LOCK_BASE}/query", json={}, headers=SYSOP)).status_code == 200
    sr.override = None
    with trio.fail_after(20):
        await registration(running).joined.wait()
    assert len(sr.services_of(NAME)) == 2
    await stop(running)


def lookup_pointing_at(address: str, base_path: str = "/serviceregistry/system-discovery") -> bytes:
    return json.dumps({"entries": [{"interfaces": [{"templateName": "generic_http", "properties": {
        "accessAddresses": [address], "accessPort": 8443, "basePath": base_path, "operations": {
            "revoke": {"path": "/revoke", "method": "DELETE"}, "register": {"path": "/register", "method": "POST"}}}}]}],
        "count": 1}).encode()


@pytest.mark.parametrize("answer", [lookup_pointing_at("zz:zz"), lookup_pointing_at("sr\u0000.example"),
                                    lookup_pointing_at("sr.example", "/x\u007f")])
async def test_a_lookup_pointing_at_an_impossible_url_is_reported(tmp_path: Path, nursery: trio.Nursery,
                                                                  sr: SrDouble, answer: bytes) -> None:
    sr.override = lambda method, path: (200, answer) if path.endswith("/lookup") else None
    running = await start(nursery, tmp_path, sr, service_registry_retry_interval=30)
    status, checks = await ready(running)
    assert status == 503
    assert "not a usable URL" in checks["service_registry"]["detail"]
    await stop(running)


async def test_a_silent_registry_times_out(tmp_path: Path, nursery: trio.Nursery) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    accepted: list[trio.SocketStream] = []

    async def swallow(stream: trio.SocketStream) -> None:  # read nothing, answer nothing
        accepted.append(stream)
        await trio.sleep_forever()

    nursery.start_soon(trio.serve_listeners, swallow, listeners)
    running = await start(nursery, tmp_path, f"http://127.0.0.1:{port}", service_registry_timeout=0.3,
                          service_registry_retry_interval=30)
    status, checks = await ready(running)
    assert status == 503
    assert checks["service_registry"]["detail"].startswith(
        f"not registered in http://127.0.0.1:{port}: POST http://127.0.0.1:{port}/serviceregistry/service-discovery/"
        "lookup: no answer within 0.3 s")
    assert accepted
    await stop(running)


async def test_shutdown_does_not_wait_long_for_a_registry_that_stopped_answering(
        tmp_path: Path, nursery: trio.Nursery, sr: SrDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "LEAVE_SECONDS", 0.5)
    running = await start(nursery, tmp_path, sr)
    release = threading.Event()
    sr.before = lambda method, path, body: release.wait(30) if "/revoke/" in path else None
    try:
        started = time.monotonic()
        await stop(running)
        assert time.monotonic() - started < 5
    finally:
        release.set()


async def test_a_long_outage_is_one_warning_not_one_per_retry(tmp_path: Path, nursery: trio.Nursery, sr: SrDouble,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    sr.override = lambda method, path: (503, b'{"errorMessage": "starting up"}') if path.endswith("/lookup") else None
    with caplog.at_level(logging.DEBUG, logger="lockstore.registry"):
        running = await start(nursery, tmp_path, sr, service_registry_retry_interval=0.05)
        await trio.to_thread.run_sync(lambda: sr.wait_for(lambda double: len(double.calls()) >= 5))
        sr.override = lambda method, path: (503, b'{"errorMessage": "still starting"}') if path.endswith(
            "/lookup") else None
        await trio.to_thread.run_sync(lambda: sr.wait_for(lambda double: len(double.calls()) >= 8))
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "lockstore.registry" and r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # one per reason
    assert "failed with 503: starting up" in warnings[0] and "failed with 503: still starting" in warnings[1]
    await stop(running)
