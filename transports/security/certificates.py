"""The reference's `certificate` authentication policy, without I/O (ARROWHEAD-REFERENCE.md §1.2 "Other
policies"; C:`security/SecurityUtilities.java`, C:`http/filter/authentication/CertificateFilter.java`,
C:`mqtt/filter/authentication/CertificateMqttFilter.java`).

An Arrowhead certificate names its holder in the subject CN, `<System>.<Cloud>.<Org>.<x>.<y>` (5 dot
separated parts, e.g. `TemperatureManager.TestCloud.Company.arrowhead.eu`), and its profile in a
dnQualifier (OID 2.5.4.46): `sy` a system, `op` an operator (= sysop). The service learns its own cloud
from its own server certificate's CN (everything after the first part) and refuses other clouds.

The TLS handshake (HTTPS) or `TrustStore` (MQTT, where the chain travels in the request;
transports/security/client_chains.py) decides whether a certificate is genuine, under the same RFC 5280 profile;
this module reads identities out of genuine ones and applies the reference's checks.
"""

from __future__ import annotations

import enum
import functools
import logging
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from transports.api.errors import ArrowheadError, ExceptionType
from transports.api.fields import is_blank, trim
from transports.api.names import normalize_system_name
from transports.api.requester import Requester
from transports.security.client_chains import (
    InvalidAuthenticationKey,
    TrustStore,
    UntrustedCertificate,
    decode_authentication_key,
)

__all__ = [  # the chain half lives in transports/security/client_chains.py; these names are used through this module
    "InvalidAuthenticationKey", "TrustStore", "UntrustedCertificate", "decode_authentication_key",
]

SYSTEM_CN_PARTS = 5  # C:`Constants.SYSTEM_CERT_CN_LENGTH`
CLOUD_CN_PARTS = 4  # C:`Constants.CLOUD_CERT_CN_LENGTH`

log = logging.getLogger("lockstore.auth")


class ProfileType(enum.Enum):
    """C:`security/CertificateProfileType.java`: the dnQualifier codes."""

    MASTER = "ma"
    GATE = "ga"
    ORGANIZATION = "or"
    LOCAL_CLOUD = "lo"
    ON_BOARDING = "on"
    DEVICE = "de"
    SYSTEM = "sy"
    OPERATOR = "op"

    @classmethod
    def from_code(cls, code: str) -> ProfileType | None:
        try:
            return cls(code)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    common_name: str
    profile: ProfileType


def split_cn(common_name: str) -> list[str]:
    """Java `split("\\.")`: trailing empty parts dropped (`a.b.c.d.e.` has 5 parts)."""
    parts = common_name.split(".")
    while parts and not parts[-1]:
        parts.pop()
    return parts


def _attribute_text(attribute: x509.NameAttribute[str | bytes]) -> str:
    value = attribute.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def identity_of(subject: x509.Name) -> CertificateIdentity | None:
    """CN and profile of a subject, or None (C:`getIdentificationDataFromSubjectDN` +
    `isValidSystemCommonName`): the CN must have 5 parts and some dnQualifier a known code. As in the
    reference, the last CN counts and the first dnQualifier with a known code wins; dnQualifiers are
    Java-trimmed."""
    common_name: str | None = None
    qualifiers: list[str] = []
    for attribute in subject:
        if attribute.oid == NameOID.COMMON_NAME:
            common_name = _attribute_text(attribute)
        elif attribute.oid == NameOID.DN_QUALIFIER:
            qualifiers.append(trim(_attribute_text(attribute)))
    if common_name is None or len(split_cn(common_name)) != SYSTEM_CN_PARTS:
        return None
    for qualifier in qualifiers:
        profile = ProfileType.from_code(qualifier)
        if profile is not None:
            return CertificateIdentity(common_name, profile)
    return None


def identity_of_chain(chain: list[x509.Certificate]) -> CertificateIdentity | None:
    """The first certificate of a (client-first) chain that carries an identity
    (C:`getIdentificationDataFromRequest`)."""
    for certificate in chain:
        identity = identity_of(certificate.subject)
        if identity is not None:
            return identity
    return None


def _cloud_id(cloud: str, organization: str) -> str:
    """C:`CloudIdentifierNormalizer`: each part normalised like a system name, joined by `|`."""
    return f"{normalize_system_name(cloud)}|{normalize_system_name(organization)}"


def cloud_of_server(server_cn: str) -> str:
    """C:`getCloudCN`: the server CN without its first part, `TestCloud.Company.arrowhead.eu`."""
    _, dot, rest = server_cn.partition(".")
    if not dot:
        raise ValueError(f"server certificate CN {server_cn!r} has no cloud part")
    return rest


