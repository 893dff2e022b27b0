"""The OpenAPI 3.1 document of the HTTP API, generated from the msgspec Structs the code decodes and
encodes with (`transports/api/schemas.py`, `pagination.py`, `errors.py`, `health.py`), so it cannot drift
from what the server accepts and answers.

Generation is pure: `build_document()` returns a dict; `/openapi.json` serves it encoded once.
Post-processing of msgspec's JSON Schema is limited to naming (the Arrowhead data-model names of the
interface documents instead of our Python class names) and to facts the Structs cannot carry
(the `exceptionType` enumeration, descriptions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from transports.api.errors import ErrorBody, ExceptionType
from transports.api.operations import ECHO_REPLY
from transports.api.schemas import (
    LockListRequestWire,
    LockListResponse,
    LockQueryRequestWire,
    PriorityMapWire,
    RuleListRequestWire,
    RuleListResponse,
    RuleQueryRequestWire,
)
from transports.http.app import ECHO_PATH, LOCK_PATH, MAX_BODY_BYTES, STORE_PATH
from transports.observability.health import HealthReport

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{name}"

# msgspec's names (our classes) → the data-model names of the Arrowhead interface documents.
SCHEMA_NAMES: dict[str, str] = {
    "LockListRequestWire": "ServiceOrchestrationLockListRequest",
    "LockRequestWire": "ServiceOrchestrationLockRequest",
    "LockQueryRequestWire": "ServiceOrchestrationLockQueryRequest",
    "LockListResponse": "ServiceOrchestrationLockListResponse",
    "LockResponse": "ServiceOrchestrationLockResponse",
    "PaginationWire": "PageRequest",
    "RuleListRequestWire": "ServiceOrchestrationSimpleStoreCreateListRequest",
    "RuleRequestWire": "ServiceOrchestrationSimpleStoreCreateRequest",
    "RuleQueryRequestWire": "ServiceOrchestrationSimpleStoreQueryRequest",
    "RuleListResponse": "ServiceOrchestrationSimpleStoreListResponse",
    "RuleResponse": "ServiceOrchestrationSimpleStoreResponse",
    "ErrorBody": "ErrorResponse",
    "HealthReport": "HealthReport",
    "CheckResult": "HealthCheck",
}
PRIORITY_MAP = "ServiceOrchestrationSimpleStorePriorityMap"

# ---------------------------------------------------------------------------------------- examples

_INSTANCE = "TemperatureProvider2|kelvinInfo|1.0.0"
_LOCK_ENTRY = {
    "id": 5, "serviceInstanceId": _INSTANCE, "owner": "TemperatureManager",
    "expiresAt": "2030-11-08T11:24:43Z", "temporary": False,
}
_RULE_ENTRY = {
    "id": "0308e42e-af59-4206-8513-3414bb2dbc60", "consumer": "TestConsumerB", "serviceDefinition": "testService",
    "serviceInstanceId": "TestProvider|testService|1.0.0", "priority": 2, "createdBy": "Sysop",
    "updatedBy": "Sysop", "createdAt": "2025-11-08T12:00:00Z", "updatedAt": "2025-11-08T15:14:00Z",
}
EXAMPLES: dict[str, Any] = {
    "lock_create": {"locks": [{"serviceInstanceId": _INSTANCE, "owner": "TemperatureManager",
                               "expiresAt": "2030-11-08T11:24:43Z"}]},
    "lock_query": {"pagination": {"page": 0, "size": 10, "direction": "ASC", "sortField": "owner"},
                   "serviceInstanceIds": [_INSTANCE], "owners": ["TemperatureManager"],
                   "expiresAfter": "2025-11-08T11:00:00Z"},
    "lock_list": {"entries": [_LOCK_ENTRY], "count": 1},
    "store_query": {"pagination": {"page": 0, "size": 10, "direction": "ASC", "sortField": "createdAt"},
                    "consumerNames": ["TestConsumerA", "TestConsumerB"], "serviceDefinitions": ["testService"],
                    "minPriority": 1, "maxPriority": 25},
    "store_create": {"candidates": [{"consumer": "TestConsumerB",
                                     "serviceInstanceId": "TestProvider|testService|1.0.0", "priority": 2}]},
    "store_priorities": {"0308e42e-af59-4206-8513-3414bb2dbc60": 1, "ace0f20b-b3aa-4935-adc7-d5dc58d4dc99": 2},
    "rule_list": {"entries": [_RULE_ENTRY], "count": 1},
}


def _error_example(status: int, kind: ExceptionType, message: str, origin: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"errorMessage": message, "errorCode": status, "exceptionType": kind.name}
    if origin is not None:
        body["origin"] = origin
    return body


# ---------------------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Operation:
    """One HTTP operation as documented: what it takes, what it answers."""

    operation_id: str
    method: str
    path: str
    summary: str
    tag: str
    success: int
    response: str | None = None  # component name of the success body; None = no body
    response_example: Any = None
    request: str | None = None  # component name of the JSON body
    request_required: bool = True
    request_example: Any = None
    parameters: tuple[dict[str, Any], ...] = ()
    description: str = ""
    links: Mapping[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"{self.method.upper()} {self.path}"


def _list_query(name: str, description: str, example: str) -> dict[str, Any]:
    return {
        "name": name, "in": "query", "required": True, "description": description,
        "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": True,
        "example": [example],
    }


MANAGEMENT: tuple[Operation, ...] = (
    Operation(
        "lockCreate", "post", f"{LOCK_PATH}/create", "Create orchestration locks (all or nothing)", "lock", 201,
        "ServiceOrchestrationLockListResponse", EXAMPLES["lock_list"],
        "ServiceOrchestrationLockListRequest", True, EXAMPLES["lock_create"],
        links={"RemoveCreatedLock": {
            "operationId": "lockRemove",
            "parameters": {"owner": "$response.body#/entries/0/owner",
                           "instanceIds": "$response.body#/entries/0/serviceInstanceId"},
            "description": "Remove the first lock just created",
        }},
    ),
    Operation(
        "lockQuery", "post", f"{LOCK_PATH}/query", "Query active locks (filters AND across fields, OR within one)",
        "lock", 200, "ServiceOrchestrationLockListResponse", EXAMPLES["lock_list"],
        "ServiceOrchestrationLockQueryRequest", False, EXAMPLES["lock_query"],
        description="An absent body means no filters. `owner` is accepted as a spelling of `owners`.",
    ),
    Operation(
        "lockRemove", "delete", f"{LOCK_PATH}/remove/{{owner}}", "Remove an owner's locks on service instances",
        "lock", 200,
        parameters=(
            {"name": "owner", "in": "path", "required": True, "description": "SystemName of the owner",
             "schema": {"type": "string"}, "example": "TemperatureManager"},
            _list_query("instanceIds", "ServiceInstanceIDs (repeated, or one comma-separated value); `|` "
                        "percent-encoded as %7C", _INSTANCE),
        ),
        description="Idempotent: instances without a lock of this owner are ignored. No response body.",
    ),
    Operation(
        "storeQuery", "post", f"{STORE_PATH}/query", "Query simple-store rules", "simple-store", 200,
        "ServiceOrchestrationSimpleStoreListResponse", EXAMPLES["rule_list"],
        "ServiceOrchestrationSimpleStoreQueryRequest", True, EXAMPLES["store_query"],
        description="List filters also accept a single string (one-element list); blank strings and empty "
        "lists mean not given.",
    ),
    Operation(
        "storeCreate", "post", f"{STORE_PATH}/create", "Create simple-store rules (all or nothing)", "simple-store",
        201, "ServiceOrchestrationSimpleStoreListResponse", EXAMPLES["rule_list"],
        "ServiceOrchestrationSimpleStoreCreateListRequest", True, EXAMPLES["store_create"],
        description="The list may be called `candidates` (reference) or `entries` (interface document).",
        links={"RemoveCreatedRule": {
            "operationId": "storeRemove", "parameters": {"uuids": "$response.body#/entries/0/id"},
            "description": "Remove the first rule just created",
        }},
    ),
    Operation(
        "storeModifyPriorities", "put", f"{STORE_PATH}/modify-priorities",
        "Set the priorities of rules (atomic; uniqueness checked on the final state)", "simple-store", 200,
        "ServiceOrchestrationSimpleStoreListResponse", EXAMPLES["rule_list"],
        PRIORITY_MAP, True, EXAMPLES["store_priorities"],
    ),
    Operation(
        "storeRemove", "delete", f"{STORE_PATH}/remove", "Remove simple-store rules by id", "simple-store", 200,
        parameters=(_list_query("uuids", "Rule ids (repeated, or one comma-separated value)",
                                "0308e42e-af59-4206-8513-3414bb2dbc60"),),
        description="Idempotent: unknown ids are ignored. No response body.",
    ),
)

_DESCRIPTION = f"""\
Eclipse Arrowhead 5 compatible **serviceOrchestrationLockManagement** and
**serviceOrchestrationSimpleStoreManagement** (one process, one port).

