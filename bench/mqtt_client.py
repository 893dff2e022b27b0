"""The harness's MQTT client: the operations of `bench.operations` as Arrowhead MQTT request templates over
ONE MQTT 3.1.1 connection (the light codec of `bench.mqtt_codec`, not paho: on 2 cores the client's CPU
is taken from the server under test), with any number of calls in flight at once.

Matching a reply to its call: every call gets a response topic of its own, `bench/r/<client>/<n>`, under
the client's one wildcard subscription `bench/r/<client>/+`. The service echoes `traceId` in its replies,
but the echo responders (`bench.mqtt_echo`) do not, and the topic is parsed anyway to read a PUBLISH: a
dict lookup by topic needs no JSON decode on the reading side, works for every target, and a reply that
arrives after its call was cancelled finds no waiter and is dropped (it can never be handed to a newer
call). MQTT 5 correlation data does not exist in 3.1.1. The traceId is still unique per call.

No background task: the calls do the I/O themselves (leader/follower). A caller whose reply is not
there yet reads the socket if nobody else is reading, hands every reply it finds to its waiter, and
when its own has come passes the reading role on to another waiting caller. Outgoing requests queued
while one caller is writing go out with its next write (one syscall for many requests under load).
So `open` is a plain coroutine and `aclose` ends everything, with no nursery to own.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec
import trio

from bench import operations as op
from bench.mqtt_codec import PUBLISH, MalformedPacketError, PacketReader, RawMqtt, encode_publish, parse_publish

DEFAULT_PORT = 1883
LOCK_PATH = "/orchestration/management/lock/"
STORE_PATH = "/orchestration/management/store/"
ECHO_PATH = "/monitor/echo"
REPLY_ROOT = "bench/r/"
SEND_TIMEOUT = 30.0  # a write the broker does not take within this breaks the connection
_READ_SIZE = 1 << 16

_numbers = itertools.count()

# ------------------------------------------------------------------------------------------ pure: templates


class _Template(msgspec.Struct, omit_defaults=True):
    """The Arrowhead MQTT request template (docs/ARROWHEAD-REFERENCE.md §1.5); QoS 0 replies."""

    traceId: str
    authentication: str
    responseTopic: str
    qosRequirement: int
    params: dict[str, str] | msgspec.UnsetType = msgspec.UNSET
    payload: Any = msgspec.UNSET


_encode = msgspec.json.Encoder().encode


def mqtt_address(url: str) -> tuple[str, int]:
    """mqtt://host[:port] → (host, port)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"not an mqtt://host:port URL: {url!r}")
    return parts.hostname, parts.port or DEFAULT_PORT


def _pagination(page: int, size: int) -> dict[str, int]:
    return {"page": page, "size": size}


def request(operation: op.Operation, prefix: str, response_topic: str, trace_id: str, authentication: str,
            now: float) -> tuple[str, bytes]:
    """(request topic, template) of one operation. `now` (epoch seconds) dates a CreateLocks' expiry."""
    params: dict[str, str] | msgspec.UnsetType = msgspec.UNSET
    payload: Any = msgspec.UNSET
    if isinstance(operation, op.Echo):
        topic = prefix + ECHO_PATH
    elif isinstance(operation, op.CreateLocks):
        topic = prefix + LOCK_PATH + "create"
        expires = op.expires_at(operation.ttl_s, now)
        payload = {"locks": [{"serviceInstanceId": instance, "owner": operation.owner, "expiresAt": expires}
                             for instance in operation.instances]}
    elif isinstance(operation, op.QueryLocks):
        topic = prefix + LOCK_PATH + "query"
        payload = {"owners": [operation.owner], "pagination": _pagination(operation.page, operation.size)}
    elif isinstance(operation, op.RemoveLocks):
        topic = prefix + LOCK_PATH + "remove"
        params = {"owner": operation.owner}
        payload = list(operation.instances)
    elif isinstance(operation, op.CreateRules):
        topic = prefix + STORE_PATH + "create"
        payload = {"candidates": [{"consumer": r.consumer, "serviceInstanceId": r.instance, "priority": r.priority}
                                  for r in operation.rules]}
    elif isinstance(operation, op.QueryRules):
        topic = prefix + STORE_PATH + "query"
        payload = {"consumerNames": [operation.consumer], "pagination": _pagination(operation.page, operation.size)}
    elif isinstance(operation, op.ModifyPriorities):
        topic = prefix + STORE_PATH + "modify-priorities"
        payload = dict(operation.priorities)
    elif isinstance(operation, op.RemoveRules):
        topic = prefix + STORE_PATH + "remove"
        payload = list(operation.ids)
    else:
        raise TypeError(f"not an operation: {operation!r}")
    template = _Template(trace_id, authentication, response_topic, 0, params, payload)
    return topic, _encode(template)


