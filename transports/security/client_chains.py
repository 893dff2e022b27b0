"""Certificate chains that arrive inside MQTT requests: read them with bounded effort, and decide whether
they are genuine the way the HTTPS handshake does.

Over HTTPS, OpenSSL verifies the client's chain during the handshake (`transports/security/tls.py` asks for
RFC 5280 strictness). Over MQTT the chain travels in the request's `authentication` field (Base64 of PEM,
ARROWHEAD-REFERENCE.md §1.2.2), so the service verifies it itself, with cryptography's RFC 5280 path
validator (`cryptography.x509.verification`) and extension policies that mirror OpenSSL's strict client
checks, so that both transports accept and refuse the same chains:

- every issuer (intermediate or trust anchor) is a CA: BasicConstraints CA:true, marked critical, and a
  KeyUsage with keyCertSign; it has a subjectKeyIdentifier, and one that is not a trust anchor an
  authorityKeyIdentifier; an extendedKeyUsage on it, if any, allows clientAuth;
- the client's own certificate is no CA, has an authorityKeyIdentifier, its extendedKeyUsage (if any)
  names clientAuth, and its KeyUsage (if any) allows digitalSignature or keyAgreement, never keyCertSign;
- every certificate on the path is valid now, and signatures use SHA-2 with RSA (2048 bits and more) or
  ECDSA on P-256/P-384/P-521.

A subjectAltName is not required (the identity is the subject's CN, and OpenSSL does not ask for one).
The Arrowhead 5 certificate profiles satisfy all of this.

Bounded effort, because anyone who can publish to a request topic can send a chain, and path building
tries alternatives: the field is at most `MAX_AUTHENTICATION_CHARS` characters and `MAX_CERTIFICATES`
certificates (an Arrowhead chain — system, local cloud, organisation, master — has 4), RSA keys at most
`MAX_RSA_BITS` bits. Of several intermediates with the same subject and key only one is kept (the one
valid now that expires last), so no two candidates can both verify a signature and the search cannot
branch; paths are at most as long as the intermediates given, so it cannot loop long either; and
cryptography (49 and later) stops any search after 128 signature checks. Measured worst cases are in
`python -m bench auth-cost`. Chains that verified are remembered (bounded LRU keyed by the field's digest); their
validity period is checked again on every use.
"""

from __future__ import annotations

import binascii
import collections
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.verification import Criticality, ExtensionPolicy, Policy, PolicyBuilder, Store, VerificationError

from transports.security.java_base64 import java_base64

if TYPE_CHECKING:
    from transports.security.request_signatures import RequestSignatures

MAX_AUTHENTICATION_CHARS = 64 * 1024  # an Arrowhead chain (system + cloud + org certificates) is ~5 KiB
MAX_CERTIFICATES = 5  # the client's certificate and up to 4 CA certificates (Arrowhead has 3 levels of CAs)
MAX_RSA_BITS = 4096

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_ASCII_WHITESPACE = re.compile(rb"\s+")


class InvalidAuthenticationKey(ValueError):
    """The field is not the Base64 of a PEM (or DER) certificate, or is larger than allowed."""


class UntrustedCertificate(ValueError):
    """A well-formed chain that does not lead to a configured CA under the profile, or is not valid now."""


def decode_authentication_key(key: str) -> list[x509.Certificate]:
    """Base64 of a PEM certificate → [certificate, any further certificates of the PEM].

    The reference takes one certificate (C:`CertificateMqttFilter.decodeAuthorizationKey`); further PEM
    blocks are accepted here as intermediates. Size and count are checked before any parsing.
    """
    if len(key) > MAX_AUTHENTICATION_CHARS:
        raise InvalidAuthenticationKey(f"{len(key)} characters, more than {MAX_AUTHENTICATION_CHARS}")
    try:
        pem = java_base64(key)
        markers = pem.count(_PEM_BEGIN)
        if markers > MAX_CERTIFICATES:
            raise InvalidAuthenticationKey(f"{markers} certificates, more than {MAX_CERTIFICATES}")
        blocks = _PEM_BLOCK.findall(pem) or [pem]  # without markers: the Base64 of the DER
        return [x509.load_der_x509_certificate(java_base64(_ASCII_WHITESPACE.sub(b"", block)))
                for block in blocks]
    except (UnicodeEncodeError, binascii.Error, ValueError) as error:
        raise InvalidAuthenticationKey(str(error)) from None


