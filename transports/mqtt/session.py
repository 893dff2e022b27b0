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
acknowledged after a reconnect (marked DUP), so outgoing QoS 1/2 is at least once — except a message
the broker refuses by dropping the link (e.g. over its `max_packet_size`), which paho would re-send
forever: once it was the oldest unacknowledged message at `give_up_after_losses` link losses in a row,
it is dropped from paho's queue, counted (`given_up`) and logged (mqtt_watch). publish() does NOT
wait for the broker's ack on purpose: acks arrive on the same socket as requests, behind them, so a
consumer that waited for one while the buffer is full (reads paused) would wait forever.

Backpressure: paho's on_message only appends to a bounded buffer (mqtt_inbox). While the buffer is full no byte is
read from the socket, so TCP flow control pushes back on the broker. A consumer that keeps the buffer
full for longer than `keepalive` makes paho miss the PINGRESP and drop the link (then we reconnect).

Incoming payloads over `max_message_bytes` are dropped (counted); MQTT 5 tells the broker the limit on
CONNECT, and bigger packets are skipped at the socket, never held whole (mqtt_paho). The broker taking
the session away (another client with our id) is counted and warned about (mqtt_watch).

Exceptions raised by our paho callbacks are not suppressed (`suppress_exceptions = False`): they come
out of `loop_read`/`loop_write`, fail the connection's nursery and make `run()` raise (and log).
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import trio
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from transports.api.topics import shown
from transports.mqtt.inbox import Inbox
from transports.mqtt.paho_client import GatedClient, OversizePacket
from transports.mqtt.session_types import (
    MQTT_MAX_PACKET,
    PACKET_HEADROOM,
    IncomingMessage,
    MessageProperties,
    MqttConnectionLostError,
    MqttError,
    MqttNotConnectedError,
    MqttSessionClosedError,
    MqttSettings,
    MqttSubscribeError,
    generated_client_id,
)
from transports.mqtt.watch import SESSION_TAKEN_OVER, StuckPublishWatch, TakeoverWatch

__all__ = [
    "IncomingMessage", "MessageProperties", "MqttConnectionLostError", "MqttError", "MqttNotConnectedError",
    "MqttSession", "MqttSessionClosedError", "MqttSettings", "MqttSubscribeError", "backoff_delay",
]

log = logging.getLogger("lockstore.mqtt")

_OK = MQTTErrorCode.MQTT_ERR_SUCCESS
_new_properties: Callable[[int], Properties] = Properties  # paho leaves its __init__ unannotated
_MISC_INTERVAL = 1.0  # paho's own loop calls loop_misc about once a second (keepalive pings)


