"""The eight API routes (the seven operations and echo), written once as plain functions from an
`ApiRequest` to an `ApiResponse`. The native server calls them inline; the Quart app (hypercorn) wraps
them in its views (transports/http/app.py). Same function, same answer: statuses, bodies, headers and
error texts cannot drift apart between the two servers.

Authentication comes first (as in the reference), then the body: an unauthenticated request is refused
without its body being read (the native server then sends no `100 Continue`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from transports.api.errors import ArrowheadError, ExceptionType
from transports.api.operations import ECHO_REPLY, Operations, Result
from transports.api.requester import Requester
from transports.http.exchange import ApiRequest, ApiResponse, BodyTooLarge
from transports.security.certificates import CertificatePolicy, authenticate_https
from transports.security.identity import ManagementPolicy, authenticate_http, authorize_management

log = logging.getLogger("lockstore.http")

MAX_BODY_BYTES = 1 << 20  # DECISIONS.md: bodies over 1 MiB → 413
JSON = b"application/json"
TEXT = b"text/plain"
TOO_LARGE = f"Request body is too large (the maximum is {MAX_BODY_BYTES} bytes)"

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class HttpAccess:
    policy: ManagementPolicy
    whitelist: frozenset[str]
    certificate: CertificatePolicy | None = None  # None: the declared policy (Authorization header)


@dataclass(frozen=True)
class HttpApi:
    """What the handlers need: the operations and who may call them."""

    operations: Operations
    access: HttpAccess


Handler = Callable[[HttpApi, ApiRequest], Awaitable[ApiResponse]]


class UnsupportedMediaType(Exception):
    """A body that is not JSON where JSON is required: 415 with an Arrowhead body."""


# ------------------------------------------------------------------------------------------- responses


def error_body(error: ArrowheadError, method: str, path: str, status: int | None = None) -> bytes:
    """An Arrowhead error body; origin `METHOD path` unless the error has one; `status` overrides the code."""
    if error.origin is None:
        error.origin = f"{method} {path}"
    body = error.body()
    if status is not None:
        body.errorCode = status
    return _encode(body)


def error_response(error: ArrowheadError, request: ApiRequest, status: int | None = None) -> ApiResponse:
    return ApiResponse(status or error.status, error_body(error, request.method, request.path, status), JSON)


def too_large_response(request: ApiRequest) -> ApiResponse:
    """413: the rest of the body is still unread on the connection, which cannot carry another request."""
    response = error_response(ArrowheadError(TOO_LARGE, ExceptionType.INVALID_PARAMETER), request, 413)
    response.close = True
    return response


def internal_error_response(request: ApiRequest) -> ApiResponse:
    return error_response(ArrowheadError("Internal server error", ExceptionType.INTERNAL_SERVER_ERROR), request)


def _result_response(result: Result) -> ApiResponse:
    if result.payload is None:
        return ApiResponse(result.status)
    return ApiResponse(result.status, _encode(result.payload), JSON)


# ------------------------------------------------------------------------------------------- identity


def identify(api: HttpApi, request: ApiRequest) -> Requester:
    """Who is asking (401 when nobody acceptable); no management check."""
    if api.access.certificate is None:
        return authenticate_http(request.header(b"authorization"))
    return authenticate_https(request.client_certificates, request.base_url(), api.access.certificate)


def authenticate(api: HttpApi, request: ApiRequest, management: bool = True) -> Requester:
    requester = identify(api, request)
    request.requester = requester.name
    if management:
        try:
            authorize_management(requester, api.access.policy, api.access.whitelist)
        except ArrowheadError as error:
            error.origin = request.base_url()  # the reference's 403 origin: the URL without query
            raise
    return requester


# ------------------------------------------------------------------------------------------- the routes


async def _json_body(request: ApiRequest) -> bytes | None:
    data = await request.read_body()
    if data and request.mimetype() != "application/json":
        raise UnsupportedMediaType(f"Content type '{request.header(b'content-type')}' is not supported")
    return data or None


async def _answer(api: HttpApi, request: ApiRequest,
                  operation: Callable[[Requester], Awaitable[Result]]) -> ApiResponse:
    try:
        requester = authenticate(api, request)
        return _result_response(await operation(requester))
    except ArrowheadError as error:
        return error_response(error, request)
    except UnsupportedMediaType as error:
        return error_response(ArrowheadError(str(error)), request, 415)
    except BodyTooLarge:
        return too_large_response(request)


def _required_list(request: ApiRequest, name: str) -> list[str]:
    values = request.query_list(name)
    if values is None:
        raise ArrowheadError(f"Required parameter '{name}' is not present.")
    return values


async def lock_create(api: HttpApi, request: ApiRequest) -> ApiResponse:
    operations = api.operations
    return await _answer(api, request, lambda who: _then(_json_body(request), operations.lock_create, who))


async def lock_query(api: HttpApi, request: ApiRequest) -> ApiResponse:
    operations = api.operations
    return await _answer(api, request, lambda who: _then(_json_body(request), operations.lock_query, who))


async def lock_remove(api: HttpApi, request: ApiRequest) -> ApiResponse:
    async def operation(who: Requester) -> Result:
        ids = _required_list(request, "instanceIds")
        return await api.operations.lock_remove(who, request.path_params["owner"], ids)

    return await _answer(api, request, operation)


async def store_query(api: HttpApi, request: ApiRequest) -> ApiResponse:
    operations = api.operations
    return await _answer(api, request, lambda who: _then(_json_body(request), operations.store_query, who))


async def store_create(api: HttpApi, request: ApiRequest) -> ApiResponse:
    operations = api.operations
    return await _answer(api, request, lambda who: _then(_json_body(request), operations.store_create, who))


async def store_modify_priorities(api: HttpApi, request: ApiRequest) -> ApiResponse:
    operations = api.operations
    return await _answer(api, request,
                         lambda who: _then(_json_body(request), operations.store_modify_priorities, who))


async def store_remove(api: HttpApi, request: ApiRequest) -> ApiResponse:
    async def operation(who: Requester) -> Result:
        return await api.operations.store_remove(who, _required_list(request, "uuids"))

    return await _answer(api, request, operation)


async def echo(api: HttpApi, request: ApiRequest) -> ApiResponse:
    try:
        authenticate(api, request, management=False)
    except ArrowheadError as error:
        return error_response(error, request)
    return ApiResponse(200, ECHO_REPLY.encode(), TEXT)


async def _then(body: Awaitable[bytes | None], operation: Callable[[Requester, bytes | None], Awaitable[Result]],
                who: Requester) -> Result:
    return await operation(who, await body)
