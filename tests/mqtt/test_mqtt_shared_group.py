"""Several instances on one state and one broker (issue 15): with `mqtt_shared_group` each request is
answered by exactly one of them; without it, by every instance subscribed. Three instances in etcd
mode on the real cluster, one of them speaking MQTT 3.1.1 (mosquitto 2.x shares subscriptions with
3.1.1 clients too), on a real mosquitto."""

from __future__ import annotations

import json
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
