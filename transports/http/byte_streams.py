"""The bytes of one native-server connection: a plain TCP socket driven directly, or a TLS stream.

A plain socket is non-blocking and called directly: a read that finds bytes waiting, or a write the
kernel takes whole, costs one system call and no trip through trio's scheduler (trio's SocketStream
checkpoints twice per call, which was most of the cost of a small request). Only when the kernel has
nothing to give or no room does the task wait (`wait_readable` / `wait_writable`), under a deadline.
A task that keeps finding bytes waiting (a pipelining client) still yields every `YIELD_EVERY` reads,
so that it cannot starve the others.

TLS goes through `trio.SSLStream` as it is (its record layer needs the stream API).
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

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
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
            self.stream.transport_stream.socket.close()


ByteStream = PlainSocket | TlsStream


async def tls_handshake(sock: socket.socket, context: ssl.SSLContext, timeout: float) -> TlsStream | None:
    """The TLS handshake (None when it fails or takes longer than `timeout`)."""
    stream = trio.SSLStream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), context, server_side=True,
                            https_compatible=True)
    with trio.move_on_after(timeout):
        try:
            await stream.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        return TlsStream(stream)
    stream.transport_stream.socket.close()
    return None

