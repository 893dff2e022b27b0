"""The harness's MQTT client, pure parts: one Arrowhead request template per operation (read back with the
service's own template decoder and payload validators), reply parsing, the broker configuration."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from bench.mqtt_client import mqtt_address, parse_reply, request
from bench.mqtt_targets import mosquitto_config
from bench.operations import (
    CreateLocks,
    CreateRules,
    Echo,
    ModifyPriorities,
    Operation,
    QueryLocks,
    QueryRules,
    RemoveLocks,
    RemoveRules,
    Reply,
    RuleSpec,
)
from transports.api.instants import parse_instant
from transports.mqtt.dispatch import MqttRequestTemplate, request_topics, route

PREFIX = "arrowhead/serviceorchestration"
NOW = 1_700_000_000.75
A, B = "ProvA|svc|1.0.0", "ProvB|svc|1.0.0"
ID1, ID2 = "0308e42e-af59-4206-8513-3414bb2dbc60", "ace0f20b-b3aa-4935-adc7-d5dc58d4dc99"

CASES: list[tuple[Operation, str, Any, dict[str, str] | None]] = [
    (Echo(), "echo", None, None),
    (CreateLocks("Owner1", (A, B), 60), "lock_create",
     {"locks": [{"serviceInstanceId": A, "owner": "Owner1", "expiresAt": "2023-11-14T22:14:20Z"},
                {"serviceInstanceId": B, "owner": "Owner1", "expiresAt": "2023-11-14T22:14:20Z"}]}, None),
    (QueryLocks("Owner1", page=2, size=7), "lock_query",
     {"owners": ["Owner1"], "pagination": {"page": 2, "size": 7}}, None),
    (RemoveLocks("Owner1", (A,)), "lock_remove", [A], {"owner": "Owner1"}),
    (CreateRules((RuleSpec("C1", A, 3), RuleSpec("C1", B, 4))), "store_create",
     {"candidates": [{"consumer": "C1", "serviceInstanceId": A, "priority": 3},
                     {"consumer": "C1", "serviceInstanceId": B, "priority": 4}]}, None),
    (QueryRules("C1"), "store_query", {"consumerNames": ["C1"], "pagination": {"page": 0, "size": 10}}, None),
    (ModifyPriorities(((ID1, 2), (ID2, 1))), "store_modify_priorities", {ID1: 2, ID2: 1}, None),
    (RemoveRules((ID1, ID2)), "store_remove", [ID1, ID2], None),
]


@pytest.mark.parametrize(("operation", "handler", "payload", "params"), CASES)
def test_each_operation_is_a_template_on_the_services_topic(operation: Operation, handler: str, payload: Any,
                                                            params: dict[str, str] | None) -> None:
    topic, body = request(operation, PREFIX, "bench/r/abc/17", "abc-17", "SYSTEM//Sysop", NOW)
    assert topic in request_topics(PREFIX)
    assert route(topic, PREFIX) == (handler, topic)
    template = msgspec.json.decode(body, type=MqttRequestTemplate)  # as the service reads it
    assert (template.traceId, template.authentication, template.responseTopic, template.qosRequirement) == (
        "abc-17", "SYSTEM//Sysop", "bench/r/abc/17", 0)
    assert template.params == params
    raw = json.loads(body)
    assert raw.get("payload") == payload
    assert ("payload" in raw) == (payload is not None)  # no `"payload": null` for the echo


def test_lock_expiry_is_ttl_after_now_in_whole_seconds() -> None:
    _, body = request(CreateLocks("O", (A,), 3600), PREFIX, "t", "x", "SYSTEM//Sysop", NOW)
    expires = json.loads(body)["payload"]["locks"][0]["expiresAt"]
    assert parse_instant(expires) == int(NOW) + 3600


def test_prefix_and_identity_come_from_the_caller() -> None:
    topic, body = request(QueryLocks("O"), "other/prefix", "t", "x", "SYSTEM//Operator", NOW)
    assert topic == "other/prefix/orchestration/management/lock/query"
    assert json.loads(body)["authentication"] == "SYSTEM//Operator"


def test_an_instance_with_json_special_characters_is_escaped() -> None:
    _, body = request(RemoveLocks('we"ird\\', ('a"b',)), PREFIX, "t", "x", "SYSTEM//Sysop", NOW)
    assert json.loads(body)["payload"] == ['a"b']
    assert json.loads(body)["params"] == {"owner": 'we"ird\\'}


def test_not_an_operation() -> None:
    with pytest.raises(TypeError):
        request("lock create", PREFIX, "t", "x", "SYSTEM//Sysop", NOW)  # type: ignore[arg-type]


CREATED = json.dumps({"status": 201, "traceId": "t", "receiver": "Sysop", "payload": {"entries": [
    {"id": ID1, "consumer": "C", "serviceDefinition": "svc", "serviceInstanceId": A, "priority": 1},
    {"id": ID2, "consumer": "C", "serviceDefinition": "svc", "serviceInstanceId": B, "priority": 2}],
    "count": 2}}).encode()
LOCKS_CREATED = json.dumps({"status": 201, "traceId": "t", "receiver": "Sysop", "payload": {"entries": [
    {"id": 5, "serviceInstanceId": A, "owner": "O", "expiresAt": "2999-01-01T00:00:00Z"}], "count": 1}}).encode()
ERROR = json.dumps({"status": 400, "traceId": "t", "payload": {
    "errorMessage": "Already locked: ProvA|svc|1.0.0", "errorCode": 400, "exceptionType": "INVALID_PARAMETER",
    "origin": "arrowhead/serviceorchestration/orchestration/management/lock/create"}}).encode()
RULES = CreateRules((RuleSpec("C", A, 1), RuleSpec("C", B, 2)))


@pytest.mark.parametrize(
    ("operation", "body", "expected"),
    [
        (RULES, CREATED, Reply(201, (ID1, ID2))),
        (CreateLocks("O", (A,), 60), LOCKS_CREATED, Reply(201)),  # ids only for rules
        (CreateLocks("O", (A,), 60), ERROR, Reply(400)),
        (RULES, ERROR, Reply(400)),
        (RemoveRules((ID1,)), b'{"status":200,"traceId":"t","receiver":"Sysop","payload":""}', Reply(200)),
        (RULES, b'{"status":200,"payload":"Got it!"}', Reply(200)),  # bench.mqtt_echo: success, no ids
        (Echo(), b'{"status":200,"payload":"Got it!"}', Reply(200)),
        (RULES, b'{"status":201,"payload":{"entries":"x"}}', Reply(201)),
        (Echo(), b"not json", Reply(0)),
        (Echo(), b'{"payload":1}', Reply(0)),
        (Echo(), b'{"status":"200"}', Reply(0)),
    ],
)
def test_parse_reply(operation: Operation, body: bytes, expected: Reply) -> None:
    reply = parse_reply(operation, body)
    assert reply == expected
    assert reply.ok == (200 <= expected.status < 300)


@pytest.mark.parametrize(
    ("url", "address"),
    [("mqtt://127.0.0.1:1884", ("127.0.0.1", 1884)), ("mqtt://broker", ("broker", 1883)),
     ("mqtt://[::1]:2000", ("::1", 2000))],
)
def test_mqtt_address(url: str, address: tuple[str, int]) -> None:
    assert mqtt_address(url) == address


@pytest.mark.parametrize("url", ["http://127.0.0.1:1883", "mqtt://", "127.0.0.1:1883"])
def test_mqtt_address_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        mqtt_address(url)


def test_mosquitto_config_listens_on_loopback_only() -> None:
    lines = mosquitto_config(4567, as_root=False).splitlines()
    assert "listener 4567 127.0.0.1" in lines
    assert "set_tcp_nodelay true" in lines
    assert "user root" not in lines
    assert "user root" in mosquitto_config(4567, as_root=True).splitlines()
