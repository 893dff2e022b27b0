"""Issue 12 item 3: MQTT request size. Six 200 MiB echo requests took the process to 3.2 GiB and stalled
HTTP for seconds. Now a request over `mqtt_max_request_bytes` is dropped before it is decoded (counted,
logged without its content); MQTT 5 tells the broker the limit on CONNECT (Maximum Packet Size), so
mosquitto does not even send a packet over it; with 3.1.1 such a packet is skipped at the socket without
ever being held whole.

Every check after a big message is ordered behind it: the requester publishes an echo request after it
on the same connection, the broker delivers in order and the session reads the socket in order.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tracemalloc
from pathlib import Path

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
)
from transports.mqtt.session_types import PACKET_HEADROOM
from transports.service import RunningService

LIMIT = 4096


def padded(size: int, instance: str, reply_topic: str) -> bytes:
    """A lock/create request of exactly `size` bytes (its traceId is the padding)."""
    body = template(reply_topic, trace_id="", payload=lock_request(instance))
    return template(reply_topic, trace_id="p" * (size - len(body)), payload=lock_request(instance))


async def echo_round_trip(requester: Requester, trace_id: str) -> None:
    requester.send(ECHO_TOPIC, template(requester.response_topic, trace_id=trace_id, auth="SYSTEM//A"))
    with trio.fail_after(10):
        body = json.loads((await requester.reply()).payload)
    assert (body["traceId"], body["status"]) == (trace_id, 200), "a reply to a dropped request came"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_requests_over_the_limit_are_dropped_unread(
        tmp_path: Path, nursery: trio.Nursery, shared_broker: MosquittoBroker, protocol: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lockstore.mqtt")
    running = await serve(nursery, tmp_path / "data", shared_broker, mqtt_protocol=protocol,
                          mqtt_max_request_bytes=LIMIT)
    session = mqtt_of(running).session
    requester = Requester(shared_broker.host, shared_broker.port)
    reply_to = requester.response_topic
    try:
        requester.send(LOCK_TOPIC + "create", padded(LIMIT, "AtLimit|svc|1", reply_to))
        with trio.fail_after(10):
            assert json.loads((await requester.reply()).payload)["status"] == 201  # the limit itself is fine

        requester.send(LOCK_TOPIC + "create", padded(LIMIT + 1, "JustOver|svc|1", reply_to))
        await echo_round_trip(requester, "after-just-over")
        assert session.dropped_too_large == 1  # delivered by the broker (within the packet headroom), dropped here

        requester.send(LOCK_TOPIC + "create", padded(LIMIT + PACKET_HEADROOM + 10_000, "Huge|svc|1", reply_to))
        await echo_round_trip(requester, "after-huge")
        # MQTT 5: the broker kept it (Maximum Packet Size); 3.1.1: skipped at the socket, and counted
        assert session.dropped_too_large == (1 if protocol == "5" else 2)

        assert await lock_count(running, "AtLimit|svc|1") == 1
        assert await lock_count(running, "JustOver|svc|1") == 0
        assert await lock_count(running, "Huge|svc|1") == 0
        assert session.connection_count == 1
        assert await metric(running, "lockstore_mqtt_dropped_total", reason="too_large") == session.dropped_too_large
        assert await http_echo_ok(running)
    finally:
        requester.close()
    drops = [record.getMessage() for record in caplog.records if "request limit" in record.getMessage()]
    assert len(drops) == session.dropped_too_large
    assert all(len(line) < 400 and "ppppp" not in line for line in drops), "a drop logged the request's content"
    await stop(running)


async def _peak_while_received(running: RunningService, broker: MosquittoBroker, requester: Requester,
                               payload: Path) -> int:
    tracemalloc.start()
    try:
        await trio.to_thread.run_sync(lambda: subprocess.run(
            ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv311", "-q", "1",
             "-t", LOCK_TOPIC + "create", "-f", str(payload)], check=True, timeout=60))
        await echo_round_trip(requester, "after-big")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_huge_request_is_never_held_in_memory(tmp_path: Path, nursery: trio.Nursery,
                                                      shared_broker: MosquittoBroker) -> None:
    """MQTT 3.1.1 (the broker is not told a limit): a 48 MiB request, published by another process,
    costs the service no more than a few pieces of 64 KiB (paho alone would hold all of it, twice)."""
    running = await serve(nursery, tmp_path / "data", shared_broker, mqtt_protocol="3.1.1")  # default limit 1 MiB
    requester = Requester(shared_broker.host, shared_broker.port)
    payload = tmp_path / "huge.json"
    payload.write_bytes(padded(48 << 20, "Huge|svc|1", requester.response_topic))
    try:
        peak = await _peak_while_received(running, shared_broker, requester, payload)
        assert peak < 8 << 20, f"{peak} bytes allocated while a 48 MiB request was received"
        assert mqtt_of(running).session.dropped_too_large == 1
        assert mqtt_of(running).session.connection_count == 1
        assert await lock_count(running, "Huge|svc|1") == 0
    finally:
        requester.close()
    await stop(running)
