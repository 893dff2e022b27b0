"""MqttSession against a real mosquitto; the peer is a plain paho client on its own thread."""

from __future__ import annotations

import fcntl
import json
import queue
import socket
import termios
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import trio
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.mqtt.broker import MosquittoBroker
from transports.mqtt.session import (
    IncomingMessage,
    MessageProperties,
    MqttNotConnectedError,
    MqttSession,
    MqttSessionClosedError,
    MqttSettings,
    backoff_delay,
)

WAIT = 5.0  # generous bound for anything that should take milliseconds


class Peer:
    """The other side of the broker: paho with loop_start(), received messages in a thread-safe queue."""

    def __init__(self, broker: MosquittoBroker, *, v5: bool = False) -> None:
        self.inbox: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._acked = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"peer-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        self.client.on_message = lambda c, u, m: self.inbox.put(m)
        self.client.on_connect = lambda c, u, f, rc, p: self._acked.set()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._acked.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._acked.wait(WAIT), "peer got no CONNACK"

    def subscribe(self, topic: str, qos: int = 2) -> None:
        self._acked.clear()
        self.client.subscribe(topic, qos)
        assert self._acked.wait(WAIT), "peer got no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 1, properties: Properties | None = None) -> None:
        self.client.publish(topic, payload, qos, properties=properties).wait_for_publish(WAIT)

    def get(self) -> paho.MQTTMessage:
        return self.inbox.get(timeout=WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def topic_root() -> str:
    return f"lockstore-test/{uuid.uuid4().hex[:10]}"


def settings_for(broker: MosquittoBroker, **overrides: object) -> MqttSettings:
    values: dict[str, object] = {"host": broker.host, "port": broker.port, "reconnect_min": 0.05,
                                 "reconnect_max": 0.3, "connect_timeout": 2.0}
    values.update(overrides)
    return MqttSettings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def running(session: MqttSession) -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        with trio.fail_after(WAIT):
            await nursery.start(session.run)
        yield nursery
        await session.aclose()


async def in_thread(fn: object, *args: object) -> object:
    return await trio.to_thread.run_sync(fn, *args)  # type: ignore[arg-type]


async def receive(session: MqttSession) -> IncomingMessage:
    with trio.fail_after(WAIT):
        return await session.receive()


async def test_request_reply_round_trip(shared_broker: MosquittoBroker) -> None:
    root = topic_root()
    session = MqttSession(settings_for(shared_broker, subscriptions=((f"{root}/req/#", 1),)))
    peer = Peer(shared_broker)
    peer.subscribe(f"{root}/reply")

    async def responder() -> None:
        async for message in session:
            request = json.loads(message.payload)
            reply = json.dumps({"status": 200, "echo": request["payload"], "topic": message.topic})
            await session.publish(request["responseTopic"], reply.encode(), qos=request["qosRequirement"])

    async with running(session) as nursery:
        assert session.connected and session.connection_count == 1
        sock = session._client.socket()
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        nursery.start_soon(responder)
        for n in range(5):
            request = {"responseTopic": f"{root}/reply", "qosRequirement": n % 3, "payload": n}
            await in_thread(peer.publish, f"{root}/req/lock", json.dumps(request).encode())
            reply = await in_thread(peer.get)
            assert isinstance(reply, paho.MQTTMessage)
            assert json.loads(reply.payload) == {"status": 200, "echo": n, "topic": f"{root}/req/lock"}
            assert reply.qos == n % 3
    peer.close()


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_publish_and_receive_at_each_qos(shared_broker: MosquittoBroker, qos: int) -> None:
    root = topic_root()
    session = MqttSession(settings_for(shared_broker, subscriptions=((f"{root}/in", 2),)))
    peer = Peer(shared_broker)
    peer.subscribe(f"{root}/out", qos=2)
    async with running(session):
        async with trio.open_nursery() as publishers:  # concurrent publishes share one connection
            for n in range(20):
                publishers.start_soon(session.publish, f"{root}/out", b"%d" % n, qos)
        got = [await in_thread(peer.get) for _ in range(20)]
        assert sorted(int(m.payload) for m in got) == list(range(20))  # type: ignore[attr-defined]
        assert {m.qos for m in got} == {qos}  # type: ignore[attr-defined]

        for n in range(20):
            await in_thread(peer.publish, f"{root}/in", b"%d" % n, qos)
        received = [await receive(session) for _ in range(20)]
        assert [m.payload for m in received] == [b"%d" % n for n in range(20)]
        assert {(m.topic, m.qos, m.properties) for m in received} == {(f"{root}/in", qos, None)}
        with trio.move_on_after(0.2):  # nothing is delivered twice
            extra = await session.receive()
            pytest.fail(f"unexpected extra message {extra}")
    peer.close()


async def test_mqtt5_response_topic_and_correlation_data(shared_broker: MosquittoBroker) -> None:
    root = topic_root()
    session = MqttSession(settings_for(shared_broker, protocol="5", subscriptions=((f"{root}/req", 1),)))
    peer = Peer(shared_broker, v5=True)
    peer.subscribe(f"{root}/reply")
    async with running(session):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{root}/reply"
        props.CorrelationData = b"\x00corr-1"
        await in_thread(lambda: peer.publish(f"{root}/req", b"{}", 1, props))
        request = await receive(session)
        assert request.properties == MessageProperties(f"{root}/reply", b"\x00corr-1")
        assert request.properties.response_topic is not None
        await session.publish(request.properties.response_topic, b"ok", 1,
                              properties=MessageProperties(correlation_data=request.properties.correlation_data))
        reply = await in_thread(peer.get)
        assert reply.payload == b"ok"  # type: ignore[attr-defined]
        assert reply.properties.CorrelationData == b"\x00corr-1"  # type: ignore[attr-defined]

        await in_thread(peer.publish, f"{root}/req", b"plain", 1)
        assert (await receive(session)).properties is None
    peer.close()


async def test_properties_need_mqtt5(shared_broker: MosquittoBroker) -> None:
    session = MqttSession(settings_for(shared_broker))
    async with running(session):
        with pytest.raises(ValueError, match="MQTT 5"):
            await session.publish("x", b"", properties=MessageProperties(response_topic="y"))


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_resubscribes_after_broker_restart(broker: MosquittoBroker, protocol: str) -> None:
    root = topic_root()
    session = MqttSession(settings_for(broker, protocol=protocol,
                                       subscriptions=((f"{root}/a", 1), (f"{root}/b/+", 2))))
    async with running(session):
        peer = Peer(broker)
        await in_thread(peer.publish, f"{root}/a", b"before", 1)
        assert (await receive(session)).payload == b"before"
        peer.close()

        await in_thread(broker.stop)
        with trio.fail_after(WAIT):
            while session.connected:
                await trio.sleep(0.01)
        with pytest.raises(MqttNotConnectedError):
            await session.publish(f"{root}/x", b"", 0)
        await trio.sleep(0.3)  # let a few reconnect attempts fail against the closed port
        await in_thread(broker.start)
        with trio.fail_after(3.0):
            await session.wait_connected()
        assert session.connection_count == 2

        peer = Peer(broker)  # the broker restarted empty: only a fresh SUBSCRIBE makes these flow
        await in_thread(peer.publish, f"{root}/a", b"after-a", 1)
        await in_thread(peer.publish, f"{root}/b/7", b"after-b", 2)
        assert [(await receive(session)).payload for _ in range(2)] == [b"after-a", b"after-b"]
        peer.close()


async def test_waits_for_a_broker_that_starts_later(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path)
    broker.start()
    broker.stop()  # the port is known but nobody listens yet
    session = MqttSession(settings_for(broker, subscriptions=((f"{topic_root()}/q", 0),)))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.run)
            await trio.sleep(0.3)
            assert not session.connected
            await in_thread(broker.start)
            with trio.fail_after(3.0):
                await session.wait_connected()
            await session.aclose()
    finally:
        broker.kill()


