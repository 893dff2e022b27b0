"""MQTTS and the certificate policy over MQTT, against a real mosquitto with TLS listeners on loopback
(ARROWHEAD-REFERENCE.md §1.2 "Certificate policy over MQTT", §1.5).

The broker has a plain listener (where the independent test requester listens for replies), a TLS
listener that requires client certificates (where the service connects), and a TLS listener whose
certificate does not name 127.0.0.1 (for hostname verification).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.clock import ManualClock
from tests.certs import CertSet, ChainCase, chain_cases, make_cert_set
from tests.integration.conftest import future, start_service
from tests.mqtt.broker import MosquittoBroker, free_loopback_port
from tests.mqtt.requester import Requester
from transports.service import RunningService

PREFIX = "arrowhead/serviceorchestration"
LOCK_BASE = f"{PREFIX}/orchestration/management/lock/"
STORE_BASE = f"{PREFIX}/orchestration/management/store/"
ECHO = f"{PREFIX}/monitor/echo"


@dataclass
class TlsBroker:
    broker: MosquittoBroker
    tls_port: int  # client certificates required; the broker certificate names 127.0.0.1
    misnamed_port: int  # the broker presents a certificate that does not name 127.0.0.1
    certs: CertSet

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"


def _wait_for_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    certs = make_cert_set(tmp_path_factory.mktemp("mqtts-certs"))
    tls_port, misnamed_port = free_loopback_port(), free_loopback_port()
    extra = (
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {certs.ca}\ncertfile {certs.broker.cert}\nkeyfile {certs.broker.key}\n"
        "require_certificate true\n"
        f"listener {misnamed_port} 127.0.0.1\n"
        f"cafile {certs.ca}\ncertfile {certs.system.cert}\nkeyfile {certs.system.key}\n"
    )
    broker = MosquittoBroker(tmp_path_factory.mktemp("mosquitto-tls"), extra_config=extra)
    broker.start()
    try:
        _wait_for_port(tls_port)
        _wait_for_port(misnamed_port)
        yield TlsBroker(broker, tls_port, misnamed_port, certs)
    finally:
        broker.kill()


async def connected_service(nursery: trio.Nursery, data_dir: Path, **settings: Any) -> RunningService:
    running = await start_service(nursery, data_dir, ManualClock(start=float(int(time.time()))), **settings)
    assert running.mqtt is not None
    with trio.fail_after(10):
        await running.mqtt.session.wait_connected()
    return running


@pytest.fixture
def requester(tls_broker: TlsBroker) -> Iterator[Requester]:
    """An independent paho client on the broker's plain listener: it sends requests and gets replies."""
    client = Requester(tls_broker.broker.host, tls_broker.broker.port)
    yield client
    client.close()


def lock(instance: str) -> dict[str, str]:
    return {"serviceInstanceId": instance, "owner": "TemperatureManager", "expiresAt": future()}


async def test_service_serves_through_an_mqtts_broker(tls_broker: TlsBroker, requester: Requester, tmp_path: Path,
                                                     nursery: trio.Nursery) -> None:
    certs = tls_broker.certs
    running = await connected_service(
        nursery, tmp_path / "data", mqtt_url=tls_broker.url, mqtt_client_id="lockstore-mqtts", mqtt_tls_ca=str(certs.ca),
        mqtt_tls_cert=str(certs.system.cert), mqtt_tls_key=str(certs.system.key),
    )
    created = await requester.request(LOCK_BASE + "create", {"locks": [lock("provider-a|kelvin-info|1")]}, qos=1)
    assert (created["status"], created["receiver"]) == (201, "Sysop")
    queried = await requester.request(LOCK_BASE + "query", {})
    assert queried["payload"]["count"] == 1
    # the broker saw the service on the TLS listener, with its client certificate
    log = tls_broker.broker.log_text()
    assert f"on port {tls_broker.tls_port}" in log and "lockstore-mqtts" in log
    running.shutdown.set()
    await running.stopped.wait()


