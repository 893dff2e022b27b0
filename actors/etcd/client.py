"""A trio-native etcd v3 client on the JSON gateway, over httpx (which runs on trio through anyio).

Why not grpcio: it has no trio support (threads only). The gateway costs a JSON encode per request,
which msgspec makes cheap, and gives plain HTTP/1.1 keep-alive connections.

What it adds to plain HTTP:
- **Failover**: requests go to the current endpoint until it fails, then to the next; after a whole
  round of failures, exponential backoff with jitter (actors/etcd/failover.py); each call has a total
  deadline, each attempt its own timeout.
- **Write safety**: a txn whose answer was lost raises `OutcomeUnknown` instead of being retried
  (actors/etcd/errors.py says which failures are safe to retry).
- **Leader requirement**: every request carries gRPC metadata `hasleader` (the header
  `Grpc-Metadata-Hasleader: true`, forwarded by the gateway), so a member cut off from the leader
  refuses at once ("no leader") instead of hanging, and cancels its watches (etcd's WithRequireLeader).
- **TLS** (a CA, a client certificate and key) and **user/password auth**: the token from
  /v3/auth/authenticate goes in the Authorization header and is fetched again when etcd calls it
  invalid (simple tokens expire after --auth-token-ttl idle seconds; JWTs at their expiry).

Nothing here retries at a higher level than one request: conflicts and unknown outcomes belong to the
callers (actors/etcd/writes.py), watch restarts to the reflector.

May import: httpx, msgspec, trio; actors.etcd.wire, .errors, .failover, .stats. Never transports or bench.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import msgspec
import trio

from actors.etcd import wire
from actors.etcd.errors import (
    AUTH_NOT_ENABLED_MESSAGE,
    UNKNOWN,
    EtcdRequestError,
    EtcdUnavailable,
    OutcomeUnknown,
    Verdict,
    request_error,
    verdict,
)
from actors.etcd.failover import Backoff, EndpointRing
from actors.etcd.stats import EtcdStats

R = TypeVar("R", bound=msgspec.Struct)

LEADER_HEADER = {"Grpc-Metadata-Hasleader": "true"}


@dataclass(frozen=True)
class EtcdConfig:
    """How to reach the cluster. `endpoints` from `failover.parse_endpoints`."""

    endpoints: tuple[str, ...]
    ca: Path | None = None  # PEM of the CA that signed the members' certificates (default: the system's)
    cert: Path | None = None  # client certificate (PEM), for members that require one
    key: Path | None = None  # its private key
    username: str | None = None
    password: str | None = None
    request_timeout: float = 5.0  # one attempt: connect + send + answer
    connect_timeout: float = 2.0
    deadline: float = 15.0  # one call, every attempt and backoff included
    max_connections: int = 100


def tls_context(config: EtcdConfig) -> ssl.SSLContext | None:
    """The client TLS context for https:// endpoints, or None (plain http). Raises ValueError naming the
    setting whose file cannot be used, so start-up can say so in one line."""
    if not any(endpoint.startswith("https://") for endpoint in config.endpoints):
        return None
    try:
        context = ssl.create_default_context(cafile=str(config.ca) if config.ca else None)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"etcd_ca {config.ca}: {error}") from None
    if (config.cert is None) != (config.key is None):
        raise ValueError("etcd_cert and etcd_key go together: set both or neither")
    if config.cert is not None and config.key is not None:
        try:
            context.load_cert_chain(config.cert, config.key)
        except (OSError, ssl.SSLError) as error:
            raise ValueError(f"etcd_cert {config.cert} / etcd_key {config.key}: {error}") from None
    return context


def _is_write(txn: wire.TxnRequest) -> bool:
    """Does the txn change anything (in either branch, nested txns included)?"""
    for op in (*txn.success, *txn.failure):
        if op.request_put is not None or op.request_delete_range is not None:
            return True
        if op.request_txn is not None and _is_write(op.request_txn):
            return True
    return False


def _describe(error: BaseException) -> str:
    """The error and, when it says little, what caused it (httpx wraps TLS and socket errors)."""
    text = str(error)
    cause = error.__cause__ or error.__context__
    while cause is not None and not text:
        text = str(cause)
        cause = cause.__cause__ or cause.__context__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class EtcdClient:
    """One per instance; shared by every task (httpx pools the connections, one request per connection)."""

    def __init__(
        self,
        config: EtcdConfig,
        *,
        stats: EtcdStats | None = None,
        backoff: Backoff | None = None,
        transport: httpx.AsyncBaseTransport | None = None,  # tests: a scripted gateway, no sockets
    ) -> None:
        if config.username is not None and config.password is None:
            raise ValueError("etcd_password is required with etcd_user")
        self.config = config
        self.stats = stats if stats is not None else EtcdStats()
        self._ring = EndpointRing(config.endpoints)
        self._backoff = backoff if backoff is not None else Backoff()
        context = tls_context(config)
        self._http = httpx.AsyncClient(
            verify=context if context is not None else True,
            timeout=httpx.Timeout(config.request_timeout, connect=config.connect_timeout),
            limits=httpx.Limits(
                max_connections=config.max_connections, max_keepalive_connections=config.max_connections
            ),
            trust_env=False,  # no proxy from the environment between us and etcd
            transport=transport,
        )
        self._token: str | None = None
        self._auth_lock = trio.Lock()
        self.last_success: float | None = None  # trio time of the last answered request (health)
        self.last_error: str = ""

    @property
    def current_endpoint(self) -> str:
        return self._ring.current

    def endpoint_failed(self, endpoint: str) -> None:
        """Move on from `endpoint` (a caller saw it misbehave, e.g. a watch that stalled)."""
        self._ring.failed(endpoint)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------------------------ calls

    async def range(self, request: wire.RangeRequest) -> wire.RangeResponse:
        return await self._unary(wire.RANGE, wire.encode(request), wire.RangeResponse, write=False)

    async def txn(self, request: wire.TxnRequest) -> wire.TxnResponse:
        """A txn; one that writes raises OutcomeUnknown when its answer is lost (never retried here)."""
        return await self._unary(wire.TXN, wire.encode(request), wire.TxnResponse, write=_is_write(request))

    async def compact(self, revision: int, *, physical: bool = False) -> wire.CompactionResponse:
        body = wire.encode(wire.CompactionRequest(revision, physical))
        return await self._unary(wire.COMPACTION, body, wire.CompactionResponse, write=False)

    async def status(self, endpoint: str | None = None) -> wire.StatusResponse:
        """The member's status (version, leader, raft indexes, alarms); of `endpoint` only, if given."""
        return await self._unary(wire.STATUS, b"{}", wire.StatusResponse, write=False, endpoint=endpoint)

    async def lease_grant(self, ttl: int) -> wire.LeaseGrantResponse:
        body = wire.encode(wire.LeaseGrantRequest(ttl))
        return await self._unary(wire.LEASE_GRANT, body, wire.LeaseGrantResponse, write=False)

    async def lease_keepalive(self, lease_id: int) -> int:
        """Refresh a lease once; its new TTL in seconds (0: the lease is gone)."""
        body = wire.encode(wire.LeaseIdRequest(lease_id))
        reply = await self._unary(wire.LEASE_KEEPALIVE, body, wire.LeaseKeepAliveMessage, write=False, lines=True)
        if reply.error is not None:
            raise EtcdRequestError(reply.error.grpc_code, reply.error.message)
        return reply.result.TTL if reply.result is not None else 0

    async def lease_revoke(self, lease_id: int) -> None:
        body = wire.encode(wire.LeaseIdRequest(lease_id))
        await self._unary(wire.LEASE_REVOKE, body, wire.LeaseRevokeResponse, write=False)

    @asynccontextmanager
    async def watch(self, request: wire.WatchCreateRequest) -> AsyncIterator[WatchStream]:
        """A watch on the current endpoint. The stream ends (or raises EtcdUnavailable) when the member
        goes away or loses its leader; restarting it, elsewhere, is the caller's job."""
        target = self._ring.current
        headers = await self._headers()
        timeout = httpx.Timeout(self.config.request_timeout, connect=self.config.connect_timeout, read=None)
        body = wire.encode(wire.WatchRequest(request))
        try:
            async with self._http.stream("POST", target + wire.WATCH, content=body, headers=headers,
                                         timeout=timeout) as response:
                if response.status_code != 200:
                    error = wire.error_reply(await response.aread())
                    self._check_stream_error(error.code, error.message or error.error, headers)
                yield WatchStream(response, target, self, headers)
        except httpx.TransportError as error:
            self._ring.failed(target)
            self.last_error = f"watch on {target}: {_describe(error)}"
            raise EtcdUnavailable(self.last_error) from None

    # ------------------------------------------------------------------------------------------ internals

    def _check_stream_error(self, code: int, message: str, headers: dict[str, str]) -> None:
        """Raise for an error that ended a stream (its token is dropped first if etcd called it invalid)."""
        kind = verdict(code, message, write=False)
        if kind is Verdict.REAUTHENTICATE:
            self._forget_token(headers.get("Authorization"))
        if kind is Verdict.FINAL:
            raise request_error(code, message)
        raise EtcdUnavailable(f"watch: {message}")

    async def _unary(
        self,
        path: str,
        body: bytes,
        reply_type: type[R],
        *,
        write: bool,
        endpoint: str | None = None,
        authenticate: bool = True,
        lines: bool = False,
    ) -> R:
        config = self.config
        deadline = trio.current_time() + config.deadline
        backoffs = reauthentications = 0
        last = "no attempt"
        while True:
            target = endpoint or self._ring.current
            headers = await self._headers() if authenticate else dict(LEADER_HEADER)
            started = trio.current_time()
            budget = max(0.01, min(config.request_timeout, deadline - started))
            timeout = httpx.Timeout(budget, connect=min(config.connect_timeout, budget))
            try:
                response = await self._http.post(target + path, content=body, headers=headers, timeout=timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError,
                    httpx.WriteTimeout) as error:  # the request never got to etcd whole
                last = f"{target}: {_describe(error)}"
                self._failed(target, path, "unreachable", started)
            except httpx.TransportError as error:  # sent; the answer was lost
                last = f"{target}: {_describe(error)}"
                self._failed(target, path, "lost", started)
                if write:
                    self.stats.unknown_outcomes += 1
                    raise OutcomeUnknown(f"etcd txn outcome unknown ({last})") from None
            else:
                if response.status_code == 200:
                    return self._answered(target, path, started, response.content, reply_type, lines)
                error_body = wire.error_reply(response.content)
                message = error_body.message or error_body.error or f"HTTP {response.status_code}"
                kind = verdict(error_body.code, message, write=write)
                last = f"{target}: {message}"
                self.stats.observe(path, kind.name.lower(), trio.current_time() - started)
                if kind is Verdict.REAUTHENTICATE and config.username is not None and reauthentications < 2:
                    reauthentications += 1
                    self._forget_token(headers.get("Authorization"))
                    continue
                if kind in (Verdict.FINAL, Verdict.REAUTHENTICATE):
                    self._ring.succeeded(target)  # the member answered; the request is at fault
                    raise request_error(error_body.code, message)
                self._ring.failed(target)
                self.stats.endpoint_failovers += 1
                if kind is Verdict.UNKNOWN_OUTCOME:
                    self.stats.unknown_outcomes += 1
                    raise OutcomeUnknown(f"etcd txn outcome unknown ({last})")
            self.last_error = last
            if endpoint is not None:
                raise EtcdUnavailable(f"etcd member did not answer ({last})")
            delay = 0.0
            if self._ring.round_failed:
                backoffs += 1
                delay = self._backoff.delay(backoffs)
            if trio.current_time() + delay >= deadline:
                raise EtcdUnavailable(f"no etcd member answered within {config.deadline:g} s ({last})")
            await trio.sleep(delay)

    def _answered(self, target: str, path: str, started: float, content: bytes, reply_type: type[R],
                  lines: bool) -> R:
        if lines:  # a streamed call read to its end: its first message
            first = wire.JsonLines().feed(content + b"\n")
            content = first[0] if first else b"{}"
        try:
            reply = wire.decode(content, reply_type)
        except msgspec.DecodeError as error:
            raise EtcdRequestError(UNKNOWN, f"unexpected answer from {target}{path}: {error}") from None
        self._ring.succeeded(target)
        now = trio.current_time()
        self.last_success = now
        self.stats.observe(path, "ok", now - started)
        return reply

    def _failed(self, target: str, path: str, outcome: str, started: float) -> None:
        self._ring.failed(target)
        self.stats.endpoint_failovers += 1
        self.stats.observe(path, outcome, trio.current_time() - started)

    async def _headers(self) -> dict[str, str]:
        headers = dict(LEADER_HEADER)
        if self.config.username is None:
            return headers
        token = self._token
        if token is None:
            token = await self._authenticate()
        if token:
            headers["Authorization"] = token
        return headers

    def _forget_token(self, used: str | None) -> None:
        if used is not None and self._token == used:
            self._token = None

    async def _authenticate(self) -> str:
        async with self._auth_lock:  # concurrent requests share one authentication
            if self._token is not None:
                return self._token
            assert self.config.username is not None and self.config.password is not None
            body = wire.encode(wire.AuthenticateRequest(self.config.username, self.config.password))
            try:
                reply = await self._unary(wire.AUTHENTICATE, body, wire.AuthenticateResponse, write=False,
                                          authenticate=False)
            except EtcdRequestError as error:
                if str(error).startswith(AUTH_NOT_ENABLED_MESSAGE):
                    self._token = ""  # the cluster does not check: send no token
                    return ""
                raise
            self._token = reply.token
            return reply.token


class WatchStream:
    """The messages of one watch stream, as WatchResponses; errors in the stream raise."""

    def __init__(self, response: httpx.Response, endpoint: str, client: EtcdClient, headers: dict[str, str]) -> None:
        self._response = response
        self.endpoint = endpoint
        self._client = client
        self._headers = headers

    async def __aiter__(self) -> AsyncIterator[wire.WatchResponse]:
        lines = wire.JsonLines()
        async for chunk in self._response.aiter_raw():
            for line in lines.feed(chunk):
                try:
                    message = wire.decode(line, wire.WatchMessage)
                except msgspec.DecodeError as error:
                    raise EtcdUnavailable(f"watch on {self.endpoint}: unreadable message: {error}") from None
                if message.error is not None:
                    self._client._check_stream_error(message.error.grpc_code, message.error.message, self._headers)
                if message.result is not None:
                    yield message.result
