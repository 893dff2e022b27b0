"""Invalid UTF-8 inside JSON strings and priorities beyond a Java `int`, over a real mosquitto broker: a 400
reply with the parse-error message (before: a 500 reply, or a message dropped with a traceback)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from actors.clock import ManualClock
from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.requester import Requester
from tests.mqtt.test_mqtt_service import LOCK_TOPIC, STORE_TOPIC, MqttService, started

INT_RANGE = "out of range of int (-2147483648 - 2147483647)"


@pytest.fixture
async def mqtt(tmp_path: Path, nursery: trio.Nursery, shared_broker: MosquittoBroker) -> AsyncIterator[MqttService]:
    running = await started(nursery, tmp_path, shared_broker)
    requester = Requester(shared_broker.host, shared_broker.port)
    async with httpx.AsyncClient(base_url=running.http_urls[0]) as http:
        yield MqttService(running, ManualClock(), requester, http, shared_broker)
    requester.close()
    running.shutdown.set()
    await running.stopped.wait()


def template(requester: Requester, payload: bytes, *, auth: bytes = b"SYSTEM//Sysop", params: bytes = b"null",
             response_topic: bytes | None = None) -> bytes:
    topic = requester.response_topic.encode() if response_topic is None else response_topic
    return (b'{"traceId":"t-1","authentication":"' + auth + b'","responseTopic":"' + topic
            + b'","qosRequirement":1,"params":' + params + b',"payload":' + payload + b"}")


# One request per operation, with invalid UTF-8 inside a string of its payload.
PAYLOADS = [
    ("lock/create", b'{"locks":[{"serviceInstanceId":"P|s|1","owner":"O\xffwner","expiresAt":"2999-01-01T00:00:00Z"}]}',
     b"null"),
    ("lock/query", b'{"owners":["\xc3"]}', b"null"),
    ("lock/remove", b'["P|s|1\xff"]', b'{"owner":"Owner"}'),
    ("store/query", b'{"createdBy":"\xed\xa0\x80"}', b"null"),
    ("store/create", b'{"candidates":[{"consumer":"C\xfe","serviceInstanceId":"P|s|1","priority":1}]}', b"null"),
    ("store/modify-priorities", b'{"\xff":1}', b"null"),
    ("store/remove", b'["\xf0\x9f"]', b"null"),
]


@pytest.mark.parametrize(("operation", "payload", "params"), PAYLOADS, ids=[op for op, _, _ in PAYLOADS])
async def test_invalid_utf8_in_the_payload_is_a_400_reply(mqtt: MqttService, operation: str, payload: bytes,
                                                          params: bytes) -> None:
    r = mqtt.requester
    topic = f"arrowhead/serviceorchestration/orchestration/management/{operation}"
    r.send(topic, template(r, payload, params=params))
    reply = json.loads((await r.reply()).payload)
    assert reply["status"] == 400, reply
    assert reply["payload"]["errorMessage"].startswith(
        "Could not parse payload. Reason: Invalid UTF-8 in a JSON string"), reply
    assert reply["payload"]["origin"] == topic and reply["traceId"] == "t-1" and reply["receiver"] == "Sysop"


async def test_invalid_utf8_in_the_template_is_a_400_reply_where_one_can_be_addressed(mqtt: MqttService) -> None:
    r = mqtt.requester
    assert mqtt.running.mqtt is not None
    dispatcher, server = mqtt.running.mqtt.dispatcher, mqtt.running.mqtt
    r.send(LOCK_TOPIC + "query", template(r, b"{}", auth=b"SYSTEM//Sys\xffop"))
    reply = json.loads((await r.reply()).payload)
    assert reply["status"] == 400, reply
    assert reply["payload"]["errorMessage"].startswith("Could not parse request. Reason: "), reply
    dropped, errors = dispatcher.unparseable, server.handler_errors
    # the response topic itself unreadable: nobody can be answered; counted, not an internal error
    r.send(LOCK_TOPIC + "query", template(r, b"{}", response_topic=r.response_topic.encode() + b"\xff"))
    with trio.fail_after(5):
        while dispatcher.unparseable == dropped:
            await trio.sleep(0.01)
    assert server.handler_errors == errors
    assert (await r.request(LOCK_TOPIC + "query", {}))["status"] == 200  # still answering


async def test_a_priority_beyond_a_java_int_is_a_400_reply(mqtt: MqttService) -> None:
    r = mqtt.requester
    too_big = {"candidates": [{"consumer": "C", "serviceInstanceId": "P|s|1", "priority": 2**64}]}
    reply = await r.request(STORE_TOPIC + "create", too_big)
    assert reply["status"] == 400, reply
    assert reply["payload"]["errorMessage"] == (
        f"Could not parse payload. Reason: Numeric value ({2**64}) {INT_RANGE} - at `$.candidates[0].priority`")
    created = await r.request(STORE_TOPIC + "create", {"candidates": [{**too_big["candidates"][0], "priority": 3}]})
    assert created["status"] == 201, created
    rule_id = created["payload"]["entries"][0]["id"]
    reply = await r.request(STORE_TOPIC + "modify-priorities", {rule_id: 2**64})
    assert reply["status"] == 400, reply
    assert reply["payload"]["errorMessage"] == (
        f"Could not parse payload. Reason: Numeric value ({2**64}) {INT_RANGE} - at `$[\"{rule_id}\"]`")
    query = await r.request(STORE_TOPIC + "query", {"ids": [rule_id]})
    assert query["payload"]["entries"][0]["priority"] == 3