async def test_mosquitto_pub_over_tls_is_served(tls_broker: TlsBroker, requester: Requester, tmp_path: Path,
                                               nursery: trio.Nursery) -> None:
    """An independent client: mosquitto_pub --cafile sends the request over TLS; the reply comes back."""
    certs = tls_broker.certs
    running = await connected_service(
        nursery, tmp_path / "data", mqtt_url=tls_broker.url, mqtt_tls_ca=str(certs.ca),
        mqtt_tls_cert=str(certs.system.cert), mqtt_tls_key=str(certs.system.key),
    )
    template = {"traceId": "from-mosquitto-pub", "authentication": "SYSTEM//Sysop", "qosRequirement": 1,
                "responseTopic": requester.response_topic, "payload": {"locks": [lock("provider-b|kelvin-info|1")]}}
    result = await trio.run_process(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(tls_broker.tls_port), "--cafile", str(certs.ca),
         "--cert", str(certs.operator.cert), "--key", str(certs.operator.key), "-q", "1",
         "-t", LOCK_BASE + "create", "-m", json.dumps(template)],
        capture_stdout=True, capture_stderr=True, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    reply = json.loads((await requester.reply()).payload)
    assert (reply["status"], reply["traceId"]) == (201, "from-mosquitto-pub")
    assert reply["payload"]["entries"][0]["serviceInstanceId"] == "ProviderB|kelvinInfo|1.0.0"
    running.shutdown.set()
    await running.stopped.wait()


async def test_hostname_verification(tls_broker: TlsBroker, tmp_path: Path, nursery: trio.Nursery,
                                     caplog: pytest.LogCaptureFixture) -> None:
    """On by default: a broker certificate that does not name the host of the URL is refused; the
    setting turns the check off (the certificate must still come from the CA)."""
    certs = tls_broker.certs
    url = f"mqtts://127.0.0.1:{tls_broker.misnamed_port}"
    caplog.set_level(logging.WARNING, logger="lockstore.mqtt")
    refused = await start_service(nursery, tmp_path / "a", ManualClock(), mqtt_url=url, mqtt_tls_ca=str(certs.ca))
    assert refused.mqtt is not None
    with trio.move_on_after(1.0):
        await refused.mqtt.session.wait_connected()
    assert not refused.mqtt.session.connected
    assert any("IP address mismatch" in r.getMessage() or "certificate verify failed" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    refused.shutdown.set()
    accepted = await connected_service(nursery, tmp_path / "b", mqtt_url=url, mqtt_tls_ca=str(certs.ca),
                                       mqtt_tls_verify_hostname=False)
    assert accepted.mqtt is not None and accepted.mqtt.session.connected
    accepted.shutdown.set()


async def test_broker_from_another_ca_is_refused(tls_broker: TlsBroker, tmp_path: Path, nursery: trio.Nursery) -> None:
    running = await start_service(nursery, tmp_path / "data", ManualClock(), mqtt_url=tls_broker.url,
                                  mqtt_tls_ca=str(tls_broker.certs.other_ca), mqtt_tls_verify_hostname=False)
    assert running.mqtt is not None
    with trio.move_on_after(1.0):
        await running.mqtt.session.wait_connected()
    assert not running.mqtt.session.connected
    running.shutdown.set()


@dataclass
class CertificatePolicyService:
    running: RunningService
    requester: Requester
    certs: CertSet


@pytest.fixture
async def certificate_service(tls_broker: TlsBroker, requester: Requester, tmp_path: Path,
                              nursery: trio.Nursery) -> AsyncIterator[CertificatePolicyService]:
    """authentication_policy=certificate: HTTPS on, and the service reaches the broker with its own server
    certificate (tls_cert/tls_key, as the reference uses its key store for MQTT too)."""
    certs = tls_broker.certs
    running = await connected_service(
        nursery, tmp_path / "data", mqtt_url=tls_broker.url, authentication_policy="certificate",
        tls_cert=str(certs.server.cert), tls_key=str(certs.server.key), tls_ca=str(certs.ca), tls_client_auth="optional",
    )
    yield CertificatePolicyService(running, requester, certs)
    running.shutdown.set()
    await running.stopped.wait()


async def test_certificate_policy_accepts_operator_and_system(certificate_service: CertificatePolicyService) -> None:
    r, certs = certificate_service.requester, certificate_service.certs
    created = await r.request(LOCK_BASE + "create", {"locks": [lock("provider-c|kelvin-info|1")]},
                              auth=certs.operator.authentication(), qos=1)
    assert (created["status"], created["receiver"]) == (201, "Operator")
    rules = await r.request(STORE_BASE + "create", {"candidates": [{"consumer": "C", "serviceInstanceId": "P|s|1", "priority": 1}]},
                            auth=certs.operator.authentication())
    assert rules["payload"]["entries"][0]["createdBy"] == "Operator"
    echo = await r.request(ECHO, auth=certs.system.authentication())
    assert (echo["status"], echo["receiver"], echo["payload"]) == (200, "TemperatureManager", "Got it!")
    refused = await r.request(LOCK_BASE + "query", {}, auth=certs.system.authentication())
    assert (refused["status"], refused["receiver"]) == (403, "TemperatureManager")  # sysop-only management
    assert refused["payload"]["errorMessage"] == "Requester has no management permission"


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("none", 401, "No authentication key has been provided"),
        ("declared", 401, "Invalid authentication key has been provided"),
        ("garbage", 401, "Invalid authentication key has been provided"),
        ("huge", 401, "Invalid authentication key has been provided"),
        ("too many certificates", 401, "Invalid authentication key has been provided"),
        ("unqualified", 401, f"Unauthenticated access attempt: {LOCK_BASE}"),
        ("impostor", 401, f"Unauthenticated access attempt: {LOCK_BASE}"),
        ("stranger", 401, f"Unauthenticated access attempt: {LOCK_BASE}"),
        ("expired", 401, f"Unauthenticated access attempt: {LOCK_BASE}"),
        ("device", 403, f"Unauthorized access: {LOCK_BASE}create, invalid certificate type: DEVICE"),
        ("foreign", 403, f"Unauthorized access: {LOCK_BASE}create, from foreign cloud"),
    ],
)
async def test_certificate_policy_refusals(certificate_service: CertificatePolicyService, case: str, status: int,
                                           message: str) -> None:
    certs = certificate_service.certs
    operator, ca = certs.operator.pem(), certs.ca.read_bytes()
    special: dict[str, str | None] = {
        "none": None, "declared": "SYSTEM//Sysop", "garbage": base64.b64encode(bytes(range(256)) * 4).decode(),
        # the operator's certificate, padded past 64 KiB / followed by 10 more certificates: refused unread
        "huge": base64.b64encode(operator + b"#" * 70_000).decode(),
        "too many certificates": base64.b64encode(operator + ca * 10).decode(),
    }
    auth = special[case] if case in special else getattr(certs, case).authentication()
    reply = await certificate_service.requester.request(LOCK_BASE + "create", {"locks": [lock("p|s|1")]}, auth=auth)
    assert reply["status"] == status
    assert "receiver" not in reply  # nobody was authenticated
    body = reply["payload"]
    assert (body["errorMessage"], body["errorCode"], body["origin"]) == (message, status, f"{LOCK_BASE}create")


