"""What lockstore tells the ServiceRegistry, without I/O: the system registration body, one service
registration body per served service, the lookup body, and the revoke path (ah5-common-java-spring
`init/ApplicationInitListener.java`, `model/SystemModel.java`, `http/model/HttpInterfaceModel.java`,
`mqtt/model/MqttInterfaceModel.java`; ah5-core-java-spring `serviceorchestration-dynamic/.../
DynamicServiceOrchestrationSystemInfo.java` and `serviceorchestration-simple/.../
SimpleStoreServiceOrchestrationSystemInfo.java`).

The HTTP operations are read off the one route table both HTTP servers serve (transports/http/routes.py)
and the MQTT operations off the MQTT router's table, so what is published is what is served: a route
added, moved or removed changes the registration.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from transports.http.routes import LOCK_PATH, STORE_PATH, published_routes
from transports.mqtt.dispatch import LOCK_BASE, OPERATIONS, STORE_BASE

SERVICE_REGISTRY = "ServiceRegistry"  # C:`Constants.SYS_NAME_SERVICE_REGISTRY`
SYSTEM_DISCOVERY = "systemDiscovery"
SERVICE_DISCOVERY = "serviceDiscovery"
LOOKUP_PATH = "/serviceregistry/service-discovery/lookup"  # C:`collector/HttpCollectorDriver.SR_LOOKUP_PATH`
FRAMEWORK_VERSION = "5.2.0"  # C:`Constants.AH_FRAMEWORK_VERSION`: the version a system registers with
SERVICE_VERSION = "1.0.0"  # VERSION_ORCHESTRATION_LOCK_MANAGEMENT / VERSION_ORCHESTRATION_STORE_MANAGEMENT
LOCK_MANAGEMENT = "serviceOrchestrationLockManagement"
STORE_MANAGEMENT = "serviceOrchestrationSimpleStoreManagement"
X509_PUBLIC_KEY = "x509PublicKey"  # C:`Constants.METADATA_KEY_X509_PUBLIC_KEY`

GENERIC_HTTP, GENERIC_HTTPS = "generic_http", "generic_https"
GENERIC_MQTT, GENERIC_MQTTS = "generic_mqtt", "generic_mqtts"

_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")  # werkzeug `<owner>` / `<string:owner>` → `{owner}`
_NOT_OPERATIONS = frozenset({"HEAD", "OPTIONS"})  # added to routes by the framework, not by us


@dataclass(frozen=True)
class Mqtt:
    """The broker the service serves MQTT through (from `mqtt_url`) and its request topic prefix."""

    host: str
    port: int
    tls: bool
    topic_prefix: str


@dataclass(frozen=True)
class Published:
    """What the service really serves, as the ServiceRegistry should list it."""

    addresses: tuple[str, ...]
    http_port: int
    https: bool
    certificate_policy: bool  # interfaces are CERT_AUTH, as in the reference's `registerService`
    mqtt: Mqtt | None


def lookup_body(service_definition: str, template: str) -> dict[str, Any]:
    """C:`HttpCollectorDriver.createSRRequestPayload` with the provider: the ServiceRegistry's own service."""
    return {
        "providerNames": [SERVICE_REGISTRY],
        "serviceDefinitionNames": [service_definition],
        "interfaceTemplateNames": [template],
    }


def system_body(addresses: Iterable[str], metadata: dict[str, Any]) -> dict[str, Any]:
    """C:`SystemRegisterRequestDTO`: no name (the ServiceRegistry takes it from the caller's identity)."""
    return {"metadata": metadata, "version": FRAMEWORK_VERSION, "addresses": list(addresses), "deviceName": None}


