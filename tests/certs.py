"""Certificates for the TLS tests, made at run time (no private key is ever committed).

One local cloud CA (`TestCloud.Company.arrowhead.eu`) issues the server, a broker, and one client
certificate per case the certificate policy distinguishes; a second, unrelated CA comes from trustme, so
"wrong CA" does not depend on our own generator.

`shaped()` makes certificates with exactly the extensions a case needs (a system certificate without
BasicConstraints, a CA without keyCertSign …), and `chain_cases()` the chains an attacker would try,
each with the verdict both HTTPS (OpenSSL) and MQTT (cryptography's path validator) must reach.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from transports.security.certificates import ProfileType
from transports.security.certs_tool import Issued, KeySpec, arrowhead_cn, issue, make_ca, new_key


@dataclass(frozen=True)
class Pair:
    """A certificate and key written to disk."""

    cert: Path
    key: Path

    def pem(self) -> bytes:
        return self.cert.read_bytes()

    def authentication(self) -> str:
        """The MQTT `authentication` field of the certificate policy: Base64 of the PEM."""
        return base64.b64encode(self.pem()).decode()

    def client_context(self, ca: Path) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class CertSet:
    directory: Path
    ca: Path  # our CA's certificate
    ca_issued: Issued
    server: Pair  # DynamicServiceOrchestration.TestCloud.Company.arrowhead.eu, SANs localhost/127.0.0.1
    broker: Pair  # Broker.TestCloud.Company.arrowhead.eu, SANs localhost/127.0.0.1
    system: Pair  # TemperatureManager, sy
    operator: Pair  # Operator, op
    device: Pair  # SomeDevice, de
    unqualified: Pair  # Anonymous, no dnQualifier
    foreign: Pair  # Intruder.OtherCloud.Company.arrowhead.eu, sy
    expired: Pair  # Veteran, sy, expired yesterday
    impostor: Pair  # TemperatureManager, sy, issued by another CA that has our CA's very name
    other_ca: Path  # an unrelated CA (trustme)
    stranger: Pair  # issued by the unrelated CA

    def client_context(self, pair: Pair | None) -> ssl.SSLContext:
        """A client context trusting our CA, presenting `pair` (or no certificate)."""
        if pair is None:
            return ssl.create_default_context(cafile=str(self.ca))
        return pair.client_context(self.ca)


def _write(directory: Path, stem: str, issued: Issued) -> Pair:
    pair = Pair(directory / f"{stem}.pem", directory / f"{stem}.key")
    pair.cert.write_bytes(issued.certificate_pem())
    pair.key.write_bytes(issued.key_pem())
    pair.key.chmod(0o600)
    return pair


def make_cert_set(directory: Path) -> CertSet:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca = make_ca()
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.certificate_pem())
    hosts = ("localhost", "127.0.0.1")
    pairs = {
        "server": issue(ca, arrowhead_cn("DynamicServiceOrchestration"), ProfileType.SYSTEM, hosts=hosts),
        "broker": issue(ca, arrowhead_cn("Broker"), ProfileType.SYSTEM, hosts=hosts),
        "system": issue(ca, arrowhead_cn("TemperatureManager"), ProfileType.SYSTEM),
        "operator": issue(ca, arrowhead_cn("Operator"), ProfileType.OPERATOR),
        "device": issue(ca, arrowhead_cn("SomeDevice"), ProfileType.DEVICE),
        "unqualified": issue(ca, arrowhead_cn("Anonymous"), None),
        "foreign": issue(ca, arrowhead_cn("Intruder", cloud="OtherCloud"), ProfileType.SYSTEM),
        "expired": issue(ca, arrowhead_cn("Veteran"), ProfileType.SYSTEM, not_before=now - timedelta(days=30),
                         not_after=now - timedelta(days=1)),
    }
    pairs["impostor"] = issue(make_ca(), arrowhead_cn("TemperatureManager"), ProfileType.SYSTEM)
    written = {stem: _write(directory, stem, issued) for stem, issued in pairs.items()}
    other = trustme.CA()
    other_ca = directory / "other-ca.pem"
    other.cert_pem.write_to_path(str(other_ca))
    stranger_issued = other.issue_cert("stranger.example", common_name=arrowhead_cn("TemperatureManager"))
    stranger = Pair(directory / "stranger.pem", directory / "stranger.key")
    stranger_issued.cert_chain_pems[0].write_to_path(str(stranger.cert))
    stranger_issued.private_key_pem.write_to_path(str(stranger.key))
    return CertSet(directory=directory, ca=ca_path, ca_issued=ca, other_ca=other_ca, stranger=stranger, **written)


# --------------------------------------------------------------------------- certificates of any shape

_KEY_USAGE_BITS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                   "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
CA_USAGE = ("key_cert_sign", "crl_sign")
LEAF_USAGE = ("digital_signature",)
BOTH_AUTH = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")


def shaped(issuer: Issued, common_name: str, profile: ProfileType | None, *, ca: bool | None = False,
           ca_critical: bool = True, key_usage: Collection[str] | None = LEAF_USAGE,
           extended_key_usage: Sequence[x509.ObjectIdentifier] | None = BOTH_AUTH, san: bool = True,
           authority_key_id: bool = True, subject_key_id: bool = True, not_before: datetime | None = None,
           not_after: datetime | None = None, key: KeySpec = "ec-p256") -> Issued:
    """A certificate signed by `issuer` with exactly these extensions (None: the extension is absent).
    The defaults make a well-formed Arrowhead 5 end entity; `ca=True, key_usage=CA_USAGE` a well-formed CA."""
    now = datetime.now(UTC)
    private_key = new_key(key)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if profile is not None:
        attributes.append(x509.NameAttribute(NameOID.DN_QUALIFIER, profile.value))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(issuer.certificate.subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(minutes=5))
        .not_valid_after(not_after or now + timedelta(days=30))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=ca_critical)
    if key_usage is not None:
        bits = {bit: bit in key_usage for bit in _KEY_USAGE_BITS}
        builder = builder.add_extension(x509.KeyUsage(**bits), critical=True)
    if extended_key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name.lower())]),
                                        critical=False)
    if subject_key_id:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()),
                                        critical=False)
    if authority_key_id:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), private_key)


def intermediate(issuer: Issued, **shape: object) -> Issued:
    """A CA below `issuer` (a sub-cloud of TestCloud), well-formed unless `shape` says otherwise."""
    options: dict[str, object] = {"ca": True, "key_usage": CA_USAGE, "extended_key_usage": None, "san": False}
    options.update(shape)
    return shaped(issuer, "Sub.TestCloud.Company.arrowhead.eu", ProfileType.LOCAL_CLOUD, **options)  # type: ignore[arg-type]


def operator_below(issuer: Issued, **shape: object) -> Issued:
    return shaped(issuer, arrowhead_cn("Operator"), ProfileType.OPERATOR, **shape)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ChainCase:
    """A chain a client presents (its own certificate first) and whether it must be accepted."""

    name: str
    chain: tuple[Issued, ...]
    accepted: bool

    def pem(self) -> bytes:
        return b"".join(item.certificate_pem() for item in self.chain)

    def authentication(self) -> str:
        """The MQTT `authentication` field: Base64 of the whole PEM chain."""
        return base64.b64encode(self.pem()).decode()

    def write(self, directory: Path) -> Pair:
        """The chain and its leaf's key as files (for an HTTPS client's load_cert_chain)."""
        stem = self.name.replace(" ", "-").replace(":", "").replace(",", "")
        pair = Pair(directory / f"{stem}.pem", directory / f"{stem}.key")
        pair.cert.write_bytes(self.pem())
        pair.key.write_bytes(self.chain[0].key_pem())
        pair.key.chmod(0o600)
        return pair


def _reissued(certificate: Issued, issuer: Issued, *, not_before: datetime, not_after: datetime) -> Issued:
    """The same subject, key and extensions, other dates: a CA certificate renewed (or its old version)."""
    original = certificate.certificate
    builder = (x509.CertificateBuilder().subject_name(original.subject).issuer_name(original.issuer)
               .public_key(original.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after))
    for extension in original.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), certificate.key)


def chain_cases(ca: Issued) -> list[ChainCase]:
    """Every chain below is an operator (`op` = sysop) certificate for the local cloud, so any chain that
    is wrongly accepted makes its holder Sysop. Verdicts are the RFC 5280 profile both transports enforce:
    OpenSSL's (strict) client-certificate checks over HTTPS, cryptography's path validator over MQTT."""
    now = datetime.now(UTC)
    good = intermediate(ca)
    # A system certificate our CA issued without BasicConstraints (as keytool makes them): it is no CA.
    system_without_basic_constraints = shaped(ca, arrowhead_cn("TemperatureManager"), ProfileType.SYSTEM, ca=None)
    system_with_cert_sign = shaped(ca, arrowhead_cn("TemperatureManager"), ProfileType.SYSTEM, ca=None,
                                   key_usage=("digital_signature", "key_cert_sign"))
    no_cert_sign = intermediate(ca, key_usage=("digital_signature", "crl_sign"))
    no_key_usage = intermediate(ca, key_usage=None)
    lax_constraints = intermediate(ca, ca_critical=False)
    no_authority_key_id = intermediate(ca, authority_key_id=False)
    expired = intermediate(ca, not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    server_only_ca = intermediate(ca, extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,))
    other = make_ca()  # another CA, with our CA's very name
    lapsed = _reissued(good, ca, not_before=now - timedelta(days=60), not_after=now - timedelta(days=30))
    cases = [
        ChainCase("operator", (operator_below(ca),), True),
        ChainCase("operator via an intermediate CA", (operator_below(good), good), True),
        ChainCase("operator via an intermediate CA, our CA sent along", (operator_below(good), ca, good), True),
        ChainCase("operator via an intermediate CA sent in its lapsed and current versions",
                  (operator_below(good), lapsed, good), True),
        ChainCase("operator without extendedKeyUsage", (operator_below(ca, extended_key_usage=None),), True),
        ChainCase("operator without subjectAltName", (operator_below(ca, san=False),), True),
        ChainCase("operator with keyAgreement only", (operator_below(ca, key_usage=("key_agreement",)),), True),
        ChainCase("operator RSA 2048", (operator_below(ca, key="rsa-2048"),), True),
        ChainCase("forged: system without BasicConstraints signs op",
                  (operator_below(system_without_basic_constraints), system_without_basic_constraints), False),
        ChainCase("forged: system without BasicConstraints but keyCertSign signs op",
                  (operator_below(system_with_cert_sign), system_with_cert_sign), False),
        ChainCase("intermediate CA without keyCertSign", (operator_below(no_cert_sign), no_cert_sign), False),
        ChainCase("intermediate CA without KeyUsage", (operator_below(no_key_usage), no_key_usage), False),
        ChainCase("intermediate CA with non-critical BasicConstraints",
                  (operator_below(lax_constraints), lax_constraints), False),
        ChainCase("intermediate CA without authorityKeyIdentifier",
                  (operator_below(no_authority_key_id), no_authority_key_id), False),
        ChainCase("intermediate CA only for serverAuth", (operator_below(server_only_ca), server_only_ca), False),
        ChainCase("expired intermediate CA", (operator_below(expired), expired), False),
        ChainCase("operator only for serverAuth",
                  (operator_below(ca, extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,)),), False),
        ChainCase("operator only for anyExtendedKeyUsage", (operator_below(ca, extended_key_usage=(ANY_EKU,)),), False),
        ChainCase("operator with keyEncipherment only", (operator_below(ca, key_usage=("key_encipherment",)),), False),
        ChainCase("operator with keyCertSign", (operator_below(ca, key_usage=("digital_signature", "key_cert_sign")),),
                  False),
        ChainCase("operator without authorityKeyIdentifier", (operator_below(ca, authority_key_id=False),), False),
        ChainCase("expired operator", (operator_below(ca, not_before=now - timedelta(days=30),
                                                      not_after=now - timedelta(days=1)),), False),
        ChainCase("operator from another CA with our CA's name", (operator_below(other),), False),
        ChainCase("operator from another CA, that CA sent along", (operator_below(other), other), False),
    ]
    return cases
