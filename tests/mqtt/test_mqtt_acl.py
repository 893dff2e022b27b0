"""The README's broker ACL for the service (issue 12 item 9), run as written on mosquitto: the service's
user reads the request topics and answers under `replies/`; a client system reads its own replies only
and cannot forge replies; the reply-topic prefix keeps the service from publishing anywhere else."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.mqtt.broker import MosquittoBroker, MosquittoNotFoundError
from tests.mqtt.requester import Requester
from tests.mqtt.serving import ECHO_TOPIC, LOCK_TOPIC, lock_count, lock_request, mqtt_of, serve, stop, template, until

README = Path(__file__).resolve().parents[2] / "README.md"
PASSWORDS = {"lockstore": "service-secret", "temperature-manager": "client-secret", "other-system": "other-secret"}


def readme_block(first_line: str) -> str:
    for block in re.findall(r"```conf\n(.*?)```", README.read_text(), re.S):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"no ```conf block starting with {first_line!r} in the README")


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """mosquitto with the README's settings and ACL (plus a second client system, as its comment says)."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    passwd, acl = workdir / "passwd", workdir / "acl"
    for n, (user, password) in enumerate(PASSWORDS.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if n == 0 else []), str(passwd), user, password],
                       check=True, timeout=10)
    client_block = readme_block("# /etc/mosquitto/acl").split("# one block per client system")[1].split("\n", 1)[1]
    acl.write_text(readme_block("# /etc/mosquitto/acl") + "\n" + client_block.replace("temperature-manager", "other-system"))
    conf = readme_block("# /etc/mosquitto/mosquitto.conf")
    conf = conf.replace("/etc/mosquitto/passwd", str(passwd)).replace("/etc/mosquitto/acl", str(acl))
    extra = "".join(line + "\n" for line in conf.splitlines() if not line.startswith(("#", "listener")))
    try:
        broker = MosquittoBroker(workdir, extra_config=extra)
    except MosquittoNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.mark.parametrize("shared_group", [None, "lockstore"])  # the same ACL fits $share/<group>/... (issue 15)
async def test_the_readme_acl_lets_the_service_do_its_job_and_nothing_else(
        tmp_path: Path, nursery: trio.Nursery, acl_broker: MosquittoBroker, shared_group: str | None) -> None:
    running = await serve(nursery, tmp_path / "data", acl_broker, mqtt_username="lockstore",
                          mqtt_password=PASSWORDS["lockstore"], mqtt_reply_topic_prefix="replies/",
                          mqtt_shared_group=shared_group)
    server = mqtt_of(running)
    client = Requester(acl_broker.host, acl_broker.port, response_topic="replies/temperature-manager/1",
                       username="temperature-manager", password=PASSWORDS["temperature-manager"])
    other = Requester(acl_broker.host, acl_broker.port, response_topic="replies/other-system/1",
                      username="other-system", password=PASSWORDS["other-system"])
    snooper = Requester(acl_broker.host, acl_broker.port, response_topic="replies/other-system/#",
                        username="temperature-manager", password=PASSWORDS["temperature-manager"])
    try:
        client.send(LOCK_TOPIC + "create", template(client.response_topic, trace_id="acl",
                                                    payload=lock_request("Acl|svc|1")))
        with trio.fail_after(10):
            reply = json.loads((await client.reply()).payload)
        assert (reply["traceId"], reply["status"]) == ("acl", 201)

        other.send(ECHO_TOPIC, template(other.response_topic, trace_id="other", auth="SYSTEM//Other"))
        with trio.fail_after(10):
            assert json.loads((await other.reply()).payload)["traceId"] == "other"
        # a forged reply into the other system's topic, and a snoop on it: the broker lets neither through
        client.client.publish("replies/other-system/1", b'{"status":201,"traceId":"forged"}', qos=1).wait_for_publish(5)
        other.send(ECHO_TOPIC, template(other.response_topic, trace_id="after-forgery", auth="SYSTEM//Other"))
        with trio.fail_after(10):
            assert json.loads((await other.reply()).payload)["traceId"] == "after-forgery"
        assert await snooper.no_reply(0.2)

        # the service will not publish into the request topics for anybody
        client.send(LOCK_TOPIC + "create", template(f"{LOCK_TOPIC}remove", trace_id="redirect",
                                                    payload=lock_request("Redirect|svc|1")))
        await until(lambda: server.dispatcher.disallowed_reply_topics == 1, "the redirect to be refused")
        assert await lock_count(running, "Redirect|svc|1") == 0
        assert server.session.connection_count == 1
    finally:
        for requester in (client, other, snooper):
            requester.close()
    await stop(running)
