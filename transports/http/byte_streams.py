"""The bytes of one native-server connection: a plain TCP socket driven directly, or a TLS stream.

A plain socket is non-blocking and called directly: a read that finds bytes waiting, or a write the
kernel takes whole, costs one system call and no trip through trio's scheduler (trio's SocketStream
checkpoints twice per call, which was most of the cost of a small request). Only when the kernel has
nothing to give or no room does the task wait (`wait_readable` / `wait_writable`), under a deadline.
A task that keeps finding bytes waiting (a pipelining client) still yields every `YIELD_EVERY` reads,
so that it cannot starve the others.

TLS goes through `trio.SSLStream` (its record layer needs the stream API), over `DirectSocketStream`: the
same direct calls behind trio's stream interface, since SSLStream already yields to the scheduler itself
(its internal locks) on every read and write.
"""

from __future__ import annotations

import socket
import ssl

import trio

MAX_RECEIVE = 1 << 16
YIELD_EVERY = 16
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class StreamClosed(Exception):
    """The connection is gone (reset, closed, or a write made no progress before its deadline)."""


class PlainSocket:
    """A connected TCP socket (non-blocking), owned by one task."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False
        self._streak = 0  # reads in a row that did not wait

    def addresses(self) -> tuple[object, object]:
        return self.sock.getpeername(), self.sock.getsockname()

    async def receive(self, deadline: float) -> bytes | None:
        """Bytes (b"" at the peer's end), or None when `deadline` passed first."""
        sock = self.sock
        try:
            data = sock.recv(MAX_RECEIVE)
        except BlockingIOError:
            pass
        except (OSError, ValueError) as error:  # ValueError: the socket was closed under us
            raise StreamClosed(str(error)) from None
        else:
            self._streak += 1
            if self._streak >= YIELD_EVERY:
                self._streak = 0
                await trio.lowlevel.checkpoint()
            return data
        self._streak = 0
        with trio.CancelScope(deadline=deadline):
            while True:
                try:
                    await trio.lowlevel.wait_readable(sock)
                except trio.ClosedResourceError:
                    raise StreamClosed("closed") from None
                try:
                    return sock.recv(MAX_RECEIVE)
                except BlockingIOError:
                    continue
                except (OSError, ValueError) as error:
                    raise StreamClosed(str(error)) from None
        return None

    async def send(self, data: bytes, stall: float) -> None:
        """Everything, or StreamClosed: each wait for room may last `stall` seconds (no progress)."""
        view = memoryview(data)
        sock = self.sock
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                with trio.move_on_after(stall) as waited:
                    try:
                        await trio.lowlevel.wait_writable(sock)
                    except trio.ClosedResourceError:
                        raise StreamClosed("closed") from None
                if waited.cancelled_caught:
                    self.abort()  # the client stopped reading
                    raise StreamClosed("the client accepted nothing for too long") from None
                continue
            except (OSError, ValueError) as error:
                raise StreamClosed(str(error)) from None
            view = view[sent:]

    async def finish(self, linger: float, linger_bytes: int) -> None:
        """Close. With `linger`: first send our end and read (and drop) what the client still sends, for at
        most that long: closing with unread bytes resets the connection, which can destroy an answer on its
        way (a refused request whose body is still coming)."""
        if linger and not self.closed:
            try:
                self.sock.shutdown(socket.SHUT_WR)
                drained = 0
                deadline = trio.current_time() + linger
                while drained < linger_bytes:
                    data = await self.receive(deadline)
                    if not data:
                        break
                    drained += len(data)
            except (StreamClosed, OSError):
                pass
        self.abort()

    def abort(self) -> None:
        """Close now; whoever waits on this socket wakes with StreamClosed."""
        if not self.closed:
            self.closed = True
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()


class TlsStream:
    """A TLS connection through trio.SSLStream (its handshake done by the caller)."""

    def __init__(self, stream: trio.SSLStream[DirectSocketStream]) -> None:
        self.stream = stream
        self.closed = False

    def addresses(self) -> tuple[object, object]:
        sock = self.stream.transport_stream.socket
        return sock.getpeername(), sock.getsockname()

    async def receive(self, deadline: float) -> bytes | None:
        with trio.CancelScope(deadline=deadline):
            try:
                return bytes(await self.stream.receive_some(MAX_RECEIVE))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                raise StreamClosed(str(error)) from None
        return None

    async def send(self, data: bytes, stall: float) -> None:
        view = memoryview(data)
        for start in range(0, len(view), 1 << 14):
            with trio.move_on_after(stall) as waited:
                try:
                    await self.stream.send_all(view[start : start + (1 << 14)])
                except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                    raise StreamClosed(str(error)) from None
            if waited.cancelled_caught:
                self.abort()  # a cancelled TLS write leaves the stream unusable anyway
                raise StreamClosed("the client accepted nothing for too long")

    async def finish(self, linger: float, linger_bytes: int) -> None:
        if not self.closed:
            self.closed = True
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                # https_compatible: close_notify is sent, the client's is not waited for
                await self.stream.aclose()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            sock = self.stream.transport_stream.socket
            if sock.fileno() != -1:
                trio.lowlevel.notify_closing(sock)
                sock.close()


class DirectSocketStream(trio.abc.HalfCloseableStream):
    """A trio stream over a non-blocking socket that calls it directly (module doc); for SSLStream."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self._streak = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        sock = self.socket
        while view:
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                await self.wait_send_all_might_not_block()
            except (OSError, ValueError) as error:
                if sock.fileno() == -1:
                    raise trio.ClosedResourceError("closed") from None
                raise trio.BrokenResourceError(str(error)) from error

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def send_eof(self) -> None:
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as error:
            raise trio.BrokenResourceError(str(error)) from error

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        sock = self.socket
        while True:
            try:
                data = sock.recv(max_bytes or MAX_RECEIVE)
            except BlockingIOError:
                self._streak = 0
                await trio.lowlevel.wait_readable(sock)
                continue
            except (OSError, ValueError) as error:
                if sock.fileno() == -1:
                    raise trio.ClosedResourceError("closed") from None
                raise trio.BrokenResourceError(str(error)) from error
            self._streak += 1
            if self._streak >= YIELD_EVERY:
                self._streak = 0
                await trio.lowlevel.checkpoint()
            return data

    async def aclose(self) -> None:
        if self.socket.fileno() != -1:
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()
        await trio.lowlevel.checkpoint()


ByteStream = PlainSocket | TlsStream


async def tls_handshake(sock: socket.socket, context: ssl.SSLContext, timeout: float) -> TlsStream | None:
    """The TLS handshake (None when it fails or takes longer than `timeout`)."""
    stream = trio.SSLStream(DirectSocketStream(sock), context, server_side=True, https_compatible=True)
    with trio.move_on_after(timeout):
        try:
            await stream.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        return TlsStream(stream)
    TlsStream(stream).abort()
    return None

