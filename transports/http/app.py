"""The Quart (trio) app: the eight API routes as views over the shared handlers (transports/http/handlers.py)
from the one route table (transports/http/routes.py), and the framework's own answers (404, 405, 413,
500) as Arrowhead error bodies. The monitoring pages (/metrics, /health/*, /openapi.json, /docs) are added
to it by transports/observability/monitor.py.

hypercorn serves this app whole. The native server calls the handlers itself and hands this app only what
is not an API route (transports/http/asgi_bridge.py), so these pages and answers are defined here once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from transports.api.errors import ArrowheadError, ExceptionType
from transports.api.operations import Operations
from transports.http.exchange import ApiRequest, ApiResponse, BodyTooLarge
from transports.http.handlers import (
    MAX_BODY_BYTES,
    TOO_LARGE,
    HttpAccess,
    HttpApi,
    error_body,
    identify,
    internal_error_response,
)
from transports.http.routes import API_ROUTES, BASE, ECHO_PATH, LOCK_PATH, STORE_PATH, Route
from transports.http.tls_scope import client_certificate_chain

__all__ = ["BASE", "ECHO_PATH", "LOCK_PATH", "MAX_BODY_BYTES", "STORE_PATH", "HttpAccess", "create_app"]

log = logging.getLogger("lockstore.http")

REQUESTER_SCOPE_KEY = "lockstore.requester"  # where the access log finds the requester's name

_FRAMEWORK_ERRORS = {
    404: ExceptionType.DATA_NOT_FOUND,
    405: ExceptionType.INVALID_PARAMETER,
    413: ExceptionType.INVALID_PARAMETER,
    415: ExceptionType.INVALID_PARAMETER,
}


def quart_response(response: ApiResponse) -> Response:
    """The Quart response carrying exactly the handler's headers (Quart adds no Content-Type of its own)."""
    quart = Response(response.body, status=response.status)
    del quart.headers["Content-Type"]
    for name, value in response.headers():
        quart.headers[name.decode("latin-1")] = value.decode("latin-1")
    return quart


async def _read_body() -> bytes:
    try:
        data = await request.get_data(cache=False, as_text=False)
    except RequestEntityTooLarge:
        raise BodyTooLarge from None
    assert isinstance(data, bytes)
    return data


def api_request(path_params: dict[str, str]) -> ApiRequest:
    """The handlers' view of the current Quart request."""
    scope = request.scope
    server = scope.get("server")
    return ApiRequest(
        request.method, request.path, request.query_string, list(scope["headers"]), scope["scheme"],
        (server[0], server[1]) if server and server[1] is not None else None,
        tuple(client_certificate_chain(scope)), _read_body, path_params,
    )


def _view(api: HttpApi, route: Route) -> Callable[..., Awaitable[Response]]:
    async def view(**path_params: Any) -> Response:
        exchange = api_request(path_params)
        response = await route.handler(api, exchange)
        if exchange.requester is not None:
            request.scope[REQUESTER_SCOPE_KEY] = exchange.requester  # type: ignore[literal-required]
        return quart_response(response)

    view.__name__ = route.operation
    return view


def create_app(operations: Operations, access: HttpAccess) -> QuartTrio:
    app = QuartTrio("lockstore")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    api = HttpApi(operations, access)
    for route in API_ROUTES:
        app.add_url_rule(route.rule, route.operation, _view(api, route), methods=[route.method])

    def error_response(error: ArrowheadError, status: int | None = None) -> Response:
        body = error_body(error, request.method, request.path, status)
        return quart_response(ApiResponse(status or error.status, body, b"application/json"))

    @app.errorhandler(HTTPException)
    async def framework_error(exception: HTTPException) -> Response:
        # Authentication comes before routing, as in the reference: an unknown path without
        # credentials is a 401, not a 404.
        if request.path != "/":
            try:
                identify(api, api_request({}))
            except ArrowheadError as error:
                return error_response(error)
        status = exception.code or 500
        kind = _FRAMEWORK_ERRORS.get(status, ExceptionType.INTERNAL_SERVER_ERROR)
        message = {
            404: f"No endpoint {request.method} {request.path}",
            405: f"Request method '{request.method}' is not supported",
            413: TOO_LARGE,
        }.get(status, exception.description or exception.name)
        response = error_response(ArrowheadError(message, kind), status)
        if status == 413:
            # The rest of the body is still unread on the socket: this connection cannot carry another
            # request, so say so and let the server close it.
            response.headers["Connection"] = "close"
        valid_methods = getattr(exception, "valid_methods", None)
        if status == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)  # RFC 9110: a 405 lists what is allowed
        return response

    @app.errorhandler(Exception)
    async def unexpected_error(exception: Exception) -> Response:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return quart_response(internal_error_response(api_request({})))

    return app
