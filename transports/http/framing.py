"""Requests whose head is ambiguous are refused before the app sees them.

- Both `Content-Length` and `Transfer-Encoding` (HTTP/1.x): h11 frames the body by Transfer-Encoding,
  a proxy in front may have framed it by Content-Length; whatever follows on the connection could be a
  request smuggled past the proxy. RFC 9112 §6.1: refuse, or answer and then close. We refuse: 400 with
  `Connection: close`, and the connection is closed without reading further.
- More than one `Authorization` header: it is a singleton field (RFC 9110 §11.6.2), and a proxy or
  logger may have read the other one than we would (the framework takes the first). 400, not 401: the
  request is malformed, not unauthenticated; sending the same credentials again cannot help. HTTP/1.x
  connections are closed too (the body is left unread).

Both answers carry the Arrowhead error body (origin `METHOD path`, exception type INVALID_PARAMETER).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from transports.api.errors import ArrowheadError, ExceptionType

BOTH_LENGTHS = "Request has both Content-Length and Transfer-Encoding headers"
TWO_AUTHORIZATIONS = "Request has more than one Authorization header"

_encode = msgspec.json.Encoder().encode


def framing_problem(headers: Iterable[tuple[bytes, bytes]], http_version: str) -> str | None:
    """Why a request head must be refused, or None. Header names as ASGI gives them (lower case)."""
    content_length = transfer_encoding = False
    authorizations = 0
    for name, _ in headers:
        if name == b"authorization":
            authorizations += 1
        elif name == b"content-length":
            content_length = True
        elif name == b"transfer-encoding":
            transfer_encoding = True
    if content_length and transfer_encoding and http_version in ("1.0", "1.1"):
        return BOTH_LENGTHS
    if authorizations > 1:
        return TWO_AUTHORIZATIONS
    return None


class RefuseAmbiguousRequests:
    """ASGI middleware: a 400 with the Arrowhead body for the requests of the module doc."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        problem = None
        if scope["type"] == "http":
            http = scope
            problem = framing_problem(http["headers"], http["http_version"])
        if problem is None:
            await self.app(scope, receive, send)
            return
        error = ArrowheadError(problem, ExceptionType.INVALID_PARAMETER, f"{http['method']} {http['path']}")
        body = _encode(error.body())
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if http["http_version"] in ("1.0", "1.1"):
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": error.status, "headers": headers, "trailers": False})
        await send({"type": "http.response.body", "body": body, "more_body": False})
