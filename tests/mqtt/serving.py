"""Helpers for the MQTT hardening tests: the real service on a real broker, its metrics, waiting for counters."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

from actors.clock import ManualClock
from tests.integration.conftest import start_service
from tests.mqtt.broker import MosquittoBroker
from transports.mqtt.server import MqttServer
from transports.service import RunningService

PREFIX = "arrowhead/serviceorchestration"
LOCK_TOPIC = f"{PREFIX}/orchestration/management/lock/"
ECHO_TOPIC = f"{PREFIX}/monitor/echo"
LOCK_PATH = "/serviceorchestration/orchestration/mgmt/lock"
SYSOP_HEADERS = {"Authorization": "Bearer SYSTEM//Sysop"}
WAIT = 10.0  # bound for anything that should take milliseconds to a few seconds


async def serve(nursery: trio.Nursery, data_dir: Path, broker: MosquittoBroker, **settings: Any) -> RunningService:
    """The real service with MQTT on `broker`, connected and subscribed."""
    clock = ManualClock(start=float(int(time.time())))
    running = await start_service(nursery, data_dir, clock, mqtt_url=f"mqtt://{broker.host}:{broker.port}", **settings)
    with trio.fail_after(WAIT):
        await mqtt_of(running).session.wait_connected()
    return running


async def stop(running: RunningService) -> None:
    running.shutdown.set()
    with trio.fail_after(WAIT):
        await running.stopped.wait()


def mqtt_of(running: RunningService) -> MqttServer:
    assert running.mqtt is not None
    return running.mqtt


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait for a condition on counters the service keeps (it offers no event for them)."""
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def metric(running: RunningService, name: str, **labels: str) -> float | None:
    """One sample of /metrics, or None when the service does not expose it."""
    async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=WAIT) as http:
        text = (await http.get("/metrics")).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found[1]) if found else None


async def http_echo_ok(running: RunningService) -> bool:
    async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=WAIT) as http:
        response = await http.get("/serviceorchestration/monitor/echo", headers={"Authorization": "Bearer SYSTEM//A"})
    return response.status_code == 200 and response.text == "Got it!"


async def lock_count(running: RunningService, instance: str) -> int:
    async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=WAIT) as http:
        response = await http.post(f"{LOCK_PATH}/query", json={"serviceInstanceIds": [instance]}, headers=SYSOP_HEADERS)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


async def create_locks(running: RunningService, instances: list[str], owner: str = "TemperatureManager") -> None:
    locks = [{"serviceInstanceId": instance, "owner": owner, "expiresAt": "2999-01-01T00:00:00Z"} for instance in instances]
    async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=WAIT) as http:
        response = await http.post(f"{LOCK_PATH}/create", json={"locks": locks}, headers=SYSOP_HEADERS)
    assert response.status_code == 201, response.text


def template(reply_topic: str | None, *, payload: Any = None, trace_id: str = "t", qos: int = 1,
             auth: str = "SYSTEM//Sysop", **extra: Any) -> bytes:
    body: dict[str, Any] = {"traceId": trace_id, "authentication": auth, "qosRequirement": qos, **extra}
    if reply_topic is not None:
        body["responseTopic"] = reply_topic
    if payload is not None:
        body["payload"] = payload
    return json.dumps(body).encode()


def lock_request(instance: str, owner: str = "TemperatureManager") -> dict[str, Any]:
    return {"locks": [{"serviceInstanceId": instance, "owner": owner, "expiresAt": "2999-01-01T00:00:00Z"}]}
