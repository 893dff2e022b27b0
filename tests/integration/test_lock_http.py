"""Lock management over real HTTP against the real service (ARROWHEAD-REFERENCE.md §2, DECISIONS.md)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.integration.conftest import LOCK, SYSOP, Service, future, start_service

CREATE = f"{LOCK}/create"
QUERY = f"{LOCK}/query"

pytestmark = pytest.mark.backends("local", "etcd")  # tests/backends.py: also on the real etcd cluster


def lock(instance: str = "TemperatureProvider2|kelvinInfo|1.0.0", owner: str = "TemperatureManager",
         expires: str | None = None) -> dict[str, Any]:
    return {"serviceInstanceId": instance, "owner": owner, "expiresAt": expires or future()}


def error(response: Any, status: int, message: str, origin: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errorMessage"] == message
    assert body["errorCode"] == status
    if origin is not None:
        assert body["origin"] == origin
    assert "origin" in body  # DECISIONS 11: every error carries an origin


async def test_create_returns_created_locks_in_request_order(service: Service) -> None:
    expires = future(600, service.clock)
    response = await service.post(CREATE, {"locks": [
        lock("provider-a|kelvin-info|1", "temperature manager", expires),
        lock("ProviderB|kelvinInfo|2.1", "TemperatureManager", expires),
    ]})
    assert response.status_code == 201
    body = response.json()
    assert body["count"] == 2
    first, second = body["entries"]
    assert list(first) == ["id", "serviceInstanceId", "owner", "expiresAt", "temporary"]  # no null job id
    assert first["serviceInstanceId"] == "ProviderA|kelvinInfo|1.0.0"
    assert first["owner"] == "TemperatureManager"
    assert first["expiresAt"] == expires
    assert first["temporary"] is False
    assert second["serviceInstanceId"] == "ProviderB|kelvinInfo|2.1.0"
    assert second["id"] == first["id"] + 1


async def test_create_truncates_fractions_and_converts_offsets_to_utc(service: Service) -> None:
    response = await service.post(CREATE, {"locks": [lock(expires="2999-01-01T01:30:15.987+01:00")]})
    assert response.status_code == 201
    assert response.json()["entries"][0]["expiresAt"] == "2999-01-01T00:30:15Z"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Lock list is missing or empty"),
        ({"locks": []}, "Lock list is missing or empty"),
        ({"locks": [None]}, "Request payload contains null element"),
        ({"locks": [{"owner": "A", "expiresAt": "2999-01-01T00:00:00Z"}]}, "Service instance id is missing"),
        ({"locks": [{"serviceInstanceId": "P|s|1", "owner": "  ", "expiresAt": "2999-01-01T00:00:00Z"}]},
         "Owner is missing"),
        ({"locks": [{"serviceInstanceId": "P|s|1", "owner": "A"}]}, "Expiration time is missing"),
        ({"locks": [{"serviceInstanceId": "P|s|1", "owner": "A", "expiresAt": "2999-01-01 00:00:00Z"}]},
         "Invalid expires at format: 2999-01-01 00:00:00Z"),
        ({"locks": [{"serviceInstanceId": "P|s|1", "owner": "A", "expiresAt": "2001-01-01T00:00:00Z"}]},
         "Expires at is in the past: 2001-01-01T00:00:00Z"),
        ({"locks": [{"serviceInstanceId": "P|s", "owner": "A", "expiresAt": "2999-01-01T00:00:00Z"}]},
         "The specified service instance identifier does not match the naming convention: P|s"),
        ({"locks": [{"serviceInstanceId": "P||1.0.0", "owner": "A", "expiresAt": "2999-01-01T00:00:00Z"}]},
         "The specified service instance identifier does not match the naming convention: P||1.0.0"),
        ({"locks": [{"serviceInstanceId": "P|s|1", "owner": "2ndOwner", "expiresAt": "2999-01-01T00:00:00Z"}]},
         "The specified system name does not match the naming convention: 2ndOwner"),
        ({"locks": [lock("P|s|1", "A", "2999-01-01T00:00:00Z"), lock("p|s|1.0", "B", "2999-01-01T00:00:00Z")]},
         "Duplicate service instance id: P|s|1.0.0"),
        ({"locks": "x"}, None),
    ],
)
async def test_create_validation_errors(service: Service, body: Any, message: str | None) -> None:
    response = await service.post(CREATE, body)
    if message is None:
        assert response.status_code == 400
        assert response.json()["errorMessage"].startswith("Could not parse payload. Reason: ")
        return
    error(response, 400, message, f"POST {CREATE}")


async def test_create_is_all_or_nothing_and_lists_every_conflict(service: Service) -> None:
    assert (await service.post(CREATE, {"locks": [lock("A|s|1"), lock("B|s|1")]})).status_code == 201
    response = await service.post(CREATE, {"locks": [lock("C|s|1"), lock("B|s|1"), lock("A|s|1")]})
    error(response, 400, "Already locked: B|s|1.0.0, A|s|1.0.0", f"POST {CREATE}")
    query = await service.post(QUERY, {"serviceInstanceIds": ["C|s|1"]})
    assert query.json() == {"entries": [], "count": 0}


async def test_expired_locks_never_block_and_are_never_returned(service: Service) -> None:
    await service.post(CREATE, {"locks": [lock("A|s|1", expires=future(10, service.clock))]})
    service.clock.advance(10)  # now == expiresAt: expired
    assert (await service.post(QUERY)).json() == {"entries": [], "count": 0}
    response = await service.post(CREATE, {"locks": [lock("A|s|1", "NewOwner", future(60, service.clock))]})
    assert response.status_code == 201
    entries = (await service.post(QUERY)).json()["entries"]
    assert [(e["serviceInstanceId"], e["owner"]) for e in entries] == [("A|s|1.0.0", "NewOwner")]


@pytest.mark.backends("local")  # the write-ahead log's record of the purge (etcd's: tests/etcd/test_expiry.py)
async def test_expiry_purge_is_logged(service: Service) -> None:
    await service.post(CREATE, {"locks": [lock("A|s|1", expires=future(5, service.clock)), lock("B|s|1")]})
    before = service.running.wal.appended_lsn
    service.clock.advance(5)
    # The manual clock does not wake the actor's timer; the purge happens in this message.
    assert await service.running.operations.locks.purge_now() == 1
    assert service.running.wal.appended_lsn == before + 1  # one LocksRemoved(expired) record
    assert await service.running.operations.locks.purge_now() == 0
    assert await service.running.operations.locks.count() == 1


async def seed_locks(service: Service) -> list[dict[str, Any]]:
    locks = [
        lock("Alpha|svc|1", "OwnerB", future(300, service.clock)),
        lock("Beta|svc|1", "OwnerA", future(100, service.clock)),
        lock("Gamma|svc|1", "OwnerB", future(200, service.clock)),
        lock("Delta|svc|1", "OwnerC", future(100, service.clock)),
    ]
    response = await service.post(CREATE, {"locks": locks})
    assert response.status_code == 201
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def test_query_filters_and_default_order(service: Service) -> None:
    created = await seed_locks(service)
    ids = [e["id"] for e in created]
    everything = (await service.post(QUERY)).json()  # no body: no filters, id DESC
    assert [e["id"] for e in everything["entries"]] == ids[::-1]
    assert everything["count"] == 4

    by_owner = (await service.post(QUERY, {"owners": ["owner-b"]})).json()
    assert {e["serviceInstanceId"] for e in by_owner["entries"]} == {"Alpha|svc|1.0.0", "Gamma|svc|1.0.0"}
    doc_spelling = (await service.post(QUERY, {"owner": ["OwnerB"]})).json()
    assert doc_spelling == by_owner
    both = await service.post(QUERY, {"owner": ["OwnerB"], "owners": ["OwnerA"]})
    error(both, 400, "Conflicting fields: owners and owner have different values", f"POST {QUERY}")

    and_filter = (await service.post(QUERY, {"owners": ["OwnerB"], "ids": [ids[0], ids[1]]})).json()
    assert [e["id"] for e in and_filter["entries"]] == [ids[0]]
    window = (await service.post(QUERY, {
        "expiresAfter": future(100, service.clock), "expiresBefore": future(300, service.clock)})).json()
    assert [e["serviceInstanceId"] for e in window["entries"]] == ["Gamma|svc|1.0.0"]
    job = (await service.post(QUERY, {"orchestrationJobIds": ["091cc9c3-e704-4d0a-8d70-96fb2c11da55"]})).json()
    assert job == {"entries": [], "count": 0}  # management-made locks have no job id


async def test_query_pagination_and_sorting(service: Service) -> None:
    created = await seed_locks(service)
    page = (await service.post(QUERY, {"pagination": {"page": 1, "size": 2, "direction": "asc", "sortField": "owner"}})).json()
    assert page["count"] == 4
    assert [e["owner"] for e in page["entries"]] == ["OwnerB", "OwnerC"]
    first_page = (await service.post(QUERY, {"pagination": {"page": 0, "size": 2, "direction": "ASC", "sortField": "owner"}})).json()
    assert [e["owner"] for e in first_page["entries"]] == ["OwnerA", "OwnerB"]
    assert first_page["entries"][1]["id"] == created[0]["id"]  # tie on OwnerB broken by id ASC
    doc_names = (await service.post(QUERY, {"pagination": {"pageNumber": 1, "pageSize": 2, "pageDirection": "ASC", "pageSortField": "owner"}})).json()
    assert doc_names == page
    by_expiry = (await service.post(QUERY, {"pagination": {"page": 0, "size": 10, "sortField": "expiresAt"}})).json()
    assert [e["serviceInstanceId"] for e in by_expiry["entries"]] == [
        "Alpha|svc|1.0.0", "Gamma|svc|1.0.0", "Delta|svc|1.0.0", "Beta|svc|1.0.0"]  # DESC, ties by id DESC
    past_end = (await service.post(QUERY, {"pagination": {"page": 9, "size": 2}})).json()
    assert past_end == {"entries": [], "count": 4}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"pagination": {"size": 5}}, "If size parameter is defined then page parameter cannot be undefined"),
        ({"pagination": {"page": 0, "size": 1001}}, "The page size cannot be larger than 1000"),
        ({"pagination": {"page": 0}}, "If page parameter is defined then size parameter cannot be undefined"),
        ({"pagination": {"direction": "up"}}, "Direction is invalid. Only ASC or DESC are allowed"),
        ({"pagination": {"sortField": "temporary"}},
         "Sort field is invalid. Only the following are allowed: [id, owner, serviceInstanceId, expiresAt]"),
        ({"ids": [1, None]}, "ID list contains empty element"),
        ({"orchestrationJobIds": [" "]}, "Orchestration job id list contains empty element"),
        ({"serviceInstanceIds": [""]}, "Service instance id list contains empty element"),
        ({"owners": ["A", None]}, "Owner list contains empty element"),
        ({"orchestrationJobIds": ["abc123"]}, "Invalid orchestration job id: abc123"),
        ({"expiresBefore": " tomorrow "}, "Invalid expires before: tomorrow"),
        ({"expiresAfter": "2025-11-08T11:24Z"}, "Invalid expires after: 2025-11-08T11:24Z"),
    ],
)
async def test_query_validation_errors(service: Service, body: Any, message: str) -> None:
    error(await service.post(QUERY, body), 400, message, f"POST {QUERY}")


async def test_remove_only_the_named_owners_locks(service: Service) -> None:
    await seed_locks(service)
    path = f"{LOCK}/remove/owner-b"
    response = await service.delete(path, params={"instanceIds": "Alpha|svc|1, Beta|svc|1,Unknown|svc|1"})
    assert response.status_code == 200
    assert response.content == b""
    remaining = (await service.post(QUERY, {"pagination": {"page": 0, "size": 10, "direction": "ASC", "sortField": "serviceInstanceId"}})).json()
    assert [e["serviceInstanceId"] for e in remaining["entries"]] == ["Beta|svc|1.0.0", "Delta|svc|1.0.0", "Gamma|svc|1.0.0"]
    repeated = await service.delete(f"{LOCK}/remove/OwnerB", params=[("instanceIds", "Gamma|svc|1"), ("instanceIds", "Delta|svc|1")])
    assert repeated.status_code == 200
    assert (await service.post(QUERY)).json()["count"] == 2


@pytest.mark.parametrize(
    ("owner", "params", "message"),
    [
        ("OwnerA", {"instanceIds": ""}, "Service instance id list empty"),
        ("OwnerA", {"instanceIds": "A|s|1,,B|s|1"}, "Service instance id list contains empty element"),
        ("%20", {"instanceIds": "A|s|1"}, "Owner is missing"),
        ("2nd", {"instanceIds": "A|s|1"}, "The specified system name does not match the naming convention: 2nd"),
        ("OwnerA", {"instanceIds": "A|s"}, "The specified service instance identifier does not match the naming convention: A|s"),
        ("OwnerA", {}, "Required parameter 'instanceIds' is not present."),
    ],
)
async def test_remove_validation_errors(service: Service, owner: str, params: dict[str, str], message: str) -> None:
    response = await service.delete(f"{LOCK}/remove/{owner}", params=params)
    decoded_owner = " " if owner == "%20" else owner
    error(response, 400, message, f"DELETE {LOCK}/remove/{decoded_owner}")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "No authorization header has been provided"),
        ("", "No authorization header has been provided"),
        ("Bearer", "Invalid authorization header"),
        ("bearer SYSTEM//Sysop", "Invalid authorization header"),
        ("Bearer  SYSTEM//Sysop", "Invalid authorization header"),
        ("Bearer CONSUMER//Sysop", "Invalid authorization header"),
        ("Bearer SYSTEM//Sysop//", "Invalid authorization header"),  # DECISIONS 10
        ("Bearer SYSTEM//2nd", "Invalid authorization header"),  # DECISIONS 10
        ("Bearer SYSTEM//", "Invalid authorization header"),
    ],
)
async def test_authentication_errors(service: Service, header: str | None, message: str) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await service.post(QUERY, {}, headers=headers)
    error(response, 401, message, f"POST {QUERY}")
    assert response.json()["exceptionType"] == "AUTH"


async def test_sysop_only_policy(service: Service) -> None:
    assert (await service.post(QUERY, {}, headers={"Authorization": "Bearer SYSTEM//sysop"})).status_code == 200
    refused = await service.post(QUERY, {}, headers={"Authorization": "Bearer SYSTEM//SYSOP"})
    error(refused, 403, "Requester has no management permission", f"{service.url}{QUERY}")
    assert refused.json()["exceptionType"] == "FORBIDDEN"
    refused_remove = await service.delete(f"{LOCK}/remove/A", params={"instanceIds": "x"},
                                          headers={"Authorization": "Bearer SYSTEM//Orchestrator"})
    assert refused_remove.status_code == 403


@pytest.mark.settings(management_policy="whitelist", management_whitelist=["orchestrator-one"])
async def test_whitelist_policy(service: Service) -> None:
    ok = await service.post(QUERY, {}, headers={"Authorization": "Bearer SYSTEM//OrchestratorOne"})
    assert ok.status_code == 200
    refused = await service.post(QUERY, {}, headers={"Authorization": "Bearer SYSTEM//Other"})
    assert refused.status_code == 403


@pytest.mark.settings(management_policy="disabled")
async def test_disabled_policy_lets_any_authenticated_caller_in(service: Service) -> None:
    assert (await service.post(QUERY, {}, headers={"Authorization": "Bearer SYSTEM//Anyone"})).status_code == 200
    assert (await service.post(QUERY, {}, headers={})).status_code == 401


async def test_framework_errors_use_arrowhead_bodies(service: Service) -> None:
    malformed = await service.client.post(CREATE, content=b"{not json", headers={**SYSOP, "Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json()["errorMessage"].startswith("Could not parse payload. Reason: JSON is malformed")
    assert malformed.json()["origin"] == f"POST {CREATE}"
    wrong_type = await service.client.post(CREATE, content=b"{}", headers={**SYSOP, "Content-Type": "text/plain"})
    error(wrong_type, 415, "Content type 'text/plain' is not supported")
    wrong_method = await service.client.get(CREATE, headers=SYSOP)
    error(wrong_method, 405, "Request method 'GET' is not supported")
    unknown = await service.client.post("/serviceorchestration/nothing", headers=SYSOP)
    error(unknown, 404, "No endpoint POST /serviceorchestration/nothing")
    unknown_unauthenticated = await service.client.post("/serviceorchestration/nothing")
    error(unknown_unauthenticated, 401, "No authorization header has been provided")
    too_big = await service.client.post(CREATE, content=b" " * ((1 << 20) + 1), headers={**SYSOP, "Content-Type": "application/json"})
    error(too_big, 413, "Request body is too large (the maximum is 1048576 bytes)")
    null_body = await service.client.post(CREATE, content=b"null", headers={**SYSOP, "Content-Type": "application/json"})
    error(null_body, 400, "Request payload is null")
    empty_body = await service.client.post(CREATE, headers=SYSOP)
    error(empty_body, 400, "Request payload is null")


@pytest.mark.settings(max_batch=3)
async def test_batch_limit(service: Service) -> None:
    response = await service.post(CREATE, {"locks": [lock(f"P{i}|s|1") for i in range(4)]})
    error(response, 400, "Too many locks in one request: 4 (the maximum is 3)")


async def test_echo_is_authenticated(service: Service) -> None:
    ok = await service.client.get("/serviceorchestration/monitor/echo", headers={"Authorization": "Bearer SYSTEM//Anyone"})
    assert ok.status_code == 200
    assert ok.text == "Got it!"
    assert (await service.client.get("/serviceorchestration/monitor/echo")).status_code == 401


async def test_restart_keeps_locks_and_ids_keep_growing(service: Service, nursery: trio.Nursery) -> None:
    created = (await service.post(CREATE, {"locks": [lock("A|s|1"), lock("B|s|1")]})).json()["entries"]
    await service.delete(f"{LOCK}/remove/TemperatureManager", params={"instanceIds": "B|s|1"})
    service.running.shutdown.set()
    await service.running.stopped.wait()
    restarted = await start_service(nursery, service.data_dir, service.clock, **service.backend)
    import httpx

    async with httpx.AsyncClient(base_url=restarted.http_urls[0]) as client:
        entries = (await client.post(QUERY, headers=SYSOP)).json()["entries"]
        assert entries == [created[0]]
        again = await client.post(CREATE, json={"locks": [lock("C|s|1")]}, headers=SYSOP)
        new_id = again.json()["entries"][0]["id"]
        if service.backend:  # etcd: ids come from the granting txn's revision; they grow, with gaps
            assert new_id > created[1]["id"]
        else:
            assert new_id == created[1]["id"] + 1
    restarted.shutdown.set()
