"""The native server's I/O pieces on a socket pair, and its in-process ASGI bridge on tiny ASGI apps
(transports/http/byte_streams.py, transports/http/asgi_bridge.py)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from transports.http.asgi_bridge import IncompleteResponse, Lifespan, call
from transports.http.byte_streams import PlainSocket, StreamClosed

Message = dict[str, Any]


def pair() -> tuple[PlainSocket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    return PlainSocket(ours), theirs


async def test_receive_gives_what_is_there_then_the_end() -> None:
    stream, peer = pair()
    peer.sendall(b"hello")
    assert await stream.receive(trio.current_time() + 5) == b"hello"
    peer.shutdown(socket.SHUT_WR)
    assert await stream.receive(trio.current_time() + 5) == b""
    stream.abort()
    peer.close()


async def test_receive_waits_until_its_deadline_and_no_longer() -> None:
    stream, peer = pair()
    began = trio.current_time()
    assert await stream.receive(began + 0.2) is None
    assert 0.2 <= trio.current_time() - began < 2
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: trio.to_thread.run_sync(peer.sendall, b"late"))
        assert await stream.receive(trio.current_time() + 5) == b"late"
    stream.abort()
    peer.close()


async def test_abort_wakes_a_waiting_receive() -> None:
    stream, peer = pair()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            outcome: list[BaseException] = []

            async def wait() -> None:
                try:
                    await stream.receive(trio.current_time() + 60)
                except StreamClosed as error:
                    outcome.append(error)

            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            stream.abort()
    assert outcome and stream.closed
    peer.close()


async def test_a_peer_that_reads_nothing_makes_a_write_fail_after_its_stall_deadline() -> None:
    stream, peer = pair()
    stream.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    began = trio.current_time()
    with trio.fail_after(5), pytest.raises(StreamClosed, match="accepted nothing"):
        await stream.send(b"x" * (4 << 20), stall=0.2)
    assert trio.current_time() - began < 3 and stream.closed  # dropped, not left half-written
    peer.close()


async def test_a_slow_reader_gets_everything() -> None:
    stream, peer = pair()
    data = bytes(range(256)) * 4096  # 1 MiB
    received = bytearray()

    def read_all() -> None:
        while len(received) < len(data):
            received.extend(peer.recv(65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, read_all)
        await stream.send(data, stall=5)
    assert bytes(received) == data
    stream.abort()
    peer.close()


async def test_lingering_close_reads_what_the_client_still_sends() -> None:
    """After the answer, our end is closed (the client sees EOF) and what it still sends is read and dropped,
    so the close is a FIN, not a reset that could destroy the answer."""
    stream, peer = pair()
    await stream.send(b"answer", stall=5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.finish, 5.0, 1 << 20)

        def client() -> bytes:
            got = b""
            while chunk := peer.recv(100):
                got += chunk
            peer.sendall(b"rest of a body nobody reads" * 100)
            peer.shutdown(socket.SHUT_WR)
            return got

        assert await trio.to_thread.run_sync(client) == b"answer"
    assert stream.closed
    peer.close()


# ------------------------------------------------------------------------------------------- the ASGI bridge


def body_of(*pieces: bytes) -> Callable[[], Awaitable[bytes | None]]:
    remaining = list(pieces)

    async def next_chunk() -> bytes | None:
        return remaining.pop(0) if remaining else None

    return next_chunk


async def echo_app(scope: Message, receive: Callable[[], Awaitable[Message]],
                   send: Callable[[Message], Awaitable[None]]) -> None:
    body = b""
    while True:
        message = await receive()
        body += message["body"]
        if not message["more_body"]:
            break
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-path", scope["path"].encode())]})
    await send({"type": "http.response.body", "body": body[:3], "more_body": True})
    await send({"type": "http.response.body", "body": body[3:]})


async def test_the_bridge_streams_the_body_in_and_collects_the_response_whole() -> None:
    answer = await call(echo_app, {"type": "http", "path": "/p"}, body_of(b"hel", b"lo ", b"world"))
    assert (answer.status, answer.headers, answer.body) == (201, [(b"x-path", b"/p")], b"hello world")


async def test_an_app_that_does_not_finish_its_response_is_an_error() -> None:
    async def half(scope: Message, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    with pytest.raises(IncompleteResponse):
        await call(half, {"type": "http"}, body_of())


async def test_an_app_that_waits_for_the_disconnect_is_released_by_its_own_answer() -> None:
    """Quart keeps receiving after the body (for http.disconnect) until it has answered; the bridge makes that
    wait last until then."""
    async def waits(scope: Message, receive: Callable[[], Awaitable[Message]],
                    send: Callable[[Message], Awaitable[None]]) -> None:
        async with trio.open_nursery() as nursery:
            async def listen() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass

            nursery.start_soon(listen)
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            nursery.cancel_scope.cancel()

    with trio.fail_after(5):
        assert (await call(waits, {"type": "http"}, body_of(b"x"))).status == 204


async def test_the_lifespan_starts_and_stops_the_app_or_says_why_not() -> None:
    seen: list[str] = []

    async def app(scope: Message, receive: Callable[[], Awaitable[Message]],
                  send: Callable[[Message], Awaitable[None]]) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    lifespan = Lifespan(app)
    async with trio.open_nursery() as nursery:
        await nursery.start(lifespan.run)
        assert seen == ["lifespan.startup"]
        await lifespan.shutdown()
    assert seen == ["lifespan.startup", "lifespan.shutdown"]

    async def broken(scope: Message, receive: Callable[[], Awaitable[Message]],
                     send: Callable[[Message], Awaitable[None]]) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(RuntimeError, match="the HTTP app failed to start: no database"):
        await Lifespan(broken).run()
