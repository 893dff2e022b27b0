"""A trio-native MQTT client session: paho-mqtt 2.x driven by trio (ARCHITECTURE.md "MQTT under trio").

paho does the protocol; this module does the I/O. Its "external event loop" API (`loop_read`,
`loop_write`, `loop_misc`, `socket()`, `want_write()`) is driven from three trio tasks per connection
(reader, writer, housekeeping) with `trio.lowlevel.wait_readable` / `wait_writable`. Only the blocking
TCP (and TLS) connect runs in a worker thread. Every other paho call happens in the trio thread, so
paho callbacks run there too and may touch trio state directly.

Delivery guarantees (what the consumer of `receive()` / `async for` sees):
- Our own reconnect never makes a message arrive twice. With `clean_session=True` (the default) the
  broker forgets the session when the link drops, so nothing is redelivered; messages that were in
  flight at that moment, or published while we were away, are lost (at most once across reconnects).
  Within one connection paho hands a QoS 2 message over once, on PUBREL, keyed by packet id, so a
  DUP re-send of an unreleased QoS 2 PUBLISH replaces the stored copy instead of being delivered again.
- With `clean_session=False` the broker redelivers unacknowledged QoS 1 messages after a reconnect:
  a QoS 1 message may then arrive twice (at least once). QoS 2 stays exactly once while this process
  lives (paho keeps its QoS 2 state across reconnects on the same client).
- QoS 1/2 messages are acknowledged when paho has put them in our buffer, not when the consumer has
  handled them: a crash loses what is buffered (at most `max_buffered` messages).
Outgoing: `publish()` at QoS 0 returns when the bytes are in the kernel; at QoS 1/2 as soon as paho
has the message (it is written at once unless paho's window of 20 unacknowledged messages is full).
paho finishes the PUBACK / PUBREC-PUBREL-PUBCOMP exchange in the background and re-sends what is not
acknowledged after a reconnect (marked DUP), so outgoing QoS 1/2 is at least once. publish() does NOT
wait for the broker's ack on purpose: acks arrive on the same socket as requests, behind them, so a
consumer that waited for one while the buffer is full (reads paused) would wait forever.

Backpressure: paho's on_message only appends to a bounded buffer. While the buffer is full no byte is
read from the socket, so TCP flow control pushes back on the broker. A consumer that keeps the buffer
full for longer than `keepalive` makes paho miss the PINGRESP and drop the link (then we reconnect).

Exceptions raised by our paho callbacks are not suppressed (`suppress_exceptions = False`): they come
out of `loop_read`/`loop_write`, fail the connection's nursery and make `run()` raise (and log).
"""

from __future__ import annotations

import collections
import errno
import logging
import random
import secrets
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as paho
import trio
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger("lockstore.mqtt")

_OK = MQTTErrorCode.MQTT_ERR_SUCCESS
_new_properties: Callable[[int], Properties] = Properties  # paho leaves its __init__ unannotated
_MISC_INTERVAL = 1.0  # paho's own loop calls loop_misc about once a second (keepalive pings)


class MqttError(Exception):
    """Base of the errors this module raises."""


class MqttNotConnectedError(MqttError):
    """publish() while there is no ready connection; nothing was handed to paho."""


class MqttConnectionLostError(MqttError):
    """The link dropped before a QoS 0 message was completely written; it may or may not have gone."""


class MqttSessionClosedError(MqttError):
    """The session has ended (aclose, cancellation or failure of run())."""


class MqttSubscribeError(MqttError):
    """The broker refused one of the configured subscriptions (fatal: run() raises it)."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Everything the session needs. `subscriptions` are (topic filter, max QoS) pairs."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""  # empty: a random "lockstore-…" id, stable for the life of the session
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    clean_session: bool = True  # MQTT 5: the Clean Start flag
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    subscriptions: tuple[tuple[str, int], ...] = ()
    max_buffered: int = 256  # received messages held for the consumer; the socket is not read beyond
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    connect_timeout: float = 5.0  # TCP/TLS connect, and again CONNACK + SUBACK
    session_expiry: int = 0  # MQTT 5 with clean_session=False: Session Expiry Interval (s)
    tls: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if self.protocol not in ("3.1.1", "5"):
            raise ValueError(f"protocol must be '3.1.1' or '5', not {self.protocol!r}")
        if self.max_buffered < 1:
            raise ValueError("max_buffered must be at least 1")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        if self.keepalive < 0 or self.connect_timeout <= 0:
            raise ValueError("keepalive must be >= 0 and connect_timeout > 0")
        for topic, qos in self.subscriptions:
            if not topic or qos not in (0, 1, 2):
                raise ValueError(f"bad subscription {(topic, qos)!r}")


@dataclass(frozen=True, slots=True)
class MessageProperties:
    """The MQTT 5 request/response properties (spec 4.10); other properties are not exposed."""

    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: MessageProperties | None  # None unless a Response Topic or Correlation Data came


def backoff_delay(attempt: int, low: float, high: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with "equal jitter": the ceiling doubles per attempt up to `high`, and the
    delay is drawn from [ceiling/2, ceiling] so that many clients restarted together spread out."""
    ceiling = min(high, low * 2.0 ** min(attempt, 32))
    return ceiling / 2 + ceiling / 2 * rand()


