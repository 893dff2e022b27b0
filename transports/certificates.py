"""The reference's `certificate` authentication policy, without I/O (ARROWHEAD-REFERENCE.md §1.2 "Other
policies"; C:`security/SecurityUtilities.java`, C:`http/filter/authentication/CertificateFilter.java`,
C:`mqtt/filter/authentication/CertificateMqttFilter.java`).

An Arrowhead certificate names its holder in the subject CN, `<System>.<Cloud>.<Org>.<x>.<y>` (5 dot
separated parts, e.g. `TemperatureManager.TestCloud.Company.arrowhead.eu`), and its profile in a
dnQualifier (OID 2.5.4.46): `sy` a system, `op` an operator (= sysop). The service learns its own cloud
from its own server certificate's CN (everything after the first part) and refuses other clouds.

The TLS handshake (HTTPS) or `TrustStore.verify` (MQTT, where the certificate travels in the request)
decides whether a certificate is genuine; this module only reads identities out of genuine ones.
"""

from __future__ import annotations

import base64
import binascii
import collections
import enum
import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from transports.errors import ArrowheadError, ExceptionType
from transports.fields import is_blank, trim
from transports.identity import Requester
from transports.names import normalize_system_name

SYSTEM_CN_PARTS = 5  # C:`Constants.SYSTEM_CERT_CN_LENGTH`
CLOUD_CN_PARTS = 4  # C:`Constants.CLOUD_CERT_CN_LENGTH`
MAX_CHAIN = 5  # certificates walked from a presented certificate up to a trusted one

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


# --------------------------------------------------------------------------- the MQTT `authentication` field

_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_ASCII_WHITESPACE = re.compile(rb"\s+")


class InvalidAuthenticationKey(ValueError):
    """The field is not the Base64 of a PEM (or DER) certificate."""


def _java_base64(text: str | bytes) -> bytes:
    """Java's basic Base64 decoder: the standard alphabet, no whitespace, padding optional."""
    data = text.encode("ascii") if isinstance(text, str) else text
    missing = -len(data) % 4
    if missing == 3:
        raise binascii.Error("truncated Base64")
    return base64.b64decode(data + b"=" * missing, validate=True)


def decode_authentication_key(key: str) -> list[x509.Certificate]:
    """Base64 of a PEM certificate → [certificate, any further certificates of the PEM].

    The reference takes one certificate (C:`CertificateMqttFilter.decodeAuthorizationKey`); further
    PEM blocks are accepted here as intermediates for `TrustStore.verify`.
    """
    try:
        pem = _java_base64(key)
        blocks = _PEM_BLOCK.findall(pem) or [pem]  # without markers: the Base64 of the DER
        chain = [x509.load_der_x509_certificate(_java_base64(_ASCII_WHITESPACE.sub(b"", block)))
                 for block in blocks]
    except (UnicodeEncodeError, binascii.Error, ValueError) as error:
        raise InvalidAuthenticationKey(str(error)) from None
    return chain


class UntrustedCertificate(ValueError):
    """A well-formed certificate that does not lead to the configured CA, or is out of its validity."""


def _valid_at(certificate: x509.Certificate, now: datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return True  # old-style (v1) CA certificates have no extensions; being in the CA file is enough


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    if child.issuer != issuer.subject:
        return False
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


@dataclass
class TrustStore:
    """The configured CA certificates, each one a trust anchor (like OpenSSL's partial-chain mode, so a
    trust file holding only the local cloud's CA works, as the reference's truststores do).

    `verify` is what the TLS handshake does for HTTPS clients, for certificates that arrive inside MQTT
    requests: signature path to an anchor (through the given intermediates), every certificate on it
    within its validity period, issuers marked as CAs. Verified chains are cached by their leaf, so a
    client sending the same certificate with every request pays for the signatures once.
    """

    anchors: list[x509.Certificate]
    cache_size: int = 256
    _verified: collections.OrderedDict[bytes, tuple[x509.Certificate, ...]] = field(
        default_factory=collections.OrderedDict, repr=False
    )

    def verify(self, chain: Sequence[x509.Certificate], now: datetime) -> None:
        """Raise UntrustedCertificate unless chain[0] leads to an anchor and everything on the way is valid now."""
        leaf = chain[0]
        key = leaf.fingerprint(hashes.SHA256())
        path = self._verified.get(key)
        if path is None:
            path = self._path(leaf, chain[1:])
            self._verified[key] = path
            if len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(key)
        for certificate in path:
            if not _valid_at(certificate, now):
                raise UntrustedCertificate(
                    f"certificate {certificate.subject.rfc4514_string()} is not valid at {_iso(now)} "
                    f"(valid from {_iso(certificate.not_valid_before_utc)} to {_iso(certificate.not_valid_after_utc)})"
                )

    def _path(self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
        """leaf, intermediates…, anchor: each one signed by the next."""
        path = [leaf]
        if leaf in self.anchors:
            return tuple(path)
        for _ in range(MAX_CHAIN):
            current = path[-1]
            anchor = next((a for a in self.anchors if _is_ca(a) and _issued_by(current, a)), None)
            if anchor is not None:
                return (*path, anchor)
            step = next((c for c in intermediates if c not in path and _is_ca(c) and _issued_by(current, c)), None)
            if step is None:
                break
            path.append(step)
        raise UntrustedCertificate(f"certificate {leaf.subject.rfc4514_string()} is not issued by a trusted CA")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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


@functools.lru_cache(maxsize=256)
def _decode_cached(key: str) -> tuple[x509.Certificate, ...]:
    """A client sends the same certificate with every request: parse it once (failures are not cached)."""
    return tuple(decode_authentication_key(key))


def authenticate_mqtt_certificate(authentication: str | None, topic: str, policy: CertificatePolicy,
                                  now: datetime) -> Requester:
    """C:`CertificateMqttFilter`: `authentication` = Base64 of the PEM certificate, which (beyond the
    reference) must come from the configured CA and be valid now; 401s name the base topic, 403s the topic."""
    if authentication is None or is_blank(authentication):
        raise ArrowheadError("No authentication key has been provided", ExceptionType.AUTH)
    try:
        chain = _decode_cached(authentication)
    except InvalidAuthenticationKey:
        raise ArrowheadError("Invalid authentication key has been provided", ExceptionType.AUTH) from None
    base_topic = topic[: topic.rfind("/") + 1]
    try:
        policy.trust.verify(chain, now)
    except UntrustedCertificate as error:
        log.info("MQTT request on %s: %s", topic, error)
        raise _unauthenticated(base_topic) from None
    identity = identity_of(chain[0].subject)
    return requester_of(identity, policy.cloud_cn, target=topic, unauthenticated_target=base_topic)
