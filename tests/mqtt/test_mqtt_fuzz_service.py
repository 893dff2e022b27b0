"""Issue 12 item 1, fuzzed: random messages published to the real service through a real mosquitto —
random templates and JSON shapes, nasty reply topics in the template and in the MQTT 5 Response Topic
property, other MQTT 5 properties, QoS, the retain flag, payloads around the size limit — and after every
one the service must still answer on both transports. (tests/unit/test_mqtt_fuzz.py fuzzes the
dispatcher's decoding directly; this one fuzzes the whole MQTT edge.)

The service runs in a thread of its own (trio), the publisher and the prober are plain paho clients.
Bounded: 50 examples, each a publish and one round trip per transport.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
import trio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from actors.clock import ManualClock
from tests.mqtt.broker import MosquittoBroker, MosquittoNotFoundError
from tests.mqtt.requester import Requester
from tests.mqtt.serving import ECHO_TOPIC
from transports.config.settings import Settings
from transports.mqtt.dispatch import request_topics
from transports.mqtt.session_types import PACKET_HEADROOM
from transports.service import RunningService, run_service

PREFIX = "arrowhead/serviceorchestration"
LIMIT = 64 * 1024  # mqtt_max_request_bytes of the fuzzed service: small, so that sizes around it are cheap


@dataclass
class Fuzzed:
    running: RunningService
    thread: threading.Thread
    failure: queue.Queue[BaseException]
    broker: MosquittoBroker
    prober: Requester
    http: httpx.Client
    publisher: Publisher | None = None

    def publish(self, topic: str, body: bytes, qos: int, retain: bool, properties: Properties | None) -> None:
        """Publish one message; a publisher the broker disconnected (it refuses some properties) is replaced,
        dropping what it still held (else paho would re-send it, and be refused, forever)."""
        if self.publisher is None or self.publisher.dropped.is_set():
            if self.publisher is not None:
                self.publisher.close()
            self.publisher = Publisher(self.broker)
        self.publisher.publish(topic, body, qos, retain, properties)

    def assert_serving(self, trace_id: str) -> None:
        assert self.thread.is_alive(), f"the service ended: {self.failure.queue}"
        response = self.http.get("/serviceorchestration/monitor/echo", headers={"Authorization": "Bearer SYSTEM//A"})
        assert (response.status_code, response.text) == (200, "Got it!")
        body = json.dumps({"traceId": trace_id, "authentication": "SYSTEM//A",
                           "responseTopic": self.prober.response_topic}).encode()
        self.prober.client.publish(ECHO_TOPIC, body, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 10
        while True:
            reply = json.loads(self.prober.replies.get(timeout=max(0.0, deadline - time.monotonic())).payload)
            if reply.get("traceId") == trace_id:  # (a fuzzed request may have named the prober's topic too)
                assert reply["status"] == 200
                return


class Publisher:
    """An MQTT 5 paho client that does not reconnect: once the broker drops it, it is replaced."""

    def __init__(self, broker: MosquittoBroker) -> None:
        connected = threading.Event()
        self.dropped = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"fuzz-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv5, reconnect_on_failure=False)
        self.client.on_connect = lambda *_args: connected.set()
        self.client.on_disconnect = lambda *_args: self.dropped.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert connected.wait(5), "no CONNACK for the fuzz publisher"

    def publish(self, topic: str, body: bytes, qos: int, retain: bool, properties: Properties | None) -> None:
        """Until the broker has it (QoS 1/2: acknowledged), or has dropped the link instead."""
        info = self.client.publish(topic, body, qos=qos, retain=retain, properties=properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:  # dropped already (by the broker, for the message before)
            self.dropped.set()
            return
        deadline = time.monotonic() + 5
        while not info.is_published() and not self.dropped.wait(0.005):
            assert time.monotonic() < deadline, "the broker neither took the message nor dropped the publisher"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    try:
        broker = MosquittoBroker(tmp_path_factory.mktemp("fuzz-mosquitto"))  # its own: the fuzzer leaves retained messages
    except MosquittoNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    broker.start()
    started: queue.Queue[tuple[RunningService, trio.lowlevel.TrioToken]] = queue.Queue()
    failure: queue.Queue[BaseException] = queue.Queue()
    config = Settings(host="127.0.0.1", port=0, data_dir=str(tmp_path_factory.mktemp("fuzz-data")),
                      mqtt_url=f"mqtt://{broker.host}:{broker.port}", mqtt_max_request_bytes=LIMIT)

    async def main() -> None:
        clock = ManualClock(start=float(int(time.time())))
        async with trio.open_nursery() as nursery:
            running: RunningService = await nursery.start(partial(run_service, config, clock=clock,
                                                                  handle_signals=False))
            assert running.mqtt is not None
            await running.mqtt.session.wait_connected()
            started.put((running, trio.lowlevel.current_trio_token()))

    def thread_main() -> None:
        try:
            trio.run(main)
        except BaseException as error:
            failure.put(error)

    thread = threading.Thread(target=thread_main, name="fuzz-mqtt-service", daemon=True)
    thread.start()
    running, token = started.get(timeout=20)
    prober = Requester(broker.host, broker.port)
    with httpx.Client(base_url=running.http_urls[0], timeout=10) as http:
        fuzz = Fuzzed(running, thread, failure, broker, prober, http)
        try:
            yield fuzz
        finally:
            prober.close()
            if fuzz.publisher is not None:
                fuzz.publisher.close()
            if thread.is_alive():
                trio.from_thread.run_sync(running.shutdown.set, trio_token=token)
            thread.join(timeout=20)
            broker.kill()
    assert not thread.is_alive()
    assert failure.empty(), failure.get()  # the service ended without an error


# ------------------------------------------------------------------------------------------ strategies

nasty_topics = st.sampled_from([
    "#", "+", "fuzz/+/x", "fuzz/#", "fuzz/a\x00b", "fuzz/a\x01b", "fuzz/\x1b[2J", "fuzz/\ufdd0", "fuzz/\uffff",
    "$SYS/broker/x", "$share/g/x", "/".join(["l"] * 201), "r" * 65_536, "é" * 32_768, "", " ", "fuzz/replies/ok",
]) | st.text(max_size=30)
# What mosquitto passes on in a Response Topic property (it disconnects a publisher for controls and
# non-characters there, which the publisher survives, so a few of those are in too).
property_topics = (nasty_topics.filter(lambda topic: len(topic.encode()) <= 65_535)  # a property cannot hold more
                   | st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=30))
json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=20)
templates = st.fixed_dictionaries({}, optional={
    "traceId": st.text(max_size=20) | json_values,
    "authentication": st.sampled_from(["SYSTEM//Sysop", "SYSTEM//Other", "", "nope"]) | json_values,
    "responseTopic": nasty_topics | json_values,
    "qosRequirement": st.integers(-1, 3) | json_values,
    "params": st.dictionaries(st.sampled_from(["owner", "x"]), st.text(max_size=10) | json_scalars, max_size=2),
    "payload": json_values,
})
bodies = (templates.map(lambda t: json.dumps(t).encode()) | json_values.map(lambda v: json.dumps(v).encode())
          | st.binary(max_size=200))
sizes = st.sampled_from([None, None, None, LIMIT, LIMIT + 1, LIMIT + PACKET_HEADROOM + 1])
properties = st.fixed_dictionaries({}, optional={
    "ResponseTopic": property_topics,
    "CorrelationData": st.binary(max_size=64),
    "UserProperty": st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=3),
    "ContentType": st.text(max_size=10),
    "PayloadFormatIndicator": st.integers(0, 1),
    "MessageExpiryInterval": st.integers(1, 3600),
})


def _padded(body: bytes, size: int | None) -> bytes:
    """`body` grown to `size` bytes, still a JSON template where it was one (a long traceId)."""
    if size is None or len(body) >= size:
        return body
    try:
        value: Any = json.loads(body)
    except ValueError:
        return body + b" " * (size - len(body))
    if not isinstance(value, dict):
        return body + b" " * (size - len(body))
    value["traceId"] = ""
    base = len(json.dumps(value).encode())
    value["traceId"] = "x" * max(0, size - base)
    return json.dumps(value).encode()


def _paho_properties(values: dict[str, Any]) -> Properties | None:
    if not values:
        return None
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    return props


FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LOCK_CREATE = f"{PREFIX}/orchestration/management/lock/create"


@FUZZ
@given(topic=st.sampled_from(request_topics(PREFIX)), body=bodies, size=sizes, qos=st.integers(0, 2),
       retain=st.booleans(), props=properties)
@example(topic=LOCK_CREATE, body=b'{"responseTopic":"#"}', size=None, qos=1, retain=False, props={})
@example(topic=LOCK_CREATE, body=b'{"responseTopic":"a\\u0000b","authentication":"SYSTEM//Sysop"}', size=None, qos=0,
         retain=False, props={})
@example(topic=LOCK_CREATE, body=json.dumps({"responseTopic": "r" * 70_000}).encode(), size=None, qos=1, retain=False,
         props={})
@example(topic=LOCK_CREATE, body=b"{}", size=None, qos=1, retain=False, props={"ResponseTopic": "fuzz/+"})
@example(topic=LOCK_CREATE, body=b'{"responseTopic":"fuzz/r"}', size=LIMIT + PACKET_HEADROOM + 1, qos=1, retain=True,
         props={})
def test_no_message_stops_the_service(fuzzed: Fuzzed, topic: str, body: bytes, size: int | None, qos: int,
                                      retain: bool, props: dict[str, Any]) -> None:
    fuzzed.publish(topic, _padded(body, size), qos, retain, _paho_properties(props))
    fuzzed.assert_serving(f"probe-{uuid.uuid4().hex}")


def test_nothing_escaped_as_an_unexpected_error(fuzzed: Fuzzed) -> None:
    """Runs after the fuzzing (same module): every message ended in a reply, a counted drop or silence."""
    server = fuzzed.running.mqtt
    assert server is not None
    fuzzed.assert_serving("final")
    assert server.handler_errors == 0
    assert server.session.connected