class _GatedClient(paho.Client):
    """paho's Client with a read gate, the one place we lean on paho internals.

    `loop_read()` keeps parsing packets until the socket would block (up to one per message in
    flight), so pausing *between* loop_read calls cannot bound the buffer. Every socket read goes
    through `_sock_recv`; answering "would block" while the buffer is full makes paho stop after the
    packet in hand and resume at the same byte later (it keeps partial packets between reads).
    """

    def __init__(self, read_allowed: Callable[[], bool], **kwargs: Any) -> None:
        self._read_allowed = read_allowed
        super().__init__(**kwargs)

    def _sock_recv(self, bufsize: int) -> bytes:
        if not self._read_allowed():
            raise BlockingIOError(errno.EAGAIN, "lockstore MQTT buffer is full")
        return super()._sock_recv(bufsize)

    def force_close(self) -> None:
        """Close the socket now (paho has no public way when a DISCONNECT cannot be written)."""
        self._sock_close()


@dataclass(slots=True)
class _WriteWaiter:
    """A QoS 0 publish whose bytes the kernel did not take at once."""

    info: paho.MQTTMessageInfo
    event: trio.Event
    error: MqttError | None = None

    def wake(self, error: MqttError | None = None) -> None:
        self.error = error
        self.event.set()


def _has_tls_pending(sock: paho.SocketLike) -> bool:
    """Decrypted bytes already inside the SSL object do not make the fd readable."""
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


