"""Metrics, health, access log and `lockstore status` against the real service (in-process, real log on
disk, real mosquitto for the MQTT parts)."""

from __future__ import annotations

import io
import json
import logging
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.clock import ManualClock
from tests.integration.conftest import LOCK, STORE, SYSOP, Service, future, start_service
from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.conftest import broker  # noqa: F401 (a fixture: a mosquitto of the test's own)
from tests.mqtt.requester import Requester
from transports.config.broker_url import redact_url
from transports.observability.health import Health
from transports.observability.logging_setup import JsonFormatter, KeyValueFormatter, configure_logging
from transports.observability.metrics import Histogram
from transports.status import Scrape, parse_metrics, quantile_bucket, run_status, summarize
from wal.log import WriteAheadLog

PREFIX = "arrowhead/serviceorchestration"
LOCK_TOPIC = f"{PREFIX}/orchestration/management/lock/"


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")  # no identity
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse_metrics(response.text)


def lock(instance: str, owner: str = "Owner", seconds: int = 3600, clock: ManualClock | None = None) -> dict[str, str]:
    return {"serviceInstanceId": instance, "owner": owner, "expiresAt": future(seconds, clock)}


# ------------------------------------------------------------------------------------------- metrics


async def test_request_and_state_metrics(service: Service) -> None:
    for n in range(3):
        assert (await service.post(f"{LOCK}/create", {"locks": [lock(f"P{n}|svc|1")]})).status_code == 201
    assert (await service.post(f"{LOCK}/create", {"locks": [lock("P0|svc|1")]})).status_code == 400  # locked
    assert (await service.post(f"{LOCK}/query", {}, headers={})).status_code == 401
    short = {"locks": [lock("Short|svc|1", seconds=10, clock=service.clock)]}
    assert (await service.post(f"{LOCK}/create", short)).status_code == 201
    rules = {"candidates": [{"consumer": "C", "serviceInstanceId": "P|svc|1", "priority": 1}]}
    assert (await service.post(f"{STORE}/create", rules)).status_code == 201
    service.clock.advance(20)
    assert await service.running.operations.locks.purge_now() == 1

    m = await scrape(service.client)
    assert m.value("lockstore_requests_total", operation="lock_create", transport="http", status="201") == 4
    assert m.value("lockstore_requests_total", operation="lock_create", transport="http", status="400") == 1
    assert m.value("lockstore_requests_total", operation="lock_query", transport="http", status="401") == 1
    assert m.value("lockstore_requests_total", operation="store_create", transport="http", status="201") == 1
    count = m.value("lockstore_request_duration_seconds_count", operation="lock_create", transport="http")
    assert count == 5
    buckets = m.buckets("lockstore_request_duration_seconds", operation="lock_create", transport="http")
    assert buckets[-1] == (float("inf"), 5)
    median = quantile_bucket(0.5, buckets)
    assert median is not None and 0 <= median[0] < median[1] <= 10
    assert m.value("lockstore_locks_live") == 3
    assert m.value("lockstore_rules_live") == 1
    assert m.value("lockstore_locks_expired_total") == 1
    assert m.value("lockstore_actor_mailbox_depth", actor="locks") == 0
    assert m.value("lockstore_actor_messages_total", actor="locks") >= 6
    # 4 lock creates + 1 rule create + 1 purge were logged, each in a durable batch
    assert m.value("lockstore_wal_frames_total") == 6
    assert m.value("lockstore_wal_bytes_total") > 6 * 30
    assert m.value("lockstore_wal_fsyncs_total") == m.value("lockstore_wal_batch_frames_count") >= 1
    assert m.value("lockstore_wal_batch_frames_sum") == 6
    assert m.value("lockstore_wal_fsync_seconds_count") == m.value("lockstore_wal_write_seconds_count")
    assert m.value("lockstore_wal_pending_frames") == 0 and m.value("lockstore_wal_available") == 1
    assert m.value("process_resident_memory_bytes") > 10 << 20
    assert m.value("lockstore_info", fsync="always", authentication_policy="declared") == 1
    assert "lockstore_mqtt_connected" not in m.samples  # MQTT is off


