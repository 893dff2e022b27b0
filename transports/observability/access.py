"""Per-request observation for both transports: request id, metrics, access log.

HTTP: `RequestObserver` is an ASGI middleware around the Quart app. It sees every request, including
the ones the framework answers itself (404/405/413), takes the status from `http.response.start`,
and adds an `X-Request-ID` header (the client's, when it sent a sane one — a reverse proxy's id
passes through — or a new one). The requester is the one thing only the app knows: it leaves the
name in the ASGI scope under `REQUESTER_KEY` once authenticated.

MQTT: `MqttObserver` is the MQTT server's per-request hook (topic, reply, seconds).

Work per request is a few dict operations and one histogram bucket; the access-log line is built
only when the logger is enabled for INFO.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
from time import perf_counter
from typing import Any, cast

import msgspec
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from transports.http.app import ECHO_PATH, LOCK_PATH, STORE_PATH
from transports.mqtt.dispatch import Reply, Unroutable, route
from transports.observability.logging_setup import FIELDS_ATTRIBUTE
from transports.observability.metrics import NO_REPLY, ServiceMetrics

access_log = logging.getLogger("lockstore.access")

REQUESTER_KEY = "lockstore.requester"
REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

HTTP_OPERATIONS: dict[str, str] = {
    f"{LOCK_PATH}/create": "lock_create",
    f"{LOCK_PATH}/query": "lock_query",
    f"{STORE_PATH}/query": "store_query",
    f"{STORE_PATH}/create": "store_create",
    f"{STORE_PATH}/modify-priorities": "store_modify_priorities",
    f"{STORE_PATH}/remove": "store_remove",
    ECHO_PATH: "echo",
    "/health/live": "health_live",
    "/health/ready": "health_ready",
    "/metrics": "metrics",
    "/openapi.json": "openapi",
    "/docs": "docs",
}
_LOCK_REMOVE_PREFIX = f"{LOCK_PATH}/remove/"


def _emit(message: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
    """One access-log record. `makeRecord` + `handle` is what `logger.info` does, minus finding the
    caller's file and line (a stack walk per request, useless here)."""
    access_log.handle(access_log.makeRecord(access_log.name, logging.INFO, "(access)", 0, message, args, None,
                                            extra={FIELDS_ATTRIBUTE: fields}))


def http_operation(path: str) -> str:
    """The operation label of a path; unknown paths share one label (bounded metric cardinality)."""
    operation = HTTP_OPERATIONS.get(path)
    if operation is not None:
        return operation
    if path.startswith(_LOCK_REMOVE_PREFIX):
        return "lock_remove"
    if path.startswith("/docs/"):
        return "docs"
    return "unknown"


class RequestIds:
    """Short unique ids: a random per-process prefix and a counter (cheaper than a UUID per request)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"


def _incoming_id(headers: Any) -> str | None:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            return text if _SANE_ID.fullmatch(text) else None
    return None


class RequestObserver:
    """ASGI middleware: metrics and access log for every HTTP request (see the module doc)."""

    def __init__(self, app: ASGIFramework, metrics: ServiceMetrics, *, log_access: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_access = log_access
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        http_scope = cast(dict[str, Any], scope)
        request_id = _incoming_id(http_scope["headers"]) or self.ids.next()
        header = (REQUEST_ID_HEADER, request_id.encode())
        status = 0

        async def observed_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            self._done(http_scope, request_id, status or 500, perf_counter() - started)
            raise
        self._done(http_scope, request_id, status, perf_counter() - started)

    def _done(self, scope: dict[str, Any], request_id: str, status: int, seconds: float) -> None:
        path: str = scope["path"]
        operation = http_operation(path)
        self.metrics.observe_request(operation, "http", status, seconds)
        if self.log_access and access_log.isEnabledFor(logging.INFO):
            client = scope.get("client")
            method: str = scope["method"]
            fields = {
                "request_id": request_id, "transport": "http", "operation": operation, "method": method,
                "path": path, "status": status, "duration_ms": round(seconds * 1000, 3),
                "requester": scope.get(REQUESTER_KEY), "client": client[0] if client else None,
            }
            _emit("%s %s %d %.2f ms", (method, path, status, seconds * 1000), fields)


class NativeRequestObserver:
    """The native HTTP server's hook (transports/http/native_app.py `ExchangeHook`): the same request ids,
    metrics and access-log line as `RequestObserver` gives hypercorn's requests, without an ASGI layer."""

    def __init__(self, observer: RequestObserver) -> None:
        self.observer = observer

    def request_id(self, headers: Any) -> str:
        return _incoming_id(headers) or self.observer.ids.next()

    def done(self, method: str, path: str, status: int, seconds: float, requester: str | None,
             client: str | None, request_id: str) -> None:
        scope = {"method": method, "path": path, REQUESTER_KEY: requester, "client": (client, 0) if client else None}
        self.observer._done(scope, request_id, status, seconds)


# ------------------------------------------------------------------------------------------- MQTT

_STATUS_PREFIX = b'{"status":'


class _ReplyHead(msgspec.Struct):
    """The envelope fields of an MQTT reply (`MqttResponseTemplate`); the payload is skipped."""

    status: int = NO_REPLY
    traceId: str | None = None
    receiver: str | None = None


_head_decoder = msgspec.json.Decoder(_ReplyHead)


def reply_head(body: bytes) -> _ReplyHead:
    try:
        return _head_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return _ReplyHead()


def reply_status(body: bytes) -> int:
    """The status of an encoded MQTT reply. Ours always start `{"status":NNN,` (msgspec writes fields
    in declaration order), so the common case reads three digits instead of decoding the payload."""
    if body.startswith(_STATUS_PREFIX):
        end = body.find(b",", len(_STATUS_PREFIX), len(_STATUS_PREFIX) + 6)
        if end > 0:
            digits = body[len(_STATUS_PREFIX) : end]
            if digits.isdigit():
                return int(digits)
    return reply_head(body).status


class MqttObserver:
    """The MQTT server's per-request hook: metrics and access log."""

    def __init__(self, metrics: ServiceMetrics, prefix: str, *, log_access: bool = True) -> None:
        self.metrics = metrics
        self.prefix = prefix
        self.log_access = log_access
        self.ids = RequestIds()

    def __call__(self, topic: str, reply: Reply | None, seconds: float) -> None:
        try:
            operation = route(topic, self.prefix)[0]
        except Unroutable:
            operation = "unknown"
        status = reply_status(reply.body) if reply is not None else NO_REPLY
        self.metrics.observe_request(operation, "mqtt", status, seconds)
        if self.log_access and access_log.isEnabledFor(logging.INFO):
            head = reply_head(reply.body) if reply is not None else _ReplyHead()
            fields = {
                "request_id": self.ids.next(), "trace_id": head.traceId, "transport": "mqtt",
                "operation": operation, "topic": topic, "status": status if status != NO_REPLY else None,
                "duration_ms": round(seconds * 1000, 3), "requester": head.receiver,
                "reply_topic": reply.topic if reply is not None else None,
            }
            _emit("MQTT %s %s %.2f ms", (topic, status if status != NO_REPLY else "no reply", seconds * 1000),
                  fields)
