"""A client that stops reading in the middle of a response, with no shutdown to end it: the real service
in-process, its no-progress write deadline shortened from 30 s to 1 s so that the test is quick.
"""

from __future__ import annotations

import time
from functools import partial

import httpx
import pytest
import trio

from tests.integration.conftest import Service
from tests.integration.raw_http import BUNDLE, read_to_close, stalled_h1_download
from tests.integration.test_robustness import server_side_states
from transports import service as composition
from transports.http import hypercorn_server
from transports.http.connection import ServerLimits


@pytest.fixture(autouse=True)
def short_write_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both servers' no-progress write deadline: 1 s (before the service fixture starts the server)."""
    monkeypatch.setattr(hypercorn_server, "SEND_STALL_TIMEOUT", 1.0)
    monkeypatch.setattr(composition, "ServerLimits", partial(ServerLimits, send_stall_timeout=1.0))


async def test_a_client_that_accepts_nothing_is_disconnected(service: Service) -> None:
    host, port = service.url.removeprefix("http://").rsplit(":", 1)
    stalled = await stalled_h1_download(host, int(port), None)
    began = time.monotonic()
    with trio.fail_after(10):
        while server_side_states(int(port))["ESTABLISHED"]:
            await trio.sleep(0.05)  # the kernel has no event to wait for
    took = time.monotonic() - began
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        full = len((await client.get(BUNDLE)).content)  # others are served as before
    with trio.fail_after(10):
        rest = await read_to_close(stalled)  # what the kernel had queued, then the end
    await stalled.aclose()
    assert 0.3 < took < 5, f"dropped after {took:.1f} s"
    assert 65536 + len(rest) < full, "the stalled client received the whole response"