@pytest.mark.parametrize("qos", [1, 2])
async def test_backpressure_bounds_the_buffer_and_loses_nothing(shared_broker: MosquittoBroker, qos: int) -> None:
    # QoS 2 matters: paho's loop_read() parses one packet per message in flight, so only the read
    # gate (not a check between loop_read calls) keeps a burst of PUBRELs from overfilling the buffer.
    root = topic_root()
    count, size, bound = 300, 4096, 3
    session = MqttSession(settings_for(shared_broker, subscriptions=((f"{root}/flood", qos),), max_buffered=bound))
    async with running(session):
        peer = Peer(shared_broker)
        for n in range(count):
            peer.client.publish(f"{root}/flood", n.to_bytes(4, "big") + bytes(size), qos)
        # The consumer is away: the buffer fills to the bound, the rest stays in the kernel / broker.
        with trio.fail_after(WAIT):
            while session.buffered < bound:
                await trio.sleep(0.01)
        await trio.sleep(0.3)
        assert session.buffered == bound
        sock = session._client.socket()
        assert sock is not None
        unread = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        assert int.from_bytes(unread, "little") > size  # we stopped reading the socket

        seen = []
        with trio.fail_after(15):
            while len(seen) < count:  # a slow consumer
                message = await session.receive()
                seen.append(int.from_bytes(message.payload[:4], "big"))
                assert len(message.payload) == size + 4
                if len(seen) % 10 == 0:
                    await trio.sleep(0.005)
        assert seen == list(range(count))  # all of them, once, in order
        assert session.buffered_high_water == bound
        peer.close()


