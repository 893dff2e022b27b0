"""One HTTP/1.1 connection of the native server: one task reads, answers each request in order, and
closes. No task per request: the API handlers run inline in this task (transports/http/native_app.py).

- Reading between requests (idle) waits at most `keep_alive_timeout` (a new connection: `head_timeout`);
  a request head must be whole within `head_timeout` of its first byte, a body within `body_timeout` of
  the handler asking for it (a 408 then, and the connection closes): slowloris clients cannot hold a
  connection.
- A response is one write (head and body joined); a wait for the client to take more of it lasts at most
  `send_stall_timeout`: a client that stops reading is dropped (transports/http/byte_streams.py).
- After answering with a request body possibly still on its way (a refusal, a 413), the connection
  lingers: it sends its end and drops what still comes for up to a second, so that the close does not
  reset the connection (a reset can destroy the answer before the client reads it).
- `Expect: 100-continue`: the 100 is sent only when the handler reads a body that is not here yet; a
  handler that answers without reading it closes the connection (the client may never send the body).
- Pipelined requests are answered strictly in order (they are read one after another from the queue
  of transports/http/http1.py). A body the handler did not read is skipped before the next request.
- Shutdown (`stop`): an idle connection (no whole request head read, or between requests) closes at
  once; a busy one answers its request with `connection: close` and then closes; requests it read behind
  that one are never started.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass
from time import perf_counter

import msgspec
import trio

from transports.api.errors import ArrowheadError, ExceptionType
from transports.http.byte_streams import ByteStream, PlainSocket, StreamClosed, tls_handshake
from transports.http.exchange import ApiRequest, BodyTooLarge
from transports.http.http1 import (
    BODY_OVER_LIMIT,
    END_OF_MESSAGE,
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    NEED_DATA,
    PEER_CLOSED,
    BodyData,
    Event,
    Http1Requests,
    Refusal,
    RequestHead,
)
from transports.http.native_app import ExchangeAborted, NativeApp, Reply
from transports.http.responses import CONTINUE, BadResponseHeader, response_bytes

log = logging.getLogger("lockstore.http")

LINGER_SECONDS = 1.0  # after answering with input left unread: how long to read and drop what still comes ...
LINGER_BYTES = 2 << 20  # ... and how much

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class ServerLimits:
    """The native server's limits and deadlines (seconds)."""

    max_connections: int = 1024
    keep_alive_timeout: float = 30.0  # idle between requests
    head_timeout: float = 10.0  # a request head, from its first byte (a new connection: from the accept)
    body_timeout: float = 30.0  # a request body, from the handler asking for it
    send_stall_timeout: float = 30.0  # per SEND_PIECE a client does not accept
    handshake_timeout: float = 10.0  # TLS
    graceful_timeout: float = 5.0  # at shutdown, for busy connections whose client does not read
    max_head_bytes: int = MAX_HEAD_BYTES
    max_body_bytes: int = MAX_BODY_BYTES


@dataclass
class ServerState:
    """What every connection shares with its server."""

    app: NativeApp
    limits: ServerLimits
    stopping: bool = False  # shutdown has begun: no new request is started


class _Close(Exception):
    """End this connection now (timed out, stopped, evicted, client gone)."""


