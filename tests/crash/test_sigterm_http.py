"""SIGTERM and HTTP keep-alive clients: the real `lockstore serve`, raw and httpx clients, a restart to read
back what was applied.

What shutdown promises (transports/http/hypercorn_server.py): stop accepting; finish every in-flight request
and deliver its response (HTTP/1.1: with `Connection: close`; HTTP/2: the stream ends, then GOAWAY);
close each connection as soon as its in-flight request is answered and idle ones at once; a request the
server had not read by then is never applied; exit as soon as that is done.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import trio

from tests.crash.service_process import all_locks, drain, start
from tests.integration.raw_http import RawH2, connect, read_to_close, request_head

LOCK = "/serviceorchestration/orchestration/mgmt/lock"
SYSOP = {"Authorization": "Bearer SYSTEM//Sysop"}
PROMPT_EXIT = 2.5  # seconds from SIGTERM to exit; the grace period for stalled clients is 5 s


def create_body(instance: str) -> bytes:
    return json.dumps({"locks": [{"serviceInstanceId": f"{instance}|svc|1.0.0", "owner": "Owner",
                                  "expiresAt": "2999-01-01T00:00:00Z"}]}).encode()


class Stderr:
    """The child's stderr, collected, with a way to wait for a line."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.text = ""
        self._grew = trio.Event()

    async def collect(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.receive_some(65536):
            self.text += chunk.decode(errors="replace")
            self._grew.set()
            self._grew = trio.Event()

    async def wait_for(self, pattern: str) -> None:
        while not re.search(pattern, self.text):
            await self._grew.wait()


async def sigterm_and_wait_until_refusing(process: trio.Process, stderr: Stderr, host: str, port: int) -> float:
    """SIGTERM; returns once the server has stopped accepting (its in-flight requests are still going)."""
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    with trio.fail_after(5):
        await stderr.wait_for("received SIGTERM")
        while True:  # the listener closes a moment after the log line; nothing outside can await that
            try:
                probe = await trio.open_tcp_stream(host, port)
            except OSError:
                return began
            await probe.aclose()
            await trio.sleep(0.005)


async def present_after_restart(data_dir: Path) -> set[str]:
    """The service instance ids of the locks the log holds, read through a restarted service."""
    process, url = await start(data_dir, "--no-access-log")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, process)
        present = {str(lock["serviceInstanceId"]).split("|")[0] for lock in await all_locks(url)}
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await process.wait() == 0
        nursery.cancel_scope.cancel()
    return present


HTTP_SERVERS = ["native", "hypercorn"]


@pytest.mark.parametrize("http_server", HTTP_SERVERS)
async def test_sigterm_finishes_the_in_flight_http1_request_and_closes_at_once(tmp_path: Path, http_server: str) -> None:
    """A request whose body is still arriving at SIGTERM is finished: 201 with `Connection: close`, then the
    connection closes; the next request the client pipelined behind it is never read, so never applied;
    and the process exits without waiting out any timeout (it used to wait 5 s: hypercorn's read loop
    waited for the pipelined request's turn forever)."""
    process, url = await start(tmp_path / "data", "--http-server", http_server)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stderr = Stderr(process)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stderr.collect)
        stream = await connect(host, int(port))
        inflight, pipelined = create_body("Inflight"), create_body("Pipelined")
        head = request_head("POST", f"{LOCK}/create", body_length=len(inflight), extra="Expect: 100-continue\r\n")
        await stream.send_all(head + inflight[:10])
        with trio.fail_after(5):  # the server sends 100 Continue once it has read the head: the request is in flight
            assert (await stream.receive_some(4096)).startswith(b"HTTP/1.1 100 ")
        began = await sigterm_and_wait_until_refusing(process, stderr, host, int(port))
        second = request_head("POST", f"{LOCK}/create", body_length=len(pipelined)) + pipelined
        await stream.send_all(inflight[10:] + second)
        with trio.fail_after(5):
            answer = await read_to_close(stream)
        with trio.fail_after(20):
            code = await process.wait()
        took = time.monotonic() - began
        nursery.cancel_scope.cancel()
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 201 "), answer[:300]
    assert b"\r\nconnection: close" in head_bytes.lower(), head_bytes
    assert json.loads(body)["count"] == 1  # one response, nothing after it
    assert code == 0, stderr.text[-2000:]
    assert took < PROMPT_EXIT, f"SIGTERM → exit took {took:.2f} s"
    assert "finishing 1 busy one(s)" in stderr.text
    assert await present_after_restart(tmp_path / "data") == {"Inflight"}


