"""The ServiceRegistry double against the SR's documented behaviour (its IDDs in ah5-docs-java-spring
`docs/api/serviceregistry/{system,service}-discovery-generic-http.md`, and the SR's code and tests named in
sr_model.py): if the double drifts from the SR, lockstore's registration tests prove nothing."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest

from tests.certs import CertSet, Pair
from tests.registry.conftest import HEADERS
from tests.registry.sr_double import SrDouble
from tests.registry.sr_model import SrConfig
from tests.registry.sr_rules import AddressRules

SYSTEM = "/serviceregistry/system-discovery"
SERVICE = "/serviceregistry/service-discovery"


def who(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer SYSTEM//{name}"}


def system(addresses: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    return {"metadata": {}, "version": "5.2.0", "addresses": addresses or ["192.168.56.116"], "deviceName": None,
            **fields}


def http_interface(port: int = 8441, **properties: Any) -> dict[str, Any]:
    return {"templateName": "generic_http", "protocol": "http", "policy": "NONE", "properties": {
        "accessAddresses": ["192.168.56.116"], "accessPort": port, "basePath": "/kelvin",
        "operations": {"query-temperature": {"method": "GET", "path": "/query"}}, **properties}}


def service(definition: str = "kelvinInfo", *interfaces: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"serviceDefinitionName": definition, "version": "1.0.0", "expiresAt": None, "metadata": {},
            "interfaces": list(interfaces) or [http_interface()], **fields}


def error(response: httpx.Response) -> tuple[int, str, str | None]:
    body = response.json()
    return response.status_code, body["errorMessage"], body.get("origin")


@pytest.fixture
def client(sr: SrDouble) -> httpx.Client:
    with httpx.Client(base_url=sr.url, timeout=5) as c:
        yield c  # type: ignore[misc]


# --------------------------------------------------------------------------- systemDiscovery


def test_system_register_is_201_new_200_identical_400_differing(client: httpx.Client) -> None:
    first = client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS)
    assert first.status_code == 201
    assert first.json()["name"] == "Alpha"  # from the identity: the body has no name
    assert first.json()["addresses"] == [{"type": "IPV4", "address": "192.168.56.116"}]
    assert client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS).status_code == 200
    for changed, what in ((system(metadata={"a": 1}), "metadata"), (system(version="5.1.0"), "version"),
                          (system(["10.0.0.1"]), "address list"), (system(deviceName="THERMOMETER2"), "device name")):
        assert error(client.post(f"{SYSTEM}/register", json=changed, headers=HEADERS)) == (
            400, f"System with name: Alpha already exists, but provided {what} is not matching",
            "POST /serviceregistry/system-discovery/register")


def test_system_register_compares_addresses_without_order_and_normalised(client: httpx.Client) -> None:
    assert client.post(f"{SYSTEM}/register", json=system(["10.0.0.1", "Host.Example"]),
                       headers=HEADERS).status_code == 201
    assert client.post(f"{SYSTEM}/register", json=system([" host.example", "10.0.0.1"]),
                       headers=HEADERS).status_code == 200


def test_system_register_address_rules(client: httpx.Client) -> None:
    assert error(client.post(f"{SYSTEM}/register", json=system(["0.0.0.0"]), headers=HEADERS))[:2] == (
        400, "Address verification failure: 0.0.0.0 IPv4 address is invalid: placeholder address is denied")
    assert error(client.post(f"{SYSTEM}/register", json=system(["bad_host!"]), headers=HEADERS))[:2] == (
        400, "Address verification failure: bad_host! is not a hostname")
    assert error(client.post(f"{SYSTEM}/register", json=system(addresses=[]) | {"addresses": []},
                             headers=HEADERS))[:2] == (400, "At least one system address is needed for every system")
    assert client.post(f"{SYSTEM}/register", json=system(["127.0.0.1", "::1"]), headers=HEADERS).json()[
        "addresses"] == [{"type": "IPV4", "address": "127.0.0.1"},
                         {"type": "IPV6", "address": "0000:0000:0000:0000:0000:0000:0000:0001"}]


def test_self_addressing_can_be_disabled() -> None:
    with SrDouble(config=SrConfig(addresses=AddressRules(allow_self_addressing=False)), domain_name="sr.example") as sr:
        response = httpx.post(f"{sr.url}{SYSTEM}/register", json=system(["127.0.0.1"]), headers=HEADERS)
    assert error(response)[:2] == (
        400, "Address verification failure: 127.0.0.1 IPv4 address is invalid: self-addressing is disabled")


def test_system_revoke_is_200_then_204_and_takes_the_services_with_it(sr: SrDouble, client: httpx.Client) -> None:
    client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS)
    assert client.post(f"{SERVICE}/register", json=service(), headers=HEADERS).status_code == 201
    assert sr.services_of("Alpha")
    revoked = client.delete(f"{SYSTEM}/revoke", headers=HEADERS)
    assert (revoked.status_code, revoked.content) == (200, b"")
    assert sr.services_of("Alpha") == {}
    assert client.delete(f"{SYSTEM}/revoke", headers=HEADERS).status_code == 204


def test_system_lookup_body_is_optional(client: httpx.Client) -> None:
    client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS)
    everything = client.post(f"{SYSTEM}/lookup", headers=HEADERS).json()
    assert {e["name"] for e in everything["entries"]} == {"Alpha", "ServiceRegistry"}
    assert client.post(f"{SYSTEM}/lookup", json={"systemNames": ["alpha"]}, headers=HEADERS).json()["count"] == 1


# --------------------------------------------------------------------------- serviceDiscovery


def test_service_register_needs_the_system(client: httpx.Client) -> None:
    assert error(client.post(f"{SERVICE}/register", json=service(), headers=HEADERS)) == (
        400, "System does not exist: Alpha", "POST /serviceregistry/service-discovery/register")


def test_service_register_is_201_and_an_upsert(sr: SrDouble, client: httpx.Client) -> None:
    client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS)
    first = client.post(f"{SERVICE}/register", json=service(), headers=HEADERS)
    assert first.status_code == 201
    assert first.json()["instanceId"] == "Alpha|kelvinInfo|1.0.0"
    assert first.json()["provider"]["addresses"]  # a registration answers with the whole provider
    again = client.post(f"{SERVICE}/register", json=service("kelvin-info", http_interface(9000)), headers=HEADERS)
    assert again.status_code == 201
    assert list(sr.services_of("Alpha")) == ["Alpha|kelvinInfo|1.0.0"]
    assert sr.services_of("Alpha")["Alpha|kelvinInfo|1.0.0"]["interfaces"][0]["properties"]["accessPort"] == 9000


@pytest.mark.parametrize(("interface", "message"), [
    ({"templateName": "generic_ftp", "protocol": "ftp", "policy": "NONE", "properties": {"a": 1}},
     "Interface template does not exist: generic_ftp"),
    (http_interface() | {"protocol": "https"}, "https protocol is invalid for generic_http"),
    (http_interface() | {"policy": "NOPE"}, "Invalid interface policy"),
    (http_interface() | {"policy": "translation_bridge_token_auth"}, "Invalid interface policy: TRANSLATION_BRIDGE_TOKEN_AUTH"),
    ({**http_interface(), "properties": {"accessPort": 1, "basePath": "/x"}},
     "accessAddresses interface property is missing for generic_http"),
    (http_interface(accessPort="8441"), "Property value should be an integer"),
    (http_interface(accessPort=70000), "Invalid property value"),
    (http_interface(operations={"Bad Op!": {"method": "GET", "path": "/x"}}),
     "The specified service operation name does not match the naming convention: bad-op!"),
    (http_interface(operations={"query": {"method": "FETCH", "path": "/x"}}), "Method should be a standard HTTP method"),
    ({"templateName": "generic_mqtt", "protocol": "tcp", "policy": "NONE", "properties": {
        "accessAddresses": ["127.0.0.1"], "accessPort": 1883, "baseTopic": "t/", "operations": []}},
     "Property value should be a non-empty set/list"),
])
def test_service_register_interface_rules(client: httpx.Client, interface: dict[str, Any], message: str) -> None:
    client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS)
    assert error(client.post(f"{SERVICE}/register", json=service("kelvinInfo", interface), headers=HEADERS)) == (
        400, message, "POST /serviceregistry/service-discovery/register")


def test_service_register_normalises_what_it_stores(client: httpx.Client) -> None:
    client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS)
    mqtt = {"templateName": "Generic-MQTT", "protocol": "TCP", "policy": "none", "properties": {
        "accessAddresses": ["LocalHost"], "accessPort": 1883, "baseTopic": "t/",
        "operations": ["create", "Modify Priorities", "create"]}}
    answer = client.post(f"{SERVICE}/register", json=service("kelvin info", mqtt), headers=HEADERS).json()
    assert answer["instanceId"] == "Alpha|kelvinInfo|1.0.0"
    assert answer["interfaces"] == [{"templateName": "generic_mqtt", "protocol": "tcp", "policy": "NONE", "properties": {
        "accessAddresses": ["localhost"], "accessPort": 1883, "baseTopic": "t/",
        "operations": ["create", "modify-priorities"]}}]


def test_service_register_expiry_rules(client: httpx.Client) -> None:
    client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS)
    assert error(client.post(f"{SERVICE}/register", json=service(expiresAt="tomorrow"), headers=HEADERS))[1] == \
        "Expiration time has an invalid time format"
    assert error(client.post(f"{SERVICE}/register", json=service(expiresAt="2001-01-01T00:00:00Z"),
                             headers=HEADERS))[1] == "Expiration time is in the past"


def test_service_revoke_of_another_systems_instance_is_403(client: httpx.Client) -> None:
    client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS)
    client.post(f"{SERVICE}/register", json=service(), headers=HEADERS)
    assert error(client.delete(f"{SERVICE}/revoke/Alpha%7CkelvinInfo%7C1.0.0", headers=who("Beta"))) == (
        403, "Revoking other systems' service is forbidden",
        "DELETE /serviceregistry/service-discovery/revoke/Alpha|kelvinInfo|1.0.0")
    assert client.delete(f"{SERVICE}/revoke/Alpha%7CkelvinInfo%7C1.0.0", headers=HEADERS).status_code == 200
    assert client.delete(f"{SERVICE}/revoke/Alpha%7CkelvinInfo%7C1.0.0", headers=HEADERS).status_code == 204


def test_lookup_needs_a_filter(client: httpx.Client) -> None:
    assert error(client.post(f"{SERVICE}/lookup", json={"versions": ["1.0.0"]}, headers=HEADERS)) == (
        400, "One of the following filters must be used: 'instanceIds', 'providerNames', 'serviceDefinitionNames'",
        "POST /serviceregistry/service-discovery/lookup")


def test_lookup_is_restricted_to_public_core_services_unless_direct_access(client: httpx.Client) -> None:
    client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS)
    client.post(f"{SERVICE}/register", json=service(), headers=HEADERS)
    query = {"serviceDefinitionNames": ["kelvinInfo", "systemDiscovery"]}
    seen = {name: {e["instanceId"] for e in client.post(f"{SERVICE}/lookup", json=query, headers=who(name)).json()[
        "entries"]} for name in ("Alpha", "DynamicServiceOrchestration", "Sysop")}
    assert seen["Alpha"] == {"ServiceRegistry|systemDiscovery|1.0.0"}
    assert seen["DynamicServiceOrchestration"] == seen["Sysop"] == {
        "ServiceRegistry|systemDiscovery|1.0.0", "Alpha|kelvinInfo|1.0.0"}


def test_lookup_by_template_and_verbosity(client: httpx.Client) -> None:
    body = {"providerNames": ["ServiceRegistry"], "serviceDefinitionNames": ["serviceDiscovery"],
            "interfaceTemplateNames": ["generic_https"]}
    assert client.post(f"{SERVICE}/lookup?verbose=false", json=body, headers=HEADERS).json() == {
        "entries": [], "count": 0}
    body["interfaceTemplateNames"] = ["generic_http"]
    terse = client.post(f"{SERVICE}/lookup?verbose=false", json=body, headers=HEADERS).json()["entries"][0]
    verbose = client.post(f"{SERVICE}/lookup?verbose=true", json=body, headers=HEADERS).json()["entries"][0]
    assert "addresses" not in terse["provider"] and verbose["provider"]["addresses"]
    assert terse["interfaces"][0]["properties"]["operations"]["revoke"] == {"path": "/revoke", "method": "DELETE"}


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize(("authorization", "message"), [
    (None, "No authorization header has been provided"),
    ("", "No authorization header has been provided"),
    ("Basic SYSTEM//Alpha", "Invalid authorization header"),
    ("Bearer SYSTEM/Alpha", "Invalid authorization header"),
    ("Bearer CLIENT//Alpha", "Invalid authorization header"),
])
def test_401_without_identity_even_on_unknown_paths(client: httpx.Client, authorization: str | None,
                                                    message: str) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path in (("DELETE", f"{SYSTEM}/revoke"), ("POST", "/nowhere")):
        response = client.request(method, path, headers=headers)
        assert response.json() == {"errorMessage": message, "errorCode": 401, "exceptionType": "AUTH"}


def test_declared_name_is_normalised_and_trailing_delimiters_pass_as_in_java(sr: SrDouble,
                                                                             client: httpx.Client) -> None:
    client.post(f"{SYSTEM}/register", json=system(), headers={"Authorization": "Bearer SYSTEM//temperature-provider//"})
    assert "TemperatureProvider" in sr.registry.systems


def _https(sr: SrDouble, certs: CertSet, pair: Pair | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if pair is not None:
        context.load_cert_chain(pair.cert, pair.key)
    return httpx.Client(base_url=sr.url, verify=context, timeout=5)


def test_certificate_identity_over_mtls(sr_tls: SrDouble, certs: CertSet) -> None:
    url = f"{sr_tls.url}{SYSTEM}/register"
    with _https(sr_tls, certs, certs.system) as client:
        assert client.post(f"{SYSTEM}/register", json=system()).json()["name"] == "TemperatureManager"
    with _https(sr_tls, certs, None) as client:
        assert error(client.post(f"{SYSTEM}/register", json=system())) == (
            401, f"Unauthenticated access attempt: {url}", None)
    with _https(sr_tls, certs, certs.device) as client:
        assert error(client.post(f"{SYSTEM}/register", json=system())) == (
            403, f"Unauthorized access: {url}, invalid certificate type: DEVICE", None)
    with _https(sr_tls, certs, certs.foreign) as client:
        assert error(client.post(f"{SYSTEM}/register", json=system())) == (
            403, f"Unauthorized access: {url}, from foreign cloud", None)
    with _https(sr_tls, certs, certs.operator) as client:  # a declared header means nothing here
        assert client.post(f"{SYSTEM}/register", json=system(), headers=who("Mallory")).json()["name"] == "Operator"


def test_certificate_from_another_ca_fails_the_handshake(sr_tls: SrDouble, certs: CertSet) -> None:
    with _https(sr_tls, certs, certs.stranger) as client, pytest.raises(httpx.HTTPError):
        client.post(f"{SYSTEM}/register", json=system())


def test_its_own_entries_use_https_under_tls(sr_tls: SrDouble, certs: CertSet) -> None:
    with _https(sr_tls, certs, certs.operator) as client:
        found = client.post(f"{SERVICE}/lookup", json={"serviceDefinitionNames": ["serviceDiscovery"]}).json()
    interface = found["entries"][0]["interfaces"][0]
    assert (interface["templateName"], interface["protocol"], interface["policy"]) == (
        "generic_https", "https", "CERT_AUTH")
    assert found["entries"][0]["provider"]["metadata"]["x509PublicKey"]


# --------------------------------------------------------------------------- down and up


def test_down_then_up_on_the_same_port_keeps_its_state(sr: SrDouble) -> None:
    with httpx.Client(base_url=sr.url, timeout=5) as client:
        assert client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS).status_code == 201
        port = sr.port
        sr.stop()
        with pytest.raises(httpx.TransportError):  # its keep-alive connection is gone too
            client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS)
        sr.start()
        assert sr.port == port
        assert client.post(f"{SYSTEM}/register", json=system(), headers=HEADERS).status_code == 200
