"""Several instances on one state and one broker (issue 15): with `mqtt_shared_group` each request is
answered by exactly one of them; without it, by every instance subscribed. Three instances in etcd
mode on the real cluster, one of them speaking MQTT 3.1.1 (mosquitto 2.x shares subscriptions with
3.1.1 clients too), on a real mosquitto."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import httpx
import trio

from tests.backends import etcd_settings
from tests.etcd.cluster import EtcdCluster
from tests.integration.conftest import LOCK, SYSOP
from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.requester import Requester
from tests.mqtt.serving import ECHO_TOPIC, LOCK_TOPIC, lock_request, mqtt_of, serve, stop, template
from transports.service import RunningService

REQUESTS = 60


async def answers(requester: Requester, expected: int) -> Counter[str]:
    """The trace ids of `expected` replies, then of any straggler that arrives before a last request's reply
    (the broker sends one subscriber's messages in order: a duplicate of an earlier request would come first)."""
    seen: Counter[str] = Counter()
    with trio.fail_after(20):
        for _ in range(expected):
            seen[json.loads((await requester.reply()).payload)["traceId"]] += 1
        requester.send(ECHO_TOPIC, template(requester.response_topic, trace_id="barrier"))
        while True:
            trace = json.loads((await requester.reply()).payload)["traceId"]
            if trace == "barrier":
                return seen
            seen[trace] += 1


async def test_three_instances_in_one_shared_group_answer_each_request_once(
        tmp_path: Path, nursery: trio.Nursery, broker: MosquittoBroker, etcd_cluster: EtcdCluster) -> None:
    state = etcd_settings(etcd_cluster)
    group: list[RunningService] = []
    for number, protocol in enumerate(("5", "5", "3.1.1")):
        group.append(await serve(nursery, tmp_path / f"i{number}", broker, mqtt_shared_group="lockstore",
                                 mqtt_protocol=protocol, **state))
    requester = Requester(broker.host, broker.port)
    try:
        for number in range(REQUESTS):
            if number % 3 == 0:
                body = template(requester.response_topic, trace_id=f"t{number}",
                                payload=lock_request(f"Shared{number}|svc|1"))
                requester.send(LOCK_TOPIC + "create", body)
            elif number % 3 == 1:
                requester.send(LOCK_TOPIC + "query", template(requester.response_topic, trace_id=f"t{number}", payload={}))
            else:
                requester.send(ECHO_TOPIC, template(requester.response_topic, trace_id=f"t{number}"))
        seen = await answers(requester, REQUESTS)
        assert seen == Counter({f"t{number}": 1 for number in range(REQUESTS)})
        handled = [mqtt_of(running).handled for running in group]
        assert sum(handled) == REQUESTS + 1  # the barrier too: no instance ran a request another one ran
        assert sum(1 for count in handled if count) >= 2, handled  # the broker shares them out

        # Every create was applied once and every instance shows all of them (one state in etcd).
        for running in group:
            async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=10) as http:
                found = (await http.post(f"{LOCK}/query", headers=SYSOP, json={"owners": ["TemperatureManager"]})).json()
            assert sorted(entry["serviceInstanceId"] for entry in found["entries"]) == sorted(
                f"Shared{number}|svc|1.0.0" for number in range(0, REQUESTS, 3))

        # The contrast: an instance outside the group receives every request as well.
        loner = await serve(nursery, tmp_path / "loner", broker, **state)
        for number in range(5):
            requester.send(ECHO_TOPIC, template(requester.response_topic, trace_id=f"e{number}"))
        seen = await answers(requester, 10)
        assert seen == Counter({f"e{number}": 2 for number in range(5)})
        await stop(loner)
    finally:
        requester.close()
    for running in group:
        await stop(running)


def test_mosquitto_does_not_hand_a_dead_members_unacknowledged_request_to_another(broker: MosquittoBroker) -> None:
    """What the README says about an instance dying with a request in flight: the broker does not redeliver
    it to another member of the group (clean sessions), so the requester's retry is what recovers it."""
    import contextlib
    import queue
    import socket

    import paho.mqtt.client as paho

    received: dict[str, queue.Queue[bytes]] = {"A": queue.Queue(), "B": queue.Queue()}

    def member(name: str, acknowledges: bool) -> paho.Client:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"member-{name}", protocol=paho.MQTTv5,
                             manual_ack=not acknowledges)
        subscribed = threading.Event()
        client.on_message = lambda _c, _u, message: received[name].put(message.payload)
        client.on_subscribe = lambda *_args: subscribed.set()
        client.connect(broker.host, broker.port)
        client.loop_start()
        client.subscribe("$share/g/requests/x", qos=1)
        assert subscribed.wait(5)
        return client

    dying, survivor = member("A", acknowledges=False), member("B", acknowledges=True)
    publisher = Requester(broker.host, broker.port)
    try:
        for number in range(4):
            publisher.client.publish("requests/x", f"m{number}".encode(), qos=1).wait_for_publish(5)
        held = [received["A"].get(timeout=5) for _ in range(2)]  # round robin: two each
        answered = {received["B"].get(timeout=5) for _ in range(2)}
        assert sorted([*held, *answered]) == [b"m0", b"m1", b"m2", b"m3"]
        assert dying._sock is not None
        dying._sock.shutdown(socket.SHUT_RDWR)  # dies without acknowledging what it holds
        dying.loop_stop()
        # Until the broker has seen the death, new requests still alternate; once two in a row reach the
        # survivor, it is the group alone, and anything handed over at the death would have come first.
        later: list[bytes] = []
        for number in range(100):
            publisher.client.publish("requests/x", f"after{number}".encode(), qos=1).wait_for_publish(5)
            with contextlib.suppress(queue.Empty):
                later.append(received["B"].get(timeout=0.2))
            if later[-2:] == [f"after{number - 1}".encode(), f"after{number}".encode()]:
                break
        else:
            raise AssertionError(f"the survivor never got the group's requests alone: {later}")
        while not received["B"].empty():
            later.append(received["B"].get())
        assert all(payload.startswith(b"after") for payload in later), later  # m0..m3 never handed over
    finally:
        survivor.disconnect()
        survivor.loop_stop()
        publisher.close()
