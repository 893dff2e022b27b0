"""Tells HTTP/1.x clients that their connection closes after this response, once shutdown has begun.

At shutdown the server finishes each in-flight request and then closes its connection
(transports/http/hypercorn_server.py). A response started after the shutdown began carries
`Connection: close`, so a keep-alive client knows not to send another request on that connection
(one it sends anyway is never read, so never applied). HTTP/2 has GOAWAY for this, which hypercorn
sends itself once the connection is idle.
"""

from __future__ import annotations

from collections.abc import Callable

from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope

CONNECTION_CLOSE = (b"connection", b"close")


def closing_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with `Connection: close` (once) in place of any other Connection header."""
    return [*(header for header in headers if header[0].lower() != b"connection"), CONNECTION_CLOSE]


class CloseAtShutdown:
    """ASGI middleware: `Connection: close` on every HTTP/1.x response started while `stopping()`."""

    def __init__(self, app: ASGIFramework, stopping: Callable[[], bool]) -> None:
        self.app = app
        self.stopping = stopping

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http" or scope["http_version"] not in ("1.0", "1.1"):
            await self.app(scope, receive, send)
            return

        async def send_closing(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start" and self.stopping():
                message = {**message, "headers": closing_headers(list(message.get("headers", ())))}
            await send(message)

        await self.app(scope, receive, send_closing)