async def test_snapshot_metrics(service: Service) -> None:
    assert (await service.post(f"{LOCK}/create", {"locks": [lock("Snap|svc|1")]})).status_code == 201
    before = await scrape(service.client)
    assert before.value("lockstore_snapshots_total") == 0 and before.value("lockstore_snapshot_in_progress") == 0
    assert "lockstore_snapshot_age_seconds" not in before.samples  # none written yet
    assert service.running.snapshotter is not None
    await service.running.snapshotter.snapshot_now()
    after = await scrape(service.client)
    assert after.value("lockstore_snapshots_total") == 1
    assert 0 <= after.value("lockstore_snapshot_age_seconds", actor="locks") < 60
    assert after.value("lockstore_snapshot_capture_stall_seconds") >= 0


async def test_unknown_paths_share_one_label(service: Service) -> None:
    for n in range(5):
        await service.client.get(f"/scan/{n}", headers=SYSOP)
    m = await scrape(service.client)
    assert m.value("lockstore_requests_total", operation="unknown", transport="http", status="404") == 5
    assert not any("/scan/" in str(labels) for labels, _ in m.samples["lockstore_requests_total"])


def test_histogram_buckets_are_prometheus_le() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(value)
    assert histogram.cumulative() == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert histogram.count == 5 and histogram.sum == pytest.approx(8.65)


# -------------------------------------------------------------------------------------------- health


