"""The README's broker binding ("Security model"), run as written: mosquitto with exactly the configuration
and ACL the README shows (only the listener's port and address and the /etc/mosquitto/ paths are replaced,
and log lines added), the real service, and clients holding real certificates.

A client that holds only the system certificate, and has seen the operator's, cannot get a management
request executed, nor read other clients' requests or replies; the operator can."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import trio
from paho.mqtt.reasoncodes import ReasonCode

from actors.clock import ManualClock
from tests.certs import CertSet, Pair, make_cert_set
from tests.integration.conftest import future, start_service
from tests.mqtt.broker import find_mosquitto, free_loopback_port
from transports.service import RunningService

README = Path(__file__).resolve().parents[2] / "README.md"
PREFIX = "arrowhead/serviceorchestration"
LOCK_BASE = f"{PREFIX}/orchestration/management/lock/"
ECHO = f"{PREFIX}/monitor/echo"


def readme_block(first_line: str) -> str:
    """The ```conf block of the README's Security model that starts with `first_line`, dedented."""
    section = README.read_text().split("## Security model", 1)[1]
    for match in re.finditer(r"^( *)```conf\n(.*?)^ *```", section, re.S | re.M):
        indent, body = match[1], match[2]
        lines = [line.removeprefix(indent) for line in body.splitlines()]
        if lines[0] == first_line:
            return "\n".join(lines[1:]) + "\n"
    raise AssertionError(f"no ```conf block starting with {first_line!r} in the README's Security model")


def test_the_readme_blocks_are_found() -> None:
    config = readme_block("# /etc/mosquitto/conf.d/lockstore.conf")
    acl = readme_block("# /etc/mosquitto/lockstore.acl  (user names are certificate CNs)")
    assert "use_identity_as_username true" in config and "require_certificate true" in config
    assert "listener 8883\n" in config and "acl_file /etc/mosquitto/lockstore.acl\n" in config
    assert "pattern read replies/%u/#" in acl


@dataclass
class AclBroker:
    port: int
    certs: CertSet
    log: Path


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclBroker]:
    root = tmp_path_factory.mktemp("mosquitto-acl")
    certs = make_cert_set(root / "certs")  # ca.pem, broker.pem, broker.key: the README's file names
    port = free_loopback_port()
    config = readme_block("# /etc/mosquitto/conf.d/lockstore.conf")
    acl = readme_block("# /etc/mosquitto/lockstore.acl  (user names are certificate CNs)")
    config = config.replace("/etc/mosquitto/", f"{root}/").replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
    (root / "lockstore.acl").write_text(acl)
    harness = "log_dest stderr\nlog_type all\npersistence false\n" + ("user root\n" if os.geteuid() == 0 else "")
    (root / "mosquitto.conf").write_text(config + harness)
    log = root / "mosquitto.log"
    with log.open("wb") as out:
        process = subprocess.Popen([find_mosquitto(), "-c", str(root / "mosquitto.conf")],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 5
        while f"Opening ipv4 listen socket on port {port}" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.02)
        yield AclBroker(port, certs, log)
    finally:
        process.kill()
        process.wait()


