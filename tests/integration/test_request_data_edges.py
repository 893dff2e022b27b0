"""Request data the decoder accepts but the service could not handle, over HTTP against the real service:
invalid UTF-8 inside JSON strings (was a 500) and priorities beyond a Java `int` (was a 500 when the
event was encoded). Both are a 400 with the parse-error message, as other malformed JSON."""

from __future__ import annotations

import pytest

from tests.integration.conftest import LOCK, STORE, SYSOP, Service, future

JSON = {**SYSOP, "Content-Type": "application/json"}
INT_RANGE = "out of range of int (-2147483648 - 2147483647)"

# One request per JSON operation, with the invalid UTF-8 (0xff) inside a string literal.
INVALID_UTF8 = [
    ("POST", f"{LOCK}/create",
     b'{"locks":[{"serviceInstanceId":"P|s|1","owner":"Own\xffer","expiresAt":"2999-01-01T00:00:00Z"}]}'),
    ("POST", f"{LOCK}/query", b'{"owners":["Own\xffer"]}'),
    ("POST", f"{STORE}/query", b'{"consumerNames":["\xff"]}'),
    ("POST", f"{STORE}/create", b'{"candidates":[{"consumer":"C","serviceInstanceId":"P|s\xe2\x82|1","priority":1}]}'),
    ("PUT", f"{STORE}/modify-priorities", b'{"\xed\xa0\x80":1}'),  # an encoded surrogate, in a key
]


def assert_parse_error(response_json: dict[str, object], fragment: str) -> None:
    message = response_json["errorMessage"]
    assert isinstance(message, str) and message.startswith("Could not parse payload. Reason: "), message
    assert fragment in message, message
    assert response_json["errorCode"] == 400 and response_json["exceptionType"] == "INVALID_PARAMETER"


@pytest.mark.parametrize(("method", "path", "body"), INVALID_UTF8, ids=[path for _, path, _ in INVALID_UTF8])
async def test_invalid_utf8_in_a_json_string_is_a_400(service: Service, method: str, path: str, body: bytes) -> None:
    response = await service.client.request(method, path, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert_parse_error(response.json(), "Invalid UTF-8 in a JSON string")
    assert response.json()["origin"] == f"{method} {path}"
    assert (await service.post(f"{LOCK}/query", {})).status_code == 200  # and the service is fine


def rule(priority: object, consumer: str = "Consumer") -> dict[str, object]:
    return {"consumer": consumer, "serviceInstanceId": "Provider|svc|1.0.0", "priority": priority}


@pytest.mark.parametrize(
    ("priority", "shown"),
    [(2**64, str(2**64)), (2**63, str(2**63)), (2**31, "2147483648"), (-(2**31) - 1, "-2147483649"),
     (str(2**70), str(2**70)), (10**1200, "[Integer with 1201 digits]")],
    ids=["2^64", "2^63", "2^31", "-2^31-1", "numeric string 2^70", "10^1200"],
)
async def test_a_priority_beyond_a_java_int_is_a_400_on_create(service: Service, priority: object, shown: str) -> None:
    response = await service.post(f"{STORE}/create", {"candidates": [rule(1, "Other"), rule(priority)]})
    assert response.status_code == 400, response.text
    assert_parse_error(response.json(), f"Numeric value ({shown}) {INT_RANGE} - at `$.candidates[1].priority`")
    query = await service.post(f"{STORE}/query", {"consumerNames": ["Other", "Consumer"]})
    assert query.json()["count"] == 0  # nothing created


async def test_the_largest_java_int_is_a_valid_priority(service: Service) -> None:
    response = await service.post(f"{STORE}/create", {"entries": [rule(2**31 - 1)]})
    assert response.status_code == 201, response.text
    assert response.json()["entries"][0]["priority"] == 2**31 - 1
    rule_id = response.json()["entries"][0]["id"]
    modified = await service.put(f"{STORE}/modify-priorities", {rule_id: 2**31 - 2})
    assert modified.status_code == 200 and modified.json()["entries"][0]["priority"] == 2**31 - 2


async def test_a_priority_beyond_a_java_int_is_a_400_on_modify(service: Service) -> None:
    created = await service.post(f"{STORE}/create", {"candidates": [rule(1)]})
    rule_id = created.json()["entries"][0]["id"]
    response = await service.put(f"{STORE}/modify-priorities", {rule_id: 2**64})
    assert response.status_code == 400, response.text
    assert_parse_error(response.json(), f"Numeric value ({2**64}) {INT_RANGE} - at `$[\"{rule_id}\"]`")
    # checked while parsing, as Jackson does: before the reference's own checks (here: an invalid UUID key)
    response = await service.put(f"{STORE}/modify-priorities", {"not-a-uuid": 1, rule_id: -(2**40)})
    assert_parse_error(response.json(), f"Numeric value ({-(2**40)}) {INT_RANGE}")
    query = await service.post(f"{STORE}/query", {"ids": [rule_id]})
    assert query.json()["entries"][0]["priority"] == 1  # unchanged


@pytest.mark.parametrize("field", ["minPriority", "maxPriority"])
async def test_a_priority_filter_beyond_a_java_int_is_a_400(service: Service, field: str) -> None:
    response = await service.post(f"{STORE}/query", {"consumerNames": ["C"], field: 2**64})
    assert response.status_code == 400, response.text
    assert_parse_error(response.json(), f"{INT_RANGE} - at `$.{field}`")


async def test_locks_still_work_after_the_refusals(service: Service) -> None:
    await service.post(f"{STORE}/create", {"candidates": [rule(2**64)]})
    await service.client.post(f"{LOCK}/create", content=INVALID_UTF8[0][2], headers=JSON)
    lock = {"serviceInstanceId": "P|s|1", "owner": "Owner", "expiresAt": future(60, service.clock)}
    assert (await service.post(f"{LOCK}/create", {"locks": [lock]})).status_code == 201
