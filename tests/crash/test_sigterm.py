"""SIGTERM under mixed HTTP + MQTT load: the real `lockstore serve` (JSON logs, access log on) with a real
mosquitto, writers and readers on both transports, and a SIGTERM in the middle.

Every request is answered or refused cleanly (a reply, a 503 with the Arrowhead body, a refused
connection, or a connection closed before the request was taken); the process exits 0; every log line
is a JSON object and the shutdown is logged in order; `lockstore check` finds the log intact; and after
a restart every acknowledged create is there, whole, and no other one is half-applied.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import trio

from tests.crash.service_process import all_locks
from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.conftest import broker  # noqa: F401 (a fixture: a mosquitto of the test's own)
from tests.mqtt.requester import Requester

LOCKSTORE = [sys.executable, "-m", "transports.cli"]
SYSOP = {"Authorization": "Bearer SYSTEM//Sysop"}
LOCK = "/serviceorchestration/orchestration/mgmt/lock"
LOCK_TOPIC = "arrowhead/serviceorchestration/orchestration/management/lock/"
EXPIRES = "2999-01-01T00:00:00Z"
PER_REQUEST = 2
CLEAN_REFUSALS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def locks(batch: str) -> list[dict[str, str]]:
    return [{"serviceInstanceId": f"{batch}I{i}|svc|1", "owner": "Owner", "expiresAt": EXPIRES}
            for i in range(PER_REQUEST)]


class Service:
    """The child process and everything it wrote on stderr."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stderr = bytearray()
        self.url = ""

    async def collect(self, serving: trio.Event) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.receive_some(65536):
            self.stderr += chunk
            if not serving.is_set() and (match := re.search(rb"serving HTTP on (http://[0-9.:]+)", self.stderr)):
                self.url = match[1].decode()
                serving.set()
        serving.set()

    def lines(self) -> list[str]:
        return self.stderr.decode().splitlines()


