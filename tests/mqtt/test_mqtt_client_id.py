"""Issue 12 item 12: the default client id was `lockstore`, so two instances on one broker took the
session from each other in a loop, readiness flapping, with no hint why. Now the default is unique per
start (`lockstore-<host>-<random>`), and when the broker keeps taking the session away — two sessions
sharing a fixed id — a WARNING names the client id and the likely cause (the broker's MQTT 5 DISCONNECT
"Session taken over" where it sends one; else the link dropped soon after connecting, three times in a row)."""

from __future__ import annotations

import json
import logging
import re
import socket
from pathlib import Path

import pytest
import trio

from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.requester import Requester
from tests.mqtt.serving import ECHO_TOPIC, metric, mqtt_of, serve, stop, template, until


async def test_two_instances_with_default_settings_keep_their_sessions(
        tmp_path: Path, nursery: trio.Nursery, broker: MosquittoBroker) -> None:
    first = await serve(nursery, tmp_path / "one", broker)
    second = await serve(nursery, tmp_path / "two", broker)
    ids = [mqtt_of(running).session.client_id for running in (first, second)]
    host = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname().split(".")[0]).strip("-")[:40]
    for client_id in ids:
        assert re.fullmatch(rf"lockstore-{re.escape(host)}-[0-9a-f]{{8}}", client_id), client_id
    assert ids[0] != ids[1]
    requester = Requester(broker.host, broker.port)
    try:  # both are subscribed to the request topics: one request, two answers
        requester.send(ECHO_TOPIC, template(requester.response_topic, trace_id="both", auth="SYSTEM//A"))
        with trio.fail_after(10):
            replies = [json.loads((await requester.reply()).payload) for _ in range(2)]
        assert [reply["traceId"] for reply in replies] == ["both", "both"]
    finally:
        requester.close()
    for running in (first, second):
        assert mqtt_of(running).session.connected
        assert mqtt_of(running).session.connection_count == 1, "one instance knocked the other off the broker"
        assert mqtt_of(running).session.taken_over == 0
    await stop(first)
    await stop(second)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_shared_fixed_client_id_is_warned_about(
        tmp_path: Path, nursery: trio.Nursery, broker: MosquittoBroker, protocol: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lockstore.mqtt")
    first = await serve(nursery, tmp_path / "one", broker, mqtt_protocol=protocol, mqtt_client_id="lockstore-twin")
    second = await serve(nursery, tmp_path / "two", broker, mqtt_protocol=protocol, mqtt_client_id="lockstore-twin")

    def warned() -> list[str]:
        return [record.getMessage() for record in caplog.records
                if "keeps taking the session of client id 'lockstore-twin' away" in record.getMessage()]

    await until(lambda: bool(warned()), "the takeover warning", timeout=20)
    message = warned()[0]
    assert "another client is probably connected with the same client id" in message
    assert "mqtt_client_id" in message
    # mosquitto 2.0.11 just closes the old connection, MQTT 5 too (newer brokers send DISCONNECT 0x8E "Session
    # taken over", which tests/unit/test_mqtt_watch.py covers): the early losses in a row give it away
    assert "times in a row within 5 s of connecting" in message or 'DISCONNECT "Session taken over"' in message
    taken = [mqtt_of(running).session.taken_over for running in (first, second)]
    assert sum(taken) >= 1
    assert sum([await metric(running, "lockstore_mqtt_session_taken_over_total") or 0
                for running in (first, second)]) >= 1
    await stop(first)
    await stop(second)
