"""A minimal keep-alive HTTP/1.1 client for the benchmarks: a request is bytes built once, a response is
(status, body). Far cheaper per request than httpx: on a 2-core machine the client's CPU is taken from
the server it measures.

Bodies come as Content-Length (hypercorn, and Go's net/http for small replies) or chunked (Go's net/http
for bigger replies and for etcd's gateway errors, which carry trailers). A connection that breaks
raises ConnectionError, which is what the load generator counts (see bench.operations.Client).
"""

from __future__ import annotations

import re

import trio

AUTH = "Bearer SYSTEM//Sysop"

_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)")
_CHUNKED = re.compile(rb"(?im)^transfer-encoding:[^\r\n]*chunked")


def http_request(
    method: str,
    path: str,
    body: bytes = b"",
    host: str = "127.0.0.1",
    *,
    authorization: str | None = AUTH,
) -> bytes:
    """One HTTP/1.1 keep-alive request, ready to send (JSON body; lockstore's bearer identity unless
    `authorization` is None)."""
    auth = f"Authorization: {authorization}\r\n" if authorization is not None else ""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class HttpConnection:
    """One keep-alive connection; one request at a time (callers serialise concurrent use)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        return cls(await trio.open_tcp_stream(host, port))

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request and read its response: (status, body)."""
        try:
            await self.stream.send_all(request)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise ConnectionError(f"connection lost while sending: {error}") from error
        buffer = self.buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = bytes(buffer[:end])
        status = int(head[9:12])
        found = _CONTENT_LENGTH.search(head)
        if found is not None:
            need = end + 4 + int(found[1])
            while len(buffer) < need:
                await self._fill()
            body = bytes(buffer[end + 4 : need])
            del buffer[:need]
            return status, body
        if _CHUNKED.search(head):
            del buffer[: end + 4]
            return status, await self._read_chunked()
        if status in (204, 304) or 100 <= status < 200:
            del buffer[: end + 4]
            return status, b""
        raise RuntimeError(f"response without Content-Length or chunked body:\n{head.decode('latin-1')}")

    async def _read_chunked(self) -> bytes:
        """A chunked body (RFC 9112 §7.1), chunk extensions ignored; the trailer section is read and
        dropped so the next response starts clean."""
        buffer = self.buffer
        body = bytearray()
        while True:
            while (eol := buffer.find(b"\r\n")) < 0:
                await self._fill()
            size = int(bytes(buffer[:eol]).split(b";", 1)[0].strip(), 16)
            if size == 0:
                del buffer[: eol + 2]
                break
            need = eol + 2 + size + 2
            while len(buffer) < need:
                await self._fill()
            body += buffer[eol + 2 : eol + 2 + size]
            del buffer[:need]
        while True:  # trailer fields, then the empty line
            while (eol := buffer.find(b"\r\n")) < 0:
                await self._fill()
            del buffer[: eol + 2]
            if eol == 0:
                return bytes(body)

    async def _fill(self) -> None:
        try:
            chunk = await self.stream.receive_some(1 << 16)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise ConnectionError(f"connection lost while receiving: {error}") from error
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk
