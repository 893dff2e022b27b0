"""TLS material: read and check the PEM files named in the settings, and build the SSL contexts for the
HTTPS server and the MQTTS client.

Everything is checked at start-up, before the log is opened, and a problem becomes one `TlsConfigError`
naming the setting, the file and what is wrong (missing, not PEM, key does not match, expired …): the
CLI prints it as `lockstore: …`, no traceback. The ssl module would find some of these too, but with
messages like `[SSL: KEY_VALUES_MISMATCH]` and no file name.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from transports.config.settings import Settings
from transports.security.certificates import SYSTEM_CN_PARTS, TrustStore, split_cn
from transports.security.client_chains import ca_profile_problems
from transports.security.request_signatures import RequestSignatures

log = logging.getLogger("lockstore.tls")

ClientAuth = Literal["none", "optional", "required"]
_VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
ALPN = ["h2", "http/1.1"]


class TlsConfigError(Exception):
    """A TLS setting names a file that cannot be used; the message says which and why."""


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise TlsConfigError(f"{setting} {path}: cannot read it: {error.strerror}") from None


def subject_cn(certificate: x509.Certificate) -> str | None:
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return None
    value = values[-1].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def describe(certificate: x509.Certificate) -> str:
    """`CN=…` of a certificate (its whole subject when it has no CN), for messages."""
    cn = subject_cn(certificate)
    return f"CN={cn}" if cn is not None else certificate.subject.rfc4514_string()


def load_certificates(setting: str, path: str) -> list[x509.Certificate]:
    """Every certificate of a PEM file, in file order."""
    data = _read(setting, path)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        hint = " (it holds a private key: swapped with the key file?)" if b"PRIVATE KEY-----" in data else ""
        raise TlsConfigError(f"{setting} {path}: no PEM certificate in it{hint}")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise TlsConfigError(f"{setting} {path}: not a readable PEM certificate: {error}") from None


def load_private_key(setting: str, path: str) -> PrivateKeyTypes:
    data = _read(setting, path)
    if b"PRIVATE KEY-----" not in data:
        hint = " (it holds a certificate: swapped with the certificate file?)" if b"CERTIFICATE-----" in data else ""
        raise TlsConfigError(f"{setting} {path}: no PEM private key in it{hint}")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsConfigError(f"{setting} {path}: the key is password-protected; give an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise TlsConfigError(f"{setting} {path}: not a readable private key: {error}") from None


def check_validity(setting: str, path: str, certificate: x509.Certificate, now: datetime) -> None:
    name = describe(certificate)
    if now > certificate.not_valid_after_utc:
        raise TlsConfigError(
            f"{setting} {path}: the certificate {name} expired on {_iso(certificate.not_valid_after_utc)}"
        )
    if now < certificate.not_valid_before_utc:
        raise TlsConfigError(
            f"{setting} {path}: the certificate {name} is not valid before {_iso(certificate.not_valid_before_utc)}"
        )


def _public_der(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes")  # noqa: B009 - every public key type has it; the union type does not say so
    data: bytes = public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return data


def load_identity(cert_setting: str, cert_path: str, key_setting: str, key_path: str,
                  now: datetime) -> list[x509.Certificate]:
    """A certificate chain and its key, checked: readable, the key belongs to the first certificate,
    the first certificate valid now."""
    chain = load_certificates(cert_setting, cert_path)
    key = load_private_key(key_setting, key_path)
    if _public_der(chain[0].public_key()) != _public_der(key.public_key()):
        raise TlsConfigError(
            f"{key_setting} {key_path} does not match {cert_setting} {cert_path}: "
            f"the key is not the one of the certificate {describe(chain[0])}"
        )
    check_validity(cert_setting, cert_path, chain[0], now)
    return chain


def load_trust(setting: str, path: str, now: datetime) -> list[x509.Certificate]:
    """The CA certificates of a trust file; expired ones are skipped with a warning, none valid is an error.
    A certificate that cannot issue client certificates under the RFC 5280 profile gets a warning too."""
    certificates = load_certificates(setting, path)
    valid = [c for c in certificates if c.not_valid_before_utc <= now <= c.not_valid_after_utc]
    for certificate in certificates:
        if certificate not in valid:
            log.warning("%s %s: CA certificate %s is not valid now (valid %s to %s); it is ignored", setting, path,
                        describe(certificate), _iso(certificate.not_valid_before_utc),
                        _iso(certificate.not_valid_after_utc))
        elif problems := ca_profile_problems(certificate):
            log.warning("%s %s: certificate %s is not an RFC 5280 CA (%s): client certificates it issued are "
                        "refused over HTTPS and MQTT", setting, path, describe(certificate), "; ".join(problems))
    if not valid:
        try:
            check_validity(setting, path, certificates[0], now)
        except TlsConfigError as error:
            raise TlsConfigError(f"{error} (no CA certificate in the file is valid now)") from None
    return valid


@dataclass(frozen=True)
class HttpsSetup:
    """What the service needs to serve HTTPS (and to run the certificate policy)."""

    context: ssl.SSLContext
    server_chain: list[x509.Certificate]
    trust: TrustStore | None  # the tls_ca certificates, for certificates that arrive inside MQTT requests

    @property
    def server_cn(self) -> str | None:
        return subject_cn(self.server_chain[0])


def server_context(cert_path: str, key_path: str, ca_path: str | None, client_auth: ClientAuth) -> ssl.SSLContext:
    """TLS 1.2+, ALPN h2/http1.1, client certificates asked for per `client_auth` and checked against
    `ca_path`, whose certificates are each a trust anchor (partial chains: a file with just the local
    cloud's CA is enough, as in the reference's truststores).

    Client chains are checked RFC 5280-strictly (OpenSSL's X509_STRICT: issuers with critical
    BasicConstraints CA:true, a KeyUsage with keyCertSign and key identifiers), the profile MQTT requests'
    chains are held to as well (transports/security/client_chains.py), so both transports accept the same chains."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # not create_default_context: no system CAs for clients
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(ALPN)
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as error:
        raise TlsConfigError(f"tls_cert {cert_path} / tls_key {key_path}: rejected by OpenSSL: {error}") from None
    if ca_path is not None:
        try:
            context.load_verify_locations(cafile=ca_path)
        except ssl.SSLError as error:
            raise TlsConfigError(f"tls_ca {ca_path}: rejected by OpenSSL: {error}") from None
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    context.verify_mode = _VERIFY_MODES[client_auth]
    return context


