"""What the native server does with one parsed request: an API route's handler, called inline, or else the
Quart app through the in-process ASGI bridge; and the observation hook around both.

`ExchangeHook` is how observability (a layer above this one) sees the native server's requests: the
request id to answer with, and one call per answered request. transports/observability/access.py
implements it with the same id rules, metrics and access-log line as its ASGI middleware has for
hypercorn, so both servers are observed alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from transports.http.app import REQUESTER_SCOPE_KEY
from transports.http.asgi_bridge import AsgiApp, BodyChunks, call
from transports.http.exchange import ApiRequest, Headers
from transports.http.handlers import HttpApi, internal_error_response
from transports.http.http1 import Refusal
from transports.http.routes import match

log = logging.getLogger("lockstore.http")


class ExchangeHook(Protocol):
    def request_id(self, headers: Headers) -> str:
        """The id of a request: the client's X-Request-ID when it is sane, else a new one."""
        ...

    def done(self, method: str, path: str, status: int, seconds: float, requester: str | None,
             client: str | None, request_id: str) -> None:
        """One request answered (or refused) in `seconds`."""
        ...


class ExchangeAborted(Exception):
    """The request cannot be finished: its client went away, or its body was malformed or too slow
    (`refusal`: what to answer before closing; None: close without an answer)."""

    def __init__(self, refusal: Refusal | None) -> None:
        super().__init__(refusal.message if refusal else "client gone")
        self.refusal = refusal


@dataclass(slots=True)
class Reply:
    """A response as the connection writes it (content-length and connection are the connection's)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    close: bool = False  # the app asked to close (a 413: the rest of the body is unread)


def _asks_to_close(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name.lower() == b"connection" and b"close" in value.lower() for name, value in headers)


class NativeApp:
    """The API handlers inline; everything else through the Quart app (see the module doc)."""

    def __init__(self, api: HttpApi, quart: AsgiApp, hook: ExchangeHook | None = None) -> None:
        self.api = api
        self.quart = quart
        self.hook = hook

    async def respond(self, request: ApiRequest, scope_extras: dict[str, Any], next_chunk: BodyChunks) -> Reply:
        """Answer `request`. `scope_extras` (client, http_version, raw_path, TLS) complete an ASGI scope
        when the Quart app answers; `next_chunk` gives it the body piece by piece."""
        found = match(request.method, request.path)
        if found is not None:
            route, request.path_params = found
            try:
                response = await route.handler(self.api, request)
            except ExchangeAborted:
                raise
            except Exception:
                log.exception("unexpected error handling %s %s", request.method, request.path)
                response = internal_error_response(request)
            return Reply(response.status, response.headers(), response.body, response.close)
        return await self._through_quart(request, scope_extras, next_chunk)

    async def _through_quart(self, request: ApiRequest, extras: dict[str, Any], next_chunk: BodyChunks) -> Reply:
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "method": request.method,
            "scheme": request.scheme, "path": request.path, "query_string": request.query_string,
            "root_path": "", "headers": list(request.headers), "server": request.server, "extensions": {},
            **extras,
        }
        if request.scheme == "https":
            scope["extensions"]["tls"] = {
                "server_cert": None, "client_cert_chain": list(request.client_certificates),
                "client_cert_name": None, "client_cert_error": None, "tls_version": None, "cipher_suite": None,
            }
        try:
            answer = await call(self.quart, scope, next_chunk)
        except Exception:  # Quart answers its own errors; this is a fault in the bridge or a middleware
            log.exception("unexpected error handling %s %s", request.method, request.path)
            response = internal_error_response(request)
            return Reply(response.status, response.headers(), response.body)
        requester = scope.get(REQUESTER_SCOPE_KEY)
        if isinstance(requester, str):
            request.requester = requester
        return Reply(answer.status, answer.headers, answer.body, _asks_to_close(answer.headers))

