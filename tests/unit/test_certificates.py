"""The certificate policy without sockets (ARROWHEAD-REFERENCE.md §1.2 "Other policies";
C:`SecurityUtilities`, `CertificateFilter`, `CertificateMqttFilter`)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from tests.certs import CertSet, make_cert_set
from transports.certificates import (
    CertificateIdentity,
    CertificatePolicy,
    InvalidAuthenticationKey,
    ProfileType,
    TrustStore,
    UntrustedCertificate,
    authenticate_https,
    authenticate_mqtt_certificate,
    cloud_of_server,
    decode_authentication_key,
    identity_of,
    in_cloud,
    requester_of,
)
from transports.certs_tool import arrowhead_cn, issue, make_ca
from transports.errors import ArrowheadError
from transports.identity import Requester

CLOUD = "TestCloud.Company.arrowhead.eu"
TOPIC = "arrowhead/serviceorchestration/orchestration/management/lock/create"
BASE_TOPIC = "arrowhead/serviceorchestration/orchestration/management/lock/"
URL = "https://127.0.0.1:8441/serviceorchestration/orchestration/mgmt/lock/create"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertSet]:
    yield make_cert_set(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def policy(certs: CertSet) -> CertificatePolicy:
    return CertificatePolicy(CLOUD, TrustStore([certs.ca_issued.certificate]))


def name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


CN, DNQ = NameOID.COMMON_NAME, NameOID.DN_QUALIFIER


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (name((CN, "TemperatureManager.TestCloud.Company.arrowhead.eu"), (DNQ, "sy")),
         CertificateIdentity("TemperatureManager.TestCloud.Company.arrowhead.eu", ProfileType.SYSTEM)),
        (name((CN, "Operator.TestCloud.Company.arrowhead.eu"), (DNQ, "op")),
         CertificateIdentity("Operator.TestCloud.Company.arrowhead.eu", ProfileType.OPERATOR)),
        (name((DNQ, " de "), (CN, "Thing.TestCloud.Company.arrowhead.eu")),  # Java-trimmed, any order
         CertificateIdentity("Thing.TestCloud.Company.arrowhead.eu", ProfileType.DEVICE)),
        (name((CN, "A.B.C.D.E."), (DNQ, "xx"), (DNQ, "sy")),  # trailing dot dropped; first known code wins
         CertificateIdentity("A.B.C.D.E.", ProfileType.SYSTEM)),
        (name((CN, "First.B.C.D.E"), (CN, "Last.B.C.D.E"), (DNQ, "sy")),  # the last CN counts
         CertificateIdentity("Last.B.C.D.E", ProfileType.SYSTEM)),
        (name((CN, "TemperatureManager.TestCloud.Company.arrowhead.eu")), None),  # no dnQualifier
        (name((CN, "TemperatureManager.TestCloud.Company.arrowhead.eu"), (DNQ, "SY")), None),  # codes are case-sensitive
        (name((CN, "TestCloud.Company.arrowhead.eu"), (DNQ, "sy")), None),  # 4 parts
        (name((CN, "A.B.C.D.E.F"), (DNQ, "sy")), None),  # 6 parts
        (name((DNQ, "sy")), None),  # no CN
    ],
)
def test_identity_of_subject(subject: x509.Name, expected: CertificateIdentity | None) -> None:
    assert identity_of(subject) == expected


def test_cloud_of_server_and_in_cloud() -> None:
    assert cloud_of_server("DynamicServiceOrchestration.TestCloud.Company.arrowhead.eu") == CLOUD
    with pytest.raises(ValueError, match="no cloud part"):
        cloud_of_server("localhost")
    assert in_cloud("X.TestCloud.Company.arrowhead.eu", CLOUD)
    assert in_cloud("X.testCloud.company.other.root", CLOUD)  # only cloud and organisation count, normalised
    assert in_cloud("X.test-cloud.Company.a.b", CLOUD)  # `test-cloud` normalises to `TestCloud`
    assert not in_cloud("X.Testcloud.Company.arrowhead.eu", CLOUD)  # inner case is kept
    assert not in_cloud("X.OtherCloud.Company.arrowhead.eu", CLOUD)
    assert not in_cloud("X.TestCloud.Other.arrowhead.eu", CLOUD)
    assert not in_cloud("X.TestCloud.Company.arrowhead.eu", "TestCloud.Company.eu")  # the cloud CN needs 4 parts


def identity(cn: str, profile: ProfileType) -> CertificateIdentity:
    return CertificateIdentity(cn, profile)


def test_requester_of_system_and_operator() -> None:
    system = requester_of(identity("temperature-manager.TestCloud.Company.arrowhead.eu", ProfileType.SYSTEM), CLOUD, target=URL)
    assert system == Requester("TemperatureManager", sysop=False)  # first CN part, normalised
    operator = requester_of(identity("Operator.TestCloud.Company.arrowhead.eu", ProfileType.OPERATOR), CLOUD, target=URL)
    assert operator == Requester("Operator", sysop=True)  # an operator certificate is sysop, whatever its name


@pytest.mark.parametrize(
    ("who", "status", "message"),
    [
        (None, 401, f"Unauthenticated access attempt: {URL}"),
        (identity(" .TestCloud.Company.arrowhead.eu", ProfileType.SYSTEM), 401, f"Unauthenticated access attempt: {URL}"),
        (identity("Thing.TestCloud.Company.arrowhead.eu", ProfileType.DEVICE), 403,
         f"Unauthorized access: {URL}, invalid certificate type: DEVICE"),
        (identity("Cloud.TestCloud.Company.arrowhead.eu", ProfileType.LOCAL_CLOUD), 403,
         f"Unauthorized access: {URL}, invalid certificate type: LOCAL_CLOUD"),
        (identity("Intruder.OtherCloud.Company.arrowhead.eu", ProfileType.SYSTEM), 403,
         f"Unauthorized access: {URL}, from foreign cloud"),
        (identity("Intruder.OtherCloud.Company.arrowhead.eu", ProfileType.GATE), 403,  # type before cloud
         f"Unauthorized access: {URL}, invalid certificate type: GATE"),
    ],
)
def test_requester_of_refusals(who: CertificateIdentity | None, status: int, message: str) -> None:
    with pytest.raises(ArrowheadError) as caught:
        requester_of(who, CLOUD, target=URL)
    assert (caught.value.status, caught.value.message, caught.value.origin) == (status, message, None)


def test_authenticate_https(certs: CertSet, policy: CertificatePolicy) -> None:
    operator = certs.operator.pem().decode()
    assert authenticate_https((operator,), URL, policy) == Requester("Operator", sysop=True)
    # the first certificate with an identity counts (C:`getIdentificationDataFromRequest`)
    ca = certs.ca.read_text()
    assert authenticate_https((ca, certs.system.pem().decode()), URL, policy) == Requester("TemperatureManager", False)
    with pytest.raises(ArrowheadError, match=f"^Unauthenticated access attempt: {URL}$"):
        authenticate_https((), URL + "/", policy)  # one trailing slash stripped, as Utilities.stripEndSlash
    with pytest.raises(ArrowheadError, match=f"^Unauthenticated access attempt: {URL}$"):
        authenticate_https((certs.unqualified.pem().decode(),), URL, policy)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_decode_authentication_key(certs: CertSet) -> None:
    pem = certs.system.pem()
    expected = x509.load_pem_x509_certificate(pem)
    assert decode_authentication_key(b64(pem)) == [expected]
    padded = pem if len(pem) % 3 else pem + b"\n"  # a length that needs Base64 padding
    assert b64(padded).endswith("=")
    assert decode_authentication_key(b64(padded).rstrip("=")) == [expected]  # Java: padding optional
    der_base64 = base64.b64encode(expected.public_bytes(serialization.Encoding.DER))
    assert decode_authentication_key(b64(der_base64)) == [expected]  # no PEM markers: Base64 of the DER
    chain = decode_authentication_key(b64(pem + certs.ca.read_bytes()))
    assert [c.subject for c in chain] == [expected.subject, certs.ca_issued.certificate.subject]


@pytest.mark.parametrize(
    "key",
    [
        "not base64!",
        b64(b"hello"),
        b64(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        "A",  # truncated Base64
        " " + b64(b"x"),  # Java's basic decoder takes no whitespace
        "é",
    ],
)
def test_decode_authentication_key_refuses(key: str) -> None:
    with pytest.raises(InvalidAuthenticationKey):
        decode_authentication_key(key)


def test_trust_store(certs: CertSet) -> None:
    now = datetime.now(UTC)
    store = TrustStore([certs.ca_issued.certificate])
    load = lambda pair: x509.load_pem_x509_certificate(pair.pem())  # noqa: E731
    store.verify([load(certs.system)], now)
    store.verify([load(certs.system)], now)  # cached: still fine
    with pytest.raises(UntrustedCertificate, match="is not valid at"):
        store.verify([load(certs.system)], now + timedelta(days=400))  # the cache does not skip the dates
    with pytest.raises(UntrustedCertificate, match="is not valid at"):
        store.verify([load(certs.expired)], now)
    with pytest.raises(UntrustedCertificate, match="not issued by a trusted CA"):
        store.verify([load(certs.impostor)], now)  # a CA with our CA's name, but another key
    with pytest.raises(UntrustedCertificate, match="not issued by a trusted CA"):
        store.verify([load(certs.stranger)], now)
    store.verify([certs.ca_issued.certificate], now)  # a trusted certificate itself


def test_trust_store_with_intermediates() -> None:
    now = datetime.now(UTC)
    root = make_ca(common_name="arrowhead.eu")
    cloud = make_ca(issuer=root)  # TestCloud.Company.arrowhead.eu, signed by the root
    member = issue(cloud, arrowhead_cn("Member"), ProfileType.SYSTEM)
    TrustStore([root.certificate]).verify([member.certificate, cloud.certificate], now)
    with pytest.raises(UntrustedCertificate, match="not issued by a trusted CA"):
        TrustStore([root.certificate]).verify([member.certificate], now)  # the intermediate is missing
    # partial chain: the local cloud CA alone is a trust anchor, as in the reference's truststores
    TrustStore([cloud.certificate]).verify([member.certificate], now)
    # an end-entity certificate cannot issue others, even one that chains up to the root
    direct = issue(root, arrowhead_cn("Direct"), ProfileType.SYSTEM)
    TrustStore([root.certificate]).verify([direct.certificate], now)
    fake = issue(direct, arrowhead_cn("Fake"), ProfileType.SYSTEM)
    with pytest.raises(UntrustedCertificate):
        TrustStore([root.certificate]).verify([fake.certificate, direct.certificate], now)


def mqtt(key: str | None, policy: CertificatePolicy, now: datetime | None = None) -> Requester:
    return authenticate_mqtt_certificate(key, TOPIC, policy, now or datetime.now(UTC))


def test_mqtt_certificate_policy_accepts(certs: CertSet, policy: CertificatePolicy) -> None:
    assert mqtt(certs.system.authentication(), policy) == Requester("TemperatureManager", sysop=False)
    assert mqtt(certs.operator.authentication(), policy) == Requester("Operator", sysop=True)


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("none", 401, "No authentication key has been provided"),
        ("blank", 401, "No authentication key has been provided"),
        ("garbage", 401, "Invalid authentication key has been provided"),
        ("unqualified", 401, f"Unauthenticated access attempt: {BASE_TOPIC}"),
        ("impostor", 401, f"Unauthenticated access attempt: {BASE_TOPIC}"),
        ("stranger", 401, f"Unauthenticated access attempt: {BASE_TOPIC}"),
        ("expired", 401, f"Unauthenticated access attempt: {BASE_TOPIC}"),
        ("device", 403, f"Unauthorized access: {TOPIC}, invalid certificate type: DEVICE"),
        ("foreign", 403, f"Unauthorized access: {TOPIC}, from foreign cloud"),
    ],
)
def test_mqtt_certificate_policy_refusals(certs: CertSet, policy: CertificatePolicy, case: str, status: int,
                                          message: str) -> None:
    keys = {"none": None, "blank": " \t", "garbage": "%%%"}
    key = keys[case] if case in keys else getattr(certs, case).authentication()
    with pytest.raises(ArrowheadError) as caught:
        mqtt(key, policy)
    assert (caught.value.status, caught.value.message) == (status, message)


def test_cert_set_files_are_fresh(certs: CertSet) -> None:
    """The test certificates are made now (none is committed)."""
    made = x509.load_pem_x509_certificate(certs.system.pem()).not_valid_before_utc
    assert abs(made - datetime.now(UTC)) < timedelta(hours=1)
    assert Path(certs.system.key).stat().st_mode & 0o077 == 0
