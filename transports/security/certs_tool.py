"""`lockstore certs`: a throw-away CA and Arrowhead-style certificates, so HTTPS / MQTTS and the
certificate policy can be tried in a minute — and so tests make their certificates at run time.

Layout follows the reference's test certificates (DOC:`downloads/test-certificates.md`): the CA is a
local cloud (`TestCloud.Company.arrowhead.eu`, dnQualifier `lo`); systems are
`<System>.TestCloud.Company.arrowhead.eu` with dnQualifier `sy`, operators the same with `op`. Extensions
follow the Arrowhead 5 certificate profiles (RFC 5280): CAs with a critical BasicConstraints CA:true, a
KeyUsage with keyCertSign and key identifiers; end entities with CA:false, an authorityKeyIdentifier,
serverAuth + clientAuth and subjectAltNames. Keys are EC P-256 by default: quick to make, accepted by curl,
mosquitto and every TLS 1.2+ stack (`key=` makes P-384 or RSA ones).

NOT for production: the CA key sits next to the certificates, unprotected.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from transports.security.certificates import ProfileType

ROOT_SUFFIX = "arrowhead.eu"
DEFAULT_CLOUD = "TestCloud"
DEFAULT_ORGANIZATION = "Company"
DEFAULT_SERVER = "DynamicServiceOrchestration"  # the reference system that hosts lock management
DEFAULT_SYSTEM = "TemperatureManager"
DEFAULT_OPERATOR = "Operator"  # as the reference's Operator.p12 test certificate
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")

KeySpec = str  # "ec-p256", "ec-p384", "ec-p521" or "rsa-<bits>"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_key(spec: KeySpec = "ec-p256") -> PrivateKey:
    curves = {"ec-p256": ec.SECP256R1(), "ec-p384": ec.SECP384R1(), "ec-p521": ec.SECP521R1()}
    if spec.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(spec.removeprefix("rsa-")))
    if spec not in curves:
        raise ValueError(f"unknown key type {spec!r}: ec-p256, ec-p384, ec-p521 or rsa-<bits>")
    return ec.generate_private_key(curves[spec])


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: PrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def common_name(self) -> str:
        value = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return value.decode() if isinstance(value, bytes) else value


def arrowhead_cn(name: str, cloud: str = DEFAULT_CLOUD, organization: str = DEFAULT_ORGANIZATION) -> str:
    return f"{name}.{cloud}.{organization}.{ROOT_SUFFIX}"


def _subject(common_name: str, profile: ProfileType | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if profile is not None:
        attributes.append(x509.NameAttribute(NameOID.DN_QUALIFIER, profile.value))
    return x509.Name(attributes)


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_ca(cloud: str = DEFAULT_CLOUD, organization: str = DEFAULT_ORGANIZATION, *, days: int = 30,
            now: datetime | None = None, common_name: str | None = None, issuer: Issued | None = None,
            key: KeySpec = "ec-p256") -> Issued:
    """A local cloud CA: self-signed, or an intermediate signed by `issuer` (then with an
    authorityKeyIdentifier, which RFC 5280 and OpenSSL's strict mode ask of every issued certificate)."""
    now = now or datetime.now(UTC)
    private_key = new_key(key)
    subject = _subject(common_name or f"{cloud}.{organization}.{ROOT_SUFFIX}", ProfileType.LOCAL_CLOUD)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    return Issued(builder.sign(issuer.key if issuer else private_key, hashes.SHA256()), private_key)


def issue(ca: Issued, common_name: str, profile: ProfileType | None = ProfileType.SYSTEM, *,
          hosts: Sequence[str] = (), days: int = 30, now: datetime | None = None,
          not_before: datetime | None = None, not_after: datetime | None = None, key: KeySpec = "ec-p256") -> Issued:
    """An end-entity certificate signed by `ca`, usable as TLS server and client (Arrowhead systems are
    both). `hosts` become subjectAltNames (DNS names or IP addresses); the CN itself is always one."""
    now = now or datetime.now(UTC)
    private_key = new_key(key)
    rsa_key = isinstance(private_key, rsa.RSAPrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(common_name, profile))
        .issuer_name(ca.certificate.subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(minutes=5))
        .not_valid_after(not_after or now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=rsa_key,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(_san([common_name.lower(), *hosts]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    return Issued(builder.sign(ca.key, hashes.SHA256()), private_key)


@dataclass(frozen=True)
class Bundle:
    """Where `write_bundle` put things."""

    directory: Path
    ca: Path
    server: tuple[Path, Path]
    system: tuple[Path, Path]
    operator: tuple[Path, Path]
    server_cn: str
    system_cn: str
    operator_cn: str


class CertsError(Exception):
    """Refusal to write (existing files without --force, unwritable directory)."""


def _write(path: Path, data: bytes, *, private: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    if private:
        path.chmod(0o600)


def write_bundle(directory: Path, *, cloud: str = DEFAULT_CLOUD, organization: str = DEFAULT_ORGANIZATION,
                 server: str = DEFAULT_SERVER, system: str = DEFAULT_SYSTEM, operator: str = DEFAULT_OPERATOR,
                 hosts: Sequence[str] = DEFAULT_HOSTS, days: int = 30, force: bool = False) -> Bundle:
    """CA, server, one system and one operator certificate (PEM, keys unencrypted, mode 0600)."""
    names = ["ca.pem", "ca.key", "server.pem", "server.key", "system.pem", "system.key", "operator.pem",
             "operator.key"]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CertsError(f"cannot create {directory}: {error.strerror}") from None
    existing = [name for name in names if (directory / name).exists()]
    if existing and not force:
        raise CertsError(f"{directory} already holds {', '.join(existing)}; use --force to replace them")
    ca = make_ca(cloud, organization, days=days)
    issued = {
        "server": issue(ca, arrowhead_cn(server, cloud, organization), ProfileType.SYSTEM, hosts=hosts, days=days),
        "system": issue(ca, arrowhead_cn(system, cloud, organization), ProfileType.SYSTEM, days=days),
        "operator": issue(ca, arrowhead_cn(operator, cloud, organization), ProfileType.OPERATOR, days=days),
    }
    try:
        _write(directory / "ca.pem", ca.certificate_pem(), private=False)
        _write(directory / "ca.key", ca.key_pem(), private=True)
        for stem, item in issued.items():
            _write(directory / f"{stem}.pem", item.certificate_pem(), private=False)
            _write(directory / f"{stem}.key", item.key_pem(), private=True)
    except OSError as error:
        raise CertsError(f"cannot write to {directory}: {error.strerror}") from None
    return Bundle(
        directory=directory,
        ca=directory / "ca.pem",
        server=(directory / "server.pem", directory / "server.key"),
        system=(directory / "system.pem", directory / "system.key"),
        operator=(directory / "operator.pem", directory / "operator.key"),
        server_cn=issued["server"].common_name,
        system_cn=issued["system"].common_name,
        operator_cn=issued["operator"].common_name,
    )


def describe(bundle: Bundle, port: int = 8441) -> str:
    """What to do next, printed by `lockstore certs`."""
    d = bundle.directory
    return f"""\
wrote a throw-away CA and certificates to {d} (keys unencrypted: for local testing only)
  CA        {bundle.ca}
  server    {bundle.server[0]}   CN={bundle.server_cn}
  system    {bundle.system[0]}   CN={bundle.system_cn} (dnQualifier sy)
  operator  {bundle.operator[0]}   CN={bundle.operator_cn} (dnQualifier op = sysop)

try it:
  lockstore serve --tls-cert {d}/server.pem --tls-key {d}/server.key --tls-ca {d}/ca.pem \\
      --tls-client-auth optional --authentication-policy certificate
  curl --cacert {d}/ca.pem --cert {d}/operator.pem --key {d}/operator.key \\
      -H 'Content-Type: application/json' -d '{{}}' \\
      https://localhost:{port}/serviceorchestration/orchestration/mgmt/lock/query
"""
