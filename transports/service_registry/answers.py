"""Reading the ServiceRegistry's answers, without I/O. Nothing in an answer is trusted: a lookup that does
not describe a usable HTTP interface, or an error body that is not an Arrowhead error, becomes a
`BadAnswer` with a short reason (and the registration is retried), never an exception of another kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from transports.service_registry.payloads import with_segment

MAX_ANSWER_BYTES = 1 << 20  # a lookup of the ServiceRegistry's own service is a few KiB
MAX_INSTANCE_ID = 256  # `<System>|<serviceDefinition>|<version>`: 63 + 63 + 14 characters and two `|`


class BadAnswer(ValueError):
    """An answer that does not say what the ServiceRegistry's API says it says."""


class _Interface(msgspec.Struct):
    templateName: str
    properties: dict[str, Any]


class _Instance(msgspec.Struct):
    interfaces: list[_Interface]
    instanceId: str | None = None


class _LookupAnswer(msgspec.Struct):
    entries: list[_Instance]


class _RegisterAnswer(msgspec.Struct):
    instanceId: str


class _Operation(msgspec.Struct):
    path: str
    method: str


class _HttpProperties(msgspec.Struct):
    accessAddresses: list[str]
    accessPort: int
    basePath: str
    operations: dict[str, _Operation]


class _ErrorBody(msgspec.Struct):
    errorMessage: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """One ServiceRegistry service as its lookup describes it: where, and the path and method of each
    operation. Later calls go there (C:`http/ArrowheadHttpService.consumeService`)."""

    scheme: str
    host: str
    port: int
    base_path: str
    operations: dict[str, tuple[str, str]]  # name → (method, path)

    def request(self, operation: str, segment: str | None = None) -> tuple[str, str]:
        """(method, URL) of an operation; `segment` is appended (or fills the path's `{…}`) URL-encoded."""
        if operation not in self.operations:
            raise BadAnswer(f"the ServiceRegistry's lookup lists no {operation!r} operation")
        method, path = self.operations[operation]
        if segment is not None:
            path = with_segment(path, segment)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return method, f"{self.scheme}://{host}:{self.port}{self.base_path}{path}"


def endpoint_from_lookup(body: bytes, template: str) -> Endpoint:
    """The first instance's `template` interface (C:`HttpCollectorDriver.convertLookupResponse`)."""
    try:
        answer = msgspec.json.decode(body, type=_LookupAnswer)
    except msgspec.DecodeError as error:
        raise BadAnswer(f"the lookup answer is not a service list: {error}") from None
    for instance in answer.entries:
        for interface in instance.interfaces:
            if interface.templateName == template:
                return _endpoint(interface.properties, template)
    raise BadAnswer(f"the lookup found no {template} interface of the ServiceRegistry (is it running, "
                    "and does it serve this scheme?)")


def _endpoint(properties: dict[str, Any], template: str) -> Endpoint:
    try:
        http = msgspec.convert(properties, _HttpProperties)
    except msgspec.ValidationError as error:
        raise BadAnswer(f"the ServiceRegistry's {template} interface is not usable: {error}") from None
    host = http.accessAddresses[0].strip() if http.accessAddresses else ""
    if not host or any(char in host for char in "/?#@ ") or not 0 < http.accessPort < 65536:
        raise BadAnswer(f"the ServiceRegistry's {template} interface has no usable address and port")
    operations = {name: (op.method.strip().upper(), op.path.strip()) for name, op in http.operations.items()}
    scheme = "https" if template.endswith("https") else "http"
    return Endpoint(scheme, host, http.accessPort, http.basePath.strip().rstrip("/"), operations)


def instance_id_of(body: bytes) -> str:
    """The `instanceId` of a service registration answer."""
    try:
        found = msgspec.json.decode(body, type=_RegisterAnswer).instanceId
    except msgspec.DecodeError as error:
        raise BadAnswer(f"the registration answer has no instanceId: {error}") from None
    if not 0 < len(found) <= MAX_INSTANCE_ID or not found.isprintable():
        raise BadAnswer(f"the registration answer's instanceId is not one: {found[:100]!r}")
    return found


def error_message(body: bytes) -> str:
    """The `errorMessage` of an Arrowhead error body, else the start of the body as text."""
    try:
        message = msgspec.json.decode(body, type=_ErrorBody).errorMessage
    except msgspec.DecodeError:
        message = None
    if message is None:
        message = body[:200].decode("utf-8", "replace")
    return " ".join(message.split())[:500] or "(no body)"
