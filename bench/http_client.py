"""The harness's HTTP client: lockstore's HTTP API (and anything serving its paths: the quart echo,
the no-op responder) over one keep-alive HTTP/1.1 connection, plain or TLS, or over a new connection
per request (`Endpoint.new_connection`: the cost of a full TCP and TLS handshake every time).

It writes requests by hand on a trio socket (`bench.http_wire.HttpConnection`) instead of using httpx:
on a 2-core machine every microsecond the client spends is taken from the server it measures.
"""

from __future__ import annotations

import functools
import ssl
from urllib.parse import quote, urlsplit

import msgspec
import trio

from bench import operations as op
from bench.http_wire import HttpConnection

BASE = "/serviceorchestration"
LOCK_PATH = f"{BASE}/orchestration/mgmt/lock"
STORE_PATH = f"{BASE}/orchestration/mgmt/simple-store"
ECHO_PATH = f"{BASE}/monitor/echo"

_encode = msgspec.json.Encoder().encode


def _query_string(name: str, values: tuple[str, ...]) -> str:
    return "&".join(f"{name}={quote(value, safe='')}" for value in values)


def request_parts(operation: op.Operation, now: float | None = None) -> tuple[str, str, bytes]:
    """(method, path with query, body) of an operation on lockstore's HTTP API. Pure."""
    match operation:
        case op.Echo():
            return "GET", ECHO_PATH, b""
        case op.CreateLocks(owner, instances, ttl_s):
            when = op.expires_at(ttl_s, now)
            locks = [{"serviceInstanceId": i, "owner": owner, "expiresAt": when} for i in instances]
            return "POST", f"{LOCK_PATH}/create", _encode({"locks": locks})
        case op.QueryLocks(owner, page, size):
            body = {"owners": [owner], "pagination": {"page": page, "size": size}}
            return "POST", f"{LOCK_PATH}/query", _encode(body)
        case op.RemoveLocks(owner, instances):
            path = f"{LOCK_PATH}/remove/{quote(owner, safe='')}?{_query_string('instanceIds', instances)}"
            return "DELETE", path, b""
        case op.CreateRules(rules):
            candidates = [
                {"consumer": r.consumer, "serviceInstanceId": r.instance, "priority": r.priority} for r in rules
            ]
            return "POST", f"{STORE_PATH}/create", _encode({"candidates": candidates})
        case op.QueryRules(consumer, page, size):
            body = {"consumerNames": [consumer], "pagination": {"page": page, "size": size}}
            return "POST", f"{STORE_PATH}/query", _encode(body)
        case op.ModifyPriorities(priorities):
            return "PUT", f"{STORE_PATH}/modify-priorities", _encode(dict(priorities))
        case op.RemoveRules(ids):
            return "DELETE", f"{STORE_PATH}/remove?{_query_string('uuids', ids)}", b""
    raise TypeError(f"not an operation: {operation!r}")


class _Entry(msgspec.Struct):
    id: str | int = ""


class _Entries(msgspec.Struct):
    entries: list[_Entry] = []


_decode_entries = msgspec.json.Decoder(_Entries).decode


def created_ids(body: bytes) -> tuple[str, ...]:
    """The ids of the entries of a create response (rules' UUIDs); () if the body is not one."""
    try:
        return tuple(str(entry.id) for entry in _decode_entries(body).entries)
    except msgspec.DecodeError:
        return ()


def encode_request(method: str, path: str, body: bytes, host: str, authorization: str, *, close: bool = False) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {authorization}\r\n"
    if body or method in ("POST", "PUT"):
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode() + body


@functools.cache
def tls_context(ca: str, cert: str, key: str) -> ssl.SSLContext:
    """The client side of an https:// endpoint, made once per process (loading a CA is not free)."""
    context = ssl.create_default_context(cafile=ca or None)
    if cert:
        context.load_cert_chain(cert, key or None)
    return context


async def connect(endpoint: op.Endpoint) -> tuple[HttpConnection, str]:
    """A connection to the endpoint's http:// or https:// URL (handshake done), and its Host header."""
    url = urlsplit(endpoint.url)
    if url.scheme not in ("http", "https") or url.hostname is None:
        raise ValueError(f"the HTTP client needs an http(s)://host:port URL, not {endpoint.url!r}")
    secure = url.scheme == "https"
    stream = await trio.open_tcp_stream(url.hostname, url.port or (443 if secure else 80))
    if not secure:
        return HttpConnection(stream), url.netloc
    tls = trio.SSLStream(stream, tls_context(endpoint.tls_ca, endpoint.tls_cert, endpoint.tls_key),
                         server_hostname=url.hostname)
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tls)
        raise
    return HttpConnection(tls), url.netloc


class HttpClient:
    """One keep-alive connection; concurrent `call`s take turns (HTTP/1.1 has no multiplexing). With
    `endpoint.new_connection` it holds no connection: each call connects, asks once and closes."""

    def __init__(self, connection: HttpConnection | None, endpoint: op.Endpoint, host: str) -> None:
        self._connection = connection
        self._endpoint = endpoint
        self._host = host
        self._turn = trio.Lock()

    @classmethod
    async def open(cls, endpoint: op.Endpoint) -> HttpClient:
        connection, host = await connect(endpoint)
        if endpoint.new_connection:  # connecting worked; each call makes its own from now on
            await connection.aclose()
            return cls(None, endpoint, host)
        return cls(connection, endpoint, host)

    async def call(self, operation: op.Operation) -> op.Reply:
        method, path, body = request_parts(operation)
        fresh = self._connection is None
        request = encode_request(method, path, body, self._host, self._endpoint.authorization, close=fresh)
        async with self._turn:
            try:
                if self._connection is None:
                    connection, _ = await connect(self._endpoint)
                    try:
                        status, answer = await connection.exchange(request)
                    finally:
                        await trio.aclose_forcefully(connection.stream)
                else:
                    status, answer = await self._connection.exchange(request)
            except (trio.BrokenResourceError, ssl.SSLError) as error:
                raise ConnectionError(str(error)) from error
        if isinstance(operation, op.CreateRules) and 200 <= status < 300:
            return op.Reply(status, created_ids(answer))
        return op.Reply(status)

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.aclose()
