"""Issue 12 items 1 and 9: where a reply may go.

Item 1: a reply topic paho cannot publish to (wildcards, NUL, over 65,535 bytes) used to raise
ValueError in an MQTT worker and end the whole process, HTTP included; one the broker refuses (a
control character, a non-character, too many levels) broke the session; one starting with `$` made
the service publish into the broker's own topics. Such a request is now not executed, gets no reply,
and is counted and logged (shortened, escaped) — from the responseTopic field and from the MQTT 5
Response Topic property alike.

Item 9: with `mqtt_reply_topic_prefix` set, a reply topic outside it is refused the same way.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import trio

from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.requester import Requester
from tests.mqtt.serving import (
    ECHO_TOPIC,
    LOCK_TOPIC,
    http_echo_ok,
    lock_count,
    lock_request,
    metric,
    mqtt_of,
    serve,
    stop,
    template,
    until,
)
from transports.service import RunningService

# Every one of these either killed the process, broke the session or published into $SYS before.
BAD_REPLY_TOPICS = {
    "hash": "#",
    "plus": "replies/+/x",
    "nul": "replies/a\x00b",
    "long": "r" * 65_536,
    "long-in-bytes": "é" * 32_768,
    "dollar": "$SYS/broker/clients",
    "control": "replies/a\x01b",
    "escape": "replies/\x1b[31mred",
    "non-character": "replies/\ufdd0",
    "levels": "/".join(["l"] * 201),
}
# What mosquitto passes on in the Response Topic property (it refuses NUL and controls there itself).
BAD_PROPERTY_TOPICS = ["#", "replies/+/x", "$SYS/broker/clients", "/".join(["l"] * 201)]


async def _assert_still_serving(running: RunningService, requester: Requester) -> None:
    assert await http_echo_ok(running)
    requester.send(ECHO_TOPIC, template(requester.response_topic, trace_id="alive", auth="SYSTEM//A"))
    with trio.fail_after(10):
        body = json.loads((await requester.reply()).payload)
    assert (body["traceId"], body["status"]) == ("alive", 200)


async def test_bad_reply_topics_are_refused_before_anything_runs(
        tmp_path: Path, nursery: trio.Nursery, shared_broker: MosquittoBroker,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lockstore.mqtt")
    running = await serve(nursery, tmp_path / "data", shared_broker)
    dispatcher = mqtt_of(running).dispatcher
    requester = Requester(shared_broker.host, shared_broker.port)
    v5 = Requester(shared_broker.host, shared_broker.port, protocol=paho.MQTTv5)
    try:
        for n, (name, topic) in enumerate(BAD_REPLY_TOPICS.items()):
            requester.send(LOCK_TOPIC + "create", template(topic, trace_id=name, payload=lock_request(f"Bad{n}|svc|1")))
            if name == "long":  # an unparseable template with a readable responseTopic takes the 400 path: refused too
                requester.send(LOCK_TOPIC + "create", json.dumps({"responseTopic": topic, "qosRequirement": "x"}).encode())
        for n, topic in enumerate(BAD_PROPERTY_TOPICS):
            v5.send(LOCK_TOPIC + "create", template(None, trace_id=f"p{n}", payload=lock_request(f"BadP{n}|svc|1")),
                    ResponseTopic=topic)
        expected = len(BAD_REPLY_TOPICS) + 1 + len(BAD_PROPERTY_TOPICS)
        await until(lambda: getattr(dispatcher, "refused_reply_topics", 0) == expected, "every request to be refused")
        await _assert_still_serving(running, requester)
        for n in range(len(BAD_REPLY_TOPICS)):
            assert await lock_count(running, f"Bad{n}|svc|1") == 0, "a request with a refused reply topic ran"
        for n in range(len(BAD_PROPERTY_TOPICS)):
            assert await lock_count(running, f"BadP{n}|svc|1") == 0, "a request with a refused reply topic ran"
        assert await metric(running, "lockstore_mqtt_dropped_total", reason="reply_topic_invalid") == expected
        assert mqtt_of(running).session.connection_count == 1, "the broker dropped the service's connection"
        assert mqtt_of(running).publish_failures == 0
    finally:
        requester.close()
        v5.close()
    refusals = [record.getMessage() for record in caplog.records if "not executed" in record.getMessage()]
    assert len(refusals) == expected
    assert all(len(line) < 600 and line.isprintable() for line in refusals), "a refusal logged a whole topic or raw bytes"
    assert any("'replies/a\\x00b' contains the character U+0000" in line for line in refusals)
    assert any("…(+65416 more) is longer than 65535 bytes" in line for line in refusals)
    await stop(running)


async def test_the_reply_topic_prefix_keeps_replies_under_it(
        tmp_path: Path, nursery: trio.Nursery, shared_broker: MosquittoBroker,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lockstore.mqtt")
    running = await serve(nursery, tmp_path / "data", shared_broker, mqtt_reply_topic_prefix="test/replies/")
    dispatcher = mqtt_of(running).dispatcher
    requester = Requester(shared_broker.host, shared_broker.port)  # its replies come to test/replies/<uuid>
    v5 = Requester(shared_broker.host, shared_broker.port, protocol=paho.MQTTv5)
    try:
        outside = ["test/repliesX/a", "elsewhere/replies", "test", f"{PREFIX_TOPIC}lock/remove"]
        for n, topic in enumerate(outside):
            requester.send(LOCK_TOPIC + "create", template(topic, trace_id=f"o{n}", payload=lock_request(f"Out{n}|svc|1")))
        v5.send(LOCK_TOPIC + "create", template(None, trace_id="op", payload=lock_request("OutP|svc|1")),
                ResponseTopic="elsewhere/replies")
        await until(lambda: getattr(dispatcher, "disallowed_reply_topics", 0) == len(outside) + 1,
                    "every request outside the prefix to be refused")
        for n in range(len(outside)):
            assert await lock_count(running, f"Out{n}|svc|1") == 0
        assert await lock_count(running, "OutP|svc|1") == 0
        assert await metric(running, "lockstore_mqtt_dropped_total", reason="reply_topic_not_allowed") == len(outside) + 1
        requester.send(LOCK_TOPIC + "create", template(requester.response_topic, trace_id="in",
                                                       payload=lock_request("In|svc|1")))
        with trio.fail_after(10):
            body = json.loads((await requester.reply()).payload)
        assert (body["traceId"], body["status"]) == ("in", 201)
        v5.send(ECHO_TOPIC, template(None, trace_id="in5", auth="SYSTEM//A"), ResponseTopic=v5.response_topic)
        with trio.fail_after(10):
            assert json.loads((await v5.reply()).payload)["traceId"] == "in5"
    finally:
        requester.close()
        v5.close()
    assert any("is outside the allowed reply-topic prefix 'test/replies/'" in record.getMessage()
               for record in caplog.records)
    await stop(running)


PREFIX_TOPIC = "arrowhead/serviceorchestration/orchestration/management/"


@pytest.mark.parametrize(("prefix", "problem"), [("replies/#", "contains the wildcard '#'"), ("/", "must name"),
                                                  ("$SYS", "starts with '$'")])
async def test_a_bad_reply_topic_prefix_stops_start_up(tmp_path: Path, nursery: trio.Nursery,
                                                       shared_broker: MosquittoBroker, prefix: str, problem: str) -> None:
    from transports.config.loading import SettingsError

    # The settings rules refuse it before the log is opened (MqttServer.from_url would too, as a second line).
    with pytest.raises(SettingsError, match=f"mqtt_reply_topic_prefix .* {re.escape(problem)}"):
        await serve(nursery, tmp_path / "data", shared_broker, mqtt_reply_topic_prefix=prefix)
