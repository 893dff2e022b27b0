"""The harness's HTTP client: lockstore's HTTP API (and anything serving its paths: the quart echo,
the no-op responder) over one keep-alive HTTP/1.1 connection.

It writes requests by hand on a trio socket (`bench.harness.HttpConnection`) instead of using httpx:
on a 2-core machine every microsecond the client spends is taken from the server it measures.
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

import msgspec
import trio

from bench.harness import HttpConnection
from bench.operations import (
    CreateLocks,
    CreateRules,
    Echo,
    Endpoint,
    ModifyPriorities,
    Operation,
    QueryLocks,
    QueryRules,
    RemoveLocks,
    RemoveRules,
    Reply,
)

BASE = "/serviceorchestration"
LOCK_PATH = f"{BASE}/orchestration/mgmt/lock"
STORE_PATH = f"{BASE}/orchestration/mgmt/simple-store"
ECHO_PATH = f"{BASE}/monitor/echo"

_encode = msgspec.json.Encoder().encode


def expires_at(ttl_s: int, now: float | None = None) -> str:
    """The `expiresAt` instant `ttl_s` from now, in the service's format (UTC, whole seconds)."""
    moment = int(now if now is not None else time.time()) + ttl_s
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _query_string(name: str, values: tuple[str, ...]) -> str:
    return "&".join(f"{name}={quote(value, safe='')}" for value in values)


def request_parts(operation: Operation, now: float | None = None) -> tuple[str, str, bytes]:
    """(method, path with query, body) of an operation on lockstore's HTTP API. Pure."""
    match operation:
        case Echo():
            return "GET", ECHO_PATH, b""
        case CreateLocks(owner, instances, ttl_s):
            when = expires_at(ttl_s, now)
            locks = [{"serviceInstanceId": i, "owner": owner, "expiresAt": when} for i in instances]
            return "POST", f"{LOCK_PATH}/create", _encode({"locks": locks})
        case QueryLocks(owner, page, size):
            body = {"owners": [owner], "pagination": {"page": page, "size": size}}
            return "POST", f"{LOCK_PATH}/query", _encode(body)
        case RemoveLocks(owner, instances):
            path = f"{LOCK_PATH}/remove/{quote(owner, safe='')}?{_query_string('instanceIds', instances)}"
            return "DELETE", path, b""
        case CreateRules(rules):
            candidates = [
                {"consumer": r.consumer, "serviceInstanceId": r.instance, "priority": r.priority} for r in rules
            ]
            return "POST", f"{STORE_PATH}/create", _encode({"candidates": candidates})
        case QueryRules(consumer, page, size):
            body = {"consumerNames": [consumer], "pagination": {"page": page, "size": size}}
            return "POST", f"{STORE_PATH}/query", _encode(body)
        case ModifyPriorities(priorities):
            return "PUT", f"{STORE_PATH}/modify-priorities", _encode(dict(priorities))
        case RemoveRules(ids):
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


def encode_request(method: str, path: str, body: bytes, host: str, authorization: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {authorization}\r\n"
    if body or method in ("POST", "PUT"):
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


class HttpClient:
    """One keep-alive connection; concurrent `call`s take turns (HTTP/1.1 has no multiplexing)."""

    def __init__(self, connection: HttpConnection, endpoint: Endpoint, host: str) -> None:
        self._connection = connection
        self._endpoint = endpoint
        self._host = host
        self._turn = trio.Lock()

    @classmethod
    async def open(cls, endpoint: Endpoint) -> HttpClient:
        url = urlsplit(endpoint.url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"the HTTP client needs an http://host:port URL, not {endpoint.url!r}")
        connection = await HttpConnection.open(url.hostname, url.port or 80)
        return cls(connection, endpoint, url.netloc)

    async def call(self, operation: Operation) -> Reply:
        method, path, body = request_parts(operation)
        request = encode_request(method, path, body, self._host, self._endpoint.authorization)
        async with self._turn:
            try:
                status, answer = await self._connection.exchange(request)
            except trio.BrokenResourceError as error:
                raise ConnectionError(str(error)) from error
        if isinstance(operation, CreateRules) and 200 <= status < 300:
            return Reply(status, created_ids(answer))
        return Reply(status)

    async def aclose(self) -> None:
        await self._connection.stream.aclose()
