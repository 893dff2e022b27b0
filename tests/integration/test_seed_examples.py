"""Every example request of the published interface documents (tests/data/seeds, copies of the
seeds in shared/spec) works against the service, sent as written — only dates moved to the future
and ids replaced by real ones, as the seeds' own placeholders require."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import LOCK, STORE, SYSOP, Service, future

SEEDS = Path(__file__).parent.parent / "data" / "seeds"

pytestmark = pytest.mark.backends("local", "etcd")  # tests/backends.py: also on the real etcd cluster


def code_blocks(name: str) -> list[str]:
    return re.findall(r"```\n(.*?)```", (SEEDS / name).read_text(encoding="utf-8"), flags=re.S)


def http_requests(name: str) -> list[tuple[str, str, Any]]:
    """(method, target, json body or None) of each HTTP request block of a seed."""
    requests = []
    for block in code_blocks(name):
        first, _, rest = block.partition("\n")
        match = re.match(r"(POST|PUT|DELETE|GET) (\S+) HTTP/1.1", first)
        if match:
            body_text = rest.split("\n\n", 1)[1] if "\n\n" in rest else ""
            requests.append((match[1], match[2], json.loads(body_text) if body_text.strip() else None))
    return requests


def mqtt_requests(name: str) -> list[tuple[str, dict[str, Any]]]:
    """(topic, template) of each MQTT request block, placeholders made parseable."""
    requests = []
    for block in code_blocks(name):
        if block.startswith("Topic: "):
            topic, _, body = block.partition("\n")
            body = body.replace("<0|1|2>", "1").replace('"<trace-id>"', '"trace-1"')
            requests.append((topic.removeprefix("Topic: ").strip(), json.loads(body)))
    return requests


async def test_lock_http_seed_examples(service: Service) -> None:
    examples = http_requests("lock-management-http.md")
    assert [method for method, _, _ in examples] == ["POST", "POST", "DELETE"]
    (_, create_path, create_body), (_, query_path, query_body), (_, remove_target, _) = examples
    expires = future(3600, service.clock)
    create_body["locks"][0]["expiresAt"] = expires
    created = await service.post(create_path, create_body)
    assert created.status_code == 201, created.text
    entry = created.json()["entries"][0]
    assert (entry["serviceInstanceId"], entry["owner"], entry["expiresAt"]) == (
        "TemperatureProvider2|kelvinInfo|1.0.0", "TemperatureManager", expires)

    query_body["ids"] = [entry["id"]]
    query_body["expiresAfter"], query_body["expiresBefore"] = future(60, service.clock), future(7200, service.clock)
    query_body.pop("orchestrationJobIds")  # the seed's job id belongs to an orchestration-made lock
    queried = await service.post(query_path, query_body)
    assert queried.status_code == 200
    assert queried.json() == {"entries": [entry], "count": 1}

    removed = await service.client.delete(remove_target, headers=SYSOP)
    assert removed.status_code == 200 and removed.content == b""
    assert (await service.post(f"{LOCK}/query")).json()["count"] == 0


async def test_store_seed_payloads_over_http(service: Service) -> None:
    """The store seed is MQTT-only; its payloads, sent as the equivalent HTTP requests, work."""
    examples = {topic.rsplit("/", 1)[1]: template["payload"] for topic, template in mqtt_requests("simple-store-management-mqtt.md")}
    assert set(examples) == {"query", "create", "modify-priorities", "remove"}
    created = await service.post(f"{STORE}/create", examples["create"])  # uses the docs' "entries" spelling
    assert created.status_code == 201, created.text
    other = await service.post(f"{STORE}/create", {"entries": [{"consumer": "TestConsumerB", "serviceInstanceId": "OtherProvider|testService|1.0.0", "priority": 1}]})
    ids = [created.json()["entries"][0]["id"], other.json()["entries"][0]["id"]]

    query = examples["query"]
    query["ids"] = ids[0]  # the seed sends a single string here
    queried = await service.post(f"{STORE}/query", query)
    assert queried.status_code == 200, queried.text
    assert queried.json()["count"] == 1

    seed_modify = examples["modify-priorities"]
    assert len(seed_modify) == 2
    modified = await service.put(f"{STORE}/modify-priorities", dict(zip(ids, seed_modify.values(), strict=True)))
    assert modified.status_code == 200, modified.text
    assert [(e["id"], e["priority"]) for e in modified.json()["entries"]] == [(ids[0], 1), (ids[1], 2)]

    assert len(examples["remove"]) == 2
    removed = await service.delete(f"{STORE}/remove", params=[("uuids", value) for value in ids])
    assert removed.status_code == 200
    assert (await service.post(f"{STORE}/query", {"consumerNames": ["TestConsumerB"]})).json()["count"] == 0