def backoff_delay(attempt: int, low: float, high: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with "equal jitter": the ceiling doubles per attempt up to `high`, and the
    delay is drawn from [ceiling/2, ceiling] so that many clients restarted together spread out."""
    ceiling = min(high, low * 2.0 ** min(attempt, 32))
    return ceiling / 2 + ceiling / 2 * rand()


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
        self._client_id = settings.client_id or generated_client_id()
        self._max_packet = (None if settings.max_message_bytes is None
                            else min(settings.max_message_bytes + PACKET_HEADROOM, MQTT_MAX_PACKET))
        self._inbox = Inbox(settings.max_buffered, settings.max_message_bytes)
        self._client = self._make_client()
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
        self._connack_at: float | None = None  # monotonic time of this connection's CONNACK
        self._stuck = StuckPublishWatch[paho.MQTTMessage](settings.give_up_after_losses)
        self._give_up: list[paho.MQTTMessage] = []  # dropped from paho's queue at the next CONNACK
        self._takeover = TakeoverWatch()
        self.given_up = 0  # outgoing QoS 1/2 messages dropped after link losses (StuckPublishWatch)

    # ---- public face -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def buffered(self) -> int:
        return len(self._inbox)

    @property
    def buffered_high_water(self) -> int:
        """The most messages the buffer has ever held (never above `max_buffered`)."""
        return self._inbox.high_water

    @property
    def dropped_too_large(self) -> int:
        """Received messages dropped for being over `max_message_bytes`."""
        return self._inbox.dropped_too_large

    @property
    def dropped_unreadable(self) -> int:
        """Received messages paho could not hand over (e.g. a topic that is not UTF-8)."""
        return self._inbox.dropped_unreadable

    @property
    def unacknowledged(self) -> int:
        """Our QoS 1/2 publishes the broker has not acknowledged yet."""
        return len(self._unacked)

    @property
    def connection_count(self) -> int:
        """How many times the session became ready (first connect + reconnects)."""
        return self._connections

    @property
    def taken_over(self) -> int:
        """Times the broker took the session away (TakeoverWatch: MQTT 5 says so; 3.1.1 is inferred)."""
        return self._takeover.taken_over

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
        return await self._inbox.receive()

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
        self._client.forget_partial_packet()
        if not self._v5:
            return self._client.connect(s.host, s.port, s.keepalive)
        props = None
        if (not s.clean_session and s.session_expiry) or self._max_packet is not None:
            props = _new_properties(PacketTypes.CONNECT)
            if not s.clean_session and s.session_expiry:
                props.SessionExpiryInterval = s.session_expiry
            if self._max_packet is not None:  # the broker must not send us more (MQTT 5 spec 3.1.2.11.4)
                props.MaximumPacketSize = self._max_packet
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
                await self._inbox.wait_for_room()
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
        self._inbox.close()
        for lot in (self._state_lot, self._write_lot):
            lot.unpark_all()
        self._finished_event.set()

    # ---- paho -------------------------------------------------------------------------------------

    def _make_client(self) -> GatedClient:
        s = self._s
        client = GatedClient(
            read_allowed=self._inbox.has_room,
            max_packet=self._max_packet,
            on_oversize=self._on_oversize,
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
        client.on_message = lambda client, userdata, message: self._inbox.admit(message)
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
        self._connack_at = time.monotonic()
        self._drop_given_up()  # here, before paho re-sends its queue (and not while it walks that queue)
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
        connack_at, self._connack_at = self._connack_at, None
        if self._closing:
            log.info("MQTT disconnected from %s:%d", s.host, s.port)
            return
        log.warning("MQTT connection to %s:%d lost: %s", s.host, s.port, reason)
        if connack_at is None:
            return  # never accepted: nothing was sent on it
        stuck = self._stuck.link_lost(self._client.oldest_unacknowledged())
        if stuck is not None:
            self._give_up.append(stuck)
        # MQTT 5: the broker's DISCONNECT says why; 3.1.1 (or no DISCONNECT): TakeoverWatch infers it.
        said = (reason.value == SESSION_TAKEN_OVER) if self._v5 and flags.is_disconnect_packet_from_server else None
        warning = self._takeover.link_lost(time.monotonic(), time.monotonic() - connack_at, said)
        if warning is not None:
            how = ("it sent DISCONNECT \"Session taken over\"" if warning.stated else
                   f"it closed the link {warning.early_losses} times in a row within "
                   f"{self._takeover.early:.0f} s of connecting")
            log.warning("MQTT broker %s:%d keeps taking the session of client id %r away (%s; %d time(s) since "
                        "the last warning): another client is probably connected with the same client id. Give "
                        "each lockstore instance its own mqtt_client_id, or leave it unset for a unique one",
                        s.host, s.port, self.client_id, how, warning.events)

    def _drop_given_up(self) -> None:
        for message in self._give_up:
            if self._client.drop_outgoing(message):
                self.given_up += 1
                self._unacked.discard(message.mid)
                log.warning("MQTT gave up a QoS %d message of %d bytes to %s: the broker dropped the link %d times "
                            "in a row while it waited for its ack (the broker's log says why it refused it)",
                            message.qos, len(message.payload), shown(message.topic), self._s.give_up_after_losses)
        self._give_up.clear()
        self._state_lot.unpark_all()

    def _on_oversize(self, packet: OversizePacket) -> None:
        head = packet.publish_head()
        topic = head.topic.decode("utf-8", "replace") if head is not None else "?"
        self._inbox.too_large(packet.length, topic, "packet")

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if mid in self._unacked:
            self._unacked.discard(mid)
            if reason.is_failure:  # MQTT 5 brokers may refuse, e.g. "Not authorized"
                log.warning("MQTT broker refused publish %d: %s", mid, reason)
            self._state_lot.unpark_all()
