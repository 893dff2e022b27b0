"""The real service in-process on a loopback port — with each HTTP server in turn (`http_server`: the native
one, the default, and hypercorn), so every HTTP test runs against both — the real log on disk in tmp_path,
and a manual clock so that expiry can be tested without sleeping. Modules marked `backends("local", "etcd")`
run their tests on the real etcd cluster too (tests/backends.py), with the native server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.clock import ManualClock
from tests.backends import backend_settings
from transports.config.settings import Settings
from transports.service import RunningService, run_service

SYSOP = {"Authorization": "Bearer SYSTEM//Sysop"}
HTTP_SERVERS = ("native", "hypercorn")
LOCK = "/serviceorchestration/orchestration/mgmt/lock"
STORE = "/serviceorchestration/orchestration/mgmt/simple-store"


@dataclass
class Service:
    url: str
    clock: ManualClock
    running: RunningService
    client: httpx.AsyncClient
    data_dir: Path
    http_server: str
    backend: dict[str, Any] = field(default_factory=dict)  # the settings of its state backend (etcd: endpoints, prefix)

    async def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return await self.client.post(path, json=body, headers=SYSOP if headers is None else headers, **kw)

    async def put(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.put(path, json=body, headers=SYSOP if headers is None else headers)

    async def delete(self, path: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return await self.client.delete(path, headers=SYSOP if headers is None else headers, **kw)


def future(seconds: int = 3600, clock: ManualClock | None = None) -> str:
    now = clock.now() if clock else time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(now) + seconds))


async def start_service(nursery: trio.Nursery, data_dir: Path, clock: ManualClock, **settings: Any) -> RunningService:
    config = Settings(host="127.0.0.1", port=0, data_dir=str(data_dir), **settings)
    running: RunningService = await nursery.start(partial(run_service, config, clock=clock, handle_signals=False))
    return running


@pytest.fixture(scope="module", params=HTTP_SERVERS)
def http_server(request: pytest.FixtureRequest) -> str:
    """The HTTP server the service runs with (setting `http_server`); tests using it run once with each."""
    server: str = request.param
    return server


# What only one server does (HTTP/2 is hypercorn's): `@hypercorn_only` on the test.
hypercorn_only = pytest.mark.parametrize("http_server", ["hypercorn"], indirect=True)
native_only = pytest.mark.parametrize("http_server", ["native"], indirect=True)


@pytest.fixture
async def service(tmp_path: Path, nursery: trio.Nursery, request: pytest.FixtureRequest,
                  backend: str, http_server: str) -> AsyncIterator[Service]:
    marker = request.node.get_closest_marker("settings")
    overrides = {"http_server": http_server, **(marker.kwargs if marker else {})}
    clock = ManualClock(start=float(int(time.time())))
    state = backend_settings(backend, request)
    running = await start_service(nursery, tmp_path / "data", clock, **state, **overrides)
    async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=10.0) as client:
        yield Service(running.http_urls[0], clock, running, client, tmp_path / "data", http_server, state)
    running.shutdown.set()