def in_cloud(client_cn: str, cloud_cn: str) -> bool:
    """C:`isClientInTheLocalCloudByCNs`: cloud and organisation parts equal after normalisation."""
    client = split_cn(client_cn)
    cloud = split_cn(cloud_cn)
    if len(client) != SYSTEM_CN_PARTS or len(cloud) != CLOUD_CN_PARTS:
        return False
    return _cloud_id(client[1], client[2]) == _cloud_id(cloud[0], cloud[1])


def _forbidden(message: str) -> ArrowheadError:
    return ArrowheadError(message, ExceptionType.FORBIDDEN)


def _unauthenticated(target: str) -> ArrowheadError:
    return ArrowheadError(f"Unauthenticated access attempt: {target}", ExceptionType.AUTH)


def requester_of(identity: CertificateIdentity | None, cloud_cn: str, *, target: str,
                 unauthenticated_target: str | None = None) -> Requester:
    """The checks of the reference's certificate filters, in their order.

    `target` is the request URL (HTTP) or topic (MQTT) the 403 messages name; the MQTT 401 names the
    base topic instead, hence `unauthenticated_target`.
    """
    name = None
    if identity is not None:
        name = normalize_system_name(identity.common_name.split(".", 1)[0])
    if identity is None or name is None:  # a blank first part is no name (the reference would go on with null)
        raise _unauthenticated(target if unauthenticated_target is None else unauthenticated_target)
    if identity.profile not in (ProfileType.SYSTEM, ProfileType.OPERATOR):
        raise _forbidden(f"Unauthorized access: {target}, invalid certificate type: {identity.profile.name}")
    if not in_cloud(identity.common_name, cloud_cn):
        raise _forbidden(f"Unauthorized access: {target}, from foreign cloud")
    return Requester(name=name, sysop=identity.profile is ProfileType.OPERATOR)


# --------------------------------------------------------------------------- the policy, per transport


@dataclass(frozen=True)
class CertificatePolicy:
    """What the certificate policy needs to know: the service's own cloud (from its server certificate's CN,
    `TestCloud.Company.arrowhead.eu`) and the CAs that certificates inside MQTT requests must come from."""

    cloud_cn: str
    trust: TrustStore


@functools.lru_cache(maxsize=1024)
def identity_of_pem_chain(chain: tuple[str, ...]) -> CertificateIdentity | None:
    """HTTPS: the identity in a verified client chain (PEM strings from the ASGI TLS extension). Cached:
    a keep-alive client sends the same certificate with every request."""
    try:
        certificates = [x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in chain]
    except ValueError:
        return None
    return identity_of_chain(certificates)


def authenticate_https(chain: tuple[str, ...], request_url: str, policy: CertificatePolicy) -> Requester:
    """C:`CertificateFilter`: the TLS handshake has verified the chain; no usable certificate → 401."""
    identity = identity_of_pem_chain(chain) if chain else None
    return requester_of(identity, policy.cloud_cn, target=request_url.removesuffix("/"))


@dataclass(frozen=True)
class MqttRequest:
    """What a request signature covers beyond the `authentication` field (transports/security/request_signatures.py):
    the raw message and the topic the reply goes to."""

    body: bytes
    reply_topic: str | None


def authenticate_mqtt_certificate(authentication: str | None, topic: str, policy: CertificatePolicy,
                                  now: datetime, request: MqttRequest | None = None) -> Requester:
    """C:`CertificateMqttFilter`: `authentication` = Base64 of the PEM certificate (chain), which (beyond
    the reference) must lead to the configured CA under the RFC 5280 profile HTTPS applies, and be valid
    now; 401s name the base topic, 403s the topic. With `mqtt_request_signatures = "required"` the
    request must also be signed with the certificate's key (checked before the certificate's identity)."""
    if authentication is None or is_blank(authentication):
        raise ArrowheadError("No authentication key has been provided", ExceptionType.AUTH)
    base_topic = topic[: topic.rfind("/") + 1]
    try:
        verified = policy.trust.verify_key(authentication, now)
    except InvalidAuthenticationKey as error:
        log.info("MQTT request on %s: unreadable authentication key: %s", topic, error)
        raise ArrowheadError("Invalid authentication key has been provided", ExceptionType.AUTH) from None
    except UntrustedCertificate as error:
        log.info("MQTT request on %s: %s", topic, error)
        raise _unauthenticated(base_topic) from None
    signatures = policy.trust.request_signatures
    if signatures is not None:
        if request is None:
            raise ArrowheadError("Request signatures are required but cannot be checked", ExceptionType.AUTH)
        signatures.check(request.body, topic, request.reply_topic, verified.leaf, now)
    try:
        identity = identity_of(verified.leaf.subject)
    except ValueError:  # a subject cryptography cannot decode: no identity
        identity = None
    return requester_of(identity, policy.cloud_cn, target=topic, unauthenticated_target=base_topic)
