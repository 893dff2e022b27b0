"""HTTP/1.1 responses as bytes, without I/O: the head and the body joined, so that a response is one send.

Every header is checked before it is written: a name must be an RFC 9110 token and a value must hold no
control character but HTAB (no CR or LF: nothing that comes from outside — an X-Request-ID, a path in a
Location — can end the head early or add a header). A response with a bad header is not sent
(`BadResponseHeader`; the server answers 500 instead). The server alone decides framing and the
connection: `content-length` is computed, `connection` set; what the application said about them is
dropped, except the `content-length` of a HEAD response (which has no body to count).
"""

from __future__ import annotations

import http
import re
import time
from email.utils import formatdate

from transports.http.http1 import Headers

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")
_SERVER_OWNED = frozenset({b"content-length", b"connection", b"transfer-encoding", b"keep-alive", b"date"})
_NO_BODY = frozenset({204, 304})

STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in http.HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BadResponseHeader(ValueError):
    """A header name or value that must not be written (see the module doc)."""


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise BadResponseHeader(f"status {status} is not a three-digit code")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


def check_header(name: bytes, value: bytes) -> None:
    if _TOKEN.fullmatch(name) is None:
        raise BadResponseHeader(f"header name {name!r} is not a token")
    if _FIELD_VALUE.fullmatch(value) is None:
        raise BadResponseHeader(f"header {name.decode('latin-1')!r} has a control character in its value")


def response_bytes(status: int, headers: Headers, body: bytes, *, close: bool, http_1_0_keep_alive: bool = False,
                   head_request: bool = False, date: bytes | None = None) -> bytes:
    """The whole response. `close` adds `connection: close`; an HTTP/1.0 client that asked to keep its
    connection gets `connection: keep-alive`. `head_request` writes no body (its length stays as given)."""
    parts = [status_line(status)]
    length: bytes | None = None
    for name, value in headers:
        lower = name.lower()
        check_header(name, value)
        if lower in _SERVER_OWNED:
            if lower == b"content-length" and head_request:
                length = value
            continue
        parts += (name, b": ", value, b"\r\n")
    if status not in _NO_BODY and status >= 200:
        if head_request:
            if length is not None:
                parts += (b"content-length: ", length, b"\r\n")
        else:
            parts += (b"content-length: ", str(len(body)).encode(), b"\r\n")
    if close:
        parts.append(b"connection: close\r\n")
    elif http_1_0_keep_alive:
        parts.append(b"connection: keep-alive\r\n")
    parts += (b"date: ", date or http_date(), b"\r\n\r\n")
    if not head_request and status not in _NO_BODY:
        parts.append(body)
    return b"".join(parts)


_date_second = -1
_date_value = b""


def http_date() -> bytes:
    """The Date header's value (RFC 9110 §5.6.7), made once a second."""
    global _date_second, _date_value
    now = int(time.time())
    if now != _date_second:
        _date_value = formatdate(now, usegmt=True).encode("ascii")
        _date_second = now
    return _date_value
