"""mqtt_request_signatures = "required" against the running service and a real mosquitto: a request counts
only when signed with the key of the certificate it names (transports/security/request_signatures.py), so the
operator's public certificate, which every subscriber of the request topics sees, is not enough."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import trio

from actors.clock import ManualClock
from tests.certs import CertSet, make_cert_set
from tests.integration.conftest import future, start_service
from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.requester import Requester
from transports.security.certificates import ProfileType
from transports.security.certs_tool import Issued, arrowhead_cn, issue
from transports.security.request_signatures import sign_request
from transports.service import RunningService

PREFIX = "arrowhead/serviceorchestration"
LOCK_BASE = f"{PREFIX}/orchestration/management/lock/"
ECHO = f"{PREFIX}/monitor/echo"
REPLAY = "Request has already been received: a signed request is executed once"
INVALID = "Invalid request signature has been provided"


@dataclass(frozen=True)
class Signer:
    issued: Issued

    def authentication(self) -> str:
        return base64.b64encode(self.issued.certificate_pem()).decode()


def stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SignedService:
    running: RunningService
    requester: Requester
    certs: CertSet
    operator: Signer
    system: Signer

    def body(self, topic: str, payload: Any = None, *, key: Issued | None = None, certificate: Signer | None = None,
             moment: datetime | None = None, property_topic: str | None = None, **fields: Any) -> bytes:
        """A request signed with `key` (default: the operator's) naming `certificate` (default: the operator's)."""
        template: dict[str, Any] = {"traceId": "t", "authentication": (certificate or self.operator).authentication(),
                                    "responseTopic": self.requester.response_topic, "qosRequirement": 1}
        if property_topic is not None:
            template["responseTopic"] = ""
        if payload is not None:
            template["payload"] = payload
        template.update(fields)
        return sign_request((key or self.operator.issued).key, topic, template, timestamp=stamp(moment),
                            nonce=secrets.token_urlsafe(16), response_topic_property=property_topic)

    async def send(self, topic: str, body: bytes, **properties: Any) -> dict[str, Any]:
        self.requester.send(topic, body, **properties)
        reply: dict[str, Any] = json.loads((await self.requester.reply()).payload)
        return reply


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_cert_set(tmp_path_factory.mktemp("signature-certs"))


@pytest.fixture
def requester(shared_broker: MosquittoBroker) -> Iterator[Requester]:
    client = Requester(shared_broker.host, shared_broker.port, protocol=paho.MQTTv5)
    yield client
    client.close()


@pytest.fixture
async def signed_service(shared_broker: MosquittoBroker, requester: Requester, certs: CertSet, tmp_path: Path,
                         nursery: trio.Nursery) -> AsyncIterator[SignedService]:
    running = await start_service(
        nursery, tmp_path / "data", ManualClock(start=float(int(time.time()))),
        mqtt_url=f"mqtt://{shared_broker.host}:{shared_broker.port}", mqtt_client_id=f"signed-{secrets.token_hex(4)}",
        authentication_policy="certificate", tls_cert=str(certs.server.cert), tls_key=str(certs.server.key),
        tls_ca=str(certs.ca), tls_client_auth="optional", mqtt_request_signatures="required", mqtt_signature_window=30,
    )
    assert running.mqtt is not None
    with trio.fail_after(10):
        await running.mqtt.session.wait_connected()
    operator = Signer(issue(certs.ca_issued, arrowhead_cn("Operator"), ProfileType.OPERATOR))
    system = Signer(issue(certs.ca_issued, arrowhead_cn("TemperatureManager"), ProfileType.SYSTEM))
    yield SignedService(running, requester, certs, operator, system)
    running.shutdown.set()
    await running.stopped.wait()


def lock(instance: str) -> dict[str, Any]:
    return {"locks": [{"serviceInstanceId": instance, "owner": "TemperatureManager", "expiresAt": future()}]}


async def locks_of(service: SignedService) -> list[str]:
    reply = await service.send(LOCK_BASE + "query", service.body(LOCK_BASE + "query", {}))
    assert reply["status"] == 200, reply
    return [entry["serviceInstanceId"] for entry in reply["payload"]["entries"]]


async def test_signed_requests_are_served(signed_service: SignedService) -> None:
    s = signed_service
    created = await s.send(LOCK_BASE + "create", s.body(LOCK_BASE + "create", lock("provider-a|kelvin-info|1")))
    assert (created["status"], created["receiver"]) == (201, "Operator")
    echo = await s.send(ECHO, s.body(ECHO, key=s.system.issued, certificate=s.system))
    assert (echo["status"], echo["receiver"], echo["payload"]) == (200, "TemperatureManager", "Got it!")
    rsa = Signer(issue(s.certs.ca_issued, arrowhead_cn("Operator"), ProfileType.OPERATOR, key="rsa-2048"))
    queried = await s.send(LOCK_BASE + "query", s.body(LOCK_BASE + "query", {}, key=rsa.issued, certificate=rsa))
    assert (queried["status"], queried["receiver"], queried["payload"]["count"]) == (200, "Operator", 1)


async def test_the_operators_certificate_alone_is_not_enough(signed_service: SignedService) -> None:
    """What anyone subscribed to the request topics can do: send the operator's certificate without a
    signature, or with a signature of their own key. Both are refused, and nothing is created."""
    s = signed_service
    unsigned = json.loads(s.body(LOCK_BASE + "create", lock("provider-b|kelvin-info|1")))
    del unsigned["signature"]
    reply = await s.send(LOCK_BASE + "create", json.dumps(unsigned).encode())
    assert (reply["status"], reply["payload"]["errorMessage"]) == (401, "No request signature has been provided")
    assert "receiver" not in reply
    own_key = s.body(LOCK_BASE + "create", lock("provider-b|kelvin-info|1"), key=s.system.issued)
    reply = await s.send(LOCK_BASE + "create", own_key)
    assert (reply["status"], reply["payload"]["errorMessage"]) == (401, INVALID)
    assert await locks_of(s) == []


async def test_a_seen_request_cannot_be_changed_or_replayed(signed_service: SignedService) -> None:
    s = signed_service
    body = s.body(LOCK_BASE + "create", lock("provider-c|kelvin-info|1"))
    tampered = json.loads(body)
    tampered["payload"]["locks"][0]["serviceInstanceId"] = "provider-x|kelvin-info|1"
    reply = await s.send(LOCK_BASE + "create", json.dumps(tampered, separators=(",", ":")).encode())
    assert (reply["status"], reply["payload"]["errorMessage"]) == (401, INVALID)
    redirected = await s.send(LOCK_BASE + "remove", body)  # republished on another operation's topic
    assert (redirected["status"], redirected["payload"]["errorMessage"]) == (401, INVALID)
    first = await s.send(LOCK_BASE + "create", body)
    assert first["status"] == 201
    again = await s.send(LOCK_BASE + "create", body)
    assert (again["status"], again["payload"]["errorMessage"]) == (401, REPLAY)
    assert await locks_of(s) == ["ProviderC|kelvinInfo|1.0.0"]


async def test_stale_and_future_signatures_are_refused(signed_service: SignedService) -> None:
    s = signed_service
    now = datetime.now(UTC)
    for moment in (now - timedelta(seconds=40), now + timedelta(seconds=40)):
        reply = await s.send(ECHO, s.body(ECHO, moment=moment))
        assert reply["status"] == 401
        assert reply["payload"]["errorMessage"].endswith("is not within 30 seconds of the service's clock")


async def test_the_mqtt5_response_topic_is_signed(signed_service: SignedService, shared_broker: MosquittoBroker) -> None:
    """A request that names its reply topic in the MQTT 5 property: the property is signed, so a copy
    republished with another Response Topic (to read the reply) is refused, and its refusal goes there."""
    s = signed_service
    body = s.body(LOCK_BASE + "query", {}, property_topic=s.requester.response_topic)
    eavesdropper = Requester(shared_broker.host, shared_broker.port, protocol=paho.MQTTv5)
    try:
        eavesdropper.send(LOCK_BASE + "query", body, ResponseTopic=eavesdropper.response_topic)
        stolen = json.loads((await eavesdropper.reply()).payload)
        assert (stolen["status"], stolen["payload"]["errorMessage"]) == (401, INVALID)
    finally:
        eavesdropper.close()
    reply = await s.send(LOCK_BASE + "query", body, ResponseTopic=s.requester.response_topic)
    assert (reply["status"], reply["receiver"]) == (200, "Operator")
