"""Fuzzing the MQTT request decoding (template, then payload) with hypothesis.

Whatever arrives on a request topic — random bytes, random JSON, templates with wrong types, deeply
nested values — `MqttDispatcher.handle` must never raise, and must end in one of two ways: a reply
(an Arrowhead response template; an error status carries an Arrowhead error body with a message), or
no reply that is either a counted drop (`unparseable`, or `refused_reply_topics`: a reply topic nothing can be
published to) or a well-formed request that named no response topic (the reference answers those with
silence too).

The dispatcher runs over a real service (log on disk, actors, operations) in a thread of its own;
each example is one `trio.from_thread.run` into it. No mocks.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec
import pytest
import trio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from actors.clock import ManualClock
from transports.api.errors import ExceptionType
from transports.api.topics import reply_topic_problem
from transports.config.settings import Settings
from transports.mqtt.dispatch import MqttAccess, MqttDispatcher, MqttRequestTemplate, Reply, request_topics
from transports.observability.access import reply_status
from transports.security.identity import ManagementPolicy
from transports.service import RunningService, run_service

PREFIX = "arrowhead/serviceorchestration"
TOPICS = request_topics(PREFIX)
REPLY_TOPIC = "fuzz/replies"


@dataclass
class Served:
    dispatcher: MqttDispatcher
    token: trio.lowlevel.TrioToken

    def handle(self, topic: str, body: bytes, response_topic: str | None = None) -> Reply | None:
        return trio.from_thread.run(self.dispatcher.handle, topic, body, response_topic, None, trio_token=self.token)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    started: queue.Queue[tuple[RunningService, trio.lowlevel.TrioToken] | BaseException] = queue.Queue()
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"

    async def main() -> None:
        config = Settings(host="127.0.0.1", port=0, data_dir=str(data_dir))
        clock = ManualClock(start=float(int(time.time())))
        async with trio.open_nursery() as nursery:
            running: RunningService = await nursery.start(partial(run_service, config, clock=clock,
                                                                  handle_signals=False))
            started.put((running, trio.lowlevel.current_trio_token()))

    def thread_main() -> None:
        try:
            trio.run(main)
        except BaseException as error:  # reported to the test thread
            started.put(error)

    thread = threading.Thread(target=thread_main, name="fuzz-service", daemon=True)
    thread.start()
    first = started.get(timeout=20)
    if isinstance(first, BaseException):
        raise first
    running, token = first
    dispatcher = MqttDispatcher(running.operations, MqttAccess(ManagementPolicy.SYSOP_ONLY, frozenset()), PREFIX)
    yield Served(dispatcher, token)
    trio.from_thread.run_sync(running.shutdown.set, trio_token=token)
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert started.empty(), started.get()  # the service ended without an error


# ------------------------------------------------------------------------------------------ oracle


def _usable_topic(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def check_outcome(served: Served, topic: str, body: bytes, response_topic: str | None = None) -> Reply | None:
    """Run one message and assert the contract of the module doc."""
    dropped_before = served.dispatcher.unparseable
    refused_before = served.dispatcher.refused_reply_topics
    reply = served.handle(topic, body, response_topic)
    dropped = served.dispatcher.unparseable - dropped_before
    refused = served.dispatcher.refused_reply_topics - refused_before
    if reply is None:
        if dropped + refused == 1:
            return None
        assert dropped == refused == 0
        # Not a drop: then it must have been a request that named nowhere to answer.
        template = msgspec.json.decode(body, type=MqttRequestTemplate)
        assert not _usable_topic(template.responseTopic) and not _usable_topic(response_topic), body[:200]
        return None
    assert dropped == refused == 0
    assert reply.topic.strip() and reply.qos in (0, 1, 2)
    assert reply_topic_problem(reply.topic) is None  # never a reply to a topic nothing can be published to
    envelope = json.loads(reply.body)
    assert isinstance(envelope["status"], int)
    assert reply_status(reply.body) == envelope["status"]  # the access log's fast path agrees
    status = envelope["status"]
    assert status in (200, 201, 400, 401, 403), envelope  # never a 5xx for anything a client can send
    if status >= 400:
        error = envelope["payload"]
        assert set(error) <= {"errorMessage", "errorCode", "exceptionType", "origin"}
        assert error["errorCode"] == status
        assert error["exceptionType"] in ExceptionType.__members__
        assert isinstance(error["errorMessage"], str) and error["errorMessage"].strip()
        assert error["origin"] == topic
    return reply


# -------------------------------------------------------------------------------------- strategies

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)
names = st.sampled_from(["TemperatureManager", "Sysop", "provider-a", "", " ", "x" * 70, "Tempé", "a|b|c"])
instance_ids = st.sampled_from([
    "ProviderA|kelvinInfo|1.0.0", "provider-b|kelvin-info|2", "P||1", "A|b|c|d", "", "not-an-id",
]) | st.text(max_size=30)
instants = st.sampled_from(["2999-01-01T00:00:00Z", "2000-01-01T00:00:00Z", "tomorrow", "", "2025-02-30T00:00:00Z"])
lock_payloads = st.fixed_dictionaries({}, optional={
    "locks": st.lists(st.none() | st.fixed_dictionaries({}, optional={
        "serviceInstanceId": instance_ids | json_scalars, "owner": names | json_scalars,
        "expiresAt": instants | json_scalars,
    }), max_size=4) | json_values,
    "owners": st.lists(names, max_size=3) | json_values,
    "ids": st.lists(st.integers(-5, 2**65), max_size=3) | json_values,
    "pagination": st.fixed_dictionaries({}, optional={
        "page": st.integers(-3, 3) | json_scalars, "size": st.integers(-3, 2000) | json_scalars,
        "direction": st.sampled_from(["ASC", "desc", "x"]) | json_scalars,
        "sortField": st.sampled_from(["id", "owner", "nope"]) | json_scalars,
    }) | json_values,
})
store_payloads = st.fixed_dictionaries({}, optional={
    "candidates": st.lists(st.none() | st.fixed_dictionaries({}, optional={
        "consumer": names | json_scalars, "serviceInstanceId": instance_ids | json_scalars,
        "priority": st.integers(-2, 2**40) | json_scalars,
    }), max_size=4) | json_values,
    "consumerNames": st.lists(names, max_size=3) | names | json_values,
    "minPriority": st.integers() | json_scalars,
}) | st.dictionaries(st.uuids().map(str) | st.text(max_size=8), st.integers(-3, 5) | json_scalars, max_size=3)
payloads = lock_payloads | store_payloads | st.lists(instance_ids | json_scalars, max_size=4) | json_values
templates = st.fixed_dictionaries({}, optional={
    "traceId": st.text(max_size=20) | json_values,
    "authentication": st.sampled_from(["SYSTEM//Sysop", "SYSTEM//sysop", "SYSTEM//Other", "Sysop", "", "SYSTEM//"])
    | json_values,
    "responseTopic": st.just(REPLY_TOPIC) | st.sampled_from(["", "  ", "#", "a/+", "$SYS/x", "a\x00b"]) | json_values,
    "qosRequirement": st.integers(-1, 3) | json_values,
    "params": st.dictionaries(st.sampled_from(["owner", "x"]), names | json_scalars, max_size=2) | json_values,
    "payload": payloads,
})
topics = st.sampled_from([*TOPICS, f"{PREFIX}/orchestration/management/lock/nope", "elsewhere/topic"])

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)


@FUZZ
@given(topic=topics, body=st.binary(max_size=600))
@example(topic=TOPICS[0], body=b"")
@example(topic=TOPICS[0], body=b"\xff\xfe{")
def test_random_bytes(served: Served, topic: str, body: bytes) -> None:
    check_outcome(served, topic, body)


@FUZZ
@given(topic=topics, value=json_values)
def test_random_json(served: Served, topic: str, value: Any) -> None:
    check_outcome(served, topic, json.dumps(value).encode())


@FUZZ
@given(topic=topics, template=templates, use_property=st.booleans())
def test_templates_and_payloads(served: Served, topic: str, template: dict[str, Any], use_property: bool) -> None:
    """Template-shaped messages reach authentication and the operation's payload decoding."""
    check_outcome(served, topic, json.dumps(template).encode(), REPLY_TOPIC if use_property else None)


