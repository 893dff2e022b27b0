"""The OpenAPI document: valid OpenAPI 3.1, complete (every route of the app is in it), examples that
the code's own decoders accept, a local Swagger UI, and — with schemathesis against the live server —
answers that match it: no 5xx, declared statuses and content types, bodies that match their schemas,
and every error body an Arrowhead error body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import positive_data_acceptance

from tests.integration.live_server import LiveServer, live_server
from transports.api.errors import ErrorBody, ExceptionType
from transports.api.schemas import LockListRequestWire, LockQueryRequestWire, RuleListRequestWire, RuleQueryRequestWire
from transports.http.app import HttpAccess, create_app
from transports.observability.monitor import DOCS_ASSETS, Monitor, add_monitor_routes
from transports.observability.openapi import EXAMPLES, MANAGEMENT, build_document
from transports.security.identity import ManagementPolicy

SYSOP = {"Authorization": "Bearer SYSTEM//Sysop"}
EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, http_server: str) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("openapi") / "data", "--no-access-log", http_server=http_server) as server:
        yield server


@pytest.fixture(scope="module")
def document(live: LiveServer) -> dict[str, Any]:
    response = httpx.get(f"{live.url}/openapi.json")  # no identity needed
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    loaded: dict[str, Any] = response.json()
    return loaded


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)  # openapi-spec-validator picks the 3.1 validator from the version field


def test_the_served_document_is_the_generated_one(document: dict[str, Any]) -> None:
    assert document == json.loads(json.dumps(build_document(document["info"]["version"])))


def test_every_route_of_the_app_is_documented(document: dict[str, Any], tmp_path: Path) -> None:
    """Built from the app's own URL map, so a route added without documentation fails here."""
    from transports.observability.health import Health
    from transports.observability.metrics import ServiceMetrics

    app = create_app(None, HttpAccess(ManagementPolicy.SYSOP_ONLY, frozenset()))  # type: ignore[arg-type]
    add_monitor_routes(app, Monitor(ServiceMetrics(process=False), Health(None, None)))
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "docs_file"):  # Flask's static route; the Swagger UI's files
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method.lower(), path))
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert routes == documented


def test_every_operation_declares_its_errors_with_the_arrowhead_body(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400 and path not in ("/health/ready",):
                    media = response["content"]["application/json"]
                    assert media["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
            if operation.get("security") != []:  # needs an identity: 401 is declared
                assert "401" in operation["responses"], (method, path)


def _validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_examples_match_their_schemas_and_our_decoders(document: dict[str, Any]) -> None:
    for item in document["paths"].values():
        for operation in item.values():
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    ref = media.get("schema", {}).get("$ref")
                    if ref and "example" in media:
                        _validator(document, ref.rsplit("/", 1)[1]).validate(media["example"])
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                ref = body["schema"].get("$ref") or body["schema"]["anyOf"][0]["$ref"]
                _validator(document, ref.rsplit("/", 1)[1]).validate(body["example"])
    # The same examples decode with the Structs the server decodes with.
    for key, wire in (("lock_create", LockListRequestWire), ("lock_query", LockQueryRequestWire),
                      ("store_create", RuleListRequestWire), ("store_query", RuleQueryRequestWire)):
        msgspec.json.decode(json.dumps(EXAMPLES[key]), type=wire, strict=False)
    assert {operation.operation_id for operation in MANAGEMENT} == {
        "lockCreate", "lockQuery", "lockRemove", "storeQuery", "storeCreate", "storeModifyPriorities", "storeRemove",
    }


def test_the_request_examples_work_against_the_service(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, headers=SYSOP) as client:
        by_id = {operation.operation_id: operation for operation in MANAGEMENT}
        for operation_id in ("lockCreate", "lockQuery", "storeCreate", "storeQuery"):
            operation = by_id[operation_id]
            response = client.post(operation.path, json=operation.request_example)
            assert response.status_code == operation.success, response.text
            assert response.json()["count"] >= 1


def test_docs_is_a_local_swagger_ui(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(source.startswith("docs/") for source in sources)  # nothing from a CDN
        assert '"openapi.json"' in page.text
        for source in sources:
            name = source.removeprefix("docs/")
            asset = client.get(f"/{source}")
            assert asset.status_code == 200, source
            assert asset.headers["content-type"] == DOCS_ASSETS[name]
            assert len(asset.content) > 100
        assert b"SwaggerUIBundle" in client.get("/docs/swagger-ui-bundle.js").content
        missing = client.get("/docs/../../etc/passwd")
        assert missing.status_code in (404, 401)
        missing = client.get("/docs/oauth2-redirect.html")  # in the package, but not served
        assert missing.status_code == 404 and missing.json()["exceptionType"] == "DATA_NOT_FOUND"


# ------------------------------------------------------------------------------------ schemathesis


def arrowhead_error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx answer is the Arrowhead error body, its errorCode the HTTP status."""
    if response.status_code < 400 or case.path == "/health/ready":
        return None
    body = msgspec.json.decode(response.content, type=ErrorBody)
    assert body.errorCode == response.status_code, body
    assert body.exceptionType in ExceptionType.__members__, body
    assert body.errorMessage.strip(), body
    content_type = response.headers.get("content-type") or [""]  # schemathesis: header → list of values
    assert content_type[0] == "application/json"
    return True


# The generated document (the server serves exactly this one: see the test above), so that the cases can be
# collected before the server starts; each case is sent to the live server.
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(build_document())))


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_the_live_server_conforms_to_its_document(case: Any, live: LiveServer) -> None:
    # positive_data_acceptance is left out: the wire schemas are lenient on purpose (every field optional,
    # elements nullable) so that the validators can answer with the reference's own 400 messages; a
    # schema-valid body is therefore often, and rightly, a 400.
    case.call_and_validate(base_url=live.url, headers=SYSOP, additional_checks=[arrowhead_error_body],
                           excluded_checks=[positive_data_acceptance], timeout=10)

