"""Log injection through the real service: control characters and huge values in an HTTP path and in an
MQTT trace id and reply topic (a real mosquitto) reach stderr escaped and capped, in both log formats
(transports/observability/logging_setup.py). Every line the process writes is one line of printable characters; the
JSON lines give the original text back.
"""

from __future__ import annotations

import ast
import json
import uuid
from pathlib import Path

import httpx
import pytest
import trio

from tests.integration.live_server import LiveServer, live_server
from tests.mqtt.broker import MosquittoBroker
from tests.mqtt.conftest import shared_broker  # noqa: F401 (a fixture: one mosquitto for the run)
from tests.mqtt.requester import Requester
from transports.observability.logging_setup import MAX_FIELD_CHARS

ECHO_TOPIC = "arrowhead/serviceorchestration/monitor/echo"
HOSTILE = "\x1b[2J\x1b[31m\x07\x00\r\nfake=entry\x7f\x85\x9b31m\u2028\u202e\ud7ff"
HOSTILE_PATH = "/evil\x1b[31m\x07\r\nts=forged\x7f\x9b\u2028"  # what hypercorn decodes the URL below to
HOSTILE_URL = "/evil%1B%5B31m%07%0D%0Ats=forged%7F%C2%9B%E2%80%A8"
LONG = "L" * 100_000


def mqtt_access_lines(server: LiveServer) -> list[str]:
    return [line for line in server.lines if "lockstore.access" in line and "monitor/echo" in line]


def kv_value(line: str, key: str) -> str:
    """The value of `key` in a key=value line (quoted values are Python string literals)."""
    text = line.split(f" {key}=", 1)[1]
    if not text.startswith('"'):
        return text.split(" ", 1)[0]
    end = 1
    while text[end] != '"':
        end += 2 if text[end] == "\\" else 1
    value: str = ast.literal_eval(text[: end + 1])
    return value


@pytest.mark.parametrize("log_format", ["json", "keyvalue"])
async def test_hostile_values_are_logged_escaped_and_capped(
    tmp_path: Path, shared_broker: MosquittoBroker, log_format: str, http_server: str  # noqa: F811
) -> None:
    # Not C0/C1 controls: mosquitto drops a client that publishes to such a topic ("Malformed packet").
    reply_topic = f"test/replies/{uuid.uuid4().hex}/\u2028\u202e"
    with live_server(tmp_path / "data", "--log-format", log_format,
                     "--mqtt-url", f"mqtt://{shared_broker.host}:{shared_broker.port}", http_server=http_server) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            with trio.fail_after(10):
                while (await client.get("/health/ready")).status_code != 200:  # MQTT subscribed too
                    await trio.sleep(0.05)
            assert (await client.get(HOSTILE_URL, headers={"Authorization": "Bearer SYSTEM//Sysop"})).status_code == 404
            assert (await client.get("/" + LONG[:10_000])).status_code == 401
        requester = Requester(shared_broker.host, shared_broker.port)
        try:
            for trace_id in (HOSTILE, LONG):
                requester.send(ECHO_TOPIC, {"traceId": trace_id, "authentication": "SYSTEM//Sysop",
                                            "responseTopic": reply_topic})
            with trio.fail_after(10):  # the server logs in its own process: nothing to await but the lines
                while len(mqtt_access_lines(server)) < 2:
                    await trio.sleep(0.05)
        finally:
            requester.close()
        lines = list(server.lines)

    assert lines and all(line.isprintable() for line in lines), [line for line in lines if not line.isprintable()]
    access = [line for line in lines if "lockstore.access" in line]
    http_lines = [line for line in access if "/evil" in line]
    long_path = [line for line in access if "/LLLL" in line]
    mqtt_lines = [line for line in access if "monitor/echo" in line]  # the MQTT requests (and no HTTP one)
    assert len(http_lines) == 1 and len(long_path) == 1 and len(mqtt_lines) == 2, access
    cut = "L" * MAX_FIELD_CHARS + f"…(+{100_000 - MAX_FIELD_CHARS} chars)"
    if log_format == "json":
        http, long = (json.loads(line) for line in (*http_lines, *long_path))
        assert http["path"] == HOSTILE_PATH
        assert long["path"] == "/" + "L" * (MAX_FIELD_CHARS - 1) + f"…(+{10_001 - MAX_FIELD_CHARS} chars)"
        records = [json.loads(line) for line in mqtt_lines]
        assert {record["trace_id"] for record in records} == {HOSTILE, cut}
        assert {record["reply_topic"] for record in records} == {reply_topic}
    else:
        assert kv_value(http_lines[0], "path") == HOSTILE_PATH
        assert kv_value(long_path[0], "path").endswith(f"…(+{10_001 - MAX_FIELD_CHARS} chars)")
        assert {kv_value(line, "trace_id") for line in mqtt_lines} == {HOSTILE, cut}
        assert {kv_value(line, "reply_topic") for line in mqtt_lines} == {reply_topic}
        assert "\\x1b[31m" in http_lines[0]  # what a reader of the terminal sees instead of red text
    assert max(len(line) for line in lines) < 6 * MAX_FIELD_CHARS