async def test_sigterm_finishes_the_in_flight_http2_stream_and_refuses_new_ones(tmp_path: Path) -> None:
    """HTTP/2 (h2c): a stream in flight at SIGTERM gets its whole response, END_STREAM included, before the
    server's GOAWAY; a stream opened after SIGTERM (headers and body in one packet) is reset and never
    applied. It used to be GOAWAY first, so the client never saw its (applied) request end; and the body of
    the refused stream stopped the whole process (hypercorn's KeyError). HTTP/2 is hypercorn's only."""
    process, url = await start(tmp_path / "data", "--http-server", "hypercorn")
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stderr = Stderr(process)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stderr.collect)
        client = RawH2(await connect(host, int(port)), f"{host}:{port}")
        await client.start()
        inflight = create_body("Inflight")
        first = await client.request("POST", f"{LOCK}/create", inflight[:10], end=False)
        with trio.fail_after(5):
            await client.ping()  # the server has processed the HEADERS: the stream is in flight
        began = await sigterm_and_wait_until_refusing(process, stderr, host, int(port))
        await client.send_body(first, inflight[10:], flush=False)
        late = await client.request("POST", f"{LOCK}/create", create_body("Late"))  # one packet with the above
        with trio.fail_after(5):
            await client.receive_until_closed()
        with trio.fail_after(20):
            code = await process.wait()
        took = time.monotonic() - began
        nursery.cancel_scope.cancel()
    answered = client.responses[first]
    assert (answered.status, answered.ended, answered.reset) == (201, True, None), answered
    assert json.loads(answered.body)["count"] == 1
    assert client.responses[late].status is None and client.responses[late].reset is not None
    assert client.goaway and client.closed
    assert code == 0, stderr.text[-2000:]
    assert took < PROMPT_EXIT, f"SIGTERM → exit took {took:.2f} s"
    assert await present_after_restart(tmp_path / "data") == {"Inflight"}


async def keep_creating(url: str, name: str, outcomes: dict[str, str], *, http2: bool) -> None:
    """Create one lock per request, each with its own id, until the server is gone."""
    async with httpx.AsyncClient(base_url=url, timeout=10, http1=not http2, http2=http2) as client:
        for n in itertools.count():
            instance = f"{name}N{n}"
            try:
                response = await client.post(f"{LOCK}/create", content=create_body(instance),
                                             headers={**SYSOP, "Content-Type": "application/json"})
            except httpx.ConnectError:
                return  # nobody listens any more; this request was never sent
            except (httpx.TransportError, httpx.ProtocolError) as error:
                outcomes[instance] = type(error).__name__  # no response: the test checks it was not applied
                continue
            assert response.status_code == 201, response.text
            outcomes[instance] = "201"


@pytest.mark.slow
@pytest.mark.parametrize("http_server", HTTP_SERVERS)
async def test_sigterm_with_busy_keep_alive_clients_answers_every_applied_request(tmp_path: Path,
                                                                                  http_server: str) -> None:
    """HTTP/1.1 and HTTP/2 keep-alive clients creating locks in a loop when SIGTERM arrives. Every lock in the
    log after a restart was answered 201, every 201 is in the log, and the process exits at once (it used to
    wait the whole 5 s grace whenever a client's next request was already on the wire, and to lose the
    response of applied HTTP/2 requests)."""
    process, url = await start(tmp_path / "data", "--no-access-log", "--http-server", http_server)
    outcomes: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, process)
        async with trio.open_nursery() as load:
            for n in range(6):
                http2 = http_server == "hypercorn" and n % 2 == 1  # the native server is HTTP/1.1 only
                load.start_soon(lambda n=n, http2=http2: keep_creating(url, f"C{n}", outcomes, http2=http2))
            while Counter(outcomes.values())["201"] < 300:  # under way on every connection
                await trio.sleep(0.05)
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                code = await process.wait()
            took = time.monotonic() - began
            load.cancel_scope.cancel()  # a client may still be finding out that its connection is gone
        nursery.cancel_scope.cancel()
    present = await present_after_restart(tmp_path / "data")
    answered = {instance for instance, outcome in outcomes.items() if outcome == "201"}
    print(f"SIGTERM → exit {took:.3f} s; outcomes {dict(Counter(outcomes.values()))}")
    assert code == 0
    assert took < PROMPT_EXIT, f"SIGTERM → exit took {took:.2f} s with busy keep-alive clients"
    lost = {instance: outcomes.get(instance) for instance in sorted(present - answered)}
    assert not lost, f"applied, but the client got no response: {lost}"
    assert answered - present == set(), f"answered 201 but not in the log: {sorted(answered - present)}"