class Connection:
    def __init__(self, server: ServerState, sock: socket.socket, tls: ssl.SSLContext | None = None) -> None:
        self.server = server
        self.app: NativeApp = server.app
        self.limits: ServerLimits = server.limits
        self.sock = sock
        self.tls = tls
        self.stream: ByteStream | None = None  # once connected (after the TLS handshake)
        self.requests = Http1Requests(max_head_bytes=self.limits.max_head_bytes,
                                      max_body_bytes=self.limits.max_body_bytes)
        self.busy = False  # a whole request head was read and its response is not out yet
        self.idle_since = trio.current_time()
        self.closed = False
        self.closing = False  # stopping or evicted: close at the next idle moment (now, if idle)
        self._linger = False  # answered with request bytes left unread: drain them before closing
        self._served = 0
        self._scheme = "https" if tls is not None else "http"
        self._certificates: tuple[str, ...] = ()
        self._client: tuple[str, int] | None = None
        self._server_address: tuple[str, int] | None = None

    # ------------------------------------------------------------------------------------------ life

    async def run(self) -> None:
        try:
            if self.tls is not None:
                tls = await tls_handshake(self.sock, self.tls, self.limits.handshake_timeout)
                if tls is None or self.closed:
                    return
                der = tls.stream.getpeercert(binary_form=True)  # the client's certificate, once per connection
                self._certificates = (ssl.DER_cert_to_PEM_cert(der),) if der else ()
                self.stream = tls
            else:
                self.stream = PlainSocket(self.sock)
            peer, local = self.stream.addresses()
            self._client, self._server_address = _address(peer), _address(local)
            await self._serve()
        except (_Close, StreamClosed, OSError):
            pass
        finally:
            await self._close()

    def stop(self) -> None:
        """Close now, unless a request is in flight: then right after its response (shutdown, eviction).
        An idle connection's socket is closed under its waiting task: bytes it had not read yet are never
        read, so no request is half-taken."""
        self.closing = True
        if not self.busy:
            self.abort()

    def abort(self) -> None:
        """Close the socket now: wakes whatever this connection waits for (a stalled write included)."""
        self.closed = True
        if self.stream is not None:
            self.stream.abort()
        else:
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()

    async def _close(self) -> None:
        if self.stream is None:
            self.abort()
            return
        linger = LINGER_SECONDS if self._linger and not self.closed else 0.0
        self.closed = True
        await self.stream.finish(linger, LINGER_BYTES)

    # ------------------------------------------------------------------------------------------ requests

    async def _serve(self) -> None:
        while True:
            event = await self._next_request_event()
            if isinstance(event, RequestHead):
                if self.server.stopping:
                    return  # read, but not started: never applied (the client sees the connection close)
                if not await self._exchange(event):
                    return
            elif isinstance(event, Refusal):
                await self._refuse(event, perf_counter())
                return
            elif event is PEER_CLOSED or event is BODY_OVER_LIMIT:
                return
            # BodyData / END_OF_MESSAGE here: the remains of a body already skipped

    async def _next_request_event(self) -> Event:
        """The next event, reading while needed: idle (keep-alive) or within a head (its deadline)."""
        head_deadline: float | None = None
        while (event := self.requests.next_event()) is NEED_DATA:
            if self.closing or self.server.stopping:
                raise _Close
            if self.requests.in_message:
                if head_deadline is None:
                    head_deadline = trio.current_time() + self.limits.head_timeout
                deadline = head_deadline
            else:
                wait = self.limits.keep_alive_timeout if self._served else self.limits.head_timeout
                deadline = self.idle_since + wait
            assert self.stream is not None
            data = await self.stream.receive(deadline)
            if data is None:  # the deadline
                if self.requests.in_message and not self.closing and not self.closed:
                    await self._refuse(Refusal(408, "Request head not received in time"), perf_counter(),
                                       quick=True)
                raise _Close
            self.requests.receive_data(data)
        return event

    async def _exchange(self, head: RequestHead) -> bool:
        """Answer one request; True when the connection goes on."""
        self.busy = True
        started = perf_counter()
        body = _Body(self, head)
        request = ApiRequest(head.method, head.path, head.query_string, head.headers, self._scheme,
                             self._server_address, self._certificates, body.read_all)
        hook = self.app.hook
        request_id = hook.request_id(head.headers) if hook is not None else None
        try:
            reply = await self.app.respond(request, self._scope_extras(head), body.next_chunk)
            if body.aborted is not None:
                raise body.aborted
        except ExchangeAborted as aborted:
            if aborted.refusal is not None:
                await self._refuse(aborted.refusal, started, head)
            return False
        close = reply.close or not head.keep_alive or self.server.stopping or body.must_close()
        self._linger = close and head.has_body and not body.complete  # the client may still be sending it
        if request_id is not None:
            reply.headers.append((b"x-request-id", request_id.encode()))
        try:
            data = response_bytes(reply.status, reply.headers, reply.body, close=close,
                                  http_1_0_keep_alive=head.http_version == "1.0" and not close,
                                  head_request=head.method == "HEAD")
        except BadResponseHeader as error:
            log.error("response to %s %s not sent: %s; answered 500 instead", head.method, head.path, error)
            reply = Reply(500, [], _error(500, "Internal server error", head.method, head.path,
                                          ExceptionType.INTERNAL_SERVER_ERROR))
            data = response_bytes(500, [(b"content-type", b"application/json")], reply.body, close=True)
            close = True
        await self.send(data)
        self._served += 1
        if hook is not None:
            assert request_id is not None
            hook.done(head.method, head.path, reply.status, perf_counter() - started, request.requester,
                      self._client[0] if self._client else None, request_id)
        if close or not await body.skip_rest():
            return False
        self.busy = False
        self.idle_since = trio.current_time()
        return True

    def _scope_extras(self, head: RequestHead) -> dict[str, object]:
        return {"http_version": head.http_version, "raw_path": head.raw_path, "client": self._client}

    async def _refuse(self, refusal: Refusal, started: float, head: RequestHead | None = None, *,
                      quick: bool = False) -> None:
        """Answer a refused request with an Arrowhead error body, then the connection closes."""
        self.busy = True
        self._linger = True
        method = head.method if head else refusal.method
        path = head.path if head else refusal.path
        body = _error(refusal.status, refusal.message, method, path)
        headers = [(b"content-type", b"application/json")]
        hook = self.app.hook
        request_id = None
        if hook is not None and method is not None and path is not None:
            request_id = hook.request_id(head.headers if head else refusal.headers or [])
            headers.append((b"x-request-id", request_id.encode()))
        with trio.move_on_after(1.0 if quick else self.limits.send_stall_timeout):
            await self.send(response_bytes(refusal.status, headers, body, close=True))
        if hook is not None and request_id is not None:
            assert method is not None and path is not None
            hook.done(method, path, refusal.status, perf_counter() - started, None,
                      self._client[0] if self._client else None, request_id)

    # ------------------------------------------------------------------------------------------ I/O

    async def receive(self, deadline: float) -> bytes:
        assert self.stream is not None
        data = await self.stream.receive(deadline)
        if data is None:
            raise ExchangeAborted(Refusal(408, "Request body not received in time"))
        return data

    async def send(self, data: bytes) -> None:
        assert self.stream is not None
        await self.stream.send(data, self.limits.send_stall_timeout)


