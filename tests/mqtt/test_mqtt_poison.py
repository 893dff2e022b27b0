"""Issue 12 item 14: a reply the broker refuses must not poison the session.

mosquitto answers a PUBLISH it refuses by closing the link. paho keeps an unacknowledged QoS 1/2
message and sends it again after every reconnect, so the broker closes the link again, forever: no
request is answered until a restart. Two refusals reply-topic validation cannot see: a reply bigger
than the broker's `max_packet_size` (a large lock query), and a topic the broker refuses published
through the session directly (bypassing the dispatcher's checks). Either way the message must be given
up after the link dropped twice in a row with it unacknowledged, counted, and the session serve again.
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.mqtt.broker import MosquittoBroker, MosquittoNotFoundError
from tests.mqtt.requester import Requester
from tests.mqtt.serving import ECHO_TOPIC, LOCK_TOPIC, create_locks, metric, mqtt_of, serve, stop, template

BROKER_MAX_PACKET = 10_000  # the lock query below answers with ~20 KB
LOCKS = 120


@pytest.fixture
def small_packet_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    try:
        broker = MosquittoBroker(tmp_path / "mosquitto", extra_config=f"max_packet_size {BROKER_MAX_PACKET}\n")
    except MosquittoNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


async def _answers_echo(requester: Requester, trace_id: str, within: float = 1.0) -> bool:
    """Send one echo request; True once its reply came (False: none within `within` seconds)."""
    requester.send(ECHO_TOPIC, template(requester.response_topic, trace_id=trace_id, auth="SYSTEM//A"))
    with trio.move_on_after(within):
        while True:
            try:
                body = json.loads((await requester.reply(timeout=within)).payload)
            except queue.Empty:
                return False
            if body.get("traceId") == trace_id:
                assert (body["status"], body["payload"]) == (200, "Got it!")
                return True
    return False


async def _served_again(requester: Requester) -> None:
    """Requests sent while the service is away are lost (clean session): ask until three in a row are
    answered (an answer can also slip through before the refused reply breaks the link)."""
    with trio.fail_after(20):
        attempt = in_a_row = 0
        while in_a_row < 3:
            in_a_row = in_a_row + 1 if await _answers_echo(requester, f"probe-{attempt}") else 0
            attempt += 1


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_a_reply_over_the_brokers_packet_limit_is_given_up(
        tmp_path: Path, nursery: trio.Nursery, small_packet_broker: MosquittoBroker, protocol: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lockstore.mqtt")
    running = await serve(nursery, tmp_path / "data", small_packet_broker, mqtt_protocol=protocol)
    server = mqtt_of(running)
    await create_locks(running, [f"Poison{i}|svc|1" for i in range(LOCKS)])
    requester = Requester(small_packet_broker.host, small_packet_broker.port)
    try:
        requester.send(LOCK_TOPIC + "query", template(requester.response_topic, trace_id="big", qos=1,
                                                      payload={"pagination": {"page": 0, "size": LOCKS}}))
        await _served_again(requester)
        assert server.session.given_up == 1
        assert await metric(running, "lockstore_mqtt_replies_given_up_total") == 1
        # refused as sent, refused once more as re-sent, then given up (the second connection may not count as
        # ready: the broker can reset it before its SUBACK is read)
        assert server.session.connection_count <= 3
        assert server.session.unacknowledged == 0
        assert any("gave up a QoS 1 message" in record.getMessage() for record in caplog.records)
    finally:
        requester.close()
    await stop(running)


async def test_a_topic_the_broker_refuses_is_given_up(tmp_path: Path, nursery: trio.Nursery,
                                                     broker: MosquittoBroker) -> None:
    running = await serve(nursery, tmp_path / "data", broker)
    session = mqtt_of(running).session
    requester = Requester(broker.host, broker.port)
    try:
        # the dispatcher would never publish here (U+0001: mosquitto answers "Malformed packet")
        await session.publish("replies/bad\x01topic", b"refused", qos=1)
        await _served_again(requester)
        assert session.given_up == 1
        assert session.connection_count <= 3
    finally:
        requester.close()
    await stop(running)
