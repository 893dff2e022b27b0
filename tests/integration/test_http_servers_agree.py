"""Both HTTP servers give the same answer to the same request: the native server and hypercorn, each in front of
its own fresh service, get one sequence of raw requests — every API route, their errors (401, 403, 404, 405,
413, 415, 400s), the Quart pages, HEAD, odd paths and query strings — and their responses must match in
status, headers and body, as must the access-log records and request counts they leave. Only what cannot
match is left out: the Date header, the reason phrase (hypercorn sends none), the time taken, and the random
parts of a rule (its UUID and timestamps).
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.clock import ManualClock
from tests.integration.conftest import LOCK, STORE, start_service
from tests.integration.raw_http import RawResponse, parse_responses, read_to_close
from transports.observability.logging_setup import FIELDS_ATTRIBUTE

SYSOP = "Authorization: Bearer SYSTEM//Sysop\r\n"
SYSTEM = "Authorization: Bearer SYSTEM//TemperatureManager\r\n"
JSON = "Content-Type: application/json\r\n"
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_INSTANT = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def request(method: str, target: str, headers: str = "", body: bytes | None = None) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: lockstore.test:8441\r\n{headers}"
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


def locks(*instances: str) -> bytes:
    return json.dumps({"locks": [{"serviceInstanceId": f"{i}|svc|1.0.0", "owner": "Agree",
                                  "expiresAt": "2999-01-01T00:00:00Z"} for i in instances]}).encode()


RULES = json.dumps({"candidates": [{"consumer": "C", "serviceInstanceId": "P|svc|1", "priority": 1}]}).encode()

SEQUENCE: list[bytes] = [
    # echo
    request("GET", "/serviceorchestration/monitor/echo", SYSOP),
    request("GET", "/serviceorchestration/monitor/echo"),
    request("GET", "/serviceorchestration/monitor/echo", "Authorization: Bearer nonsense\r\n"),
    request("GET", "/serviceorchestration/monitor/echo", SYSTEM),
    request("POST", "/serviceorchestration/monitor/echo", SYSOP, b"{}"),
    # lock create, query, remove, and their errors
    request("POST", f"{LOCK}/create", SYSOP + JSON, locks("A", "B")),
    request("POST", f"{LOCK}/create", SYSOP + JSON, locks("A")),
    request("POST", f"{LOCK}/create", SYSTEM + JSON, locks("C")),
    request("POST", f"{LOCK}/create", JSON, locks("C")),
    request("POST", f"{LOCK}/create", SYSOP + JSON, b"{not json"),
    request("POST", f"{LOCK}/create", SYSOP + "Content-Type: text/plain; charset=utf-8\r\n", locks("C")),
    request("POST", f"{LOCK}/create", SYSOP + "Content-Type: Application/JSON; charset=utf-8\r\n", locks("D")),
    request("POST", f"{LOCK}/create", SYSOP + JSON, b""),
    request("POST", f"{LOCK}/create", SYSOP + JSON, b"null"),
    request("POST", f"{LOCK}/create", SYSOP + JSON, b" " * ((1 << 20) + 1)),
    request("POST", f"{LOCK}/query", SYSOP + JSON, b'{"owners":["Agree"]}'),
    request("POST", f"{LOCK}/query", SYSOP),
    request("POST", f"{LOCK}/query", SYSOP + JSON, b'{"pagination":{"size":5}}'),
    request("GET", f"{LOCK}/query", SYSOP),
    request("PUT", f"{LOCK}/query", SYSOP + JSON, b"{}"),
    request("DELETE", f"{LOCK}/remove/Agree?instanceIds=A%7Csvc%7C1.0.0", SYSOP),
    request("DELETE", f"{LOCK}/remove/Agree", SYSOP),
    request("DELETE", f"{LOCK}/remove/Agree?instanceIds=", SYSOP),
    request("DELETE", f"{LOCK}/remove/Agree?instanceIds=B%7Csvc%7C1.0.0,,C&instanceIds=x", SYSOP),
    request("DELETE", f"{LOCK}/remove/Agree?instanceIds=B|svc|1.0.0+x%zz", SYSOP),
    request("DELETE", f"{LOCK}/remove/A%2Fb?instanceIds=B", SYSOP),
    request("DELETE", f"{LOCK}/remove/?instanceIds=B", SYSOP),
    request("DELETE", f"{LOCK}/remove/Agree?instanceIds=B%7Csvc%7C1.0.0", SYSTEM),
    # the simple store
    request("POST", f"{STORE}/create", SYSOP + JSON, RULES),
    request("POST", f"{STORE}/query", SYSOP + JSON, b'{"consumerNames":["C"]}'),
    request("PUT", f"{STORE}/modify-priorities", SYSOP + JSON, b'{"00000000-0000-0000-0000-000000000000":2}'),
    request("DELETE", f"{STORE}/remove?uuids=00000000-0000-0000-0000-000000000000", SYSOP),
    request("DELETE", f"{STORE}/remove", SYSOP),
    request("POST", f"{STORE}/query", SYSTEM + JSON, b"{}"),
    # what the Quart app answers on both
    request("GET", "/health/live"),
    request("GET", "/openapi.json"),
    request("GET", "/docs"),
    request("GET", "/docs/index.css"),
    request("GET", "/docs/oauth2-redirect.html"),
    request("HEAD", "/serviceorchestration/monitor/echo", SYSOP),
    request("OPTIONS", "/serviceorchestration/monitor/echo", SYSOP),
    request("GET", "/nowhere"),
    request("GET", "/nowhere", SYSOP),
    request("GET", "/"),
    request("GET", "/serviceorchestration/monitor/echo/", SYSOP),
    request("GET", "//serviceorchestration/monitor/echo", SYSOP),
    request("GET", "/serviceorchestration//monitor/echo", SYSOP),
    request("GET", "/%7Eweird%20path?x=%zz", SYSOP),
    # ambiguous requests, refused alike
    request("POST", f"{LOCK}/create", SYSOP + SYSTEM + JSON, locks("E")),
    request("GET", "/health/live", "Connection: close\r\n"),
    b"GET /health/live HTTP/1.0\r\n\r\n",
]


def normalised(response: RawResponse) -> tuple[int, list[tuple[str, str]], Any]:
    headers = sorted((name, value.lower() if name == "connection" else value)
                     for name, value in response.headers if name != "date")
    body = _INSTANT.sub(b"<instant>", _UUID.sub(b"<uuid>", response.body))
    return response.status, headers, body


def head_response(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == b"", body
    status, *lines = head.decode("latin-1").split("\r\n")
    pairs = [line.split(":", 1) for line in lines]
    return RawResponse(int(status.split()[1]), [(name.lower(), value.strip()) for name, value in pairs], b"")


async def answers(url: str) -> list[tuple[int, list[tuple[str, str]], Any]]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    found = []
    for n, data in enumerate(SEQUENCE):
        data = data.replace(b"\r\n", b"\r\nX-Request-ID: agree-%d\r\n" % n, 1)  # the same id on both
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            behind = b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            head_request = data.startswith(b"HEAD ")  # its answer has a length but no body: read it alone
            if head_request:
                data = data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
            elif b"Connection: close" not in data and b"HTTP/1.0" not in data:
                data += behind  # (h11 refuses bytes after a request that closes its connection: a 400)
            try:
                await stream.send_all(data)
            except trio.BrokenResourceError:
                pass  # answered and closed before all was sent (a body over the limit): read the answer
            with trio.fail_after(10):
                received = await read_to_close(stream)
            responses = [head_response(received)] if head_request else parse_responses(received)
        found.append(normalised(responses[0]))
        found.append((len(responses), [], b""))  # whether the connection went on to the request behind it
    return found


async def test_both_servers_answer_every_request_alike(tmp_path: Path, nursery: trio.Nursery,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Same answers, and the same access-log records and request metrics for them."""
    caplog.set_level(logging.INFO, logger="lockstore.access")
    clock = ManualClock(start=float(int(time.time())))
    results, logged, counted = {}, {}, {}
    for server in ("native", "hypercorn"):
        caplog.clear()
        running = await start_service(nursery, tmp_path / server, clock, http_server=server)
        results[server] = await answers(running.http_urls[0])
        running.shutdown.set()
        with trio.fail_after(20):
            await running.stopped.wait()  # every request finished, so logged and counted
        logged[server] = [access_fields(record) for record in caplog.records if record.name == "lockstore.access"]
        assert running.monitor is not None
        counted[server] = running.monitor.metrics.request_counts()
    differences = [(SEQUENCE[n // 2].split(b"\r\n", 1)[0], native, hypercorn)
                   for n, (native, hypercorn) in enumerate(zip(results["native"], results["hypercorn"], strict=True))
                   if native != hypercorn]
    assert not differences, "\n".join(repr(difference) for difference in differences)
    statuses = {status for status, _, _ in results["native"][::2]}
    assert {200, 201, 308, 400, 401, 403, 404, 405, 413, 415} <= statuses  # the sequence reached them all
    assert len(logged["native"]) >= len(SEQUENCE)
    assert logged["native"] == logged["hypercorn"]
    assert counted["native"] and counted["native"] == counted["hypercorn"]


def access_fields(record: logging.LogRecord) -> dict[str, object]:
    """An access-log record's fields, less what differs by nature (the time taken, an id made up by each
    process for a request that brought none)."""
    fields = dict(getattr(record, FIELDS_ATTRIBUTE))
    del fields["duration_ms"]
    if not str(fields["request_id"]).startswith("agree-"):
        fields["request_id"] = "<made up>"
    return fields