MAX_SIGNATURE_WINDOW = 3600


def request_signatures(settings: Settings) -> RequestSignatures | None:
    """The `mqtt_request_signatures` settings, checked; None when signatures are off."""
    window = settings.mqtt_signature_window
    if not 1 <= window <= MAX_SIGNATURE_WINDOW:
        raise TlsConfigError(f"mqtt_signature_window {window}: must be 1 to {MAX_SIGNATURE_WINDOW} seconds")
    if settings.mqtt_request_signatures == "off":
        return None
    if settings.authentication_policy != "certificate":
        raise TlsConfigError("mqtt_request_signatures 'required' needs authentication_policy 'certificate' (a request "
                             "is signed with the key of the certificate in its authentication field)")
    return RequestSignatures(window)


def https_setup(settings: Settings, now: datetime | None = None) -> HttpsSetup | None:
    """Check the HTTPS settings and files; None when HTTPS is off (no tls_cert/tls_key)."""
    now = now or datetime.now(UTC)
    signatures = request_signatures(settings)
    certificate_policy = settings.authentication_policy == "certificate"
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise TlsConfigError("tls_cert and tls_key go together: give both to serve HTTPS, or neither")
    if settings.tls_cert is None or settings.tls_key is None:
        if certificate_policy:
            raise TlsConfigError("authentication_policy 'certificate' needs HTTPS: set tls_cert, tls_key and tls_ca "
                                 "(the service's own certificate names its cloud)")
        if settings.tls_client_auth != "none":
            raise TlsConfigError(f"tls_client_auth {settings.tls_client_auth!r} needs HTTPS: set tls_cert and tls_key")
        return None
    if settings.tls_client_auth != "none" and settings.tls_ca is None:
        raise TlsConfigError(f"tls_client_auth {settings.tls_client_auth!r} needs tls_ca, the CA that client "
                             "certificates must come from")
    chain = load_identity("tls_cert", settings.tls_cert, "tls_key", settings.tls_key, now)
    trust = None
    if settings.tls_ca is not None:
        trust = TrustStore(load_trust("tls_ca", settings.tls_ca, now), request_signatures=signatures)
    if certificate_policy:
        if trust is None:
            raise TlsConfigError("authentication_policy 'certificate' needs tls_ca, the CA that client certificates "
                                 "must come from")
        if settings.tls_client_auth == "none":
            raise TlsConfigError("authentication_policy 'certificate' needs tls_client_auth 'optional' or 'required' "
                                 "(with 'none' HTTPS clients are never asked for a certificate)")
        cn = subject_cn(chain[0])
        if cn is None or len(split_cn(cn)) != SYSTEM_CN_PARTS:
            raise TlsConfigError(
                f"tls_cert {settings.tls_cert}: authentication_policy 'certificate' needs a server certificate whose "
                f"CN is <System>.<Cloud>.<Organization>.<x>.<y> (it tells the service its cloud); its CN is {cn!r}"
            )
    context = server_context(settings.tls_cert, settings.tls_key, settings.tls_ca, settings.tls_client_auth)
    return HttpsSetup(context, chain, trust)


def mqtt_client_context(settings: Settings, now: datetime | None = None) -> ssl.SSLContext:
    """TLS for an mqtts:// broker: its certificate checked against mqtt_tls_ca (default tls_ca, else the
    system's CAs) with hostname verification unless turned off; our certificate mqtt_tls_cert/key
    (default tls_cert/tls_key, as the reference uses its HTTPS key store for MQTT too)."""
    now = now or datetime.now(UTC)
    ca_setting, ca_path = ("mqtt_tls_ca", settings.mqtt_tls_ca) if settings.mqtt_tls_ca else ("tls_ca", settings.tls_ca)
    if (settings.mqtt_tls_cert is None) != (settings.mqtt_tls_key is None):
        raise TlsConfigError("mqtt_tls_cert and mqtt_tls_key go together: give both, or neither")
    if settings.mqtt_tls_cert is not None and settings.mqtt_tls_key is not None:
        identity = ("mqtt_tls_cert", settings.mqtt_tls_cert, "mqtt_tls_key", settings.mqtt_tls_key)
    elif settings.tls_cert is not None and settings.tls_key is not None:
        identity = ("tls_cert", settings.tls_cert, "tls_key", settings.tls_key)
    else:
        identity = None
    if ca_path is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)  # the system's CAs
    else:
        load_trust(ca_setting, ca_path, now)
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_path)  # only these CAs
        except ssl.SSLError as error:
            raise TlsConfigError(f"{ca_setting} {ca_path}: rejected by OpenSSL: {error}") from None
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if identity is not None:
        cert_setting, cert_path, key_setting, key_path = identity
        load_identity(cert_setting, cert_path, key_setting, key_path, now)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as error:
            raise TlsConfigError(f"{cert_setting} {cert_path} / {key_setting} {key_path}: rejected by OpenSSL: "
                                 f"{error}") from None
    context.check_hostname = settings.mqtt_tls_verify_hostname
    return context