# ------------------------------------------------------------------------------------------ pure: replies


class _ReplyHead(msgspec.Struct):
    status: int = 0
    payload: msgspec.Raw = msgspec.Raw(b"")


class _Identified(msgspec.Struct):
    id: str


class _Entries(msgspec.Struct):
    entries: list[_Identified] = []


_head = msgspec.json.Decoder(_ReplyHead).decode
_entries = msgspec.json.Decoder(_Entries).decode


def parse_reply(operation: op.Operation, body: bytes) -> op.Reply:
    """A reply template → Reply. Not a template: status 0 (an error to the harness). For a successful
    CreateRules, the ids of the created rules; none where the payload has no entries (an echo's)."""
    try:
        head = _head(body)
    except msgspec.DecodeError:
        return op.Reply(0)
    if not isinstance(operation, op.CreateRules) or not 200 <= head.status < 300:
        return op.Reply(head.status)
    try:
        return op.Reply(head.status, tuple(entry.id for entry in _entries(head.payload).entries))
    except msgspec.DecodeError:
        return op.Reply(head.status)


# ------------------------------------------------------------------------------------------ the client


class _Waiter:
    """One call in flight: its reply, and the event that wakes it (reply, error or reading hand-over)."""

    __slots__ = ("body", "wake")

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.wake = trio.Event()


