"""hypercorn's HTTP/1.1 and HTTP/2 protocols, driven by our own connection loop and shutdown.

`hypercorn.trio.serve` (0.18) is replaced, not its protocols: its connection loop (`trio/tcp_server.py`)
has faults that any client can trigger and that no ASGI app can work around:

- every socket write is shielded from cancellation with no deadline: a client that stops reading (TCP
  zero window) holds its connection forever, and SIGTERM waits for it forever;
- the idle keep-alive task is restarted from inside the app's task on its last send, where quart-trio's
  `http.disconnect` cancel can kill it at birth (the connection is then never closed at shutdown);
- when h11 closes a connection after a response (shutdown, `Connection: close`) while the client's next
  request is already buffered, the read loop waits for a `can_read` that never comes: the connection
  task, and shutdown, hang until the graceful timeout;
- an idle connection is closed at shutdown by a task that may already have lost the race with a new
  request: the request is applied and its response lost.

Here each connection runs hypercorn's `ProtocolWrapper` (h11 / h2, unchanged) with:

- writes sent in pieces, each shielded (a cancelled write would corrupt the stream) but with a
  no-progress deadline (`SEND_STALL_TIMEOUT`), after which the connection is dropped;
- idleness as a flag that the protocol's `Updated` events set synchronously, and one watcher task per
  connection that closes it after `keep_alive_timeout` idle, or at once when the server stops; deciding
  and closing happen in one step, so a request the connection has read always gets its response;
- closing the connection also stops its reader, wherever it waits;
- a protocol error in what the client sends after its request (h11 refuses bytes that follow a request
  answered with `Connection: close`) stops the reading but no longer cuts the response under way.

Shutdown (`serve`): stop accepting, close idle connections at once, let each busy one finish its
in-flight response (h11 then closes it, since the worker context says terminated; HTTP/2 sends GOAWAY
and becomes idle), and exit as soon as every connection is closed. Whatever is left at
`graceful_timeout` (clients that stopped reading) is closed hard.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ASGIFramework, ConnectionState, LifespanState
from hypercorn.utils import parse_socket_addr, repr_socket_addr, wrap_app

from transports.http.hypercorn_protocol import Protocol

log = logging.getLogger("lockstore.http")

MAX_RECEIVE = 1 << 16
SEND_PIECE = 1 << 14  # bytes per shielded write: a client must take this much per SEND_STALL_TIMEOUT
SEND_STALL_TIMEOUT = 30.0  # seconds a client may accept none of a write piece before it is dropped

Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]


def raw_socket(stream: Stream) -> trio.socket.SocketType:
    if isinstance(stream, trio.SSLStream):
        return stream.transport_stream.socket
    return stream.socket


class Connection:
    """One client connection: TLS handshake, the protocol, the idle watcher, and closing."""

    def __init__(self, app: AppWrapper, config: Config, context: WorkerContext, state: LifespanState,
                 stream: Stream) -> None:
        self.app = app
        self.config = config
        self.context = context
        self.state = state
        self.stream = stream
        self.protocol: Protocol | None = None  # set once the handshake is done
        self.closed = False
        self._idle = True  # no request in flight (a new connection is idle until its first request)
        self._idle_since = trio.current_time()
        self._wake = trio.Event()  # replaced on every change the watcher must see
        self._send_lock = trio.Lock()
        self._reader = trio.CancelScope()
        self._reader_task: trio.lowlevel.Task | None = None
        self._reading_stopped = False
        self._watcher = trio.CancelScope()

    async def run(self) -> None:
        try:
            alpn = await self._handshake()
            if alpn is None:
                return
            sock = raw_socket(self.stream)
            client = parse_socket_addr(sock.family, sock.getpeername())
            server = parse_socket_addr(sock.family, sock.getsockname())
            async with TaskGroup() as task_group:
                self.protocol = Protocol(
                    self.app, self.config, self.context, task_group, ConnectionState(self.state.copy()),
                    isinstance(self.stream, trio.SSLStream), client, server, self._protocol_send, alpn,
                )
                await self.protocol.initiate()
                task_group.spawn(self._close_when_idle)
                await self._read()
                self._watcher.cancel()
        except OSError:
            pass
        finally:
            await self._close()

    async def _handshake(self) -> str | None:
        """The ALPN protocol ("http/1.1" without TLS), or None when the handshake failed."""
        if not isinstance(self.stream, trio.SSLStream):
            return "http/1.1"
        try:
            with trio.fail_after(self.config.ssl_handshake_timeout):
                await self.stream.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            return None
        return self.stream.selected_alpn_protocol() or "http/1.1"

    # -------------------------------------------------------------------------------- reading

    async def _read(self) -> None:
        assert self.protocol is not None
        self._reader_task = trio.lowlevel.current_task()
        with self._reader:
            while True:
                try:
                    with trio.fail_after(self.config.read_timeout or math.inf):
                        data = await self.stream.receive_some(MAX_RECEIVE)
                except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                    break
                if self.closed:
                    break  # closed (idle) while these bytes were on their way: they are not read
                await self.protocol.handle(RawData(bytes(data)))
                if self._reading_stopped:
                    return  # the response under way finishes first; h11 closes the connection after it
                if not data:
                    break
        # However reading ended, a request still in flight learns that its client is gone.
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await self.protocol.handle(Closed())

    # -------------------------------------------------------------------------------- the protocol's events

    async def _protocol_send(self, event: Event) -> None:
        assert self.protocol is not None
        if isinstance(event, RawData):
            async with self._send_lock:
                try:
                    await self._send_all(event.data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    await self.protocol.handle(Closed())
        elif isinstance(event, Closed):
            if trio.lowlevel.current_task() is self._reader_task and self.protocol.responding():
                # h11 refuses what the client sent after the request (e.g. anything after our
                # `Connection: close`) while our response is on its way: stop reading, but let the
                # response finish; h11 asks to close again once it has.
                self._reading_stopped = True
                return
            await self._close()
            await self.protocol.handle(Closed())
        elif isinstance(event, Updated):
            # Synchronous on purpose: no checkpoint between the protocol's change and this flag, so
            # the watcher never sees a connection idle while it holds a request it has read.
            if event.idle != self._idle:
                self._idle = event.idle
                self._idle_since = trio.current_time()
                self.wake()

    async def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), SEND_PIECE):
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + SEND_STALL_TIMEOUT
                await self.stream.send_all(view[start : start + SEND_PIECE])
            if scope.cancelled_caught:
                self.abort()  # the client stopped reading; a half-written piece leaves nothing to save
                raise trio.BrokenResourceError("the client accepted nothing for too long")

    # -------------------------------------------------------------------------------- idle and closing

    def wake(self) -> None:
        """Make the watcher look again (idleness changed, or the server is stopping)."""
        self._wake.set()
        self._wake = trio.Event()

    @property
    def busy(self) -> bool:
        """A request is in flight (read, and not yet answered in full)."""
        return not self._idle

    def stop(self) -> None:
        """The server stops: close at once if idle, else once the in-flight response is out."""
        if self.protocol is None:
            self.abort()  # still in its TLS handshake: nothing was asked yet
        else:
            self.wake()

    async def _close_when_idle(self) -> None:
        """The watcher: closes the connection after keep_alive_timeout idle, or at once when stopping."""
        assert self.protocol is not None
        with self._watcher:
            while not (self._idle and self.context.terminated.is_set()):
                wake = self._wake
                if not self._idle:
                    await wake.wait()
                    continue
                with trio.move_on_at(self._idle_since + self.config.keep_alive_timeout) as waited:
                    await wake.wait()
                if waited.cancelled_caught and self._idle:
                    break
            # Idle, and no checkpoint since the flag was read: stop reading before anything else.
            self._stop_reader()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1.0):  # (a GOAWAY the client does not read: see _send_all)
                    await self.protocol.goodbye()
                await self.protocol.handle(Closed())
                await self._close()

    def _stop_reader(self) -> None:
        if trio.lowlevel.current_task() is not self._reader_task:
            self._reader.cancel()

    async def _close(self) -> None:
        """Close the socket (FIN after what was sent). Also ends the reader, which may be waiting for a
        `can_read` that h11 never gives once it has decided to close."""
        if not self.closed:
            self.closed = True
            self._stop_reader()
            self._watcher.cancel()
        with trio.CancelScope(shield=True):
            # Closing the socket wakes a write stuck in another task; an https_compatible SSLStream
            # closes its socket without waiting to send close_notify.
            await self.stream.aclose()

    def abort(self) -> None:
        """Close the socket now: wakes every task blocked on it (a stalled write included)."""
        self.closed = True
        self._stop_reader()
        self._watcher.cancel()
        raw_socket(self.stream).close()


class Connections:
    """The open connections, so that shutdown can stop them and know when they are gone."""

    def __init__(self) -> None:
        self.open: set[Connection] = set()
        self._empty = trio.Event()

    async def serve(self, connection: Connection) -> None:
        self.open.add(connection)
        try:
            await connection.run()
        except Exception:
            # A fault in the protocol code ends this connection only, never the server.
            log.exception("HTTP connection failed; closed")
        finally:
            self.open.discard(connection)
            if not self.open:
                self._empty.set()

    async def wait_closed(self) -> None:
        if self.open:
            self._empty = trio.Event()
            await self._empty.wait()


async def serve(
    app: ASGIFramework,
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on `config.bind` until `shutdown_trigger` returns, then stop (see the module doc)."""
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    connections = Connections()

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        sockets = config.create_sockets()
        ssl_context = config.create_ssl_context()
        listeners: list[trio.abc.Listener[Stream]] = []
        binds: list[str] = []
        for sock in sockets.secure_sockets:
            assert ssl_context is not None  # hypercorn makes secure sockets only when TLS is configured
            sock.listen(config.backlog)
            plain = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
            listeners.append(trio.SSLListener(plain, ssl_context, https_compatible=True))
            binds.append(f"https://{repr_socket_addr(sock.family, sock.getsockname())}")
        for sock in sockets.insecure_sockets:
            sock.listen(config.backlog)
            listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
            binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")

        async def handler(stream: Stream) -> None:
            await connections.serve(Connection(wrapped, config, context, lifespan_state, stream))

        async with trio.open_nursery() as connection_nursery:
            async with trio.open_nursery() as accept_nursery:
                accept_nursery.start_soon(
                    partial(trio.serve_listeners, handler, listeners, handler_nursery=connection_nursery)
                )
                task_status.started(binds)
                await shutdown_trigger()
                # From here on, h11 closes a connection after its response and h2 refuses new streams.
                await context.terminated.set()
                accept_nursery.cancel_scope.cancel()  # stop accepting; the listening sockets close
            busy = sum(connection.busy for connection in connections.open)
            log.info("HTTP stopped accepting; closing %d idle connection(s), finishing %d busy one(s)",
                     len(connections.open) - busy, busy)
            for connection in list(connections.open):
                connection.stop()
            with trio.move_on_after(config.graceful_timeout):
                await connections.wait_closed()
            if connections.open:
                log.warning("%d HTTP connection(s) still busy after %.1f s (clients not reading?); closed",
                            len(connections.open), config.graceful_timeout)
                for connection in list(connections.open):
                    connection.abort()
                connection_nursery.cancel_scope.cancel()

        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()

