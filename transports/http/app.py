"""The HTTP edge: a Quart (trio) app that authenticates, hands the body to an operation and encodes
the result. It holds no state; keep per-request work small — the framework already costs ~95% of
a request here (ARCHITECTURE.md, "HTTP under trio").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from transports.api.errors import ArrowheadError, ExceptionType
from transports.api.operations import ECHO_REPLY, Operations, Result
from transports.api.requester import Requester
from transports.http.query_params import query_list
from transports.http.tls_scope import client_certificate_chain
from transports.security.certificates import CertificatePolicy, authenticate_https
from transports.security.identity import ManagementPolicy, authenticate_http, authorize_management

log = logging.getLogger("lockstore.http")

BASE = "/serviceorchestration"
LOCK_PATH = f"{BASE}/orchestration/mgmt/lock"
STORE_PATH = f"{BASE}/orchestration/mgmt/simple-store"
ECHO_PATH = f"{BASE}/monitor/echo"
MAX_BODY_BYTES = 1 << 20  # DECISIONS.md: bodies over 1 MiB → 413

_encode = msgspec.json.Encoder().encode
_FRAMEWORK_ERRORS = {
    404: ExceptionType.DATA_NOT_FOUND,
    405: ExceptionType.INVALID_PARAMETER,
    413: ExceptionType.INVALID_PARAMETER,
    415: ExceptionType.INVALID_PARAMETER,
}


@dataclass(frozen=True)
class HttpAccess:
    policy: ManagementPolicy
    whitelist: frozenset[str]
    certificate: CertificatePolicy | None = None  # None: the declared policy (Authorization header)


def _json(status: int, body: bytes) -> Response:
    return Response(body, status=status, content_type="application/json")


def error_response(error: ArrowheadError, status: int | None = None) -> Response:
    """An Arrowhead error body; `status` overrides the type's status for framework errors (405/413/415)."""
    if error.origin is None:
        error.origin = f"{request.method} {request.path}"
    body = error.body()
    if status is not None:
        body.errorCode = status
    return _json(status or error.status, _encode(body))


def _result_response(result: Result) -> Response:
    if result.payload is None:
        return Response(b"", status=result.status)
    return _json(result.status, _encode(result.payload))


def create_app(operations: Operations, access: HttpAccess) -> QuartTrio:
    app = QuartTrio("lockstore")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    def identify() -> Requester:
        if access.certificate is None:
            return authenticate_http(request.headers.get("Authorization"))
        chain = tuple(client_certificate_chain(request.scope))
        return authenticate_https(chain, request.base_url, access.certificate)

    def authenticate(management: bool = True) -> Requester:
        requester = identify()
        request.scope["lockstore.requester"] = requester.name  # type: ignore[typeddict-unknown-key]  # access log
        if management:
            try:
                authorize_management(requester, access.policy, access.whitelist)
            except ArrowheadError as error:
                error.origin = request.base_url  # the reference's 403 origin: the URL without query
                raise
        return requester

    async def body(required_json: bool = True) -> bytes:
        data = await request.get_data(cache=False, as_text=False)
        assert isinstance(data, bytes)
        if data and required_json and request.mimetype != "application/json":
            raise _Framework(415, f"Content type '{request.content_type}' is not supported")
        return data

    async def run(operation: Callable[[Requester], Awaitable[Result]]) -> Response:
        try:
            requester = authenticate()
            return _result_response(await operation(requester))
        except ArrowheadError as error:
            return error_response(error)
        except _Framework as error:
            return error_response(ArrowheadError(error.message), error.status)

    @app.post(f"{LOCK_PATH}/create")
    async def lock_create() -> Response:
        return await run(lambda who: _with_body(body, lambda data: operations.lock_create(who, data)))

    @app.post(f"{LOCK_PATH}/query")
    async def lock_query() -> Response:
        return await run(lambda who: _with_body(body, lambda data: operations.lock_query(who, data)))

    @app.delete(f"{LOCK_PATH}/remove/<owner>")
    async def lock_remove(owner: str) -> Response:
        async def operation(who: Requester) -> Result:
            ids = _required_list("instanceIds")
            return await operations.lock_remove(who, owner, ids)

        return await run(operation)

    @app.post(f"{STORE_PATH}/query")
    async def store_query() -> Response:
        return await run(lambda who: _with_body(body, lambda data: operations.store_query(who, data)))

    @app.post(f"{STORE_PATH}/create")
    async def store_create() -> Response:
        return await run(lambda who: _with_body(body, lambda data: operations.store_create(who, data)))

    @app.put(f"{STORE_PATH}/modify-priorities")
    async def store_modify_priorities() -> Response:
        return await run(
            lambda who: _with_body(body, lambda data: operations.store_modify_priorities(who, data))
        )

    @app.delete(f"{STORE_PATH}/remove")
    async def store_remove() -> Response:
        async def operation(who: Requester) -> Result:
            return await operations.store_remove(who, _required_list("uuids"))

        return await run(operation)

    @app.get(ECHO_PATH)
    async def echo() -> Response:
        try:
            authenticate(management=False)
        except ArrowheadError as error:
            return error_response(error)
        return Response(ECHO_REPLY, status=200, content_type="text/plain")

    @app.errorhandler(HTTPException)
    async def framework_error(exception: HTTPException) -> Response:
        # Authentication comes before routing, as in the reference: an unknown path without
        # credentials is a 401, not a 404.
        if request.path != "/":
            try:
                identify()
            except ArrowheadError as error:
                return error_response(error)
        status = exception.code or 500
        kind = _FRAMEWORK_ERRORS.get(status, ExceptionType.INTERNAL_SERVER_ERROR)
        message = {
            404: f"No endpoint {request.method} {request.path}",
            405: f"Request method '{request.method}' is not supported",
            413: f"Request body is too large (the maximum is {MAX_BODY_BYTES} bytes)",
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
        return error_response(ArrowheadError("Internal server error", ExceptionType.INTERNAL_SERVER_ERROR))

    return app


class _Framework(Exception):
    """A protocol-level refusal (415 …) that still answers with an Arrowhead body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _with_body(
    body: Callable[[], Awaitable[bytes]], operation: Callable[[bytes | None], Awaitable[Result]]
) -> Result:
    data = await body()
    return await operation(data or None)


def _required_list(name: str) -> list[str]:
    values = request.args.getlist(name)
    if not values:
        raise ArrowheadError(f"Required parameter '{name}' is not present.")
    return query_list(values)
