"""RFC 9112 at the native server's edge, each rule against the real service on a socket: framing refusals
answered and closed, chunked bodies, `Expect: 100-continue`, Host, HTTP/1.0, CONNECT and absolute-form,
pipelining in order, request ids that cannot inject a header, deadlines (slowloris, stalled bodies, idle
keep-alive), the connection limit, and shutdown with all of these in the air.

Where hypercorn keeps the same rule the test runs against both servers (`http_server`); what only the native
server does (its Arrowhead bodies for refusals, the 100-continue rule, HTTP/1.0 keep-alive) is `native_only`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.clock import ManualClock
from tests.integration.conftest import LOCK, Service, native_only, start_service
from tests.integration.raw_http import (
    RawResponse,
    answered_then_closed,
    parse_responses,
    read_responses,
    read_to_close,
)
from transports import service as composition
from transports.http.connection import ServerLimits
from transports.service import RunningService

AUTH = b"Authorization: Bearer SYSTEM//Sysop\r\n"
ECHO = b"GET /serviceorchestration/monitor/echo HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n"
CREATE = f"{LOCK}/create".encode()
QUERY = f"{LOCK}/query".encode()


def lock_body(instance: str) -> bytes:
    return json.dumps({"locks": [{"serviceInstanceId": f"{instance}|svc|1.0.0", "owner": "Edge",
                                  "expiresAt": "2999-01-01T00:00:00Z"}]}).encode()


def post(path: bytes, body: bytes, *extra: bytes, length: bool = True) -> bytes:
    head = b"POST " + path + b" HTTP/1.1\r\nHost: t\r\n" + AUTH + b"Content-Type: application/json\r\n"
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"".join(line + b"\r\n" for line in extra) + b"\r\n" + body


async def connect(service: Service) -> trio.SocketStream:
    host, port = service.url.removeprefix("http://").rsplit(":", 1)
    return await trio.open_tcp_stream(host, int(port))


async def closed_by_server(stream: trio.SocketStream, within: float = 5.0) -> bool:
    with trio.move_on_after(within):
        return await read_to_close(stream) == b""
    return False


def arrowhead_error(response: RawResponse, status: int, message: str) -> None:
    assert response.status == status, response
    assert response.header("content-type") == "application/json"
    body = json.loads(response.body)
    assert (body["errorCode"], body["errorMessage"], body["exceptionType"]) == (status, message, "INVALID_PARAMETER")


async def lock_exists(service: Service, instance: str) -> bool:
    response = await service.post(f"{LOCK}/query", {"serviceInstanceIds": [f"{instance}|svc|1.0.0"]})
    return bool(response.json()["count"])


# ------------------------------------------------------------------------------------------- framing


@native_only
@pytest.mark.parametrize(("data", "reason"), [
    (post(CREATE, b"{}", b"Content-Length: 2"), "Duplicate Content-Length"),
    (post(CREATE, b"{}", b"Content-Length: 2x", length=False), "Invalid character in Content-Length"),
    (post(CREATE, b"zz\r\n{}\r\n0\r\n\r\n", b"Transfer-Encoding: chunked", length=False), "Invalid character in chunk size"),
    (post(CREATE, b"2\r\n{}X0\r\n\r\n", b"Transfer-Encoding: chunked", length=False), "Expected LF after chunk data"),
    (b"GET /health/live HTTP/1.1\nHost: t\n\n", "Expected CRLF after version"),
    (b"GET /health/live HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", "Missing expected CR after header value"),
    (b"GET /health/live HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n", "Unexpected whitespace after header value"),
], ids=["duplicate-length", "malformed-length", "bad-chunk-size", "bad-chunk-end", "bare-LF", "bare-LF-header",
        "obs-fold"])
async def test_malformed_framing_is_a_400_then_close(service: Service, data: bytes, reason: str) -> None:
    stream = await connect(service)
    async with stream:
        responses = await answered_then_closed(stream, data + ECHO)  # the request behind it is never read
    assert len(responses) == 1, responses
    arrowhead_error(responses[0], 400, f"Malformed HTTP request: {reason}")
    assert responses[0].header("connection") == "close"
    assert not await lock_exists(service, "x")


async def test_chunked_bodies_work(service: Service) -> None:
    body = lock_body("Chunked")
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (body[:10], body[10:30], body[30:]))
    stream = await connect(service)
    async with stream:
        await stream.send_all(post(CREATE, chunked + b"0\r\n\r\n", b"Transfer-Encoding: chunked", length=False)
                              + post(QUERY, b'{"owners":["Edge"]}'))
        created, queried = await read_responses(stream, 2)
    assert created.status == 201 and json.loads(created.body)["entries"][0]["owner"] == "Edge"
    assert queried.status == 200 and json.loads(queried.body)["count"] == 1


async def test_pipelined_requests_are_answered_in_order(service: Service) -> None:
    """Ten requests in one write, API routes and pages of the Quart app mixed: ten answers, in order."""
    requests = []
    for n in range(10):
        if n % 3 == 0:
            requests.append(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Request-ID: r%d\r\n\r\n" % n)
        elif n % 3 == 1:
            requests.append(post(CREATE, lock_body(f"Pipe{n}"), b"X-Request-ID: r%d" % n))
        else:
            requests.append(ECHO.replace(b"\r\n\r\n", b"\r\nX-Request-ID: r%d\r\n\r\n" % n))
    stream = await connect(service)
    async with stream:
        await stream.send_all(b"".join(requests))
        with trio.fail_after(10):
            answers = await read_responses(stream, 10)
    assert [answer.header("x-request-id") for answer in answers] == [f"r{n}" for n in range(10)]
    assert [answer.status for answer in answers] == [[200, 201, 200][n % 3] for n in range(10)]


@pytest.mark.parametrize(("host", "reason"), [(b"", "Request has no Host header"),
                                              (b"Host: a\r\nHost: b\r\n", "Request has more than one Host header")],
                         ids=["missing", "duplicate"])
async def test_http_1_1_needs_exactly_one_host(service: Service, host: bytes, reason: str) -> None:
    stream = await connect(service)
    async with stream:
        responses = await answered_then_closed(stream, b"GET /health/live HTTP/1.1\r\n" + host + b"\r\n")
    assert [response.status for response in responses] == [400]
    if service.http_server == "native":
        arrowhead_error(responses[0], 400, reason)


async def test_http_1_0_closes_after_its_answer(service: Service) -> None:
    stream = await connect(service)
    async with stream:
        responses = await answered_then_closed(stream, b"GET /health/live HTTP/1.0\r\n\r\n")
    assert [response.status for response in responses] == [200]
    assert (responses[0].header("connection") or "").lower() == "close"


@native_only
async def test_http_1_0_keeps_its_connection_when_it_asks(service: Service) -> None:
    stream = await connect(service)
    async with stream:
        request = b"GET /health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        await stream.send_all(request)
        (first,) = await read_responses(stream, 1)
        assert first.status == 200 and first.header("connection") == "keep-alive"
        await stream.send_all(request)
        (second,) = await read_responses(stream, 1)
        assert second.status == 200


@native_only
async def test_connect_is_a_405_then_close(service: Service) -> None:
    """This is not a proxy: CONNECT is refused, and the bytes after its head (tunnel data) are not read."""
    stream = await connect(service)
    async with stream:
        responses = await answered_then_closed(stream, b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"
                                               b"\x16\x03\x01\x00\x05hello" + ECHO)
    assert len(responses) == 1
    arrowhead_error(responses[0], 405, "Request method 'CONNECT' is not supported")


async def test_absolute_form_targets_are_served_by_their_path(service: Service) -> None:
    stream = await connect(service)
    async with stream:
        await stream.send_all(b"GET http://t/health/live HTTP/1.1\r\nHost: t\r\n\r\n"
                              b"GET http://t/serviceorchestration/monitor/echo HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n")
        live, echo = await read_responses(stream, 2)
    assert (live.status, json.loads(live.body)) == (200, {"status": "UP"})
    assert (echo.status, echo.body) == (200, b"Got it!")


@native_only
async def test_a_head_over_16_kib_is_a_431_with_an_arrowhead_body(service: Service) -> None:
    target = f"{LOCK}/remove/O?".encode() + b"&".join(b"instanceIds=A%d%%7Csvc%%7C1" % i for i in range(2000))
    stream = await connect(service)
    async with stream:
        responses = await answered_then_closed(stream, b"DELETE " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert len(responses) == 1
    arrowhead_error(responses[0], 431, "Request header fields are too large (the maximum is 16384 bytes)")


@native_only
async def test_an_upgrade_request_is_served_as_http_1_1(service: Service) -> None:
    """`Upgrade: h2c` (curl --http2 on an http:// URL) is ignored: the request is answered as HTTP/1.1, its
    body read, and the connection carries on."""
    stream = await connect(service)
    async with stream:
        await stream.send_all(post(CREATE, lock_body("Upgraded"), b"Connection: Upgrade, HTTP2-Settings",
                                   b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABkAAQAAP__") + ECHO)
        created, echo = await read_responses(stream, 2)
    assert created.status == 201 and echo.body == b"Got it!"
    assert await lock_exists(service, "Upgraded")


async def test_request_ids_are_sane_or_replaced(service: Service) -> None:
    """The client's X-Request-ID comes back only when it is sane; anything else (spaces, tabs, bytes beyond
    ASCII, a value meant to add a header) gets a new id, and no response ever carries a second header."""
    stream = await connect(service)
    async with stream:
        for sent in (b"proxy-id_1.2:3@x/y+z=", b"a b", b"tab\there", b"caf\xc3\xa9", b"x" * 200, b"id%0d%0aSet-Cookie:x"):
            await stream.send_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Request-ID: " + sent + b"\r\n\r\n")
            (response,) = await read_responses(stream, 1)
            returned = response.header("x-request-id")
            assert returned is not None and response.header("set-cookie") is None
            assert returned == sent.decode() if sent.startswith(b"proxy-id") else returned != sent.decode("latin-1")


# ------------------------------------------------------------------------------------------- 100-continue


@native_only
async def test_100_continue_is_sent_when_the_handler_reads_the_body(service: Service) -> None:
    body = lock_body("Continued")
    stream = await connect(service)
    async with stream:
        await stream.send_all(post(CREATE, b"", b"Expect: 100-continue").replace(b"Content-Length: 0",
                                                                                  b"Content-Length: %d" % len(body)))
        with trio.fail_after(5):
            interim = await stream.receive_some(4096)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await stream.send_all(body + ECHO)
        created, echo = await read_responses(stream, 2)  # and the connection carries on
    assert created.status == 201 and echo.status == 200


@native_only
@pytest.mark.parametrize(("auth", "length", "status"), [(b"", 20, 401), (AUTH, 2 << 20, 413)],
                         ids=["unauthenticated", "declared-too-large"])
async def test_no_100_continue_when_the_answer_needs_no_body(service: Service, auth: bytes, length: int,
                                                            status: int) -> None:
    """Refused before its body is read: no 100, a final answer with `connection: close` (the client may still
    send the body, or never: the connection cannot tell a next request from it), and the close."""
    head = (b"POST " + CREATE + b" HTTP/1.1\r\nHost: t\r\n" + auth + b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % length)
    stream = await connect(service)
    async with stream:
        responses = await answered_then_closed(stream, head)
    assert [(r.status, r.header("connection")) for r in responses] == [(status, "close")]


# ------------------------------------------------------------------------------------------- deadlines and limits


@asynccontextmanager
async def native_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_connections: int = 1024,
                      **limits: Any) -> AsyncIterator[RunningService]:
    """The real service on the native server, with shortened deadlines or a small connection limit."""
    monkeypatch.setattr(composition, "ServerLimits", partial(ServerLimits, **limits))
    async with trio.open_nursery() as nursery:
        clock = ManualClock(start=float(int(time.time())))
        running = await start_service(nursery, tmp_path / "data", clock, http_server="native",
                                      http_max_connections=max_connections)
        try:
            yield running
        finally:
            running.shutdown.set()


async def open_to(running: RunningService) -> trio.SocketStream:
    host, port = running.http_urls[0].removeprefix("http://").rsplit(":", 1)
    return await trio.open_tcp_stream(host, int(port))


async def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    began = time.monotonic()
    result = await action()
    return result, time.monotonic() - began


async def test_slowloris_heads_and_stalled_bodies_are_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A head dribbled a byte at a time gets a 408 at the head deadline; a body that stops arriving gets a
    408 at the body deadline; a connection that sends nothing is closed. Others are served meanwhile."""
    async with native_with(tmp_path, monkeypatch, head_timeout=0.6, body_timeout=0.6) as running:
        silent = await open_to(running)
        dribbler = await open_to(running)
        stalled = await open_to(running)
        await stalled.send_all(post(CREATE, lock_body("Stalled"))[:-10])  # all but the last 10 bytes of body

        async def dribble() -> list[RawResponse]:
            for byte in b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 100:
                try:
                    await dribbler.send_all(bytes([byte]))
                except trio.BrokenResourceError:
                    break
                await trio.sleep(0.05)
            return parse_responses(await read_to_close(dribbler))

        async with trio.open_nursery() as nursery:
            results: dict[str, Any] = {}

            async def run(name: str, action: Callable[[], Any]) -> None:
                results[name] = await timed(action)

            nursery.start_soon(run, "dribbler", dribble)
            nursery.start_soon(run, "stalled", lambda: answered_then_closed(stalled, b"", within=5))
            nursery.start_soon(run, "silent", lambda: closed_by_server(silent))
            other = await open_to(running)
            await other.send_all(ECHO)
            assert (await read_responses(other, 1))[0].status == 200  # served meanwhile
        (responses, took) = results["dribbler"]
        assert [r.status for r in responses] == [408] and 0.5 < took < 3, (responses, took)
        arrowhead = json.loads(responses[0].body)
        assert arrowhead["errorMessage"] == "Request head not received in time"
        (responses, took) = results["stalled"]
        assert [r.status for r in responses] == [408] and took < 3
        assert json.loads(responses[0].body)["errorMessage"] == "Request body not received in time"
        assert results["silent"][0] is True and results["silent"][1] < 3
        for stream in (silent, dribbler, stalled, other):
            await stream.aclose()