async def test_replying_at_qos1_with_a_full_buffer_does_not_deadlock(shared_broker: MosquittoBroker) -> None:
    # The PUBACK for a reply sits in the socket behind requests that the full buffer keeps unread: a
    # publish() that waited for it would never return, and the consumer would never drain the buffer.
    root = topic_root()
    count = 100
    session = MqttSession(settings_for(shared_broker, subscriptions=((f"{root}/req", 1),), max_buffered=2))
    peer = Peer(shared_broker)
    peer.subscribe(f"{root}/rep", qos=1)
    async with running(session):
        for n in range(count):
            peer.client.publish(f"{root}/req", n.to_bytes(4, "big") + bytes(2000), 1)
        with trio.fail_after(10):
            for _ in range(count):
                request = await session.receive()
                await session.publish(f"{root}/rep", request.payload[:4], 1)
            while session.unacknowledged:  # every reply acknowledged by the broker
                await trio.sleep(0.01)
        replies = [await in_thread(peer.get) for _ in range(count)]
        assert sorted(int.from_bytes(r.payload, "big") for r in replies) == list(range(count))  # type: ignore[attr-defined]
        assert session.buffered_high_water == 2
    peer.close()


async def test_clean_shutdown(broker: MosquittoBroker) -> None:
    session = MqttSession(settings_for(broker, subscriptions=(("anything/#", 0),)))
    async with running(session):
        pass  # running() ends with aclose()
    assert not session.connected
    with pytest.raises(trio.EndOfChannel):
        await session.receive()
    with pytest.raises(MqttSessionClosedError):
        await session.publish("t", b"")
    with pytest.raises(MqttSessionClosedError):
        await session.wait_connected()

    cancelled = MqttSession(settings_for(broker))
    async with trio.open_nursery() as nursery:
        await nursery.start(cancelled.run)
        nursery.cancel_scope.cancel()

    with trio.fail_after(WAIT):
        while broker.log_text().count(" disconnected.") < 2:
            await trio.sleep(0.01)
    log = broker.log_text()
    for client_id in (session.client_id, cancelled.client_id):
        assert f"Client {client_id} disconnected." in log  # a DISCONNECT packet, not a dropped socket
        assert f"Client {client_id} closed its connection." not in log


def test_backoff_grows_to_the_ceiling_with_jitter() -> None:
    low_draws = [backoff_delay(n, 0.5, 30.0, rand=lambda: 0.0) for n in range(10)]
    high_draws = [backoff_delay(n, 0.5, 30.0, rand=lambda: 1.0) for n in range(10)]
    assert high_draws[:4] == [0.5, 1.0, 2.0, 4.0]
    assert high_draws[-1] == 30.0 and low_draws[-1] == 15.0
    assert all(lo == hi / 2 for lo, hi in zip(low_draws, high_draws, strict=True))
    assert backoff_delay(10_000, 0.5, 30.0) <= 30.0


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        MqttSettings(max_buffered=0)
    with pytest.raises(ValueError):
        MqttSettings(subscriptions=(("t", 3),))
    with pytest.raises(ValueError):
        MqttSettings(reconnect_min=2.0, reconnect_max=1.0)
