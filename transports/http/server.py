"""The native HTTP/1.1 server, lockstore's default front end: a listener, one task per connection
(transports/http/connection.py), a connection limit, and shutdown. HTTPS through `trio.SSLStream`, the
client's certificate taken at the handshake (for the certificate policy). HTTP/2 is hypercorn's
(`--http-server hypercorn`): ALPN offers only http/1.1 here.

Connection limit (`http_max_connections`): a client that connects while that many connections are open
makes the longest-idle one close (its client reconnects when it needs to); when every connection is busy,
the newcomer waits, unread, and accepting pauses (later ones wait in the kernel's listen queue) until one
closes. Each connection's deadlines bound how long that can be.

Shutdown (`shutdown_trigger` returns): stop accepting (the listening socket closes), close idle
connections at once, let busy ones finish their in-flight response (it says `connection: close`), and
return as soon as all are closed. Whatever is left after `graceful_timeout` (clients that stopped
reading) is closed hard. The Quart app's lifespan runs around all of it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

import trio

from transports.http.asgi_bridge import Lifespan
from transports.http.connection import Connection, ServerLimits, ServerState
from transports.http.native_app import NativeApp

log = logging.getLogger("lockstore.http")

BACKLOG = 1024
TCP_NOTSENT_LOWAT: int | None = getattr(trio.socket, "TCP_NOTSENT_LOWAT", None)  # trio knows it per platform
_ACCEPT_PAUSE = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}  # out of descriptors or memory
_ACCEPT_RETRY = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR}  # that one connection failed


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (non-blocking), bound the way the start-up check probes it
    (transports/startup.py)."""
    bare = host.replace("[", "").replace("]", "")
    sock = socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bare, port))  # numeric or resolvable: the start-up check already bound it once
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket, scheme: str) -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


async def accept(listener: socket.socket) -> socket.socket:
    """The next connection: non-blocking, TCP_NODELAY (answers are single writes: no reason to wait)."""
    while True:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            await trio.lowlevel.wait_readable(listener)
            continue
        except OSError as error:
            if error.errno in _ACCEPT_RETRY:
                continue
            raise
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if TCP_NOTSENT_LOWAT is not None:
                # As trio's SocketStream: the kernel keeps at most 16 KiB not yet sent, so a client that stops
                # reading makes a write wait (and meet its deadline) instead of parking megabytes in the kernel.
                sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, 1 << 14)
        return sock


class NativeServer:
    def __init__(self, app: NativeApp, limits: ServerLimits | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.limits = limits or ServerLimits()
        self.ssl_context = ssl_context
        self.state = ServerState(app, self.limits)
        self.connections: set[Connection] = set()
        self._changed = trio.Event()  # set whenever a connection closes
        self._full_warned = False

    async def serve(self, host: str, port: int, *,
                    shutdown_trigger: Callable[[], Awaitable[object]],
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until `shutdown_trigger` returns, then stop (module doc). Reports the bound URL."""
        sock = listening_socket(host, port)
        url = url_of(sock, "https" if self.ssl_context else "http")
        lifespan = Lifespan(self.app.quart)
        async with trio.open_nursery() as lifespan_nursery:
            await lifespan_nursery.start(lifespan.run)
            async with trio.open_nursery() as connection_nursery:
                async with trio.open_nursery() as accept_nursery:
                    accept_nursery.start_soon(self._accept, sock, connection_nursery)
                    task_status.started([url])
                    await shutdown_trigger()
                    self.state.stopping = True
                    accept_nursery.cancel_scope.cancel()
                trio.lowlevel.notify_closing(sock)
                sock.close()
                await self._stop_connections()
                connection_nursery.cancel_scope.cancel()
            await lifespan.shutdown()

    async def _stop_connections(self) -> None:
        busy = sum(connection.busy for connection in self.connections)
        log.info("HTTP stopped accepting; closing %d idle connection(s), finishing %d busy one(s)",
                 len(self.connections) - busy, busy)
        for connection in list(self.connections):
            connection.stop()
        with trio.move_on_after(self.limits.graceful_timeout):
            while self.connections:
                await self._wait_for_change()
        if self.connections:
            log.warning("%d HTTP connection(s) still busy after %.1f s (clients not reading?); closed",
                        len(self.connections), self.limits.graceful_timeout)
            for connection in list(self.connections):
                connection.abort()

    async def _wait_for_change(self) -> None:
        changed = self._changed
        await changed.wait()

    async def _accept(self, listener: socket.socket, nursery: trio.Nursery) -> None:
        while True:
            try:
                sock = await accept(listener)
            except OSError as error:
                if error.errno not in _ACCEPT_PAUSE:
                    raise
                log.warning("HTTP: cannot accept a connection (%s); pausing 100 ms", error.strerror)
                await trio.sleep(0.1)
                continue
            try:
                await self._room()  # the new connection waits here, unread, while the others are all busy
            except BaseException:
                sock.close()
                raise
            connection = Connection(self.state, sock, self.ssl_context)
            self.connections.add(connection)
            nursery.start_soon(self._run, connection)

    async def _room(self) -> None:
        """Wait until one more connection may be served (module doc: the connection limit)."""
        limit = self.limits.max_connections
        while len(self.connections) >= limit:
            idle = [c for c in self.connections if not c.busy and not c.closing]
            if idle:
                min(idle, key=lambda c: c.idle_since).stop()
            elif not self._full_warned:
                self._full_warned = True
                log.warning("HTTP: %d connections, all busy (http_max_connections); new ones wait", limit)
            await self._wait_for_change()

    async def _run(self, connection: Connection) -> None:
        try:
            await connection.run()
        except Exception:
            # A fault in the connection code ends this connection only, never the server.
            log.exception("HTTP connection failed; closed")
        finally:
            self.connections.discard(connection)
            self._changed.set()
            self._changed = trio.Event()