async def test_forged_and_ill_formed_chains_are_refused(certificate_service: CertificatePolicyService) -> None:
    """Every chain an attacker would try (tests/certs.py: a system certificate without BasicConstraints
    signing its own `op` certificate, a CA without keyCertSign, an operator certificate only for
    serverAuth, an expired intermediate, another CA …) is an operator's: accepted, it would be Sysop.
    Each is refused with the reference's 401; the well-formed ones are served."""
    requester = certificate_service.requester
    verdicts = {}
    for case in chain_cases(certificate_service.certs.ca_issued):
        reply = await requester.request(LOCK_BASE + "query", {}, auth=case.authentication(), trace_id=case.name)
        assert reply["traceId"] == case.name
        verdicts[case.name] = reply["status"], reply["payload"].get("errorMessage") if reply["status"] != 200 else None
    expected = {case.name: (200, None) if case.accepted else (401, f"Unauthenticated access attempt: {LOCK_BASE}")
                for case in chain_cases(certificate_service.certs.ca_issued)}
    assert verdicts == expected


async def https_verdict(url: str, ca: Path, case: ChainCase, directory: Path) -> int | str:
    """The status of a lock query over HTTPS presenting the chain, or the TLS failure."""
    pair = case.write(directory)
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(pair.cert, pair.key)
    async with httpx.AsyncClient(base_url=url, verify=context, timeout=10.0) as client:
        try:
            response = await client.post("/serviceorchestration/orchestration/mgmt/lock/query", json={})
        except (httpx.TransportError, ssl.SSLError) as error:
            return f"handshake refused: {type(error).__name__}"
    return response.status_code


async def test_https_and_mqtt_accept_the_same_chains(certificate_service: CertificatePolicyService,
                                                     tmp_path: Path) -> None:
    """Parity, against the running service: each chain case over HTTPS (OpenSSL verifies it in the
    handshake) and over MQTT (the path validator) is either served on both or refused on both."""
    certs, requester = certificate_service.certs, certificate_service.requester
    url = certificate_service.running.http_urls[0]
    assert url.startswith("https://")
    mismatches = []
    for case in chain_cases(certs.ca_issued):
        over_https = await https_verdict(url, certs.ca, case, tmp_path)
        over_mqtt = (await requester.request(LOCK_BASE + "query", {}, auth=case.authentication()))["status"]
        https_served, mqtt_served = over_https == 200, over_mqtt == 200
        if not (https_served == mqtt_served == case.accepted):
            mismatches.append((case.name, over_https, over_mqtt))
        if not https_served:
            assert over_https != 403, case.name  # refused as unauthenticated, never as someone else
    assert mismatches == []
