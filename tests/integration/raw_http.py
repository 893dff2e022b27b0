"""Raw HTTP/1.1 and HTTP/2 clients for the tests that need to misbehave on purpose: stop reading half-way,
send a body in two parts around a SIGTERM, never open an HTTP/2 flow-control window.

The HTTP/2 client is the `h2` package's state machine (installed with hypercorn) over a trio stream; it
sends WINDOW_UPDATE only when told to (`acknowledge`), so by default the server can send it one
initial window (65,535 bytes) per stream and no more.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httptools
import trio

Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]
SYSOP = "Bearer SYSTEM//Sysop"
BUNDLE = "/docs/swagger-ui-bundle.js"  # the largest response (~1.5 MB)


async def connect(host: str, port: int, *, ca: Path | None = None, alpn: str = "http/1.1",
                  receive_buffer: int | None = None) -> Stream:
    """A TCP connection, or TLS trusting `ca` and asking for `alpn`; `receive_buffer` shrinks the socket's
    receive buffer so that a client that stops reading stalls the server's writes after a few KiB."""
    sock = trio.socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connect: sets the window
    await sock.connect((host, port))
    plain = trio.SocketStream(sock)
    if ca is None:
        return plain
    tls = ssl.create_default_context(cafile=str(ca))
    tls.set_alpn_protocols([alpn])
    stream = trio.SSLStream(plain, tls, server_hostname=host)
    await stream.do_handshake()
    assert stream.selected_alpn_protocol() == alpn
    return stream


def request_head(method: str, path: str, *, body_length: int | None = None, extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: {SYSOP}\r\n"
    if body_length is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {body_length}\r\n"
    return (head + extra + "\r\n").encode()


async def read_until(stream: Stream, enough: int) -> bytes:
    """At least `enough` bytes (fewer only if the server closes first)."""
    data = b""
    while len(data) < enough:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return data


async def read_to_close(stream: Stream) -> bytes:
    """Everything until the server closes the connection (a reset counts as a close)."""
    data = b""
    try:
        while chunk := await stream.receive_some(65536):
            data += chunk
    except trio.BrokenResourceError:
        pass
    return data


@dataclass
class H2Response:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False  # END_STREAM seen
    reset: int | None = None  # RST_STREAM error code


class RawH2:
    """A minimal HTTP/2 client (prior knowledge, or h2 by ALPN) that never opens a window by itself."""

    def __init__(self, stream: Stream, authority: str, scheme: str = "http") -> None:
        self.stream = stream
        self.authority = authority
        self.scheme = scheme
        self.connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                              header_encoding="utf-8"))
        self.responses: dict[int, H2Response] = {}
        self.goaway = False
        self.pinged = False
        self.closed = False  # the server closed the TCP connection

    async def start(self) -> None:
        self.connection.initiate_connection()
        await self.flush()

    async def flush(self) -> None:
        data = self.connection.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def request(self, method: str, path: str, body: bytes | None = None, *, end: bool = True) -> int:
        """Send a request's headers and `body` (the stream stays open for more body unless `end`)."""
        stream_id = self.connection.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", self.scheme), (":authority", self.authority), (":path", path),
                   ("authorization", SYSOP)]
        if body is not None:
            headers.append(("content-type", "application/json"))
        self.connection.send_headers(stream_id, headers, end_stream=end and not body)
        self.responses[stream_id] = H2Response()
        if body:
            self.connection.send_data(stream_id, body, end_stream=end)
        await self.flush()
        return stream_id

    async def send_body(self, stream_id: int, data: bytes, *, end: bool = True, flush: bool = True) -> None:
        self.connection.send_data(stream_id, data, end_stream=end)
        if flush:
            await self.flush()

    async def ping(self) -> None:
        """A PING round trip: once it is acknowledged, the server has processed every frame sent before it."""
        self.pinged = False
        self.connection.ping(b"lockstor")
        await self.flush()
        while not self.pinged:
            assert await self.receive(), "the server closed the connection"

    async def receive(self) -> bool:
        """Read once and record what arrived; False once the server has closed the connection."""
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            data = b""
        if not data:
            self.closed = True
            return False
        for event in self.connection.receive_data(data):
            response = self.responses.get(getattr(event, "stream_id", 0))
            if isinstance(event, h2.events.ResponseReceived) and response is not None:
                headers = dict(event.headers)
                response.status = int(headers.pop(":status"))
                response.headers = headers
            elif isinstance(event, h2.events.DataReceived) and response is not None:
                response.body += event.data
            elif isinstance(event, h2.events.StreamEnded) and response is not None:
                response.ended = True
            elif isinstance(event, h2.events.StreamReset) and response is not None:
                response.reset = event.error_code
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway = True
            elif isinstance(event, h2.events.PingAckReceived):
                self.pinged = True
        await self.flush()  # SETTINGS and PING acknowledgements; never a WINDOW_UPDATE
        return True

    async def receive_until_closed(self) -> None:
        while await self.receive():
            pass


async def stalled_h1_download(host: str, port: int, ca: Path | None) -> Stream:
    """GET the bundle over HTTP/1.1 with a tiny receive window, read 64 KiB of it, and stop reading."""
    stream = await connect(host, port, ca=ca, receive_buffer=4096)
    await stream.send_all(request_head("GET", BUNDLE))
    assert len(await read_until(stream, 65536)) >= 65536
    return stream


async def stalled_h2_download(host: str, port: int, ca: Path | None) -> RawH2:
    """GET the bundle over HTTP/2, read the first flow-control window, and never open another."""
    stream = await connect(host, port, ca=ca, alpn="h2")
    client = RawH2(stream, f"{host}:{port}", "https" if ca else "http")
    await client.start()
    stream_id = await client.request("GET", BUNDLE)
    response = client.responses[stream_id]
    while len(response.body) < 65535:  # the initial window: all the server may send
        assert await client.receive(), "the server closed the connection"
    assert response.status == 200 and not response.ended
    return client


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        assert len(values) <= 1, f"{name} {len(values)} times: {self.headers}"
        return values[0] if values else None


class _ResponseReader:
    """httptools' response parser (llhttp, as curl or a browser would read it) collecting whole responses."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[RawResponse] = []
        self._headers: list[tuple[str, str]] = []
        self._body = b""

    def on_message_begin(self) -> None:
        self._headers, self._body = [], b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append(RawResponse(self.parser.get_status_code(), self._headers, self._body))


def parse_responses(data: bytes) -> list[RawResponse]:
    """Every whole response in `data` (interim 100s included); fails on bytes that are not HTTP responses."""
    reader = _ResponseReader()
    reader.parser.feed_data(data)
    return reader.done


async def read_responses(stream: Stream, count: int) -> list[RawResponse]:
    """Read until `count` whole responses have come (fewer only if the server closes first)."""
    reader = _ResponseReader()
    while len(reader.done) < count:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            chunk = b""
        if not chunk:
            break
        reader.parser.feed_data(chunk)
    return reader.done


async def answered_then_closed(stream: Stream, data: bytes, *, within: float = 5.0) -> list[RawResponse]:
    """Send `data`; every response the server sends before it closes the connection (which it must, within
    `within` seconds)."""
    try:
        await stream.send_all(data)
    except trio.BrokenResourceError:
        pass  # closed while we were still sending: what it answered is still to be read
    with trio.fail_after(within):
        return parse_responses(await read_to_close(stream))