@pytest.mark.parametrize("depth", [100, 999, 1000, 5000, 200_000])
@pytest.mark.parametrize("where", ["payload", "unknown", "payload.locks", "whole"])
def test_deeply_nested_json_is_answered(served: Served, depth: int, where: str) -> None:
    """Nesting deeper than the interpreter's recursion limit is answered or counted, never a crash of the service
    (msgspec raises RecursionError there, not DecodeError)."""
    nested = b"[" * depth + b"]" * depth
    body = {
        "payload": b'{"responseTopic":"r","authentication":"SYSTEM//Sysop","payload":' + nested + b"}",
        "unknown": b'{"responseTopic":"r","authentication":"SYSTEM//Sysop","x":' + nested + b"}",
        "payload.locks": b'{"responseTopic":"r","authentication":"SYSTEM//Sysop","payload":{"x":' + nested + b"}}",
        "whole": nested,
    }[where]
    check_outcome(served, TOPICS[0], body)
    reply = check_outcome(served, TOPICS[0], body, REPLY_TOPIC)  # with an MQTT 5 response topic: always a reply
    assert reply is not None
    if depth >= 1000:
        assert json.loads(reply.body)["status"] == 400


def test_a_valid_request_still_works_after_the_fuzzing(served: Served) -> None:
    body = json.dumps({
        "responseTopic": REPLY_TOPIC, "authentication": "SYSTEM//Sysop", "traceId": "t",
        "payload": {"locks": [{"serviceInstanceId": "FuzzCheck|svc|1.0.0", "owner": "Fuzzer",
                               "expiresAt": "2999-01-01T00:00:00Z"}]},
    }).encode()
    reply = check_outcome(served, f"{PREFIX}/orchestration/management/lock/create", body)
    assert reply is not None and json.loads(reply.body)["status"] == 201


def test_reply_status_fast_path_matches_a_full_decode() -> None:
    for body in (b'{"status":201,"traceId":"t","payload":""}', b'{"status":400,"payload":{}}',
                 b'{"payload":"","status":200}', b"not json", b'{"status":"x"}'):
        try:
            expected = msgspec.json.decode(body, type=dict[str, Any]).get("status", 0)
        except msgspec.DecodeError:
            expected = 0
        assert reply_status(body) == (expected if isinstance(expected, int) else 0)



def test_blank_response_topic_falls_back_to_the_mqtt5_property(served: Served) -> None:
    """Found by the fuzzer: a blank responseTopic field must not hide the Response Topic property."""
    reply = check_outcome(served, f"{PREFIX}/monitor/echo", b'{"responseTopic": "  ", "authentication": "SYSTEM//A"}', REPLY_TOPIC)
    assert reply is not None and reply.topic == REPLY_TOPIC