class MqttSession:
    """One MQTT client connection kept alive by `run()`; consume with `async for msg in session`."""

    def __init__(self, settings: MqttSettings) -> None:
        self._s = settings
        self._v5 = settings.protocol == "5"
        self._client_id = settings.client_id or f"lockstore-{secrets.token_hex(6)}"
        self._client = self._make_client()
        self._buffer: collections.deque[IncomingMessage] = collections.deque()
        self._high_water = 0
        self._data_lot = trio.lowlevel.ParkingLot()  # consumers waiting for a message
        self._space_lot = trio.lowlevel.ParkingLot()  # the reader waiting for buffer space
        self._write_lot = trio.lowlevel.ParkingLot()  # the writer waiting for outgoing bytes
        self._state_lot = trio.lowlevel.ParkingLot()  # anyone waiting for a state change
        self._write_waiters: dict[int, _WriteWaiter] = {}  # by packet id
        self._unacked: set[int] = set()  # packet ids of our QoS 1/2 publishes the broker has not acked
        self._connected = False  # CONNACK accepted and every SUBACK in: ready for traffic
        self._connections = 0
        self._sub_mid: int | None = None
        self._conn_scope: trio.CancelScope | None = None
        self._fatal: MqttError | None = None
        self._run_called = False
        self._reported_started = False
        self._closing = False
        self._finished = False
        self._close_requested = trio.Event()
        self._finished_event = trio.Event()

    # ---- public face -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def buffered_high_water(self) -> int:
        """The most messages the buffer has ever held (never above `max_buffered`)."""
        return self._high_water

    @property
    def unacknowledged(self) -> int:
        """Our QoS 1/2 publishes the broker has not acknowledged yet."""
        return len(self._unacked)

    @property
    def connection_count(self) -> int:
        """How many times the session became ready (first connect + reconnects)."""
        return self._connections

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, subscribe, and stay connected until aclose() or cancellation.

        `await nursery.start(session.run)` returns once the first connection is ready (CONNACK and
        all SUBACKs); use `start_soon` + `wait_connected()` not to wait for the broker. Raises only on
        what a reconnect cannot fix: a refused subscription or a bug (e.g. in a callback).
        """
        if self._run_called:
            raise RuntimeError("MqttSession.run() may only be called once")
        self._run_called = True
        attempt = 0
        try:
            while not self._closing:
                if await self._one_connection(task_status):
                    attempt = 0
                if self._closing:
                    break
                delay = backoff_delay(attempt, self._s.reconnect_min, self._s.reconnect_max)
                attempt += 1
                log.info("MQTT reconnect to %s:%d in %.2f s (attempt %d)",
                         self._s.host, self._s.port, delay, attempt)
                with trio.move_on_after(delay):
                    await self._close_requested.wait()
        except Exception:
            log.exception("MQTT session to %s:%d failed", self._s.host, self._s.port)
            raise
        finally:
            self._closing = True
            if self._client.socket() is not None:  # cancelled mid-connection: say goodbye if we can
                self._client.disconnect()
                self._client.force_close()
            self._finish()

    async def wait_connected(self) -> None:
        await trio.lowlevel.checkpoint()
        while not self._connected:
            if self._finished:
                raise MqttSessionClosedError("MQTT session has ended")
            await self._state_lot.park()

    async def receive(self) -> IncomingMessage:
        """The next message; trio.EndOfChannel once the session has ended and the buffer is empty."""
        await trio.lowlevel.checkpoint()
        while not self._buffer:
            if self._finished:
                raise trio.EndOfChannel
            await self._data_lot.park()
        message = self._buffer.popleft()
        self._space_lot.unpark_all()
        return message

    def messages(self) -> MqttSession:
        """`async for message in session.messages()` (the session is its own async iterator)."""
        return self

    def __aiter__(self) -> MqttSession:
        return self

    async def __anext__(self) -> IncomingMessage:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def publish(self, topic: str, payload: bytes, qos: int = 0, *, retain: bool = False,
                      properties: MessageProperties | None = None) -> None:
        """Send one message. QoS 0: returns when written to the socket; QoS 1/2: when paho has it and
        will see it acknowledged, across reconnects (module docstring: why not wait for the ack).

        Raises MqttNotConnectedError when not connected (then nothing is queued).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if qos not in (0, 1, 2):
            raise ValueError(f"QoS must be 0, 1 or 2, not {qos!r}")
        if self._finished:
            raise MqttSessionClosedError("MQTT session has ended")
        if not self._connected:
            raise MqttNotConnectedError(f"not connected to MQTT broker {self._s.host}:{self._s.port}")
        info = self._client.publish(topic, payload, qos=qos, retain=retain,
                                    properties=self._paho_properties(properties))
        if qos:
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:  # 65535 packet ids unacknowledged
                raise MqttError(f"publish to {topic!r}: {paho.error_string(info.rc)}")
            self._unacked.add(info.mid)  # even if the link just failed: paho re-sends after reconnect
        elif info.rc != _OK:
            raise MqttConnectionLostError(f"publish to {topic!r}: {paho.error_string(info.rc)}")
        if qos or info.is_published():
            self._after_paho()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        waiter = self._write_waiters[info.mid] = _WriteWaiter(info, trio.Event())
        self._after_paho()
        try:
            await waiter.event.wait()
        finally:
            if self._write_waiters.get(info.mid) is waiter:
                del self._write_waiters[info.mid]
        if waiter.error is not None:
            raise waiter.error

    async def aclose(self) -> None:
        """Stop: let pending QoS 1/2 acks arrive, send DISCONNECT, and wait for run() to end.

        Acks are read like everything else, so with a full buffer and nobody consuming they cannot
        arrive: the wait for them ends after connect_timeout. What is buffered stays receivable.
        """
        self._closing = True
        self._close_requested.set()
        self._state_lot.unpark_all()
        if not self._run_called:
            self._finish()
        await self._finished_event.wait()

    # ---- one connection ----------------------------------------------------------------------------

    async def _one_connection(self, task_status: trio.TaskStatus[None]) -> bool:
        """Connect once and serve the link until it drops or we close; True if it became ready."""
        s = self._s
        log.info("MQTT connecting to %s:%d as %s", s.host, s.port, self.client_id)
        try:
            rc = await trio.to_thread.run_sync(self._blocking_connect)
        except (OSError, ssl.CertificateError) as exc:
            log.warning("MQTT connect to %s:%d failed: %s", s.host, s.port, exc)
            return False
        sock = self._client.socket()
        if rc != _OK or sock is None:
            log.warning("MQTT connect to %s:%d failed: %s", s.host, s.port, paho.error_string(rc))
            self._client.force_close()
            return False
        became_ready = False
        try:
            async with trio.open_nursery() as nursery:
                self._conn_scope = nursery.cancel_scope
                nursery.start_soon(self._reader, sock)
                nursery.start_soon(self._writer, sock)
                nursery.start_soon(self._housekeeper, sock)
                with trio.move_on_after(s.connect_timeout):
                    while not self._connected and not self._closing:
                        await self._state_lot.park()
                if self._connected:
                    became_ready = True
                    if not self._reported_started:
                        self._reported_started = True
                        task_status.started()
                    await self._close_requested.wait()
                elif not self._closing:
                    log.warning("MQTT broker %s:%d sent no CONNACK/SUBACK within %.1f s",
                                s.host, s.port, s.connect_timeout)
                    self._client.force_close()
                await self._say_goodbye(sock)
        finally:
            self._conn_scope = None
        if self._fatal is not None:
            raise self._fatal
        return became_ready

    def _blocking_connect(self) -> MQTTErrorCode:
        """Worker thread: TCP (+TLS) connect and CONNECT. Nothing else touches the client meanwhile."""
        s = self._s
        if not self._v5:
            return self._client.connect(s.host, s.port, s.keepalive)
        props = None
        if not s.clean_session and s.session_expiry:
            props = _new_properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry
        return self._client.connect(s.host, s.port, s.keepalive, clean_start=s.clean_session,
                                    properties=props)

    async def _say_goodbye(self, sock: paho.SocketLike) -> None:
        """Clean DISCONNECT once outstanding QoS 1/2 acks are in (both bounded by connect_timeout)."""
        with trio.move_on_after(self._s.connect_timeout):
            while self._client.socket() is sock and (self._unacked or self._client.want_write()):
                await self._state_lot.park()
        if self._client.socket() is sock:
            self._client.disconnect()
            self._after_paho()
        with trio.move_on_after(self._s.connect_timeout):
            while self._client.socket() is sock:
                await self._state_lot.park()
        self._client.force_close()

    async def _reader(self, sock: paho.SocketLike) -> None:
        client = self._client
        try:
            while client.socket() is sock:
                while len(self._buffer) >= self._s.max_buffered:
                    await self._space_lot.park()
                if not _has_tls_pending(sock):
                    await trio.lowlevel.wait_readable(sock)
                client.loop_read()
                self._after_paho()
        except trio.ClosedResourceError:
            pass  # closed under us; on_socket_close has already ended this connection

    async def _writer(self, sock: paho.SocketLike) -> None:
        client = self._client
        try:
            while client.socket() is sock:
                if not client.want_write():
                    await self._write_lot.park()
                    continue
                await trio.lowlevel.wait_writable(sock)
                client.loop_write()
                self._after_paho()
                self._state_lot.unpark_all()  # _say_goodbye waits for want_write() to clear
        except trio.ClosedResourceError:
            pass

    async def _housekeeper(self, sock: paho.SocketLike) -> None:
        while self._client.socket() is sock:
            await trio.sleep(_MISC_INTERVAL)
            self._client.loop_misc()
            self._after_paho()

    def _after_paho(self) -> None:
        """Called after every paho call: wake the writer and settle what the call completed."""
        client = self._client
        if self._write_waiters:
            for mid, waiter in list(self._write_waiters.items()):
                if waiter.info.is_published():
                    del self._write_waiters[mid]
                    waiter.wake()
        # on_publish only while an ack is awaited: for every QoS 0 write it reports, paho builds a
        # ReasonCode and a Properties first (~60 µs, a quarter of a request's cost).
        on_publish = self._on_publish if self._unacked else None
        if client.on_publish != on_publish:
            client.on_publish = on_publish
        if client.want_write():
            self._write_lot.unpark_all()

    def _link_down(self) -> None:
        self._connected = False
        if self._conn_scope is not None:
            self._conn_scope.cancel()
        for waiter in self._write_waiters.values():
            waiter.wake(MqttConnectionLostError("MQTT connection lost during a QoS 0 publish"))
        self._write_waiters.clear()
        self._state_lot.unpark_all()

    def _finish(self) -> None:
        self._finished = True
        self._connected = False
        for waiter in self._write_waiters.values():
            waiter.wake(MqttSessionClosedError("MQTT session ended before the publish was written"))
        self._write_waiters.clear()
        if self._unacked:
            log.warning("MQTT session ended with %d QoS 1/2 publishes unacknowledged", len(self._unacked))
            self._unacked.clear()
        for lot in (self._data_lot, self._space_lot, self._state_lot, self._write_lot):
            lot.unpark_all()
        self._finished_event.set()

    # ---- paho -------------------------------------------------------------------------------------

    def _make_client(self) -> _GatedClient:
        s = self._s
        client = _GatedClient(
            read_allowed=lambda: len(self._buffer) < s.max_buffered,
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=None if self._v5 else s.clean_session,
            protocol=paho.MQTTv5 if self._v5 else paho.MQTTv311,
            reconnect_on_failure=False,  # else paho reconnects by itself, blocking, inside loop_read
        )
        client.enable_logger(logging.getLogger("lockstore.mqtt.paho"))
        client.suppress_exceptions = False
        client.connect_timeout = s.connect_timeout
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            client.tls_set_context(s.tls)
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _paho_properties(self, props: MessageProperties | None) -> Properties | None:
        if props is None or (props.response_topic is None and props.correlation_data is None):
            return None
        if not self._v5:
            raise ValueError("message properties need MQTT 5 (protocol='5')")
        out = _new_properties(PacketTypes.PUBLISH)
        if props.response_topic is not None:
            out.ResponseTopic = props.response_topic
        if props.correlation_data is not None:
            out.CorrelationData = props.correlation_data
        return out

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: paho.SocketLike) -> None:
        # Worker thread (inside connect()): no trio calls here. Nagle + delayed ACK cost 88 ms per
        # QoS 1 round trip instead of 0.34 ms (ARCHITECTURE.md); paho does not set TCP_NODELAY.
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: paho.SocketLike) -> None:
        # paho calls this just before sock.close(); trio must hear of it first (wait_* on a closed fd).
        if trio.lowlevel.in_trio_run():
            trio.lowlevel.notify_closing(sock)
            self._link_down()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                    reason: ReasonCode, properties: Properties | None) -> None:
        s = self._s
        if reason.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s", s.host, s.port, reason)
            return  # paho closes the socket; run() retries with backoff
        log.info("MQTT connected to %s:%d as %s (session present: %s)",
                 s.host, s.port, self.client_id, flags.session_present)
        if not s.subscriptions:
            self._became_ready()
            return
        rc, mid = client.subscribe(list(s.subscriptions))
        if rc != _OK:
            log.warning("MQTT subscribe could not be sent: %s", paho.error_string(rc))
        self._sub_mid = mid

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties | None) -> None:
        if mid != self._sub_mid:
            return
        topics = [topic for topic, _ in self._s.subscriptions]
        refused = [(topic, str(reason)) for topic, reason in zip(topics, reasons, strict=False)
                   if reason.is_failure]
        if refused:
            self._fatal = MqttSubscribeError(f"MQTT broker refused subscriptions: {refused}")
            if self._conn_scope is not None:
                self._conn_scope.cancel()
            return
        log.info("MQTT subscribed to %s", ", ".join(topic for topic, _ in self._s.subscriptions))
        self._became_ready()

    def _became_ready(self) -> None:
        self._connected = True
        self._connections += 1
        self._state_lot.unpark_all()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: paho.DisconnectFlags,
                       reason: ReasonCode, properties: Properties | None) -> None:
        s = self._s
        if self._closing:
            log.info("MQTT disconnected from %s:%d", s.host, s.port)
        else:
            log.warning("MQTT connection to %s:%d lost: %s", s.host, s.port, reason)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        props = None
        if message.properties is not None:
            response_topic = getattr(message.properties, "ResponseTopic", None)
            correlation = getattr(message.properties, "CorrelationData", None)
            if response_topic is not None or correlation is not None:
                props = MessageProperties(response_topic, correlation)
        self._buffer.append(IncomingMessage(message.topic, bytes(message.payload), message.qos,
                                            message.retain, props))
        self._high_water = max(self._high_water, len(self._buffer))
        self._data_lot.unpark()

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if mid in self._unacked:
            self._unacked.discard(mid)
            if reason.is_failure:  # MQTT 5 brokers may refuse, e.g. "Not authorized"
                log.warning("MQTT broker refused publish %d: %s", mid, reason)
            self._state_lot.unpark_all()