# --------------------------------------------------------------------------- the profile (see the module doc)


_KeyIdentifierCheck = Callable[[Policy, x509.Certificate, x509.AuthorityKeyIdentifier | None], None]


def _key_identifier_required(anchors: frozenset[x509.Certificate]) -> _KeyIdentifierCheck:
    """An authorityKeyIdentifier with a keyIdentifier, except on a trust anchor (OpenSSL strict:
    every certificate but the last of the path)."""

    def check(_policy: Policy, certificate: x509.Certificate, value: x509.AuthorityKeyIdentifier | None) -> None:
        if certificate in anchors:
            return
        if value is None or value.key_identifier is None:
            raise ValueError("a certificate issued by a CA needs an authorityKeyIdentifier with a keyIdentifier")

    return check


def _client_key_usage(_policy: Policy, _certificate: x509.Certificate, value: x509.KeyUsage | None) -> None:
    """OpenSSL's TLS-client purpose: digitalSignature or keyAgreement; strict: no keyCertSign on an end entity."""
    if value is None:
        return
    if value.key_cert_sign:
        raise ValueError("the client certificate's KeyUsage asserts keyCertSign")
    if not (value.digital_signature or value.key_agreement):
        raise ValueError("the client certificate's KeyUsage allows neither digitalSignature nor keyAgreement")


def _extension_policies(anchors: frozenset[x509.Certificate]) -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """(CA policy, client certificate policy): cryptography's web PKI defaults, adjusted to OpenSSL strict."""
    key_identifier = _key_identifier_required(anchors)
    ca_policy = (
        ExtensionPolicy.webpki_defaults_ca()  # BasicConstraints CA:true critical, KeyUsage with keyCertSign
        .require_present(x509.SubjectKeyIdentifier, Criticality.NON_CRITICAL, None)
        .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, key_identifier)
    )
    client_policy = (
        ExtensionPolicy.webpki_defaults_ee()  # not a CA; extendedKeyUsage, if any, names clientAuth
        .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
        .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, key_identifier)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _client_key_usage)
    )
    return ca_policy, client_policy


def ca_profile_problems(certificate: x509.Certificate) -> list[str]:
    """Why a configured CA certificate cannot issue client certificates under the profile (empty: it can).
    For start-up warnings: path validation would refuse every chain through it, without naming it."""
    problems = []
    extensions = certificate.extensions
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints)
        if not constraints.value.ca:
            problems.append("BasicConstraints CA:false")
        elif not constraints.critical:
            problems.append("BasicConstraints not marked critical")
    except x509.ExtensionNotFound:
        problems.append("no BasicConstraints")
    try:
        if not extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign:
            problems.append("KeyUsage without keyCertSign")
    except x509.ExtensionNotFound:
        problems.append("no KeyUsage")
    try:
        extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        problems.append("no subjectKeyIdentifier")
    return problems


def _key_of(certificate: x509.Certificate) -> bytes:
    """The public key, re-encoded (one key has one encoding here, whatever the certificate used)."""
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def distinct_issuers(intermediates: Sequence[x509.Certificate], now: datetime) -> list[x509.Certificate]:
    """One certificate per (subject, key): the one valid at `now` that expires last (else the first).
    A child's signature verifies under one key, so path building then has at most one way up."""
    chosen: dict[tuple[bytes, bytes], x509.Certificate] = {}
    for certificate in intermediates:
        identity = (certificate.subject.public_bytes(), _key_of(certificate))
        current = chosen.get(identity)
        if current is None or _better_issuer(certificate, current, now):
            chosen[identity] = certificate
    return list(chosen.values())


def _better_issuer(candidate: x509.Certificate, current: x509.Certificate, now: datetime) -> bool:
    def valid(certificate: x509.Certificate) -> bool:
        return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc

    if valid(candidate) != valid(current):
        return valid(candidate)
    return candidate.not_valid_after_utc > current.not_valid_after_utc


