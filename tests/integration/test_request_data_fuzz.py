"""Random bytes inside JSON string literals (invalid UTF-8, quotes, backslashes, control characters …) never
give a 5xx, on any operation: over HTTP against the real service, and through the MQTT request handling
(template and payload) of the same service. The service runs in a thread of its own; no mocks."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from urllib.parse import quote_from_bytes

import httpx
import msgspec
import pytest
import trio
from hypothesis import example, given
from hypothesis import strategies as st

from actors.clock import ManualClock
from transports.config.settings import Settings
from transports.mqtt.dispatch import MqttAccess, MqttDispatcher
from transports.observability.access import reply_status
from transports.security.identity import ManagementPolicy
from transports.service import RunningService, run_service

PREFIX = "arrowhead/serviceorchestration"
SYSOP = {"Authorization": "Bearer SYSTEM//Sysop", "Content-Type": "application/json"}
LOCK = "/serviceorchestration/orchestration/mgmt/lock"
STORE = "/serviceorchestration/orchestration/mgmt/simple-store"
HOLE = b"@@"  # where the random bytes go: always inside a string literal (or a key)
UUID = b"3f0d5f36-1a5e-4bcb-9f0c-6b1c2e0a9d11"

# Request bodies with one hole each, per operation (the HTTP method and path, and the MQTT topic).
BODIES: dict[str, list[bytes]] = {
    "lock/create": [
        b'{"locks":[{"serviceInstanceId":"P|s|1","owner":"@@","expiresAt":"2999-01-01T00:00:00Z"}]}',
        b'{"locks":[{"serviceInstanceId":"@@","owner":"Owner","expiresAt":"2999-01-01T00:00:00Z"}]}',
        b'{"locks":[{"serviceInstanceId":"P|s|1","owner":"Owner","expiresAt":"@@"}]}',
        b'{"locks":[{"@@":"P|s|1"}]}',
    ],
    "lock/query": [b'{"owners":["@@"]}', b'{"serviceInstanceIds":["@@"]}', b'{"pagination":{"sortField":"@@"}}',
                   b'{"ids":[1],"owner":["@@"]}'],
    "store/query": [b'{"ids":["@@"]}', b'{"consumerNames":"@@"}', b'{"createdBy":"@@"}',
                    b'{"serviceDefinitions":["@@"],"pagination":{"direction":"@@"}}'],
    "store/create": [b'{"candidates":[{"consumer":"@@","serviceInstanceId":"P|s|1","priority":1}]}',
                     b'{"entries":[{"consumer":"C","serviceInstanceId":"@@","priority":"@@"}]}'],
    "store/modify-priorities": [b'{"@@":1}', b'{"' + UUID + b'":"@@"}'],
    "lock/remove": [b'["@@"]'],
    "store/remove": [b'["@@"]'],
}
HTTP = {
    "lock/create": ("POST", f"{LOCK}/create"),
    "lock/query": ("POST", f"{LOCK}/query"),
    "store/query": ("POST", f"{STORE}/query"),
    "store/create": ("POST", f"{STORE}/create"),
    "store/modify-priorities": ("PUT", f"{STORE}/modify-priorities"),
}
CASES = [(operation, body) for operation, bodies in BODIES.items() for body in bodies]
TEMPLATE_FIELDS = [b"traceId", b"authentication", b"responseTopic"]


@dataclass
class Served:
    url: str
    dispatcher: MqttDispatcher
    token: trio.lowlevel.TrioToken

    def mqtt(self, topic: str, body: bytes) -> bytes | None:
        reply = trio.from_thread.run(self.dispatcher.handle, topic, body, None, None, trio_token=self.token)
        return None if reply is None else reply.body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, http_server: str) -> Iterator[Served]:
    started: queue.Queue[tuple[RunningService, trio.lowlevel.TrioToken] | BaseException] = queue.Queue()
    data_dir = tmp_path_factory.mktemp("utf8-fuzz") / "data"

    async def main() -> None:
        config = Settings(host="127.0.0.1", port=0, data_dir=str(data_dir), access_log=False, http_server=http_server)
        clock = ManualClock(start=float(int(time.time())))
        async with trio.open_nursery() as nursery:
            running = await nursery.start(partial(run_service, config, clock=clock, handle_signals=False))
            started.put((running, trio.lowlevel.current_trio_token()))

    def thread_main() -> None:
        try:
            trio.run(main)
        except BaseException as error:  # reported to the test thread
            started.put(error)

    thread = threading.Thread(target=thread_main, name="utf8-fuzz-service", daemon=True)
    thread.start()
    first = started.get(timeout=20)
    if isinstance(first, BaseException):
        raise first
    running, token = first
    dispatcher = MqttDispatcher(running.operations, MqttAccess(ManagementPolicy.SYSOP_ONLY, frozenset()), PREFIX)
    yield Served(running.http_urls[0], dispatcher, token)
    trio.from_thread.run_sync(running.shutdown.set, trio_token=token)
    thread.join(timeout=20)


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=SYSOP, timeout=10) as client:
        yield client


def _mqtt_template(payload: bytes, field: bytes | None, junk: bytes) -> bytes:
    values = {name: b"t-1" for name in TEMPLATE_FIELDS}
    values[b"authentication"], values[b"responseTopic"] = b"SYSTEM//Sysop", b"fuzz/replies"
    if field is not None:
        values[field] = junk
    fields = b",".join(b'"' + name + b'":"' + value + b'"' for name, value in values.items())
    return b"{" + fields + b',"params":{"owner":"Owner"},"payload":' + payload + b"}"


@given(case=st.sampled_from(CASES), junk=st.binary(max_size=24), field=st.sampled_from([None, *TEMPLATE_FIELDS]))
@example(case=CASES[0], junk=b"\xff", field=None)
@example(case=(CASES[-1]), junk=b"\xed\xa0\x80", field=b"traceId")
def test_random_bytes_in_strings_never_give_a_5xx(served: Served, http: httpx.Client, case: tuple[str, bytes],
                                                 junk: bytes, field: bytes | None) -> None:
    operation, body = case
    filled = body.replace(HOLE, junk)
    if operation in HTTP:
        method, path = HTTP[operation]
        response = http.request(method, path, content=filled)
        assert response.status_code < 500, (filled, response.text)
    elif operation == "lock/remove":
        response = http.delete(f"{LOCK}/remove/{quote_from_bytes(junk, safe=b'')}",
                               params={"instanceIds": "P|s|1"})
        assert response.status_code < 500, (junk, response.text)
        response = http.request("DELETE", f"{LOCK}/remove/Owner?instanceIds={quote_from_bytes(junk, safe=b'')}")
        assert response.status_code < 500, (junk, response.text)
    else:
        response = http.request("DELETE", f"{STORE}/remove?uuids={quote_from_bytes(junk, safe=b'')}")
        assert response.status_code < 500, (junk, response.text)
    topic = f"{PREFIX}/orchestration/management/{operation}"
    reply = served.mqtt(topic, _mqtt_template(filled, field, junk))
    if reply is not None:  # None: no readable response topic (counted and logged)
        status = reply_status(reply)
        assert status < 500, (filled, reply)
        assert status < 400 or msgspec.json.decode(reply)["payload"]["errorMessage"], reply
