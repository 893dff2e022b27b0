"""All operations over a real mosquitto broker against the real service (ARROWHEAD-REFERENCE.md §1.5,
DECISIONS.md: optional qosRequirement, 400 where a responseTopic can be read, MQTT 5 properties)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
import trio

from actors.clock import ManualClock
from tests.backends import backend_settings
from tests.integration.conftest import LOCK, SYSOP, future, start_service
from tests.integration.test_seed_examples import mqtt_requests
from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.requester import Requester
from transports.service import RunningService

PREFIX = "arrowhead/serviceorchestration"
LOCK_TOPIC = f"{PREFIX}/orchestration/management/lock/"
STORE_TOPIC = f"{PREFIX}/orchestration/management/store/"

pytestmark = pytest.mark.backends("local", "etcd")  # tests/backends.py: also on the real etcd cluster


@dataclass
class MqttService:
    running: RunningService
    clock: ManualClock
    requester: Requester
    http: httpx.AsyncClient
    broker: MosquittoBroker


async def started(nursery: trio.Nursery, tmp_path: Path, broker: MosquittoBroker, **settings: Any) -> RunningService:
    clock = ManualClock(start=float(int(time.time())))
    running = await start_service(nursery, tmp_path / "data", clock, mqtt_url=f"mqtt://{broker.host}:{broker.port}",
                                  **settings)
    assert running.mqtt is not None
    with trio.fail_after(10):
        await running.mqtt.session.wait_connected()
    return running


@pytest.fixture
async def mqtt_service(tmp_path: Path, nursery: trio.Nursery, shared_broker: MosquittoBroker,
                       request: pytest.FixtureRequest, backend: str) -> AsyncIterator[MqttService]:
    running = await started(nursery, tmp_path, shared_broker, **backend_settings(backend, request))
    requester = Requester(shared_broker.host, shared_broker.port)
    async with httpx.AsyncClient(base_url=running.http_urls[0]) as http:
        yield MqttService(running, ManualClock(), requester, http, shared_broker)
    requester.close()
    running.shutdown.set()
    await running.stopped.wait()


def lock(instance: str, owner: str = "TemperatureManager") -> dict[str, str]:
    return {"serviceInstanceId": instance, "owner": owner, "expiresAt": future()}


async def test_lock_operations(mqtt_service: MqttService) -> None:
    r = mqtt_service.requester
    created = await r.request(LOCK_TOPIC + "create", {"locks": [lock("provider-a|kelvin-info|1")]}, qos=1)
    assert (created["status"], created["traceId"], created["receiver"], created["_qos"]) == (201, "trace-1", "Sysop", 1)
    assert list(created) == ["status", "traceId", "receiver", "payload", "_qos"]
    entry = created["payload"]["entries"][0]
    assert entry["serviceInstanceId"] == "ProviderA|kelvinInfo|1.0.0"
    queried = await r.request(LOCK_TOPIC + "query", {"owners": ["TemperatureManager"]}, qos=2)
    assert (queried["status"], queried["_qos"]) == (200, 2)
    assert queried["payload"] == {"entries": [entry], "count": 1}
    no_filters = await r.request(LOCK_TOPIC + "query")  # missing payload = no filters
    assert no_filters["payload"]["count"] == 1
    removed = await r.request(LOCK_TOPIC + "remove", ["ProviderA|kelvinInfo|1.0.0"], params={"owner": "TemperatureManager"})
    assert (removed["status"], removed["payload"]) == (200, "")
    assert (await r.request(LOCK_TOPIC + "query"))["payload"]["count"] == 0


async def test_store_operations_and_echo(mqtt_service: MqttService) -> None:
    r = mqtt_service.requester
    created = await r.request(STORE_TOPIC + "create", {"candidates": [
        {"consumer": "C", "serviceInstanceId": "P1|svc|1", "priority": 1},
        {"consumer": "C", "serviceInstanceId": "P2|svc|1", "priority": 2}]})
    assert created["status"] == 201
    a, b = (e["id"] for e in created["payload"]["entries"])
    modified = await r.request(STORE_TOPIC + "modify-priorities", {a: 2, b: 1})
    assert modified["status"] == 200
    assert [e["id"] for e in modified["payload"]["entries"]] == [b, a]
    queried = await r.request(STORE_TOPIC + "query", {"consumerNames": ["C"]})
    assert queried["payload"]["count"] == 2
    removed = await r.request(STORE_TOPIC + "remove", [a, b])
    assert (removed["status"], removed["payload"]) == (200, "")
    echo = await r.request(f"{PREFIX}/monitor/echo", auth="SYSTEM//Anyone")
    assert (echo["status"], echo["payload"], echo["receiver"]) == (200, "Got it!", "Anyone")


@pytest.mark.parametrize(
    ("topic", "payload", "auth", "params", "status", "message"),
    [
        ("lock/create", {"locks": [{"owner": "A"}]}, "SYSTEM//Sysop", None, 400, "Service instance id is missing"),
        ("lock/create", None, "SYSTEM//Sysop", None, 400, "Request payload is null"),
        ("lock/create", {"locks": "x"}, "SYSTEM//Sysop", None, 400, "Could not parse payload. Reason: Expected `array | null`, got `str` - at `$.locks`"),
        ("lock/remove", ["A|s|1"], "SYSTEM//Sysop", None, 400, "Owner is missing"),
        ("lock/remove", None, "SYSTEM//Sysop", {"owner": "A"}, 400, "Service instance id list empty"),
        ("lock/remove", {"a": 1}, "SYSTEM//Sysop", {"owner": "A"}, 400, "Could not parse payload. Reason: Expected `array | null`, got `object`"),
        ("store/remove", [None], "SYSTEM//Sysop", None, 400, "Invalid UUID: null"),
        ("store/query", {"minPriority": 2, "maxPriority": 1, "createdBy": "A"}, "SYSTEM//Sysop", None, 400, "Minimum priority should not be greater than maximum priority"),
        ("store/modify-priorities", None, "SYSTEM//Sysop", None, 400, "Priority map is null"),
        ("lock/query", None, "", None, 401, "No authentication info has been provided"),
        ("lock/query", None, "Bearer SYSTEM//Sysop", None, 401, "Invalid authentication info"),
        ("lock/query", None, "SYSTEM//Orchestrator", None, 403, "Requester has no management permission"),
    ],
)
async def test_errors(mqtt_service: MqttService, topic: str, payload: Any, auth: str, params: dict[str, str] | None,
                      status: int, message: str) -> None:
    full_topic = f"{PREFIX}/orchestration/management/{topic}"
    reply = await mqtt_service.requester.request(full_topic, payload, auth=auth, params=params)
    assert reply["status"] == status
    assert reply["payload"]["errorMessage"].startswith(message)
    assert reply["payload"]["errorCode"] == status
    assert reply["payload"]["origin"] == full_topic
    assert ("receiver" in reply) == (status != 401)


async def test_templates_that_do_not_parse(mqtt_service: MqttService) -> None:
    r = mqtt_service.requester
    topic = LOCK_TOPIC + "query"
    r.send(topic, {"responseTopic": r.response_topic, "qosRequirement": "high", "authentication": "SYSTEM//Sysop"})
    reply = json.loads((await r.reply()).payload)
    assert reply["status"] == 400
    assert reply["payload"]["errorMessage"].startswith("Could not parse request. Reason: Expected `int | null`, got `str`")
    r.send(topic, {"responseTopic": r.response_topic, "qosRequirement": 3, "authentication": "SYSTEM//Sysop"})
    assert json.loads((await r.reply()).payload)["payload"]["errorMessage"] == "Unknown MQTT QoS value: 3"
    before = mqtt_service.running.mqtt.dispatcher.unparseable  # type: ignore[union-attr]
    for garbage in (b"\xff\xfe not json", b"", b"[1,2", json.dumps({"qosRequirement": []}).encode()):
        r.send(topic, garbage)
    assert await r.no_reply()
    assert mqtt_service.running.mqtt.dispatcher.unparseable == before + 4  # type: ignore[union-attr]
    assert (await r.request(topic))["status"] == 200  # the session survived


async def test_missing_response_topic_still_handles_the_request(mqtt_service: MqttService) -> None:
    r = mqtt_service.requester
    r.send(LOCK_TOPIC + "create", {"authentication": "SYSTEM//Sysop", "qosRequirement": 1, "payload": {"locks": [lock("Silent|svc|1")]}})
    assert await r.no_reply()
    query = await mqtt_service.http.post(f"{LOCK}/query", json={"serviceInstanceIds": ["Silent|svc|1"]}, headers=SYSOP)
    assert query.json()["count"] == 1


async def test_qos_requirement_is_optional(mqtt_service: MqttService) -> None:
    reply = await mqtt_service.requester.request(LOCK_TOPIC + "query", qos=None)
    assert (reply["status"], reply["_qos"]) == (200, 0)


async def test_mqtt5_response_topic_and_correlation_data(mqtt_service: MqttService) -> None:
    broker = mqtt_service.broker
    r5 = Requester(broker.host, broker.port, protocol=paho.MQTTv5)
    try:
        r5.send(LOCK_TOPIC + "query", {"authentication": "SYSTEM//Sysop", "traceId": "t5"},
                ResponseTopic=r5.response_topic, CorrelationData=b"corr-42")
        message = await r5.reply()
        assert json.loads(message.payload)["status"] == 200
        assert message.properties.CorrelationData == b"corr-42"
    finally:
        r5.close()


async def test_with_mosquitto_clients(mqtt_service: MqttService) -> None:
    broker = mqtt_service.broker
    response_topic = "test/cli/reply"
    subscriber = subprocess.Popen(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", response_topic, "-C", "1", "-W", "10"],
        stdout=subprocess.PIPE, text=True)
    await trio.sleep(0.5)
    template = {"traceId": "cli", "authentication": "SYSTEM//Sysop", "responseTopic": response_topic,
                "qosRequirement": 1, "payload": {"locks": [lock("Cli|svc|1")]}}
    subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", LOCK_TOPIC + "create",
                    "-q", "1", "-m", json.dumps(template)], check=True, timeout=10)
    out, _ = await trio.to_thread.run_sync(subscriber.communicate)
    reply = json.loads(out)
    assert (reply["status"], reply["traceId"]) == (201, "cli")
    assert reply["payload"]["entries"][0]["serviceInstanceId"] == "Cli|svc|1.0.0"


async def test_seed_examples(mqtt_service: MqttService) -> None:
    """Every MQTT seed request, as written, with a future expiresAt and real ids."""
    r = mqtt_service.requester
    examples = mqtt_requests("lock-management-mqtt.md") + mqtt_requests("simple-store-management-mqtt.md")
    assert len(examples) == 7
    order = ["lock/create", "lock/query", "lock/remove", "store/create", "store/query", "store/modify-priorities", "store/remove"]
    examples.sort(key=lambda example: order.index(example[0].split("/management/")[1]))

    def send(template: dict[str, Any]) -> dict[str, Any]:
        template["authentication"] = "SYSTEM//Sysop"
        template["responseTopic"] = r.response_topic
        return template

    replies: dict[str, dict[str, Any]] = {}
    store_ids: list[str] = []
    for topic, template in examples:
        name = topic.split("/management/")[1]
        payload = template.get("payload")
        if name == "lock/create":
            payload["locks"][0]["expiresAt"] = future()
        elif name == "lock/query":
            payload["ids"] = [replies["lock/create"]["payload"]["entries"][0]["id"]]
            payload["expiresAfter"], payload["expiresBefore"] = future(60), future(7200)
            payload.pop("orchestrationJobIds")
        elif name == "store/query":
            other = await r.request(STORE_TOPIC + "create", {"entries": [{"consumer": "TestConsumerB", "serviceInstanceId": "OtherProvider|testService|1.0.0", "priority": 1}]})
            store_ids = [replies["store/create"]["payload"]["entries"][0]["id"], other["payload"]["entries"][0]["id"]]
            payload["ids"] = store_ids[0]
        elif name == "store/modify-priorities":
            template["payload"] = dict(zip(store_ids, payload.values(), strict=True))
        elif name == "store/remove":
            template["payload"] = store_ids
        r.send(topic, send(template))
        replies[name] = json.loads((await r.reply()).payload)
        assert replies[name]["status"] in (200, 201), (name, replies[name])
    assert replies["lock/query"]["payload"]["count"] == 1
    assert replies["store/query"]["payload"]["count"] == 1
    assert replies["lock/remove"]["payload"] == ""


PARITY_CASES: list[tuple[str, Any]] = [
    ("lock/create", {"locks": [lock("Par|svc|1")]}),
    ("lock/create", {"locks": [lock("Par|svc|1")]}),  # already locked
    ("lock/create", {"locks": []}),
    ("lock/create", {"locks": [{"serviceInstanceId": "P|s|1", "owner": "x y", "expiresAt": "yesterday"}]}),
    ("lock/query", {"owners": ["TemperatureManager"], "pagination": {"page": 0, "size": 5, "sortField": "owner"}}),
    ("lock/query", {"pagination": {"pageSize": 5}}),
    ("store/create", {"entries": [{"consumer": "C", "serviceInstanceId": "P|svc|1", "priority": 0}]}),
    ("store/query", {}),
    ("store/query", {"ids": "nope"}),
    ("store/modify-priorities", {}),
]


async def test_http_and_mqtt_give_the_same_answers(tmp_path: Path, nursery: trio.Nursery, shared_broker: MosquittoBroker,
                                                   request: pytest.FixtureRequest, backend: str) -> None:
    """The same cases, each on a fresh service per transport: same status, same body (errors: same text)."""
    http_paths = {"lock": "/serviceorchestration/orchestration/mgmt/lock/", "store": "/serviceorchestration/orchestration/mgmt/simple-store/"}
    results: dict[str, list[tuple[int, Any]]] = {"http": [], "mqtt": []}
    for transport in ("http", "mqtt"):
        running = await started(nursery, tmp_path / transport, shared_broker, **backend_settings(backend, request))
        requester = Requester(shared_broker.host, shared_broker.port)
        async with httpx.AsyncClient(base_url=running.http_urls[0]) as http:
            for topic, payload in PARITY_CASES:
                service, operation = topic.split("/")
                if transport == "http":
                    method = "PUT" if operation == "modify-priorities" else "POST"
                    response = await http.request(method, http_paths[service] + operation, json=payload, headers=SYSOP)
                    status, body = response.status_code, response.json()
                else:
                    reply = await requester.request(f"{PREFIX}/orchestration/management/{topic}", payload)
                    status, body = reply["status"], reply["payload"]
                if isinstance(body, dict):
                    body.pop("origin", None)
                    if backend == "etcd":  # lock ids come from the cluster's revision: the two services differ
                        for entry in body.get("entries", []):
                            if isinstance(entry.get("id"), int):
                                entry["id"] = "some id"
                results[transport].append((status, body))
        requester.close()
        running.shutdown.set()
        await running.stopped.wait()
    assert results["http"] == results["mqtt"]
    assert [status for status, _ in results["http"]] == [201, 400, 400, 400, 200, 400, 400, 400, 400, 400]