async def http_writer(url: str, name: str, outcomes: dict[str, str], stop: trio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        n = 0
        while not stop.is_set():
            batch = f"{name}N{n}"
            n += 1
            try:
                response = await client.post(f"{LOCK}/create", json={"locks": locks(batch)}, headers=SYSOP)
            except CLEAN_REFUSALS as error:
                outcomes[batch] = type(error).__name__
                if isinstance(error, httpx.ConnectError):
                    return  # the server no longer listens: done
                continue
            if response.status_code == 201:
                assert len(response.json()["entries"]) == PER_REQUEST
                outcomes[batch] = "201"
            else:
                body = response.json()
                assert (response.status_code, body["errorCode"]) == (503, 503), response.text
                assert body["exceptionType"] == "EXTERNAL_SERVER_ERROR" and body["errorMessage"]
                outcomes[batch] = "503"


async def http_reader(url: str, statuses: Counter[str], stop: trio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while not stop.is_set():
            try:
                response = await client.post(f"{LOCK}/query", json={"pagination": {"page": 0, "size": 5}},
                                             headers=SYSOP)
            except CLEAN_REFUSALS as error:
                statuses[type(error).__name__] += 1
                if isinstance(error, httpx.ConnectError):
                    return
                continue
            assert response.status_code in (200, 503), response.text
            statuses[str(response.status_code)] += 1


async def mqtt_writer(requester: Requester, sent: dict[str, float], stop: trio.Event) -> None:
    n = 0
    while not stop.is_set():
        trace = f"M{n}"
        n += 1
        template = {"traceId": trace, "authentication": "SYSTEM//Sysop", "responseTopic": requester.response_topic,
                    "qosRequirement": 1, "payload": {"locks": locks(trace)}}
        requester.client.publish(LOCK_TOPIC + "create", json.dumps(template).encode(), qos=1)
        sent[trace] = time.monotonic()
        await trio.sleep(0.004)


HTTP_SERVERS = ["native", "hypercorn"]


@pytest.mark.slow
@pytest.mark.parametrize("http_server", HTTP_SERVERS)
async def test_sigterm_under_mixed_load(tmp_path: Path, broker: MosquittoBroker, http_server: str) -> None:  # noqa: F811
    data_dir = tmp_path / "data"
    process = await trio.lowlevel.open_process(
        [*LOCKSTORE, "serve", "--port", "0", "--data-dir", str(data_dir), "--log-format", "json",
         "--mqtt-url", f"mqtt://{broker.host}:{broker.port}", "--http-server", http_server],
        stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    service = Service(process)
    outcomes: dict[str, str] = {}
    reads: Counter[str] = Counter()
    mqtt_sent: dict[str, float] = {}
    requester = Requester(broker.host, broker.port)
    try:
        async with trio.open_nursery() as nursery:
            serving = trio.Event()
            nursery.start_soon(service.collect, serving)
            with trio.fail_after(20):
                await serving.wait()
                assert service.url, service.stderr.decode()
                async with httpx.AsyncClient(base_url=service.url) as client:
                    while (await client.get("/health/ready")).status_code != 200:  # MQTT connected too
                        await trio.sleep(0.05)

            stop = trio.Event()
            async with trio.open_nursery() as load:
                for w in range(6):
                    load.start_soon(http_writer, service.url, f"H{w}", outcomes, stop)
                load.start_soon(http_reader, service.url, reads, stop)
                load.start_soon(mqtt_writer, requester, mqtt_sent, stop)
                await trio.sleep(1.5)
                signalled = time.monotonic()
                process.send_signal(signal.SIGTERM)
                with trio.fail_after(25):
                    exit_code = await process.wait()
                stopped = time.monotonic()
                stop.set()
            nursery.cancel_scope.cancel()
    finally:
        requester.close()
        if process.returncode is None:
            process.kill()

    # -- the process
    assert exit_code == 0, service.stderr.decode()[-3000:]
    assert stopped - signalled < 20

    print(f"SIGTERM → exit in {stopped - signalled:.2f} s; HTTP creates {dict(Counter(outcomes.values()))}, "
          f"reads {dict(reads)}, MQTT sent {len(mqtt_sent)}")
    # -- every request answered or refused cleanly
    http_statuses = Counter(outcomes.values())
    assert http_statuses["201"] > 30, http_statuses  # the load was real
    assert set(http_statuses) <= {"201", "503", *(error.__name__ for error in CLEAN_REFUSALS)}, http_statuses
    assert reads["200"] > 5 and set(reads) <= {"200", "503", *(error.__name__ for error in CLEAN_REFUSALS)}, reads
    replies: dict[str, int] = {}
    while not requester.replies.empty():
        reply = json.loads(requester.replies.get_nowait().payload)
        replies[reply["traceId"]] = reply["status"]
        assert reply["status"] in (201, 503), reply
        if reply["status"] == 503:
            assert reply["payload"]["exceptionType"] == "EXTERNAL_SERVER_ERROR"
    print(f"MQTT replies {dict(Counter(replies.values()))}")
    assert sum(status == 201 for status in replies.values()) > 30, len(replies)
    late = [trace for trace, at in mqtt_sent.items() if at < signalled - 0.5 and trace not in replies]
    assert not late, f"{len(late)} MQTT requests sent well before SIGTERM got no reply: {late[:5]}"

    # -- the log lines: JSON, one per line, shutdown in order, access log for both transports
    records = [json.loads(line) for line in service.lines()]
    assert all({"ts", "level", "logger", "msg"} <= set(record) for record in records)
    assert not [record for record in records if record["level"] in ("ERROR", "CRITICAL") or "exc" in record]
    messages = [record["msg"] for record in records]
    sigterm = next(i for i, msg in enumerate(messages) if msg == "received SIGTERM, shutting down")
    stopped_at = next(i for i, msg in enumerate(messages) if msg.startswith("transports stopped"))
    bye = next(i for i, msg in enumerate(messages) if msg.startswith("write-ahead log flushed and closed"))
    assert sigterm < stopped_at < bye == len(messages) - 1
    access = [record for record in records if record["logger"] == "lockstore.access"]
    assert {record["transport"] for record in access} == {"http", "mqtt"}
    assert all(record["requester"] == "Sysop" for record in access
               if record["operation"].startswith("lock_") and record.get("status") in (200, 201))
    assert any(record.get("trace_id", "").startswith("M") for record in access)

    # -- the log on disk is intact ...
    check = subprocess.run([*LOCKSTORE, "check", "--data-dir", str(data_dir)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr

    # -- ... and holds every acknowledged create, whole; nothing half-applied
    restarted = await trio.lowlevel.open_process(
        [*LOCKSTORE, "serve", "--port", "0", "--data-dir", str(data_dir), "--no-access-log"],
        stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    again = Service(restarted)
    async with trio.open_nursery() as nursery:
        serving = trio.Event()
        nursery.start_soon(again.collect, serving)
        with trio.fail_after(20):
            await serving.wait()
        assert again.url, again.stderr.decode()
        present = Counter(str(lock["serviceInstanceId"]).split("I")[0] for lock in await all_locks(again.url))
        restarted.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await restarted.wait() == 0
        nursery.cancel_scope.cancel()
    acknowledged = [batch for batch, outcome in outcomes.items() if outcome == "201"]
    acknowledged += [trace for trace, status in replies.items() if status == 201]
    for batch in acknowledged:
        assert present.get(batch) == PER_REQUEST, f"acknowledged {batch} is missing after the restart"
    assert all(count == PER_REQUEST for count in present.values()), "a create was half-applied"
    assert set(present) <= set(outcomes) | set(mqtt_sent)


@pytest.mark.parametrize("http_server", HTTP_SERVERS)
async def test_sigterm_does_not_wait_out_idle_keep_alive_connections(tmp_path: Path, http_server: str) -> None:
    """An idle keep-alive client used to hold shutdown for the whole graceful timeout (5 s): quart-trio
    cancelled hypercorn's idle-timeout task as it started (transports/http/hypercorn_server.py). Now idle
    connections that have each served a few requests are closed at once and the process exits promptly."""
    from tests.crash.service_process import drain, start

    process, url = await start(tmp_path / "data", "--http-server", http_server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, process)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        idle = [await trio.open_tcp_stream(host, int(port)) for _ in range(3)]
        for stream in idle:
            for _ in range(2):
                await stream.send_all(b"GET /serviceorchestration/monitor/echo HTTP/1.1\r\nHost: x\r\n"
                                      b"Authorization: Bearer SYSTEM//Sysop\r\n\r\n")
                reply = b""
                while not reply.endswith(b"Got it!"):
                    reply += await stream.receive_some(4096)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            code = await process.wait()
        took = time.monotonic() - began
        for stream in idle:
            with trio.fail_after(2):
                assert await stream.receive_some(4096) == b""  # the server closed it
            await stream.aclose()
    assert code == 0
    assert took < 2.5, f"shutdown took {took:.2f} s with idle keep-alive connections (graceful timeout: 5 s)"