def x509_public_key(key: PublicKeyTypes) -> str:
    """C:`SystemInfo.getPublicKey`: Base64 of the public key's X.509 (SubjectPublicKeyInfo) DER encoding."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def served_http_routes() -> list[tuple[str, frozenset[str]]]:
    """(rule, methods) of the HTTP API routes, from the table both HTTP servers dispatch on."""
    return published_routes()


def http_operations(routes: Iterable[tuple[str, Iterable[str]]], base_path: str) -> dict[str, dict[str, str]]:
    """The operations the HTTP app serves under `base_path`, from its routes `(rule, methods)`: the
    operation is the first path segment after the base (`/remove/<owner>` → `remove`, DELETE
    `/remove/{owner}`)."""
    operations: dict[str, dict[str, str]] = {}
    for rule, methods in routes:
        if not rule.startswith(base_path + "/"):
            continue
        path = _PARAMETER.sub(r"{\1}", rule[len(base_path) :])
        name = path.split("/")[1]
        served = sorted(set(methods) - _NOT_OPERATIONS)
        if len(served) != 1 or name in operations:
            raise ValueError(f"cannot publish {rule} {served}: one method per operation is expected")
        operations[name] = {"path": path, "method": served[0]}
    if not operations:
        raise ValueError(f"the HTTP app serves nothing under {base_path}")
    return operations


def mqtt_operations(base_topic: str) -> list[str]:
    """The operations the MQTT router serves under a base topic, in its order."""
    return [operation for base, operation in OPERATIONS if base == base_topic]


def _http_interface(published: Published, base_path: str, operations: dict[str, dict[str, str]]) -> dict[str, Any]:
    template, protocol = (GENERIC_HTTPS, "https") if published.https else (GENERIC_HTTP, "http")
    return {
        "templateName": template, "protocol": protocol, "policy": _policy(published),
        "properties": {"accessAddresses": list(published.addresses), "accessPort": published.http_port,
                       "basePath": base_path, "operations": operations},
    }


def _mqtt_interface(published: Published, mqtt: Mqtt, base_topic: str) -> dict[str, Any]:
    template, protocol = (GENERIC_MQTTS, "ssl") if mqtt.tls else (GENERIC_MQTT, "tcp")
    return {
        "templateName": template, "protocol": protocol, "policy": _policy(published),
        "properties": {"accessAddresses": [mqtt.host], "accessPort": mqtt.port,
                       "baseTopic": mqtt.topic_prefix + base_topic, "operations": mqtt_operations(base_topic)},
    }


def _policy(published: Published) -> str:
    return "CERT_AUTH" if published.certificate_policy else "NONE"


def service_bodies(published: Published, routes: Iterable[tuple[str, Iterable[str]]]) -> list[dict[str, Any]]:
    """C:`ServiceInstanceCreateRequestDTO` for lock management and for simple-store management: HTTP(S)
    always, MQTT(S) only when the service serves MQTT."""
    route_list = list(routes)
    bodies: list[dict[str, Any]] = []
    for definition, base_path, base_topic in (
        (LOCK_MANAGEMENT, LOCK_PATH, LOCK_BASE),
        (STORE_MANAGEMENT, STORE_PATH, STORE_BASE),
    ):
        interfaces = [_http_interface(published, base_path, http_operations(route_list, base_path))]
        if published.mqtt is not None:
            interfaces.append(_mqtt_interface(published, published.mqtt, base_topic))
        bodies.append({"serviceDefinitionName": definition, "version": SERVICE_VERSION, "expiresAt": None,
                       "metadata": {}, "interfaces": interfaces})
    return bodies


def instance_id(system_name: str, body: dict[str, Any]) -> str:
    """The id the ServiceRegistry gives a registered service (C:`ServiceInstanceIdUtils.calculateInstanceId`)."""
    return f"{system_name}|{body['serviceDefinitionName']}|{body['version']}"


def path_segment(value: str) -> str:
    """One URL path segment: everything but unreserved characters percent-encoded (`|` → `%7C`, `/` → `%2F`)."""
    return quote(value, safe="")


def with_segment(operation_path: str, value: str) -> str:
    """The revoke path for one instance: `{instanceId}` filled in when the path names it, else appended as
    a segment (the ServiceRegistry publishes `/revoke`; the reference's client appends the id)."""
    segment = path_segment(value)
    if "{" in operation_path:
        return re.sub(r"\{[^{}]*\}", lambda _: segment, operation_path, count=1)
    return operation_path.rstrip("/") + "/" + segment