async def test_idle_keep_alive_connections_are_closed_after_the_timeout(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    async with native_with(tmp_path, monkeypatch, keep_alive_timeout=0.5) as running:
        stream = await open_to(running)
        async with stream:
            await stream.send_all(ECHO)
            assert (await read_responses(stream, 1))[0].status == 200
            began = time.monotonic()
            assert await closed_by_server(stream, within=5)
            assert 0.4 < time.monotonic() - began < 3


async def test_the_connection_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the limit the longest-idle connection makes room for a new one; when every connection is busy, a
    new client waits (not refused, not dropped) until one is free."""
    async with native_with(tmp_path, monkeypatch, max_connections=3, body_timeout=10) as running:
        idle = []
        for _ in range(3):
            stream = await open_to(running)
            await stream.send_all(ECHO)
            assert (await read_responses(stream, 1))[0].status == 200
            idle.append(stream)
        newcomer = await open_to(running)
        await newcomer.send_all(ECHO)
        with trio.fail_after(5):
            assert (await read_responses(newcomer, 1))[0].status == 200
        assert await closed_by_server(idle[0])  # the longest idle went
        for stream in idle[1:]:  # the others still work
            await stream.send_all(ECHO)
            assert (await read_responses(stream, 1))[0].status == 200

        # Now make all three busy: each has sent a create without the end of its body.
        busy = [newcomer, *idle[1:]]
        bodies = [lock_body(f"Busy{n}") for n in range(3)]
        for stream, body in zip(busy, bodies, strict=True):
            await stream.send_all(post(CREATE, body)[:-5])
        waiting = await open_to(running)  # the kernel accepts it; the server does not yet
        await waiting.send_all(ECHO)
        with trio.move_on_after(0.5):
            early = await waiting.receive_some(4096)
            raise AssertionError(f"served while every connection was busy: {early!r}")
        await busy[0].send_all(bodies[0][-5:] + b"")  # one finishes ...
        assert (await read_responses(busy[0], 1))[0].status == 201
        await busy[0].aclose()
        with trio.fail_after(5):  # ... and the waiting client is served
            assert (await read_responses(waiting, 1))[0].status == 200
        for stream, body in zip(busy[1:], bodies[1:], strict=True):
            await stream.send_all(body[-5:])
            assert (await read_responses(stream, 1))[0].status == 201
            await stream.aclose()
        await waiting.aclose()
        for stream in idle[:1]:
            await stream.aclose()


async def test_shutdown_closes_idle_and_slow_clients_at_once_and_stalled_bodies_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At shutdown: idle keep-alive and half-sent heads close at once (no request was read); a request whose
    body stopped arriving is in flight, so it is given the grace period, then closed hard. Nothing waits
    for a deadline of 30 s."""
    async with native_with(tmp_path, monkeypatch, graceful_timeout=1.0) as running:
        idle = await open_to(running)
        await idle.send_all(ECHO)
        assert (await read_responses(idle, 1))[0].status == 200
        half_head = await open_to(running)
        await half_head.send_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n")
        stalled = await open_to(running)
        await stalled.send_all(post(CREATE, lock_body("Grace"))[:-5])
        began = time.monotonic()
        running.shutdown.set()
        assert await closed_by_server(idle, within=2) and await closed_by_server(half_head, within=2)
        quick = time.monotonic() - began
        with trio.fail_after(5):
            await read_to_close(stalled)
        took = time.monotonic() - began
        with trio.fail_after(10):
            await running.stopped.wait()
        for stream in (idle, half_head, stalled):
            await stream.aclose()
    assert quick < 0.9, quick  # before the grace period ran out
    assert 0.9 < took < 3, took
