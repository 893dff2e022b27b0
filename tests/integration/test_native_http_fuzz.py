"""Fuzzing the native server's parser edge on a real socket: random bytes, and valid requests mutated (bytes
flipped, CR/LF/NUL/colons/spaces inserted, lines doubled or cut, the stream split anywhere), each on its own
connection that the client then half-closes. Every connection must be answered (with well-formed HTTP/1.1
responses) or closed, promptly; at the end the service is alive, serving, logged no connection fault, and
holds no connection open.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httptools
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.live_server import LiveServer, live_server
from tests.integration.test_robustness import OPEN_STATES, server_side_states

LOCK = "/serviceorchestration/orchestration/mgmt/lock"
BODY = b'{"locks":[{"serviceInstanceId":"Fuzz|svc|1.0.0","owner":"Fuzz","expiresAt":"2999-01-01T00:00:00Z"}]}'
CORPUS = [
    b"GET /serviceorchestration/monitor/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer SYSTEM//Sysop\r\n\r\n",
    b"POST " + LOCK.encode() + b"/create HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer SYSTEM//Sysop\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY,
    b"POST " + LOCK.encode() + b"/query HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: application/json\r\nAuthorization: Bearer SYSTEM//Sysop\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b"DELETE " + LOCK.encode() + b"/remove/Fuzz?instanceIds=Fuzz%7Csvc%7C1.0.0 HTTP/1.1\r\nHost: t\r\n"
    b"Authorization: Bearer SYSTEM//Sysop\r\nConnection: keep-alive\r\n\r\n",
    b"PUT /serviceorchestration/orchestration/mgmt/simple-store/modify-priorities HTTP/1.1\r\nHost: t\r\n"
    b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET http://t/docs HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
]
INSERTS = [b"\r", b"\n", b"\r\n", b"\x00", b":", b" ", b"\t", b"\r\n\r\n", b"Content-Length: 5\r\n",
           b"Transfer-Encoding: chunked\r\n", b"Host: x\r\n", b"\xff", b"%", b"0\r\n\r\n"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(CORPUS), min_size=1, max_size=3))))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "double-line", "truncate"]))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "double-line":
            end = data.find(b"\r\n", at)
            start = data.rfind(b"\r\n", 0, at) + 2
            if end > start:
                data[end + 2 : end + 2] = data[start : end + 2]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("fuzz") / "data", "--no-access-log", http_server="native") as running:
        yield running


def exchange(server: LiveServer, data: bytes, cuts: list[int]) -> bytes:
    """Send `data` in pieces, half-close, and read until the server closes (which it must do within 5 s)."""
    parts = urlsplit(server.url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        start = 0
        try:
            for cut in [*cuts, len(data)]:
                sock.sendall(data[start : start + cut] if cut < len(data) else data[start:])
                start += cut
                if start >= len(data):
                    break
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed while we were sending: still read what it answered
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError(f"the server neither answered nor closed within 5 s: sent {data[:200]!r}") from None
    return received


class _Responses:
    def __init__(self) -> None:
        self.complete = 0

    def on_message_complete(self) -> None:
        self.complete += 1


def assert_well_formed(received: bytes, sent: bytes) -> None:
    """What came back is zero or more whole HTTP/1.1 responses (HEAD answers have no body: not parsed)."""
    if not received:
        return
    assert received.startswith(b"HTTP/1.1 "), received[:200]
    if b"HEAD" in sent:
        return
    responses = _Responses()
    httptools.HttpResponseParser(responses).feed_data(received)
    assert responses.complete >= 1, received[:300]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.one_of(st.binary(min_size=1, max_size=600), mutated()),
       cuts=st.lists(st.integers(1, 64), max_size=4))
def test_random_and_mutated_requests_are_answered_or_closed(server: LiveServer, data: bytes, cuts: list[int]) -> None:
    assert_well_formed(exchange(server, data, cuts), data)
    assert server.process.poll() is None, server.log_text()[-3000:]


def test_after_the_fuzz_the_service_is_whole(server: LiveServer) -> None:
    """Runs after the fuzz (same module, same server): alive, serving, no fault logged, nothing left open."""
    port = urlsplit(server.url).port
    assert port is not None
    deadline = time.monotonic() + 5
    while sum(server_side_states(port)[state] for state in OPEN_STATES) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel's table has no event to wait for
    assert not sum(server_side_states(port)[state] for state in OPEN_STATES), server_side_states(port)
    assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200
    assert server.process.poll() is None
    assert "Traceback" not in server.log_text() and "connection failed" not in server.log_text(), server.log_text()[-3000:]