@dataclass(frozen=True)
class VerifiedChain:
    """What a verified chain tells: the client's certificate, and when the whole path is valid."""

    leaf: x509.Certificate
    valid_from: datetime
    valid_until: datetime

    def valid_at(self, now: datetime) -> bool:
        return self.valid_from <= now <= self.valid_until


def _describe(certificate: x509.Certificate) -> str:
    """The subject for log lines, at most 200 characters; never fails (subjects come from anyone)."""
    try:
        return certificate.subject.rfc4514_string()[:200]
    except ValueError:
        return "(unreadable subject)"


@dataclass
class TrustStore:
    """The configured CA certificates (`tls_ca`), each one a trust anchor (like OpenSSL's partial-chain
    mode, so a trust file holding only the local cloud's CA works, as the reference's truststores do), and
    what a request arriving over MQTT must prove beyond its chain (`request_signatures`; None: nothing)."""

    anchors: list[x509.Certificate]
    request_signatures: RequestSignatures | None = None
    cache_size: int = 256
    _store: Store = field(init=False, repr=False)
    _policies: tuple[ExtensionPolicy, ExtensionPolicy] = field(init=False, repr=False)
    _verified: collections.OrderedDict[bytes, VerifiedChain] = field(
        default_factory=collections.OrderedDict, repr=False
    )

    def __post_init__(self) -> None:
        self._store = Store(self.anchors)
        self._policies = _extension_policies(frozenset(self.anchors))

    def verify(self, chain: Sequence[x509.Certificate], now: datetime) -> VerifiedChain:
        """Raise UntrustedCertificate unless chain[0] leads to an anchor through chain[1:] under the profile."""
        leaf = chain[0]
        for certificate in chain:
            try:
                public_key = certificate.public_key()
            except (ValueError, UnsupportedAlgorithm) as error:
                raise UntrustedCertificate(f"certificate {_describe(certificate)}: unusable key: {error}") from None
            if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size > MAX_RSA_BITS:
                raise UntrustedCertificate(f"certificate {_describe(certificate)} has an RSA key of "
                                           f"{public_key.key_size} bits, more than {MAX_RSA_BITS}")
        try:
            intermediates = distinct_issuers(chain[1:], now)
        except ValueError as error:  # a subject cryptography cannot encode back
            raise UntrustedCertificate(f"certificate {_describe(leaf)}: unusable intermediate: {error}") from None
        ca_policy, client_policy = self._policies
        verifier = (
            PolicyBuilder().store(self._store).time(now).max_chain_depth(len(intermediates))
            .extension_policies(ca_policy=ca_policy, ee_policy=client_policy)
            .build_client_verifier()
        )
        try:
            path = verifier.verify(leaf, intermediates).chain
        except (VerificationError, ValueError) as error:
            raise UntrustedCertificate(f"certificate {_describe(leaf)}: {str(error)[:300]}") from None
        return VerifiedChain(
            leaf,
            max(certificate.not_valid_before_utc for certificate in path),
            min(certificate.not_valid_after_utc for certificate in path),
        )

    @property
    def cached_chains(self) -> int:
        return len(self._verified)

    def verify_key(self, authentication: str, now: datetime) -> VerifiedChain:
        """The MQTT `authentication` field → its verified chain (InvalidAuthenticationKey, UntrustedCertificate).

        A client sends the same chain with every request: a chain that verified is remembered by the
        digest of the field and only its validity period is checked again (failures are never cached).
        """
        if len(authentication) > MAX_AUTHENTICATION_CHARS:  # before hashing it
            raise InvalidAuthenticationKey(f"{len(authentication)} characters, more than {MAX_AUTHENTICATION_CHARS}")
        digest = hashlib.sha256(authentication.encode("utf-8", "surrogatepass")).digest()
        known = self._verified.get(digest)
        if known is not None and known.valid_at(now):
            self._verified.move_to_end(digest)
            return known
        verified = self.verify(decode_authentication_key(authentication), now)
        self._verified[digest] = verified
        self._verified.move_to_end(digest)
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return verified
