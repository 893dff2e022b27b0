"""The service_registry* settings, checked at start-up (transports/service_registry/plan.py): every bad value
is one RegistryConfigError naming the setting."""

from __future__ import annotations

from typing import Any

import pytest

from tests.certs import CertSet
from transports.config.settings import Settings
from transports.security.tls import https_setup
from transports.service_registry import RegistryConfigError, registry_setup
from transports.service_registry.plan import address_problem, default_addresses


def plan(**settings: Any) -> Any:
    config = Settings(**({"service_registry": "http://sr.example:8443"} | settings))
    return registry_setup(config, https_setup(config), fqdn=lambda: "node7.example")


def certificate_settings(certs: CertSet, **more: Any) -> dict[str, Any]:
    return {"tls_cert": str(certs.server.cert), "tls_key": str(certs.server.key), "tls_ca": str(certs.ca),
            "tls_client_auth": "optional", "authentication_policy": "certificate",
            "service_registry": "https://127.0.0.1:8443", **more}


def test_standalone_without_a_url() -> None:
    assert registry_setup(Settings(), None) is None


def test_declared_defaults() -> None:
    p = plan()
    assert (p.url, p.system_name, p.authorization) == (
        "http://sr.example:8443", "DynamicServiceOrchestration", "Bearer SYSTEM//DynamicServiceOrchestration")
    assert (p.lookup_template, p.tls, p.addresses, p.metadata) == ("generic_http", None, ("127.0.0.1",), {})
    assert (p.required, p.attempts, p.retry_interval, p.mqtt) == (False, 4, 15.0, None)


def test_the_port_defaults_to_the_registrys_and_the_name_is_normalised() -> None:
    p = plan(service_registry="http://sr.example", service_registry_system_name="lock-store")
    assert (p.url, p.system_name, p.authorization) == ("http://sr.example:8443", "LockStore", "Bearer SYSTEM//LockStore")


def test_published_addresses_default_to_the_bind_host_or_the_machine_name() -> None:
    assert default_addresses("10.0.0.5", lambda: "x") == ["10.0.0.5"]
    assert default_addresses("localhost", lambda: "x") == ["localhost"]
    assert default_addresses("::1", lambda: "x") == ["::1"]
    for wildcard in ("0.0.0.0", "::", "[::]", ""):
        assert default_addresses(wildcard, lambda: "node7.example") == ["node7.example"]
    assert plan(host="0.0.0.0").addresses == ("node7.example",)
    assert plan(service_registry_addresses=["a.example", " 10.0.0.9 "]).addresses == ("a.example", "10.0.0.9")


def test_mqtt_is_published_as_served() -> None:
    p = plan(mqtt_url="mqtts://broker.example", mqtt_topic_prefix="x/y")
    assert (p.mqtt.host, p.mqtt.port, p.mqtt.tls, p.mqtt.topic_prefix) == ("broker.example", 8883, True, "x/y")


def test_certificate_policy_identity(certs: CertSet) -> None:
    p = plan(**certificate_settings(certs))
    assert (p.system_name, p.authorization, p.lookup_template) == ("DynamicServiceOrchestration", None, "generic_https")
    assert p.tls is not None and p.metadata["x509PublicKey"] and p.certificate_policy
    assert plan(**certificate_settings(certs, service_registry_system_name="dynamic-service-orchestration"))


@pytest.mark.parametrize(("settings", "message"), [
    ({"service_registry": "ftp://sr.example"}, r"^service_registry 'ftp://sr.example': expected http://host:port"),
    ({"service_registry": "http://"}, r"^service_registry 'http://': expected"),
    ({"service_registry": "http://sr.example:99999"}, r"^service_registry 'http://sr.example:99999': bad port"),
    ({"service_registry": "http://sr.example:8443/serviceregistry"}, r"^service_registry .*: give only scheme"),
    ({"service_registry": "http://user:pw@sr.example"}, r"^service_registry .*: give only scheme"),
    ({"service_registry_addresses": ["0.0.0.0"]}, r"^service_registry_addresses: '0.0.0.0' is a placeholder"),
    ({"service_registry_addresses": ["224.0.0.1"]}, r"^service_registry_addresses: '224.0.0.1' is a multicast"),
    ({"service_registry_addresses": ["bad_host!"]}, r"^service_registry_addresses: 'bad_host!' is not an IP"),
    ({"service_registry_addresses": ["123.example"]}, r"^service_registry_addresses: '123.example' is not an IP"),
    ({"service_registry_system_name": "9lives"}, r"^service_registry_system_name '9lives': The specified system name"),
    ({"service_registry_attempts": 0}, r"^service_registry_attempts 0: must be a number of at least 1"),
    ({"service_registry_retry_interval": -1.0}, r"^service_registry_retry_interval -1.0: must be a number of at least 0"),
    ({"service_registry_retry_interval": float("nan")}, r"^service_registry_retry_interval nan: must be a number"),
    ({"service_registry_timeout": 0.0}, r"^service_registry_timeout 0.0: must be a number of at least"),
    ({"service_registry_timeout": float("inf")}, r"^service_registry_timeout inf: must be a number"),
])
def test_bad_settings_name_themselves(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(RegistryConfigError, match=message):
        plan(**settings)


def test_a_wildcard_host_with_an_unusable_machine_name_says_what_to_set() -> None:
    config = Settings(service_registry="http://sr:8443", host="0.0.0.0")
    with pytest.raises(RegistryConfigError, match=r"host '0.0.0.0' \(set service_registry_addresses\): 'bad_name'"):
        registry_setup(config, None, fqdn=lambda: "bad_name")


def test_certificate_policy_needs_https_and_its_own_name(certs: CertSet) -> None:
    with pytest.raises(RegistryConfigError, match=r"certificate' identifies lockstore .* needs https://"):
        plan(**certificate_settings(certs, service_registry="http://127.0.0.1:8443"))
    with pytest.raises(RegistryConfigError, match=r"service_registry_system_name 'Other': .*: DynamicServiceOrchestration"):
        plan(**certificate_settings(certs, service_registry_system_name="Other"))


def test_address_problems() -> None:
    for good in ("10.0.0.1", "::1", "fe80::1", "node-7.example.org", "localhost", "2001:db8::1"):
        assert address_problem(good) is None, good
    for bad in ("0.0.0.0", "::", "255.255.255.255", "ff02::1", "-x.example", "a..b", "x" * 254, "a_b.example", ""):
        assert address_problem(bad) is not None, bad
