"""The real service (in-process, real HTTP, real log) joining the ServiceRegistry double: start-up registers
the system and each service with exactly the interfaces served, shutdown revokes while HTTP still answers,
an SR that is down at start-up is joined when it comes back, TLS with certificate identity, and MQTT
interfaces only with MQTT on (a real mosquitto)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import trio
from cryptography import x509

from actors.clock import ManualClock
from tests.certs import CertSet
from tests.integration.conftest import SYSOP, start_service
from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.requester import Requester
from tests.registry.conftest import registry_tls
from tests.registry.sr_double import SrDouble
from transports.service import RunningService
from transports.service_registry import RegistrationFailed, ServiceRegistration
from transports.service_registry.payloads import x509_public_key

NAME = "DynamicServiceOrchestration"
LOCK_ID = f"{NAME}|serviceOrchestrationLockManagement|1.0.0"
STORE_ID = f"{NAME}|serviceOrchestrationSimpleStoreManagement|1.0.0"
LOCK_BASE = "/serviceorchestration/orchestration/mgmt/lock"
STORE_BASE = "/serviceorchestration/orchestration/mgmt/simple-store"
LOCK_OPS = {"query": {"path": "/query", "method": "POST"}, "create": {"path": "/create", "method": "POST"},
            "remove": {"path": "/remove/{owner}", "method": "DELETE"}}
STORE_OPS = {"query": {"path": "/query", "method": "POST"}, "create": {"path": "/create", "method": "POST"},
             "modify-priorities": {"path": "/modify-priorities", "method": "PUT"},
             "remove": {"path": "/remove", "method": "DELETE"}}
JOIN = [("POST", "/serviceregistry/service-discovery/lookup?verbose=false"),
        ("DELETE", "/serviceregistry/system-discovery/revoke"),
        ("POST", "/serviceregistry/system-discovery/register"),
        ("POST", "/serviceregistry/service-discovery/lookup?verbose=false"),
        ("POST", "/serviceregistry/service-discovery/register"),
        ("POST", "/serviceregistry/service-discovery/register")]


async def start(nursery: trio.Nursery, tmp_path: Path, sr: SrDouble | str, **settings: Any) -> RunningService:
    url = sr if isinstance(sr, str) else sr.url
    clock = ManualClock(start=float(int(time.time())))
    return await start_service(nursery, tmp_path / "data", clock, service_registry=url, **settings)


def registration(running: RunningService) -> ServiceRegistration:
    assert running.monitor is not None
    return cast(ServiceRegistration, running.monitor.health.registry)


def port_of(running: RunningService) -> int:
    return int(running.http_urls[0].rsplit(":", 1)[1])


async def ready(running: RunningService, **client: Any) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=10, **client) as http:
        response = await http.get("/health/ready")
    return response.status_code, response.json()["checks"]


async def stop(running: RunningService) -> None:
    running.shutdown.set()
    with trio.fail_after(20):
        await running.stopped.wait()


def http_interface(port: int, base: str, operations: dict[str, Any], *, secure: bool = False,
                   policy: str = "NONE") -> dict[str, Any]:
    return {"templateName": "generic_https" if secure else "generic_http", "protocol": "https" if secure else "http",
            "policy": policy, "properties": {"accessAddresses": ["127.0.0.1"], "accessPort": port, "basePath": base,
                                             "operations": operations}}


async def test_start_up_registers_the_system_and_each_service(tmp_path: Path, nursery: trio.Nursery,
                                                              sr: SrDouble) -> None:
    running = await start(nursery, tmp_path, sr)
    port = port_of(running)
    system = sr.registry.systems[NAME]
    assert (system.metadata, system.version, system.addresses) == ({}, "5.2.0", [("IPV4", "127.0.0.1")])
    services = sr.services_of(NAME)
    assert set(services) == {LOCK_ID, STORE_ID}
    assert services[LOCK_ID]["interfaces"] == [http_interface(port, LOCK_BASE, LOCK_OPS)]
    assert services[STORE_ID]["interfaces"] == [http_interface(port, STORE_BASE, STORE_OPS)]
    assert [(m, p) for m, p, _ in sr.calls()] == JOIN
    assert all(s.authorization == f"Bearer SYSTEM//{NAME}" for s in sr.requests)
    status, checks = await ready(running)
    assert status == 200
    assert checks["service_registry"] == {"status": "UP", "detail": f"registered in {sr.url} as {NAME}: "
                                                                     f"{LOCK_ID}, {STORE_ID}"}
    # A consumer that found the service in the registry reaches it there.
    properties = services[LOCK_ID]["interfaces"][0]["properties"]
    query = properties["operations"]["query"]
    url = f"http://{properties['accessAddresses'][0]}:{properties['accessPort']}{properties['basePath']}{query['path']}"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.request(query["method"], url, json={}, headers=SYSOP)).status_code == 200
    await stop(running)


async def test_shutdown_revokes_each_service_while_http_still_answers(tmp_path: Path, nursery: trio.Nursery,
                                                                      sr: SrDouble) -> None:
    running = await start(nursery, tmp_path, sr)
    answered: list[int] = []

    def probe(method: str, path: str, body: Any) -> None:  # in the registry's thread, while lockstore waits
        if method == "DELETE" and "/service-discovery/revoke/" in path:
            answered.append(httpx.get(f"{running.http_urls[0]}/health/live", timeout=5).status_code)

    sr.before = probe
    mark = len(sr.requests)
    await stop(running)
    assert answered == [200, 200]
    assert sorted(sr.calls()[mark:]) == [
        ("DELETE", f"/serviceregistry/service-discovery/revoke/{NAME}%7CserviceOrchestrationLockManagement%7C1.0.0", 200),
        ("DELETE", f"/serviceregistry/service-discovery/revoke/{NAME}%7CserviceOrchestrationSimpleStoreManagement"
                   "%7C1.0.0", 200)]
    assert sr.services_of(NAME) == {}
    assert NAME in sr.registry.systems  # the system entry stays, as in the reference


async def test_a_registry_down_at_start_up_is_joined_when_it_comes_back(tmp_path: Path, nursery: trio.Nursery,
                                                                       sr: SrDouble) -> None:
    sr.stop()
    running = await start(nursery, tmp_path, sr, service_registry_retry_interval=0.2)
    status, checks = await ready(running)
    assert status == 503
    assert checks["service_registry"]["status"] == "DOWN"
    detail = checks["service_registry"]["detail"]
    assert detail.startswith(f"not registered in {sr.url}: POST {sr.url}/serviceregistry/service-discovery/lookup: ")
    assert detail.endswith("; retrying every 0.2 s")
    async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=10) as client:  # it serves meanwhile
        assert (await client.post(f"{LOCK_BASE}/query", json={}, headers=SYSOP)).status_code == 200
    sr.start()
    with trio.fail_after(20):
        await registration(running).joined.wait()
    assert set(sr.services_of(NAME)) == {LOCK_ID, STORE_ID}
    assert (await ready(running))[0] == 200
    await stop(running)
    assert sr.services_of(NAME) == {}


async def test_required_registration_fails_start_up_after_its_attempts(tmp_path: Path, nursery: trio.Nursery,
                                                                       sr: SrDouble) -> None:
    sr.stop()
    started = time.monotonic()
    with pytest.raises(RegistrationFailed, match=rf"^service_registry {sr.url}: not reachable after 3 attempt\(s\): "):
        await start(nursery, tmp_path, sr, service_registry_required=True, service_registry_attempts=3,
                    service_registry_retry_interval=0.3)
    assert time.monotonic() - started >= 0.6  # two waits between three attempts


async def test_a_refusal_is_not_retried_when_registration_is_required(tmp_path: Path, nursery: trio.Nursery,
                                                                      sr: SrDouble) -> None:
    refused = ("refused: POST /serviceregistry/system-discovery/register refused with 400: Address verification "
               "failure: 169.254.10.1 IPv4 address is invalid: non-routable-addressing is disabled")
    with pytest.raises(RegistrationFailed, match=rf"^service_registry {sr.url}: {refused}$"):
        await start(nursery, tmp_path, sr, service_registry_required=True, service_registry_addresses=["169.254.10.1"])
    assert [c for c in sr.calls() if c[1].endswith("/register")] == [
        ("POST", "/serviceregistry/system-discovery/register", 400)]


async def test_a_refusal_is_reported_and_retried_in_the_background(tmp_path: Path, nursery: trio.Nursery,
                                                                   sr: SrDouble) -> None:
    running = await start(nursery, tmp_path, sr, service_registry_addresses=["169.254.10.1"],
                          service_registry_retry_interval=0.1)
    await trio.to_thread.run_sync(lambda: sr.wait_for(lambda d: sum(
        c[1].endswith("system-discovery/register") for c in d.calls()) >= 3))
    status, checks = await ready(running)
    assert status == 503
    assert "non-routable-addressing is disabled; retrying every 0.1 s" in checks["service_registry"]["detail"]
    await stop(running)


async def test_tls_with_certificate_identity(tmp_path: Path, nursery: trio.Nursery, certs: CertSet) -> None:
    with SrDouble(policy="certificate", tls=registry_tls(certs), client_auth="required") as sr:
        running = await start(
            nursery, tmp_path, sr, tls_cert=str(certs.server.cert), tls_key=str(certs.server.key),
            tls_ca=str(certs.ca), tls_client_auth="optional", authentication_policy="certificate")
        port = port_of(running)
        system = sr.registry.systems[NAME]  # the name is the certificate's: there is no header
        assert all(s.authorization is None and s.requester == NAME for s in sr.requests[-len(JOIN):])
        key = x509.load_pem_x509_certificate(certs.server.pem()).public_key()
        assert system.metadata == {"x509PublicKey": x509_public_key(key)}
        services = sr.services_of(NAME)
        assert services[LOCK_ID]["interfaces"] == [
            http_interface(port, LOCK_BASE, LOCK_OPS, secure=True, policy="CERT_AUTH")]
        assert services[STORE_ID]["interfaces"] == [
            http_interface(port, STORE_BASE, STORE_OPS, secure=True, policy="CERT_AUTH")]
        operator = certs.client_context(certs.operator)
        status, checks = await ready(running, verify=operator)
        assert (status, checks["service_registry"]["status"]) == (200, "UP")
        async with httpx.AsyncClient(verify=operator, timeout=10) as client:
            url = f"https://127.0.0.1:{port}{LOCK_BASE}/query"
            assert (await client.post(url, json={})).status_code == 200
        await stop(running)
        assert sr.services_of(NAME) == {}


async def test_mqtt_interfaces_only_with_mqtt_on(tmp_path: Path, nursery: trio.Nursery, sr: SrDouble,
                                                 shared_broker: MosquittoBroker) -> None:
    mqtt_at_registration: list[str] = []

    def probe(method: str, path: str, body: Any) -> None:  # in the registry's thread, while lockstore registers
        if path.endswith("/service-discovery/register"):
            port = body["interfaces"][0]["properties"]["accessPort"]
            checks = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).json()["checks"]
            mqtt_at_registration.append(checks["mqtt"]["status"])

    sr.before = probe
    running = await start(nursery, tmp_path, sr, mqtt_url=f"mqtt://{shared_broker.host}:{shared_broker.port}")
    assert mqtt_at_registration == ["DOWN", "DOWN"]  # registered before MQTT subscribes
    services = sr.services_of(NAME)
    for instance, base in ((LOCK_ID, "lock"), (STORE_ID, "store")):
        http, mqtt = services[instance]["interfaces"]
        assert http == http_interface(port_of(running), LOCK_BASE if base == "lock" else STORE_BASE,
                                      LOCK_OPS if base == "lock" else STORE_OPS)
        assert mqtt == {"templateName": "generic_mqtt", "protocol": "tcp", "policy": "NONE", "properties": {
            "accessAddresses": ["127.0.0.1"], "accessPort": shared_broker.port,
            "baseTopic": f"arrowhead/serviceorchestration/orchestration/management/{base}/",
            "operations": ["create", "query", "remove"] if base == "lock" else
            ["query", "create", "modify-priorities", "remove"]}}
    # A consumer that found the MQTT interface in the registry reaches the service there.
    mqtt = services[LOCK_ID]["interfaces"][1]["properties"]
    assert running.mqtt is not None
    with trio.fail_after(10):
        await running.mqtt.session.wait_connected()
    requester = Requester(mqtt["accessAddresses"][0], mqtt["accessPort"])
    try:
        reply = await requester.request(mqtt["baseTopic"] + "query", {})
    finally:
        requester.close()
    assert reply["status"] == 200
    await stop(running)
