"""The ServiceRegistry settings, checked once at start-up (before the log is opened, like the TLS files):
where the ServiceRegistry is, who we are to it, what we publish. A bad value stops start-up with one
line naming the setting (`RegistryConfigError`).
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from transports.api.errors import ArrowheadError
from transports.api.names import normalize_system_name, validate_system_name
from transports.config.broker_url import parse_broker_url, uses_tls
from transports.config.settings import Settings
from transports.security.tls import HttpsSetup
from transports.service_registry.payloads import GENERIC_HTTP, GENERIC_HTTPS, X509_PUBLIC_KEY, Mqtt, x509_public_key

DEFAULT_SYSTEM_NAME = "DynamicServiceOrchestration"  # the reference's lock management system
DEFAULT_PORT = 8443  # the ServiceRegistry's port in the reference's application.properties
_WILDCARDS = {"", "0.0.0.0", "::", "*"}
# C:`service/validation/address/AddressValidator.java` HOSTNAME_REGEX_STRING, and its 253-character limit
_HOSTNAME = re.compile(r"^((?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)*((?!-)[A-Za-z0-9-]{1,63}(?<!-))$")


class RegistryConfigError(Exception):
    """A service_registry* setting cannot be used; the message names it."""


@dataclass(frozen=True)
class RegistryPlan:
    """Everything the registration needs except the bound port, which is known once HTTP is bound."""

    url: str  # scheme://host:port of the ServiceRegistry
    system_name: str  # as the ServiceRegistry will name us
    authorization: str | None  # the declared identity header; None under the certificate policy (mTLS)
    tls: ssl.SSLContext | None  # for an https:// ServiceRegistry
    lookup_template: str  # generic_http or generic_https: how we talk to the ServiceRegistry
    addresses: tuple[str, ...]
    metadata: dict[str, Any]
    https: bool  # we serve HTTPS
    certificate_policy: bool
    mqtt: Mqtt | None
    required: bool
    attempts: int
    retry_interval: float
    timeout: float


def address_problem(address: str) -> str | None:
    """Why the ServiceRegistry would refuse `address` as a system or access address, or None
    (C:`AddressValidator.validateNormalizedAddress`; self-addressing allowed, as the SR ships)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if ip is not None:
        if ip.is_unspecified:
            return "a placeholder address (every interface) is not an address others can reach"
        if ip.is_multicast or address == "255.255.255.255":
            return "a multicast or broadcast address"
        return None
    if len(address) > 253 or not _HOSTNAME.match(address):
        return "not an IP address nor a DNS name"
    if not any(char.isalpha() for char in address.split(".")[0]):
        return "not an IP address nor a DNS name"
    return None


def default_addresses(host: str, fqdn: Callable[[], str] = socket.getfqdn) -> list[str]:
    """The bind host when it names one address; for a wildcard bind, this machine's fully qualified name."""
    host = host.strip().strip("[]")
    return [fqdn() if host in _WILDCARDS else host]


def _registry_url(value: str, certificate_policy: bool) -> tuple[str, bool]:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryConfigError(f"service_registry {value!r}: expected http://host:port or https://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise RegistryConfigError(f"service_registry {value!r}: give only scheme, host and port (no path, query or "
                                  "user); the ServiceRegistry's paths are fixed")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise RegistryConfigError(f"service_registry {value!r}: bad port") from None
    secure = parts.scheme == "https"
    if certificate_policy and not secure:
        raise RegistryConfigError(f"service_registry {value!r}: authentication_policy 'certificate' identifies "
                                  "lockstore to the ServiceRegistry by its certificate, which needs https://")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}", secure


def _system_name(settings: Settings, https: HttpsSetup | None) -> str:
    configured = settings.service_registry_system_name
    if settings.authentication_policy == "certificate":
        assert https is not None and https.server_cn is not None  # https_setup checked the certificate policy
        from_certificate = normalize_system_name(https.server_cn.split(".", 1)[0]) or ""
        if configured is not None and normalize_system_name(configured) != from_certificate:
            raise RegistryConfigError(
                f"service_registry_system_name {configured!r}: under the certificate policy the ServiceRegistry "
                f"names lockstore after its certificate (tls_cert CN {https.server_cn}): {from_certificate}")
        return from_certificate
    name = normalize_system_name(configured if configured is not None else DEFAULT_SYSTEM_NAME)
    try:
        validate_system_name(name)
    except ArrowheadError as error:
        raise RegistryConfigError(f"service_registry_system_name {configured!r}: {error.message}") from None
    assert name is not None
    return name


def _client_context(settings: Settings) -> ssl.SSLContext:
    """TLS to the ServiceRegistry: its certificate checked against tls_ca (else the system's CAs) and its
    name; lockstore presents tls_cert (the reference's HTTP client uses the server's key store too)."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.tls_ca)
        if settings.tls_ca is not None:
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the local cloud's CA alone is enough
        if settings.tls_cert is not None and settings.tls_key is not None:
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as error:
        raise RegistryConfigError(f"service_registry: cannot set up TLS to the ServiceRegistry: {error}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def registry_setup(settings: Settings, https: HttpsSetup | None,
                   fqdn: Callable[[], str] = socket.getfqdn) -> RegistryPlan | None:
    """None when standalone (no service_registry); else the checked plan."""
    if not settings.service_registry:
        return None
    certificate_policy = settings.authentication_policy == "certificate"
    url, secure = _registry_url(settings.service_registry, certificate_policy)
    for name, value, low in (("service_registry_attempts", settings.service_registry_attempts, 1),
                             ("service_registry_retry_interval", settings.service_registry_retry_interval, 0),
                             ("service_registry_timeout", settings.service_registry_timeout, 0.001)):
        if not low <= value < math.inf:
            raise RegistryConfigError(f"{name} {value!r}: must be a number of at least {low}")
    addresses = [a.strip() for a in settings.service_registry_addresses if a.strip()] or default_addresses(
        settings.host, fqdn)
    for address in addresses:
        problem = address_problem(address)
        if problem is not None:
            source = "service_registry_addresses" if settings.service_registry_addresses else \
                f"the address derived from host {settings.host!r} (set service_registry_addresses)"
            raise RegistryConfigError(f"{source}: {address!r} is {problem}")
    system_name = _system_name(settings, https)
    metadata: dict[str, Any] = {}
    if certificate_policy:
        assert https is not None
        metadata[X509_PUBLIC_KEY] = x509_public_key(https.server_chain[0].public_key())
    mqtt = None
    if settings.mqtt_url:
        host, port = parse_broker_url(settings.mqtt_url)
        mqtt = Mqtt(host, port, uses_tls(settings.mqtt_url), settings.mqtt_topic_prefix)
    return RegistryPlan(
        url=url, system_name=system_name,
        authorization=None if certificate_policy else f"Bearer SYSTEM//{system_name}",
        tls=_client_context(settings) if secure else None,
        lookup_template=GENERIC_HTTPS if secure else GENERIC_HTTP,
        addresses=tuple(addresses), metadata=metadata, https=https is not None,
        certificate_policy=certificate_policy, mqtt=mqtt, required=settings.service_registry_required,
        attempts=settings.service_registry_attempts, retry_interval=settings.service_registry_retry_interval,
        timeout=settings.service_registry_timeout,
    )