async def test_health_endpoints_need_no_identity(service: Service) -> None:
    live = await service.client.get("/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "UP"})
    ready = await service.client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "UP"
    assert set(body["checks"]) == {"log_replayed", "http", "writes_durable", "shutdown"}
    assert all(check["status"] == "UP" for check in body["checks"].values())


def test_readiness_follows_the_log_and_shutdown(tmp_path: Path) -> None:
    """Real log, no committer running: appended records never become durable → not ready after the stall."""
    wal, _ = WriteAheadLog.open(tmp_path / "wal")
    now = [100.0]
    stopping = [False]
    health = Health(wal, None, now=lambda: now[0], stopping=lambda: stopping[0], stall_seconds=5)
    health.replayed = health.serving = True
    assert health.ready().status == "UP"
    wal.append(b"x")
    assert health.ready().status == "UP"  # pending, but only just
    now[0] += 4
    assert health.ready().status == "UP"
    now[0] += 2
    report = health.ready()
    assert report.status == "DOWN" and report.checks["writes_durable"].status == "DOWN"
    assert "waiting for the disk" in (report.checks["writes_durable"].detail or "")
    stopping[0] = True
    assert health.ready().checks["shutdown"].status == "DOWN"
    trio.run(wal.aclose)  # flushes the pending record
    assert health.ready().checks["writes_durable"].detail == "the write-ahead log is closed or failed"
    assert health.live().status == "UP"  # never restart a process just because it is not ready


@pytest.mark.settings(fsync="never")
async def test_fsync_never_is_ready_but_says_so(service: Service) -> None:
    check = (await service.client.get("/health/ready")).json()["checks"]["writes_durable"]
    assert check["status"] == "UP" and "fsync=never" in check["detail"]


async def test_mqtt_metrics_and_readiness_follow_the_broker(tmp_path: Path, nursery: trio.Nursery,
                                                            broker: MosquittoBroker) -> None:  # noqa: F811
    clock = ManualClock(start=float(int(time.time())))
    running = await start_service(nursery, tmp_path / "data", clock, mqtt_url=f"mqtt://{broker.host}:{broker.port}")
    assert running.mqtt is not None
    with trio.fail_after(10):
        await running.mqtt.session.wait_connected()
    requester = Requester(broker.host, broker.port)
    try:
        async with httpx.AsyncClient(base_url=running.http_urls[0]) as client:
            created = await requester.request(LOCK_TOPIC + "create", {"locks": [lock("M|svc|1")]})
            assert created["status"] == 201
            assert (await requester.request(LOCK_TOPIC + "query", {"owners": 5}))["status"] == 400
            requester.send(LOCK_TOPIC + "create", b"\x00 not json, and no responseTopic")
            with trio.fail_after(5):
                while running.mqtt.dispatcher.unparseable < 1:
                    await trio.sleep(0.02)
            m = await scrape(client)
            assert m.value("lockstore_mqtt_connected") == 1
            assert m.value("lockstore_mqtt_reconnects_total") == 0
            assert m.value("lockstore_mqtt_dropped_unparseable_total") == 1
            assert m.value("lockstore_requests_total", operation="lock_create", transport="mqtt", status="201") == 1
            assert m.value("lockstore_requests_total", operation="lock_create", transport="mqtt", status="none") == 1
            assert m.value("lockstore_requests_total", operation="lock_query", transport="mqtt", status="400") == 1
            assert m.value("lockstore_request_duration_seconds_count", operation="lock_query", transport="mqtt") == 1
            ready = (await client.get("/health/ready")).json()
            assert ready["status"] == "UP" and ready["checks"]["mqtt"]["status"] == "UP"

            broker.stop()
            with trio.fail_after(10):
                while running.mqtt.session.connected:
                    await trio.sleep(0.05)
            down = await client.get("/health/ready")
            assert down.status_code == 503 and down.json()["checks"]["mqtt"]["status"] == "DOWN"
            assert (await scrape(client)).value("lockstore_mqtt_connected") == 0
            broker.start()
            with trio.fail_after(20):
                await running.mqtt.session.wait_connected()
            m = await scrape(client)
            assert m.value("lockstore_mqtt_connected") == 1 and m.value("lockstore_mqtt_reconnects_total") == 1
            assert (await client.get("/health/ready")).status_code == 200
    finally:
        requester.close()
        running.shutdown.set()


# ---------------------------------------------------------------------------------------- access log


async def access_records(caplog: pytest.LogCaptureFixture, count: int, wait: float = 5) -> list[logging.LogRecord]:
    """The access-log records, once there are `count` (a record is written just after its response is sent)."""
    with trio.move_on_after(wait):
        while len([r for r in caplog.records if r.name == "lockstore.access"]) < count:
            await trio.sleep(0.01)
    await trio.sleep(0.05)
    return [r for r in caplog.records if r.name == "lockstore.access"]


async def test_access_log_has_request_fields(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    response = await service.post(f"{LOCK}/create", {"locks": [lock("A|svc|1")]},
                                   headers={**SYSOP, "X-Request-ID": "req-42"})
    assert response.headers["x-request-id"] == "req-42"
    generated = await service.post(f"{LOCK}/query", {}, headers={**SYSOP, "X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"  # not echoed: not a sane id
    access = await access_records(caplog, 2)
    assert len(access) == 2
    fields = access[0].lockstore  # type: ignore[attr-defined]
    assert fields["request_id"] == "req-42" and fields["transport"] == "http"
    assert (fields["operation"], fields["status"], fields["requester"]) == ("lock_create", 201, "Sysop")
    assert fields["method"] == "POST" and fields["path"] == f"{LOCK}/create" and fields["duration_ms"] > 0
    assert access[1].lockstore["request_id"] == generated.headers["x-request-id"]  # type: ignore[attr-defined]


@pytest.mark.settings(access_log=False)
async def test_access_log_can_be_turned_off(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert (await service.client.get("/health/live")).status_code == 200
    assert not await access_records(caplog, 1, wait=0.3)


async def test_no_secrets_in_the_logs(tmp_path: Path, nursery: trio.Nursery, broker: MosquittoBroker,  # noqa: F811
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock(start=float(int(time.time())))
    url = f"mqtt://url-user:url-s3cret@{broker.host}:{broker.port}"
    running = await start_service(nursery, tmp_path / "data", clock, mqtt_url=url, mqtt_username="lockstore",
                                  mqtt_password="pw-s3cret")
    assert running.mqtt is not None
    with trio.fail_after(10):
        await running.mqtt.session.wait_connected()
    async with httpx.AsyncClient(base_url=running.http_urls[0]) as client:
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200
        for header in ("Bearer tok-s3cret", "Basic dXNlcjpzM2NyZXQ=", "Bearer SYSTEM//Sysop tok-s3cret"):
            response = await client.post(f"{LOCK}/query", json={}, headers={"Authorization": header})
            assert response.status_code == 401
        await client.get("/nope", headers={"Authorization": "Bearer tok-s3cret"})
    running.shutdown.set()
    await running.stopped.wait()
    texts = [formatter.format(record) for record in caplog.records
             for formatter in (JsonFormatter(), KeyValueFormatter())]
    assert any("serving MQTT through mqtt://***@" in text for text in texts)
    assert any("lockstore.access" in text for text in texts)
    for secret in ("s3cret", "dXNlcjpzM2NyZXQ="):
        assert not [text for text in texts if secret in text]


# ------------------------------------------------------------------------------------------ formats


def _record(message: str, fields: dict[str, Any] | None = None, exc: bool = False) -> logging.LogRecord:
    record = logging.LogRecord("lockstore.access", logging.INFO, __file__, 1, message, (), None)
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            record.exc_info = sys.exc_info()
    if fields is not None:
        record.lockstore = fields
    return record


def test_json_lines() -> None:
    line = JsonFormatter().format(_record('say "hi"\nthere', {"status": 201, "requester": "Sysop", "none": None},
                                          exc=True))
    assert "\n" not in line
    data = json.loads(line)
    assert data["msg"] == 'say "hi"\nthere' and data["status"] == 201 and data["requester"] == "Sysop"
    assert "none" not in data and data["level"] == "INFO" and data["logger"] == "lockstore.access"
    assert data["ts"].endswith("Z") and "ValueError: boom" in data["exc"]


def test_key_value_lines() -> None:
    line = KeyValueFormatter().format(_record("GET /x 200", {"status": 200, "path": "/a b", "ok": True, "e": ""}))
    assert line.split(" ", 1)[0].startswith("ts=")
    assert ' level=INFO logger=lockstore.access msg="GET /x 200" status=200 path="/a b" ok=true e=""' in line


def test_configure_logging_picks_the_format() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO", "json", stream)
        logging.getLogger("lockstore.test").info("hello %s", "world")
        logging.getLogger("lockstore.test").debug("not shown")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["msg"] == "hello world"


def test_redact_url() -> None:
    assert redact_url("mqtt://user:pw@broker:1883") == "mqtt://***@broker:1883"
    assert redact_url("mqtts://broker:8883") == "mqtts://broker:8883"


# -------------------------------------------------------------------------------------------- status


async def test_status_command(service: Service) -> None:
    assert (await service.post(f"{LOCK}/create", {"locks": [lock("S|svc|1")]})).status_code == 201
    out = io.StringIO()

    def status() -> int:
        with redirect_stdout(out):
            return run_status(service.url, timeout=5)

    assert await trio.to_thread.run_sync(status) == 0
    text = out.getvalue()
    lines = text.splitlines()
    assert len(lines) < 40
    assert "READY" in lines[0] and "NOT READY" not in lines[0] and service.url in lines[0]
    assert "1 locks live" in text and "mqtt:    off" in text
    row = next(line for line in lines if line.startswith("lock_create"))
    assert row.split()[:4] == ["lock_create", "http", "1", "0"]
    assert await trio.to_thread.run_sync(lambda: run_status("http://127.0.0.1:9", timeout=2)) == 2


def test_status_summary_of_an_unready_service() -> None:
    health = {"status": "DOWN", "checks": {"mqtt": {"status": "DOWN", "detail": "not connected to mqtt://b:1883"}}}
    metrics = parse_metrics('lockstore_mqtt_connected 0\nlockstore_mqtt_reconnects_total 3\n')
    text = summarize("http://x", health, metrics, time.time())
    assert "NOT READY" in text and "mqtt DOWN (not connected to mqtt://b:1883)" in text
    assert "NOT connected · 3 reconnects" in text and "(no requests yet)" in text
