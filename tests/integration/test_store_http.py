"""Simple-store management over real HTTP against the real service (ARROWHEAD-REFERENCE.md §3)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.integration.conftest import STORE, SYSOP, Service, start_service

CREATE, QUERY, MODIFY, REMOVE = (f"{STORE}/{op}" for op in ("create", "query", "modify-priorities", "remove"))

pytestmark = pytest.mark.backends("local", "etcd")  # tests/backends.py: also on the real etcd cluster


def rule(consumer: str, instance: str, priority: int) -> dict[str, Any]:
    return {"consumer": consumer, "serviceInstanceId": instance, "priority": priority}


def error(response: Any, status: int, message: str, origin: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errorMessage"] == message
    assert body["errorCode"] == status
    assert body["origin"] == origin if origin else "origin" in body


async def create(service: Service, *rules: dict[str, Any], who: str = "Sysop") -> list[dict[str, Any]]:
    response = await service.post(CREATE, {"candidates": list(rules)}, headers={"Authorization": f"Bearer SYSTEM//{who}"})
    assert response.status_code == 201, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def test_create_fills_audit_fields_and_derives_the_service_definition(service: Service) -> None:
    entries = await create(service, rule("consumer-a", "provider-x|temperature-info|1", 2), rule("ConsumerA", "ProviderY|temperatureInfo|2.0", 1))
    first, second = entries
    assert list(first) == ["id", "consumer", "serviceDefinition", "serviceInstanceId", "priority",
                           "createdBy", "updatedBy", "createdAt", "updatedAt"]
    assert first["consumer"] == "ConsumerA"
    assert first["serviceDefinition"] == "temperatureInfo"
    assert first["serviceInstanceId"] == "ProviderX|temperatureInfo|1.0.0"
    assert first["createdBy"] == first["updatedBy"] == "Sysop"
    assert first["createdAt"] == first["updatedAt"]
    assert second["priority"] == 1 and second["id"] != first["id"]


async def test_entries_spelling_and_conflicting_spellings(service: Service) -> None:
    response = await service.post(CREATE, {"entries": [rule("A", "P|s|1", 1)]})
    assert response.status_code == 201
    both = await service.post(CREATE, {"entries": [rule("A", "P|s|1", 2)], "candidates": [rule("A", "P|s|1", 3)]})
    error(both, 400, "Conflicting fields: candidates and entries have different values", f"POST {CREATE}")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Request payload is empty"),
        ({"candidates": []}, "Request payload is empty"),
        ({"candidates": [None]}, "Request payload contains null element"),
        ({"candidates": [{"consumer": "A", "serviceInstanceId": "P|s|1"}]}, "Priority is missing"),
        ({"candidates": [rule("A", "P|s|1", 0)]}, "Priority should be positive"),
        ({"candidates": [{"serviceInstanceId": "P|s|1", "priority": 1}]},
         "The specified system name does not match the naming convention: null"),
        ({"candidates": [rule("A", "P|s", 1)]},
         "The specified service instance identifier does not match the naming convention: P|s"),
        ({"candidates": [rule("A", "P|s|1", 1), rule("a", "Q|s|2", 1)]},
         "Conflicting rules, the combination of the following fields should be unique: A, service definition: s, priority: 1"),
    ],
)
async def test_create_validation(service: Service, body: Any, message: str) -> None:
    error(await service.post(CREATE, body), 400, message, f"POST {CREATE}")


async def test_create_against_stored_rules_is_all_or_nothing(service: Service) -> None:
    await create(service, rule("A", "P|s|1", 1))
    response = await service.post(CREATE, {"candidates": [rule("B", "P|s|1", 1), rule("A", "Q|s|1", 1)]})
    error(response, 400, "There is already an existing entity with consumer name: A, service definition: s, priority: 1")
    assert (await service.post(QUERY, {"consumerNames": ["B"]})).json() == {"entries": [], "count": 0}


@pytest.mark.settings(management_policy="disabled")
async def test_query_filters_count_and_paging(service: Service) -> None:
    created = await create(
        service,
        rule("A", "P1|svc|1", 1), rule("A", "P2|svc|1", 2), rule("A", "P3|other|1", 1),
        rule("B", "P1|svc|1", 5), who="Admin",
    )
    by_consumer = (await service.post(QUERY, {"consumerNames": ["A"], "pagination": {"page": 0, "size": 2, "sortField": "priority", "direction": "ASC"}})).json()
    assert by_consumer["count"] == 3
    assert [e["priority"] for e in by_consumer["entries"]] == [1, 1]
    assert by_consumer["entries"][0]["id"] < by_consumer["entries"][1]["id"]  # tie by id ASC
    ranged = (await service.post(QUERY, {"serviceDefinitions": ["svc"], "minPriority": 2, "maxPriority": 5})).json()
    assert sorted(e["priority"] for e in ranged["entries"]) == [2, 5]
    single_id = (await service.post(QUERY, {"ids": created[3]["id"].upper()})).json()
    assert [e["id"] for e in single_id["entries"]] == [created[3]["id"]]
    by_creator = (await service.post(QUERY, {"createdBy": "admin", "serviceInstanceIds": ["p1|svc|1"]})).json()
    assert by_creator["count"] == 2
    default_order = (await service.post(QUERY, {"createdBy": "Admin"})).json()
    ids = [e["id"] for e in default_order["entries"]]
    assert ids == sorted(ids, reverse=True)  # id DESC


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "At least one of the following fields must be specified: ids, consumerNames, serviceDefinitions, serviceInstanceIds, createdBy"),
        ({"minPriority": 1, "createdBy": " ", "ids": []}, "At least one of the following fields must be specified: ids, consumerNames, serviceDefinitions, serviceInstanceIds, createdBy"),
        ({"ids": ["x", None]}, "Id list contains null or empty element"),
        ({"ids": ["not-a-uuid"]}, "Invalid UUID: not-a-uuid"),
        ({"consumerNames": [""]}, "Consumer name list contains null or empty element"),
        ({"serviceDefinitions": [None]}, "Service definition name list contains null or empty element"),
        ({"serviceInstanceIds": [" "]}, "Service instance id list contains null or empty element"),
        ({"createdBy": "A", "minPriority": 0}, "Invalid minimum priority: should be a positive integer"),
        ({"createdBy": "A", "maxPriority": -1}, "Invalid maximum priority: should be a positive integer"),
        ({"createdBy": "A", "minPriority": 3, "maxPriority": 2}, "Minimum priority should not be greater than maximum priority"),
        ({"serviceDefinitions": ["2nd"]}, "The specified service definition name does not match the naming convention: 2nd"),
        ({"createdBy": "A", "pagination": {"sortField": "updatedAt"}},
         "Sort field is invalid. Only the following are allowed: [id, consumer, serviceDefinition, priority, serviceInstanceId, createdAt]"),
    ],
)
async def test_query_validation(service: Service, body: Any, message: str) -> None:
    error(await service.post(QUERY, body), 400, message, f"POST {QUERY}")


async def test_query_needs_a_body(service: Service) -> None:
    error(await service.post(QUERY), 400, "Request payload is missing")


async def test_modify_priorities_swap_sets_updated_by(service: Service) -> None:
    a, b, c = await create(service, rule("A", "P1|svc|1", 1), rule("A", "P2|svc|1", 2), rule("A", "P3|svc|1", 3))
    service.clock.advance(60)
    response = await service.put(MODIFY, {a["id"]: 2, b["id"].upper(): 1}, headers={"Authorization": "Bearer SYSTEM//Sysop"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 2
    assert [(e["id"], e["priority"]) for e in body["entries"]] == [(b["id"], 1), (a["id"], 2)]
    assert all(e["updatedBy"] == "Sysop" and e["updatedAt"] != e["createdAt"] for e in body["entries"])
    rotation = await service.put(MODIFY, {a["id"]: 3, b["id"]: 2, c["id"]: 1})
    assert rotation.status_code == 200
    stored = (await service.post(QUERY, {"consumerNames": ["A"], "pagination": {"page": 0, "size": 5, "sortField": "priority", "direction": "ASC"}})).json()
    assert [e["id"] for e in stored["entries"]] == [c["id"], b["id"], a["id"]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Priority map is missing or empty"),
        ({"nope": 1}, "Invalid UUID: nope"),
        ({"0308e42e-af59-4206-8513-3414bb2dbc60": None}, "Priority map contains null value"),
        ({"0308e42e-af59-4206-8513-3414bb2dbc60": 0}, "Invalid priority: 0, should be positive"),
        ({"0308e42e-af59-4206-8513-3414bb2dbc60": 1}, "Not existing UUID: 0308e42e-af59-4206-8513-3414bb2dbc60"),
    ],
)
async def test_modify_validation(service: Service, body: Any, message: str) -> None:
    error(await service.put(MODIFY, body), 400, message, f"PUT {MODIFY}")


async def test_modify_conflicts(service: Service) -> None:
    a, _, other = await create(service, rule("A", "P1|svc|1", 1), rule("A", "P2|svc|1", 2), rule("B", "P1|svc|1", 1))
    mixed = await service.put(MODIFY, {a["id"]: 5, other["id"]: 6})
    error(mixed, 400, "Subscription ids should belong to the same rule set (same consumer and service definition)")
    collide = await service.put(MODIFY, {a["id"]: 2})
    error(collide, 400, "Conflicting rules, the combination of the following fields should be unique: A, service definition: svc, priority: 2")


async def test_remove(service: Service) -> None:
    a, b = await create(service, rule("A", "P1|svc|1", 1), rule("A", "P2|svc|1", 2))
    response = await service.delete(REMOVE, params={"uuids": f"{a['id']},7e6f2a54-3b0e-4c3e-9a53-8d6a1f0e2b11"})
    assert response.status_code == 200 and response.content == b""
    remaining = (await service.post(QUERY, {"consumerNames": ["A"]})).json()
    assert [e["id"] for e in remaining["entries"]] == [b["id"]]
    error(await service.delete(REMOVE, params={"uuids": ""}), 400, "UUIDs are missing", f"DELETE {REMOVE}")
    error(await service.delete(REMOVE, params={"uuids": "bad"}), 400, "Invalid UUID: bad")
    error(await service.delete(REMOVE), 400, "Required parameter 'uuids' is not present.")


async def test_rules_survive_restart_exactly(service: Service, nursery: trio.Nursery) -> None:
    a, b = await create(service, rule("A", "P1|svc|1", 1), rule("A", "P2|svc|1", 2))
    service.clock.advance(5)
    await service.put(MODIFY, {a["id"]: 2, b["id"]: 1})
    before = (await service.post(QUERY, {"consumerNames": ["A"]})).json()
    service.running.shutdown.set()
    await service.running.stopped.wait()
    restarted = await start_service(nursery, service.data_dir, service.clock, **service.backend)
    import httpx

    async with httpx.AsyncClient(base_url=restarted.http_urls[0]) as client:
        after = (await client.post(QUERY, json={"consumerNames": ["A"]}, headers=SYSOP)).json()
    assert after == before
    restarted.shutdown.set()