class TlsClient:
    """An MQTT 5 client authenticated by its certificate (independent paho, own network thread), reading
    `replies/<its CN>/<id>` and whatever else it subscribes to."""

    def __init__(self, broker: AclBroker, pair: Pair, common_name: str) -> None:
        self.reply_topic = f"replies/{common_name}/{uuid.uuid4().hex}"
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.acks: queue.Queue[tuple[int, ReasonCode]] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"acl-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv5)
        self.client.tls_set(ca_certs=str(broker.certs.ca), certfile=str(pair.cert), keyfile=str(pair.key))
        subscribed = threading.Event()
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_publish = lambda _c, _u, mid, reason, _p: self.acks.put((mid, reason))
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.on_connect = lambda *_args: self.client.subscribe(self.reply_topic, qos=1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(5), "no SUBACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_args: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(5)

    async def publish(self, topic: str, template: dict[str, Any]) -> ReasonCode:
        """Publish at QoS 1; the broker's PUBACK reason code."""
        info = self.client.publish(topic, json.dumps(template).encode(), qos=1)
        return await trio.to_thread.run_sync(lambda: self._ack(info.mid))

    def _ack(self, mid: int) -> ReasonCode:
        got, reason = self.acks.get(timeout=5)
        assert got == mid
        return reason

    async def next_message(self) -> paho.MQTTMessage:
        return await trio.to_thread.run_sync(lambda: self.messages.get(timeout=5))

    def request(self, payload: Any, authentication: str) -> dict[str, Any]:
        return {"traceId": uuid.uuid4().hex, "authentication": authentication, "responseTopic": self.reply_topic,
                "qosRequirement": 1, "payload": payload}


@dataclass
class Clients:
    running: RunningService
    operator: TlsClient
    system: TlsClient
    certs: CertSet


@pytest.fixture
async def clients(acl_broker: AclBroker, tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clients]:
    certs = acl_broker.certs
    running = await start_service(
        nursery, tmp_path / "data", ManualClock(start=float(int(time.time()))),
        mqtt_url=f"mqtts://127.0.0.1:{acl_broker.port}", mqtt_client_id=f"lockstore-{uuid.uuid4().hex[:8]}",
        authentication_policy="certificate", tls_cert=str(certs.server.cert), tls_key=str(certs.server.key),
        tls_ca=str(certs.ca), tls_client_auth="optional",
    )
    assert running.mqtt is not None
    with trio.fail_after(10):
        await running.mqtt.session.wait_connected()
    operator = TlsClient(acl_broker, certs.operator, "Operator.TestCloud.Company.arrowhead.eu")
    system = TlsClient(acl_broker, certs.system, "TemperatureManager.TestCloud.Company.arrowhead.eu")
    yield Clients(running, operator, system, certs)
    operator.close()
    system.close()
    running.shutdown.set()
    await running.stopped.wait()


def lock(instance: str) -> dict[str, Any]:
    return {"locks": [{"serviceInstanceId": instance, "owner": "TemperatureManager", "expiresAt": future()}]}


async def test_only_the_operator_gets_management_requests_executed(clients: Clients) -> None:
    operator, system = clients.operator, clients.system
    operator_certificate = clients.certs.operator.authentication()  # public: seen on the request topics
    system.subscribe(f"{PREFIX}/#")  # trying to read requests (and the certificates in them)
    system.subscribe("replies/Operator.TestCloud.Company.arrowhead.eu/#")  # and the operator's replies

    assert str(await operator.publish(LOCK_BASE + "create", operator.request(
        lock("provider-a|kelvin-info|1"), operator_certificate))) == "Success"
    created = json.loads((await operator.next_message()).payload)
    assert (created["status"], created["receiver"]) == (201, "Operator")

    # the system client, with the operator's certificate in the request: the broker refuses the publish
    impersonation = system.request(lock("provider-b|kelvin-info|1"), operator_certificate)
    assert str(await system.publish(LOCK_BASE + "create", impersonation)) == "Not authorized"
    assert str(await system.publish(LOCK_BASE + "create", system.request(
        lock("provider-b|kelvin-info|1"), clients.certs.system.authentication()))) == "Not authorized"

    # echo is open to every client, and its reply comes back on the client's own reply topic
    assert str(await system.publish(ECHO, system.request(None, clients.certs.system.authentication()))) == "Success"
    echo = await system.next_message()
    assert echo.topic == system.reply_topic
    assert json.loads(echo.payload)["receiver"] == "TemperatureManager"
    # everything the broker delivered to the system client before that reply was queued before it: nothing
    # of the operator's request or reply was
    assert system.messages.empty()

    assert str(await operator.publish(LOCK_BASE + "query", operator.request({}, operator_certificate))) == "Success"
    queried = json.loads((await operator.next_message()).payload)
    assert [entry["serviceInstanceId"] for entry in queried["payload"]["entries"]] == ["ProviderA|kelvinInfo|1.0.0"]
