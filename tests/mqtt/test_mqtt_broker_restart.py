"""Broker restart under load: requests are answered or cleanly lost, never half-applied or applied
twice; the service reconnects, resubscribes and serves again within seconds."""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path

import httpx
import trio

from tests.integration.conftest import LOCK, SYSOP, future
from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.requester import Requester
from tests.mqtt.test_mqtt_service import LOCK_TOPIC, started

PER_REQUEST = 2


async def test_broker_restart_under_load(tmp_path: Path, nursery: trio.Nursery, broker: MosquittoBroker) -> None:
    running = await started(nursery, tmp_path, broker)
    requester = Requester(broker.host, broker.port)
    sent: list[str] = []

    def send(n: int) -> None:
        trace = f"T{n}"
        sent.append(trace)
        locks = [{"serviceInstanceId": f"R{n}X{i}|svc|1", "owner": "Owner", "expiresAt": future()} for i in range(PER_REQUEST)]
        template = {"traceId": trace, "authentication": "SYSTEM//Sysop", "responseTopic": requester.response_topic,
                    "qosRequirement": 1, "payload": {"locks": locks}}
        requester.client.publish(LOCK_TOPIC + "create", json.dumps(template).encode(), qos=1)

    n = 0
    for _ in range(100):  # load before the restart ...
        send(n)
        n += 1
    early: list[bytes] = []
    with trio.fail_after(15):
        while len(early) < 50:  # ... visibly being served ...
            early.append((await requester.reply()).payload)
    for _ in range(50):  # ... and more still in flight when the broker goes away
        send(n)
        n += 1
    broker.stop()
    for _ in range(20):  # sent while the broker is away: paho queues or drops them
        send(n)
        n += 1
    await trio.sleep(0.5)
    broker.start()

    # the service is back within seconds: a new request gets its answer
    with trio.fail_after(20):
        while not running.mqtt.session.connected or not requester.client.is_connected():  # type: ignore[union-attr]
            await trio.sleep(0.1)
    restarted_at = time.monotonic()
    probe = n
    with trio.fail_after(15):
        while True:
            send(n)
            n += 1
            try:
                reply = await requester.reply(timeout=1)
            except queue.Empty:
                continue
            if json.loads(reply.payload)["traceId"] >= f"T{probe}":
                break
    assert time.monotonic() - restarted_at < 15

    await trio.sleep(1)
    replies: dict[str, dict[str, object]] = {}
    payloads = early + [requester.replies.get().payload for _ in range(requester.replies.qsize())]
    for payload in payloads:
        body = json.loads(payload)
        assert body["traceId"] not in replies, "a request was answered twice"
        replies[str(body["traceId"])] = body
    assert all(body["status"] == 201 for body in replies.values()), "a request was handled twice (Already locked)"

    async with httpx.AsyncClient(base_url=running.http_urls[0]) as http:
        body = {"pagination": {"page": 0, "size": 1000}}
        entries = (await http.post(f"{LOCK}/query", json=body, headers=SYSOP)).json()["entries"]
    per_request: dict[str, int] = {}
    for entry in entries:
        key = entry["serviceInstanceId"].split("X")[0]
        per_request[key] = per_request.get(key, 0) + 1
    assert all(count == PER_REQUEST for count in per_request.values()), "half-applied request"
    assert len(per_request) >= 50  # the load before the restart was served
    assert set(replies) <= set(sent)
    requester.close()
    running.shutdown.set()
    await running.stopped.wait()
