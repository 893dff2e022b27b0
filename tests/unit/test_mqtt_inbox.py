"""The session's receive buffer (transports/mqtt/inbox.py) with paho's own message objects: what it lets in.

mosquitto checks topics, so a topic that is not UTF-8 cannot be sent through it; another broker may pass
one on, and paho then raises when the topic is read — that used to end the session (and the service)."""

from __future__ import annotations

import logging

import paho.mqtt.client as paho
import pytest
import trio

from transports.mqtt.inbox import Inbox


def message(topic: bytes, payload: bytes, *, qos: int = 1, retain: bool = False) -> paho.MQTTMessage:
    out = paho.MQTTMessage(mid=1, topic=topic)
    out.payload, out.qos, out.retain = payload, qos, retain
    return out


async def test_an_unreadable_topic_drops_that_message_only(caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox(capacity=4, max_message_bytes=100)
    with caplog.at_level(logging.WARNING, logger="lockstore.mqtt"):
        inbox.admit(message(b"requests/\xff\xfe", b"{}"))
    inbox.admit(message(b"requests/ok", b"{}", retain=True))
    assert (inbox.dropped_unreadable, len(inbox)) == (1, 1)
    received = await inbox.receive()
    assert (received.topic, received.payload, received.qos, received.retain) == ("requests/ok", b"{}", 1, True)
    assert any("cannot be read" in record.getMessage() for record in caplog.records)


async def test_payloads_over_the_limit_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox(capacity=4, max_message_bytes=100)
    with caplog.at_level(logging.WARNING, logger="lockstore.mqtt"):
        inbox.admit(message(b"t/" + b"x" * 5000, b"y" * 101))
    inbox.admit(message(b"t", b"y" * 100))
    assert (inbox.dropped_too_large, len(inbox)) == (1, 1)
    [line] = [record.getMessage() for record in caplog.records]
    assert "MQTT message of 101 bytes on 't/xxx" in line and "…(+4882 more)" in line and len(line) < 400


async def test_receive_waits_and_ends_once_closed_and_empty() -> None:
    inbox = Inbox(capacity=1, max_message_bytes=None)
    assert inbox.has_room()
    inbox.admit(message(b"t", b"1"))
    assert not inbox.has_room() and inbox.high_water == 1
    with trio.move_on_after(0.05) as waited:
        await inbox.wait_for_room()
    assert waited.cancelled_caught
    assert (await inbox.receive()).payload == b"1"
    inbox.close()
    await inbox.wait_for_room()  # closed: nobody waits
    with pytest.raises(trio.EndOfChannel):
        await inbox.receive()
