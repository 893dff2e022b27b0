"""Issue 12 item 2: a retained request ran again at every (re)subscribe — a retained lock/remove removed
the lock again after each restart. A message that arrives with the retain flag is now ignored (counted,
logged with how to clear it). Published while the service is subscribed, the same message arrives
without the flag (the broker clears it for live delivery) and is served once, as any request."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import trio

from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.requester import Requester
from tests.mqtt.serving import LOCK_TOPIC, create_locks, lock_count, metric, mqtt_of, serve, stop, template

INSTANCE = "Retained|svc|1.0.0"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_retained_request_is_not_run_again_on_resubscribe(
        tmp_path: Path, nursery: trio.Nursery, broker: MosquittoBroker, protocol: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lockstore.mqtt")
    data = tmp_path / "data"
    first = await serve(nursery, data, broker, mqtt_protocol=protocol)
    await create_locks(first, [INSTANCE])
    requester = Requester(broker.host, broker.port)
    try:
        remove = template(requester.response_topic, trace_id="retained-remove", payload=[INSTANCE],
                          params={"owner": "TemperatureManager"})
        info = requester.client.publish(LOCK_TOPIC + "remove", remove, qos=1, retain=True)
        info.wait_for_publish(5)
        with trio.fail_after(10):  # live delivery: served once, as any request
            assert json.loads((await requester.reply()).payload)["status"] == 200
        assert await lock_count(first, INSTANCE) == 0
        await create_locks(first, [INSTANCE])
        await stop(first)

        second = await serve(nursery, data, broker, mqtt_protocol=protocol)  # subscribes: the broker replays it
        with trio.fail_after(10):  # until it is either ignored or (the bug) run
            while getattr(mqtt_of(second), "dropped_retained", 0) == 0 and await lock_count(second, INSTANCE) == 1:
                await trio.sleep(0.02)
        assert await lock_count(second, INSTANCE) == 1, "the retained lock/remove ran again"
        assert mqtt_of(second).dropped_retained == 1
        assert await requester.no_reply(0.2)
        assert await metric(second, "lockstore_mqtt_dropped_total", reason="retained") == 1
        assert any("retained message on arrowhead/serviceorchestration/orchestration/management/lock/remove ignored"
                   in record.getMessage() and "mosquitto_pub -r -n -t" in record.getMessage()
                   for record in caplog.records)
        await stop(second)
    finally:
        requester.close()