Every management operation needs an identity: with the `declared` authentication policy an
`Authorization: Bearer SYSTEM//<SystemName>` header (the sysop is `SYSTEM//Sysop`); with the
`certificate` policy an HTTPS client certificate. Who may call them is the management policy
(`sysop-only` by default). Every error answers with the Arrowhead error body (`ErrorResponse`).
Request bodies over {MAX_BODY_BYTES} bytes are refused with 413.

The same seven operations are served over MQTT (request/response templates) on
`<prefix>/orchestration/management/lock/{{create,query,remove}}` and
`<prefix>/orchestration/management/store/{{query,create,modify-priorities,remove}}`.

The operational endpoints (`/health/*`, `/metrics`, `/openapi.json`, `/docs`) need no identity, as the
reference leaves its api-docs open.
"""


def _error_statuses(operation: Operation) -> dict[int, tuple[ExceptionType, str, str | None]]:
    statuses: dict[int, tuple[ExceptionType, str, str | None]] = {
        400: (ExceptionType.INVALID_PARAMETER, "Owner is missing", operation.origin),
        401: (ExceptionType.AUTH, "No authorization header has been provided", None),
        403: (ExceptionType.FORBIDDEN, "Requester has no management permission",
              f"http://127.0.0.1:8441{operation.path}"),
        500: (ExceptionType.INTERNAL_SERVER_ERROR, "Internal server error", operation.origin),
        503: (ExceptionType.EXTERNAL_SERVER_ERROR,
              "Service unavailable: write-ahead log unavailable: the log is closed", operation.origin),
    }
    if "{" in operation.path:
        statuses[404] = (ExceptionType.DATA_NOT_FOUND, f"No endpoint DELETE {LOCK_PATH}/remove/a/b", operation.origin)
    if operation.request is not None:
        statuses[413] = (ExceptionType.INVALID_PARAMETER,
                         f"Request body is too large (the maximum is {MAX_BODY_BYTES} bytes)", operation.origin)
        statuses[415] = (ExceptionType.INVALID_PARAMETER, "Content type 'text/plain' is not supported",
                         operation.origin)
    return statuses


_REASONS = {
    400: "Invalid request (message says what and where)", 401: "No or invalid identity",
    403: "The requester may not use management services", 404: "No such endpoint",
    413: "Request body too large", 415: "Body is not application/json", 500: "Unexpected error",
    503: "The service is shutting down or its log is unavailable",
}


def _error_response(status: int, kind: ExceptionType, message: str, origin: str | None) -> dict[str, Any]:
    return {
        "description": _REASONS[status],
        "content": {"application/json": {
            "schema": {"$ref": REF.format(name="ErrorResponse")},
            "example": _error_example(status, kind, message, origin),
        }},
    }


def _management_operation(operation: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "Created" if operation.success == 201 else "OK"}
    if operation.response is not None:
        success["content"] = {"application/json": {
            "schema": {"$ref": REF.format(name=operation.response)}, "example": operation.response_example,
        }}
    if operation.links:
        success["links"] = dict(operation.links)
    responses: dict[str, Any] = {str(operation.success): success}
    for status, (kind, message, origin) in sorted(_error_statuses(operation).items()):
        responses[str(status)] = _error_response(status, kind, message, origin)
    document: dict[str, Any] = {
        "operationId": operation.operation_id, "summary": operation.summary, "tags": [operation.tag],
        "responses": responses,
    }
    if operation.description:
        document["description"] = operation.description
    if operation.parameters:
        document["parameters"] = [dict(parameter) for parameter in operation.parameters]
    if operation.request is not None:
        body_schema: dict[str, Any] = {"$ref": REF.format(name=operation.request)}
        if not operation.request_required:
            # The decoders take `T | None` (operations.decode_payload): an optional body may be `null`.
            body_schema = {"anyOf": [body_schema, {"type": "null"}]}
        document["requestBody"] = {
            "required": operation.request_required,
            "content": {"application/json": {"schema": body_schema, "example": operation.request_example}},
        }
    return document


def _open(operation_id: str, summary: str, responses: dict[str, Any], description: str = "") -> dict[str, Any]:
    """An operation that needs no identity."""
    document: dict[str, Any] = {
        "operationId": operation_id, "summary": summary, "tags": ["operations"], "security": [],
        "responses": responses,
    }
    if description:
        document["description"] = description
    return document


def _health_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": REF.format(name="HealthReport")},
    }}}


def _operational_paths() -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        ECHO_PATH: {"get": {
            "operationId": "echo", "summary": "Is the service there? (needs an identity, not management rights)",
            "tags": ["monitor"],
            "responses": {
                "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"},
                                                                         "example": ECHO_REPLY}}},
                "401": _error_response(401, ExceptionType.AUTH, "No authorization header has been provided", None),
                "500": _error_response(500, ExceptionType.INTERNAL_SERVER_ERROR, "Internal server error",
                                       f"GET {ECHO_PATH}"),
            },
        }},
        "/health/live": {"get": _open("healthLive", "Liveness: the process answers", {
            "200": _health_response("Alive"),
        })},
        "/health/ready": {"get": _open("healthReady", "Readiness: log replayed, HTTP serving, MQTT connected "
                                       "(if configured), writes durable, not shutting down", {
            "200": _health_response("Ready"), "503": _health_response("Not ready (the failing checks say why)"),
        })},
        "/metrics": {"get": _open("metrics", "Prometheus metrics (text exposition format 0.0.4)", {
            "200": {"description": "Metrics", "content": text},
        })},
        "/openapi.json": {"get": _open("openapi", "This document", {
            "200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {
                "schema": {"type": "object"}}}},
        })},
        "/docs": {"get": _open("docs", "This document, browsable (Swagger UI, served locally)", {
            "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
        })},
    }


def _rename(node: Any) -> Any:
    """Apply SCHEMA_NAMES to `$ref`s and titles throughout a schema tree."""
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                prefix, _, name = value.rpartition("/")
                result[key] = f"{prefix}/{SCHEMA_NAMES.get(name, name)}"
            elif key == "title" and isinstance(value, str):
                result[key] = SCHEMA_NAMES.get(value, value)
            else:
                result[key] = _rename(value)
        return result
    if isinstance(node, list):
        return [_rename(item) for item in node]
    return node


def component_schemas() -> dict[str, Any]:
    """JSON Schemas (2020-12, as OpenAPI 3.1 uses) of every body, from the msgspec types."""
    types: list[Any] = [
        LockListRequestWire, LockQueryRequestWire, LockListResponse, RuleListRequestWire, RuleQueryRequestWire,
        RuleListResponse, PriorityMapWire, ErrorBody, HealthReport,
    ]
    (_, _, _, _, _, _, priority_map, _, _), components = msgspec.json.schema_components(types, ref_template=REF)
    schemas: dict[str, Any] = {SCHEMA_NAMES.get(name, name): _rename(schema) for name, schema in components.items()}
    schemas[PRIORITY_MAP] = {
        "title": PRIORITY_MAP, "description": "Rule id (UUID) → new priority", **_rename(priority_map),
    }
    error = schemas["ErrorResponse"]
    error["description"] = "The Arrowhead error body: every 4xx/5xx answer carries it"
    error["properties"]["exceptionType"]["enum"] = sorted(kind.name for kind in ExceptionType)
    return schemas


def build_document(version: str = "0.1.0") -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    paths: dict[str, Any] = {}
    for operation in MANAGEMENT:
        paths.setdefault(operation.path, {})[operation.method] = _management_operation(operation)
    paths.update(_operational_paths())
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "lockstore: Arrowhead 5 orchestration lock and simple-store management",
            "version": version,
            "description": _DESCRIPTION,
        },
        "tags": [
            {"name": "lock", "description": "serviceOrchestrationLockManagement"},
            {"name": "simple-store", "description": "serviceOrchestrationSimpleStoreManagement"},
            {"name": "monitor", "description": "Arrowhead monitor service"},
            {"name": "operations", "description": "Health, metrics and this document (no identity needed)"},
        ],
        "security": [{"declared": []}, {"certificate": []}],
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                "declared": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "SYSTEM//<SystemName>",
                    "description": "authentication_policy=declared: the caller declares its system name, e.g. "
                    "`Bearer SYSTEM//Sysop`",
                },
                "certificate": {
                    "type": "mutualTLS",
                    "description": "authentication_policy=certificate: an Arrowhead client certificate (CN "
                    "<System>.<Cloud>.<Org>.<x>.<y>, dnQualifier sy or op) over HTTPS",
                },
            },
        },
    }


def encode_document(version: str = "0.1.0") -> bytes:
    return msgspec.json.encode(build_document(version))