class _Body:
    """The body of the request being answered, read only if and when the handler asks for it."""

    def __init__(self, connection: Connection, head: RequestHead) -> None:
        self.connection = connection
        self.head = head
        self.complete = False  # its END_OF_MESSAGE was taken
        self.continued = False  # 100 Continue sent
        self.started = False
        self.over_limit = False
        self.aborted: ExchangeAborted | None = None  # set when next_chunk could not go on
        self._deadline = 0.0

    def must_close(self) -> bool:
        """Answered with the body unread, where the connection cannot find the next request after it."""
        if self.complete:
            return False
        declared = self.head.content_length
        waiting = self.head.expect_continue and not self.continued
        return self.over_limit or waiting or (declared is not None and declared > self.connection.limits.max_body_bytes)

    async def read_all(self) -> bytes:
        """The whole body (the inline handlers). Raises BodyTooLarge, or ExchangeAborted."""
        declared = self.head.content_length
        if declared is not None and declared > self.connection.limits.max_body_bytes:
            self.over_limit = True
            raise BodyTooLarge
        pieces = []
        while (piece := await self._next()) is not None:
            pieces.append(piece)
        if self.over_limit:
            raise BodyTooLarge
        return b"".join(pieces) if len(pieces) != 1 else pieces[0]

    async def next_chunk(self) -> bytes | None:
        """The next piece, None at the end (the ASGI bridge). Never raises: a problem ends the body early
        and is kept in `aborted` for the connection."""
        try:
            return await self._next()
        except ExchangeAborted as aborted:
            self.aborted = aborted
            return None

    async def _next(self) -> bytes | None:
        if self.complete or self.over_limit:
            return None
        connection = self.connection
        requests = connection.requests
        while (event := requests.next_event()) is NEED_DATA:
            if not self.started:
                self.started = True
                self._deadline = trio.current_time() + connection.limits.body_timeout
            if self.head.expect_continue and not self.continued:
                self.continued = True
                await connection.send(CONTINUE)
            requests.receive_data(await connection.receive(self._deadline))
        if isinstance(event, BodyData):
            return event.data
        if event is END_OF_MESSAGE:
            self.complete = True
            return None
        if event is BODY_OVER_LIMIT:
            self.over_limit = True
            return None
        if isinstance(event, Refusal):
            raise ExchangeAborted(event)  # bad chunk framing and the like: 400, then close
        raise ExchangeAborted(None)  # PEER_CLOSED: nobody to answer

    async def skip_rest(self) -> bool:
        """Skip what the handler did not read, up to the end of the message; False: close instead."""
        if self.complete:
            return True
        try:
            while await self._next() is not None:
                pass
        except ExchangeAborted:
            return False
        return self.complete


def _address(address: object) -> tuple[str, int] | None:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None


def _error(status: int, message: str, method: str | None, path: str | None,
           kind: ExceptionType = ExceptionType.INVALID_PARAMETER) -> bytes:
    error = ArrowheadError(message, kind, f"{method} {path}" if method is not None and path is not None else None)
    body = error.body()
    body.errorCode = status
    return _encode(body)

