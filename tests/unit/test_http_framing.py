"""Pure pieces of the HTTP edge: which request heads are refused (transports/http/framing.py) and the
`Connection: close` a response gets once shutdown has begun (transports/http/keepalive.py)."""

from __future__ import annotations

from typing import Any

import trio

from transports.http.framing import BOTH_LENGTHS, TWO_AUTHORIZATIONS, framing_problem
from transports.http.keepalive import CloseAtShutdown, closing_headers

AUTH = (b"authorization", b"Bearer SYSTEM//Sysop")
LENGTH = (b"content-length", b"4")
CHUNKED = (b"transfer-encoding", b"chunked")


def test_both_framing_headers_are_refused_in_http1() -> None:
    assert framing_problem([AUTH, LENGTH, CHUNKED], "1.1") == BOTH_LENGTHS
    assert framing_problem([CHUNKED, LENGTH], "1.0") == BOTH_LENGTHS
    assert framing_problem([AUTH, LENGTH], "1.1") is None
    assert framing_problem([AUTH, CHUNKED], "1.1") is None
    assert framing_problem([AUTH, LENGTH, CHUNKED], "2") is None  # HTTP/2 frames bodies itself (h2 refuses TE)


def test_more_than_one_authorization_is_refused() -> None:
    assert framing_problem([AUTH, AUTH], "1.1") == TWO_AUTHORIZATIONS
    assert framing_problem([AUTH, (b"x-other", b"1"), (b"authorization", b"")], "2") == TWO_AUTHORIZATIONS
    assert framing_problem([AUTH], "2") is None
    assert framing_problem([], "1.1") is None


def test_closing_headers_replace_any_connection_header() -> None:
    assert closing_headers([(b"content-type", b"a"), (b"Connection", b"keep-alive")]) == [
        (b"content-type", b"a"), (b"connection", b"close")]
    assert closing_headers([]) == [(b"connection", b"close")]


async def _respond(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_connection_close_only_for_http1_responses_started_while_stopping() -> None:
    stopping = False
    middleware = CloseAtShutdown(_respond, lambda: stopping)  # type: ignore[arg-type]
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run(version: str) -> list[tuple[bytes, bytes]]:
        sent.clear()
        await middleware({"type": "http", "http_version": version}, trio.sleep_forever, send)  # type: ignore[arg-type]
        return list(sent[0]["headers"])

    assert await run("1.1") == [(b"x", b"1")]
    stopping = True
    assert await run("1.1") == [(b"x", b"1"), (b"connection", b"close")]
    assert await run("1.0") == [(b"x", b"1"), (b"connection", b"close")]
    assert await run("2") == [(b"x", b"1")]  # HTTP/2 forbids the header; GOAWAY does the job