class MqttClient:
    """One MQTT connection; `call` may be awaited by any number of tasks at once (see the module doc).

    A broken or closed connection raises ConnectionError in every call waiting on it and in every later
    call. A cancelled call (the caller's timeout) leaves the connection usable; its reply is dropped.
    """

    def __init__(self, stream: trio.SocketStream, reader: PacketReader, endpoint: op.Endpoint, tag: str) -> None:
        self._stream = stream
        self._reader = reader
        self._prefix = endpoint.prefix
        self._authentication = endpoint.authorization
        self._tag = tag
        self._reply_base = f"{REPLY_ROOT}{tag}/"
        self._sequence: Iterator[int] = itertools.count()
        self._waiting: dict[str, _Waiter] = {}  # response topic → waiter, oldest first
        self._outbox: list[bytes] = []
        self._sending = False
        self._reading = False
        self._error: str | None = None

    @classmethod
    async def open(cls, endpoint: op.Endpoint) -> MqttClient:
        """Connect (clean session, no keep-alive: an idle client is never dropped) and subscribe to
        this client's response topics. OSError/ConnectionError if the broker is not there or refuses."""
        host, port = mqtt_address(endpoint.url)
        tag = f"{os.getpid():x}{next(_numbers):x}{secrets.token_hex(3)}"
        conn = await RawMqtt.open(host, port, f"bench-{tag}", [(f"{REPLY_ROOT}{tag}/+", 0)], keepalive=0)
        client = cls(conn.stream, conn.reader, endpoint, tag)
        if conn.pending:  # nothing is published to a fresh topic before its SUBACK
            raise ConnectionError(f"unexpected packets after SUBACK: {list(conn.pending)!r}")
        return client

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def call(self, operation: op.Operation) -> op.Reply:
        return parse_reply(operation, await self.call_raw(operation))

    async def call_raw(self, operation: op.Operation) -> bytes:
        """The reply template's bytes, as the target sent them."""
        if self._error is not None:
            raise ConnectionError(self._error)
        number = next(self._sequence)
        response_topic = f"{self._reply_base}{number}"
        topic, body = request(operation, self._prefix, response_topic, f"{self._tag}-{number}",
                              self._authentication, time.time())
        waiter = _Waiter()
        self._waiting[response_topic] = waiter
        try:
            await self._send(encode_publish(topic, body))
            return await self._reply(waiter)
        finally:
            del self._waiting[response_topic]

    async def aclose(self) -> None:
        """Disconnect; calls still waiting raise ConnectionError."""
        if self._error is None:
            self._fail("client closed")
            if not self._sending:
                with trio.move_on_after(1) as scope:
                    scope.shield = True
                    try:
                        await self._stream.send_all(b"\xe0\x00")  # DISCONNECT
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        pass
        await trio.aclose_forcefully(self._stream)

    # -------------------------------------------------------------------------------------- internals

    async def _send(self, data: bytes) -> None:
        """Queue `data`; the first caller to find nobody writing writes the queue until it is empty.

        The write is shielded from the caller's cancellation: a PUBLISH cut in half would corrupt the
        stream for every other call. SEND_TIMEOUT bounds it instead.
        """
        self._outbox.append(data)
        if self._sending:
            return
        self._sending = True
        try:
            # Let the other tasks that are ready to run queue their requests first: one write for all.
            await trio.lowlevel.cancel_shielded_checkpoint()
            while self._outbox and self._error is None:
                batch = self._outbox[0] if len(self._outbox) == 1 else b"".join(self._outbox)
                self._outbox.clear()
                with trio.move_on_after(SEND_TIMEOUT) as scope:
                    scope.shield = True
                    try:
                        await self._stream.send_all(batch)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                        self._fail(f"send failed: {error!r}")
                if scope.cancelled_caught:
                    self._fail(f"the broker took no data for {SEND_TIMEOUT:g} s")
        finally:
            self._sending = False
        if self._error is not None:
            raise ConnectionError(self._error)

    async def _reply(self, waiter: _Waiter) -> bytes:
        while waiter.body is None:
            if self._error is not None:
                raise ConnectionError(self._error)
            if self._reading:
                await waiter.wake.wait()
                if waiter.body is None:
                    waiter.wake = trio.Event()
            else:
                await self._read_until(waiter)
        return waiter.body

    async def _read_until(self, waiter: _Waiter) -> None:
        """Read and dispatch replies until `waiter` has its own; then wake another waiter to read on."""
        self._reading = True
        try:
            while waiter.body is None and self._error is None:
                try:
                    data = await self._stream.receive_some(_READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                    self._fail(f"receive failed: {error!r}")
                    return
                if not data:
                    self._fail("the broker closed the connection")
                    return
                try:
                    self._dispatch(self._reader.feed(data))
                except (MalformedPacketError, UnicodeDecodeError) as error:
                    self._fail(f"malformed packet from the broker: {error}")
                    return
        finally:
            self._reading = False
            self._hand_over(waiter)

    def _dispatch(self, packets: list[tuple[int, bytes]]) -> None:
        waiting = self._waiting
        for first, body in packets:
            if first >> 4 == PUBLISH:
                topic, payload = parse_publish(first, body)
                found = waiting.get(topic)  # None: a reply to a call that was cancelled
                if found is not None and found.body is None:
                    found.body = payload
                    found.wake.set()

    def _hand_over(self, leaving: _Waiter) -> None:
        """Wake the newest waiter still without a reply (its reply is likely the last to come) to read."""
        for waiter in reversed(self._waiting.values()):
            if waiter is not leaving and waiter.body is None:
                waiter.wake.set()
                return

    def _fail(self, reason: str) -> None:
        if self._error is None:
            self._error = reason
        self._outbox.clear()
        for waiter in self._waiting.values():
            waiter.wake.set()
