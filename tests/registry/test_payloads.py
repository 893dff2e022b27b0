"""What lockstore registers, built without I/O (transports/service_registry/payloads.py, answers.py), checked
against the issue's listing (itself the reference's DynamicServiceOrchestrationSystemInfo and
SimpleStoreServiceOrchestrationSystemInfo) and against the routes the HTTP app really serves."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from tests.certs import CertSet
from transports.http.app import create_app
from transports.mqtt.dispatch import request_topics
from transports.service_registry.answers import (
    BadAnswer,
    Endpoint,
    endpoint_from_lookup,
    error_message,
    instance_id_of,
)
from transports.service_registry.payloads import (
    Mqtt,
    Published,
    http_operations,
    instance_id,
    lookup_body,
    path_segment,
    service_bodies,
    system_body,
    with_segment,
    x509_public_key,
)

LOCK_HTTP = {"query": {"path": "/query", "method": "POST"}, "create": {"path": "/create", "method": "POST"},
             "remove": {"path": "/remove/{owner}", "method": "DELETE"}}
STORE_HTTP = {"query": {"path": "/query", "method": "POST"}, "create": {"path": "/create", "method": "POST"},
              "modify-priorities": {"path": "/modify-priorities", "method": "PUT"},
              "remove": {"path": "/remove", "method": "DELETE"}}


def app_routes() -> list[tuple[str, frozenset[str]]]:
    """The routes of the real HTTP app (its handlers are not called here)."""
    app = create_app(None, None)  # type: ignore[arg-type]
    return [(rule.rule, frozenset(rule.methods or ())) for rule in app.url_map.iter_rules()]


def published(**changes: Any) -> Published:
    fields: dict[str, Any] = {"addresses": ("127.0.0.1",), "http_port": 8441, "https": False,
                              "certificate_policy": False, "mqtt": None}
    return Published(**(fields | changes))


def test_lookup_body_asks_for_the_registry_own_service() -> None:
    assert lookup_body("systemDiscovery", "generic_http") == {
        "providerNames": ["ServiceRegistry"], "serviceDefinitionNames": ["systemDiscovery"],
        "interfaceTemplateNames": ["generic_http"]}


def test_system_body_has_no_name() -> None:
    assert system_body(("lockstore.example",), {}) == {
        "metadata": {}, "version": "5.2.0", "addresses": ["lockstore.example"], "deviceName": None}


def test_http_only_bodies_are_the_issues_listing() -> None:
    lock, store = service_bodies(published(), app_routes())
    assert lock == {
        "serviceDefinitionName": "serviceOrchestrationLockManagement", "version": "1.0.0", "expiresAt": None,
        "metadata": {}, "interfaces": [{
            "templateName": "generic_http", "protocol": "http", "policy": "NONE", "properties": {
                "accessAddresses": ["127.0.0.1"], "accessPort": 8441,
                "basePath": "/serviceorchestration/orchestration/mgmt/lock", "operations": LOCK_HTTP}}]}
    assert store["serviceDefinitionName"] == "serviceOrchestrationSimpleStoreManagement"
    assert store["interfaces"] == [{
        "templateName": "generic_http", "protocol": "http", "policy": "NONE", "properties": {
            "accessAddresses": ["127.0.0.1"], "accessPort": 8441,
            "basePath": "/serviceorchestration/orchestration/mgmt/simple-store", "operations": STORE_HTTP}}]


def test_https_with_the_certificate_policy_and_mqtt() -> None:
    mqtt = Mqtt("broker.example", 1883, tls=False, topic_prefix="arrowhead/serviceorchestration")
    lock, store = service_bodies(published(https=True, certificate_policy=True, mqtt=mqtt,
                                           addresses=("a.example", "10.0.0.5")), app_routes())
    http, over_mqtt = lock["interfaces"]
    assert (http["templateName"], http["protocol"], http["policy"]) == ("generic_https", "https", "CERT_AUTH")
    assert http["properties"]["accessAddresses"] == ["a.example", "10.0.0.5"]
    assert over_mqtt == {"templateName": "generic_mqtt", "protocol": "tcp", "policy": "CERT_AUTH", "properties": {
        "accessAddresses": ["broker.example"], "accessPort": 1883,
        "baseTopic": "arrowhead/serviceorchestration/orchestration/management/lock/",
        "operations": ["create", "query", "remove"]}}
    assert store["interfaces"][1]["properties"]["baseTopic"] == \
        "arrowhead/serviceorchestration/orchestration/management/store/"
    assert store["interfaces"][1]["properties"]["operations"] == ["query", "create", "modify-priorities", "remove"]


def test_mqtts_and_a_custom_topic_prefix() -> None:
    mqtt = Mqtt("broker.example", 8883, tls=True, topic_prefix="site7/so")
    interface = service_bodies(published(mqtt=mqtt), app_routes())[0]["interfaces"][1]
    assert (interface["templateName"], interface["protocol"]) == ("generic_mqtts", "ssl")
    assert interface["properties"]["accessPort"] == 8883
    assert interface["properties"]["baseTopic"] == "site7/so/orchestration/management/lock/"


def test_published_mqtt_topics_are_the_subscribed_ones() -> None:
    mqtt = Mqtt("b", 1883, tls=False, topic_prefix="p/q")
    published_topics = {interface["properties"]["baseTopic"] + operation
                        for body in service_bodies(published(mqtt=mqtt), app_routes())
                        for interface in body["interfaces"][1:] for operation in interface["properties"]["operations"]}
    assert published_topics == set(request_topics("p/q")) - {"p/q/monitor/echo"}


def test_published_http_operations_are_the_served_routes() -> None:
    routes = app_routes()
    served = {(rule, method) for rule, methods in routes for method in methods - {"HEAD", "OPTIONS"}
              if "/orchestration/mgmt/" in rule}
    listed = {(body["interfaces"][0]["properties"]["basePath"] + op["path"].replace("{owner}", "<owner>"), op["method"])
              for body in service_bodies(published(), routes)
              for op in body["interfaces"][0]["properties"]["operations"].values()}
    assert listed == served


def test_http_operations_refuse_what_cannot_be_published() -> None:
    with pytest.raises(ValueError, match="one method per operation"):
        http_operations([("/b/x", {"GET", "POST"})], "/b")
    with pytest.raises(ValueError, match="serves nothing"):
        http_operations([("/other/x", {"GET"})], "/b")
    assert http_operations([("/b/get/<string:key>", {"GET", "HEAD"})], "/b") == {
        "get": {"path": "/get/{key}", "method": "GET"}}


def test_instance_ids_and_their_url_encoding() -> None:
    body = service_bodies(published(), app_routes())[0]
    assert instance_id("DynamicServiceOrchestration", body) == \
        "DynamicServiceOrchestration|serviceOrchestrationLockManagement|1.0.0"
    assert path_segment("A|b|1.0.0") == "A%7Cb%7C1.0.0"
    assert path_segment("a/b c?d#e%f") == "a%2Fb%20c%3Fd%23e%25f"
    assert with_segment("/revoke", "A|b|1.0.0") == "/revoke/A%7Cb%7C1.0.0"
    assert with_segment("/revoke/", "A|b|1.0.0") == "/revoke/A%7Cb%7C1.0.0"
    assert with_segment("/revoke/{instanceId}", "A|b|1.0.0") == "/revoke/A%7Cb%7C1.0.0"


@given(st.text(min_size=1))
def test_any_instance_id_is_exactly_one_path_segment(value: str) -> None:
    path = with_segment("/serviceregistry/service-discovery/revoke", value)
    prefix, segment = path.rsplit("/", 1)
    assert prefix == "/serviceregistry/service-discovery/revoke"
    assert unquote(segment, errors="strict") == value
    assert urlsplit("http://sr.example:8443" + path).path == path  # nothing of it leaks into query or fragment


def test_x509_public_key_is_the_base64_of_the_subject_public_key_info(certs: CertSet) -> None:
    key = x509.load_pem_x509_certificate(certs.server.pem()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64decode(x509_public_key(key)) == der


# --------------------------------------------------------------------------- reading the lookup answer


def lookup_answer(properties: dict[str, Any], template: str = "generic_http") -> bytes:
    return json.dumps({"entries": [{"instanceId": "ServiceRegistry|systemDiscovery|1.0.0", "interfaces": [
        {"templateName": template, "protocol": "http", "policy": "NONE", "properties": properties}]}],
        "count": 1}).encode()


GOOD = {"accessAddresses": ["sr.example", "10.0.0.1"], "accessPort": 8443,
        "basePath": "/serviceregistry/service-discovery",
        "operations": {"register": {"path": "/register", "method": "post"},
                       "revoke": {"path": "/revoke", "method": "DELETE"}}}


def test_endpoint_from_a_lookup_answer() -> None:
    endpoint = endpoint_from_lookup(lookup_answer(GOOD), "generic_http")
    assert endpoint.request("register") == ("POST", "http://sr.example:8443/serviceregistry/service-discovery/register")
    assert endpoint.request("revoke", "X|y|1.0.0") == (
        "DELETE", "http://sr.example:8443/serviceregistry/service-discovery/revoke/X%7Cy%7C1.0.0")
    ipv6 = Endpoint("https", "::1", 8443, "", {"lookup": ("POST", "/lookup")})
    assert ipv6.request("lookup") == ("POST", "https://[::1]:8443/lookup")


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "not a service list"),
    (b'{"entries": "many"}', "not a service list"),
    (b'{"entries": []}', "found no generic_http interface"),
    (lookup_answer(GOOD, "generic_https"), "found no generic_http interface"),
    (lookup_answer({**GOOD, "accessPort": "8443"}), "not usable"),
    (lookup_answer({**GOOD, "accessPort": 0}), "no usable address and port"),
    (lookup_answer({**GOOD, "accessAddresses": []}), "no usable address and port"),
    (lookup_answer({**GOOD, "accessAddresses": ["evil.example/x?"]}), "no usable address and port"),
    (lookup_answer({k: v for k, v in GOOD.items() if k != "operations"}), "not usable"),
])
def test_a_lookup_answer_that_makes_no_sense_is_a_bad_answer(body: bytes, reason: str) -> None:
    with pytest.raises(BadAnswer, match=reason):
        endpoint_from_lookup(body, "generic_http")


def test_an_operation_the_lookup_does_not_list_is_a_bad_answer() -> None:
    with pytest.raises(BadAnswer, match="no 'lookup' operation"):
        endpoint_from_lookup(lookup_answer(GOOD), "generic_http").request("lookup")


def test_error_messages_are_read_from_arrowhead_bodies_or_shown_short() -> None:
    assert error_message(b'{"errorMessage": "System does not exist: X", "errorCode": 400}') == \
        "System does not exist: X"
    assert error_message(b"<html>\n  Bad   Gateway</html>") == "<html> Bad Gateway</html>"
    assert len(error_message(b"x" * 100_000)) <= 500
    assert error_message(b"") == "(no body)"


def test_an_instance_id_must_look_like_one() -> None:
    assert instance_id_of(b'{"instanceId": "A|b|1.0.0", "provider": {}}') == "A|b|1.0.0"
    for body in (b"{}", b'{"instanceId": 7}', b'{"instanceId": ""}', b'{"instanceId": "A\\nB"}',
                 b'{"instanceId": "' + b"x" * 300 + b'"}', b"nope"):
        with pytest.raises(BadAnswer):
            instance_id_of(body)
