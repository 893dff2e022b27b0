"""The certificate policy without sockets (ARROWHEAD-REFERENCE.md §1.2 "Other policies";
C:`SecurityUtilities`, `CertificateFilter`, `CertificateMqttFilter`)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from tests.certs import (
    CA_USAGE,
    CertSet,
    ChainCase,
    Pair,
    chain_cases,
    intermediate,
    make_cert_set,
    operator_below,
    shaped,
)
from transports.api.errors import ArrowheadError
from transports.api.requester import Requester
from transports.security.certificates import (
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
from transports.security.certs_tool import Issued, arrowhead_cn, issue, make_ca
from transports.security.client_chains import MAX_AUTHENTICATION_CHARS, MAX_CERTIFICATES, distinct_issuers

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


def load(pair: Pair) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pair.pem())


def test_trust_store(certs: CertSet) -> None:
    now = datetime.now(UTC)
    store = TrustStore([certs.ca_issued.certificate])
    verified = store.verify([load(certs.system)], now)
    assert verified.leaf == load(certs.system)
    assert verified.valid_until == min(load(certs.system).not_valid_after_utc, certs.ca_issued.certificate.not_valid_after_utc)
    with pytest.raises(UntrustedCertificate, match="not valid at validation time"):
        store.verify([load(certs.system)], now + timedelta(days=400))
    with pytest.raises(UntrustedCertificate, match="not valid at validation time"):
        store.verify([load(certs.expired)], now)
    with pytest.raises(UntrustedCertificate, match="signature does not match"):
        store.verify([load(certs.impostor)], now)  # a CA with our CA's name, but another key
    with pytest.raises(UntrustedCertificate, match="CN=TemperatureManager"):
        store.verify([load(certs.stranger)], now)
    with pytest.raises(UntrustedCertificate, match="cA must not be asserted"):
        store.verify([certs.ca_issued.certificate], now)  # a CA is no client certificate (OpenSSL: no identity)


def test_trust_store_with_intermediates() -> None:
    now = datetime.now(UTC)
    root = make_ca(common_name="arrowhead.eu")
    cloud = make_ca(issuer=root)  # TestCloud.Company.arrowhead.eu, signed by the root
    member = issue(cloud, arrowhead_cn("Member"), ProfileType.SYSTEM)
    TrustStore([root.certificate]).verify([member.certificate, cloud.certificate], now)
    TrustStore([root.certificate]).verify([member.certificate, root.certificate, cloud.certificate], now)  # any order
    with pytest.raises(UntrustedCertificate, match="candidates exhausted"):
        TrustStore([root.certificate]).verify([member.certificate], now)  # the intermediate is missing
    # partial chain: the local cloud CA alone is a trust anchor, as in the reference's truststores
    TrustStore([cloud.certificate]).verify([member.certificate], now)
    # an end-entity certificate cannot issue others, even one that chains up to the root
    direct = issue(root, arrowhead_cn("Direct"), ProfileType.SYSTEM)
    TrustStore([root.certificate]).verify([direct.certificate], now)
    fake = issue(direct, arrowhead_cn("Fake"), ProfileType.SYSTEM)
    with pytest.raises(UntrustedCertificate):
        TrustStore([root.certificate]).verify([fake.certificate, direct.certificate], now)


CASES_CA = make_ca()


@pytest.mark.parametrize("case", chain_cases(CASES_CA), ids=lambda case: case.name)
def test_chain_profile(case: ChainCase) -> None:
    """Every attacker's chain (tests/certs.py) gets its verdict from the path validator: an issuer must be a
    CA with keyCertSign, the client certificate fit for clientAuth, everything valid now."""
    store = TrustStore([CASES_CA.certificate])
    chain = [item.certificate for item in case.chain]
    if case.accepted:
        assert store.verify(chain, datetime.now(UTC)).leaf == chain[0]
    else:
        with pytest.raises(UntrustedCertificate):
            store.verify(chain, datetime.now(UTC))


def test_authentication_key_bounds(certs: CertSet, policy: CertificatePolicy) -> None:
    """At most MAX_AUTHENTICATION_CHARS characters and MAX_CERTIFICATES certificates, refused before any
    certificate is parsed (a 9.4 MB field of 16,000 decoys cost 1.9 s per message before)."""
    operator = certs.operator.pem()
    padded = operator + b"#" * (MAX_AUTHENTICATION_CHARS * 3 // 4 - len(operator))  # text outside PEM blocks is ignored
    assert len(b64(padded)) <= MAX_AUTHENTICATION_CHARS
    assert mqtt(b64(padded), policy) == Requester("Operator", sysop=True)
    with pytest.raises(InvalidAuthenticationKey, match="more than 65536"):
        decode_authentication_key(b64(padded + b"###"))
    ca = certs.ca.read_bytes()
    assert len(decode_authentication_key(b64(operator + ca * (MAX_CERTIFICATES - 1)))) == MAX_CERTIFICATES
    with pytest.raises(InvalidAuthenticationKey, match=f"{MAX_CERTIFICATES + 1} certificates, more than {MAX_CERTIFICATES}"):
        decode_authentication_key(b64(operator + ca * MAX_CERTIFICATES))
    unterminated = b"-----BEGIN CERTIFICATE-----" * 1500  # no END: a regex would scan the rest each time
    with pytest.raises(InvalidAuthenticationKey, match=f"1500 certificates, more than {MAX_CERTIFICATES}"):
        decode_authentication_key(b64(unterminated))
    for key in (b64(padded + b"###"), b64(operator + ca * MAX_CERTIFICATES)):
        with pytest.raises(ArrowheadError) as caught:
            mqtt(key, policy)
        assert (caught.value.status, caught.value.message) == (401, "Invalid authentication key has been provided")


def self_issued_copies(ca: Issued, count: int) -> list[x509.Certificate]:
    """`count` CA certificates with `ca`'s subject and key, each naming that subject as its issuer."""
    now = datetime.now(UTC)
    original = ca.certificate
    copies = []
    for _ in range(count):
        builder = (x509.CertificateBuilder().subject_name(original.subject).issuer_name(original.subject)
                   .public_key(original.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1)))
        for extension in original.extensions:
            builder = builder.add_extension(extension.value, critical=extension.critical)
        copies.append(builder.sign(ca.key, hashes.SHA256()))
    return copies


def test_one_issuer_per_subject_and_key(certs: CertSet) -> None:
    """Intermediates with the same subject and key are interchangeable to path building, and a ladder of
    them made it try every order (~130 ms per message with P-521 keys): one is kept, the one valid now
    that expires last."""
    now = datetime.now(UTC)
    current = intermediate(certs.ca_issued)
    other_key = shaped(certs.ca_issued, "Sub.TestCloud.Company.arrowhead.eu", ProfileType.LOCAL_CLOUD, ca=True,
                       key_usage=CA_USAGE, extended_key_usage=None, san=False, not_before=now - timedelta(days=9),
                       not_after=now - timedelta(days=1))  # same subject, another key: kept, though expired
    shorter = self_issued_copies(current, 1)[0]  # same subject and key as `current`, expires sooner
    kept = distinct_issuers([shorter, other_key.certificate, current.certificate], now)
    assert kept == [current.certificate, other_key.certificate]
    ladder = self_issued_copies(current, 4)
    assert len(distinct_issuers(ladder, now)) == 1
    leaf = operator_below(Issued(ladder[0], current.key))
    with pytest.raises(UntrustedCertificate):  # the ladder never reaches our CA: refused, after few checks
        TrustStore([certs.ca_issued.certificate]).verify([leaf.certificate, *ladder], now)
    # with the real intermediate among them, the chain is found
    TrustStore([certs.ca_issued.certificate]).verify([leaf.certificate, *ladder, current.certificate], now)


def test_large_rsa_keys_are_refused(certs: CertSet, policy: CertificatePolicy) -> None:
    """Each signature check costs more with a longer RSA key, and path building may make up to ~128 of
    them: certificates in MQTT requests have RSA keys of at most MAX_RSA_BITS bits."""
    big = shaped(certs.ca_issued, arrowhead_cn("Operator"), ProfileType.OPERATOR, key="rsa-4160")
    with pytest.raises(UntrustedCertificate, match="RSA key of 4160 bits, more than 4096"):
        TrustStore([certs.ca_issued.certificate]).verify([big.certificate], datetime.now(UTC))
    fine = shaped(certs.ca_issued, arrowhead_cn("Operator"), ProfileType.OPERATOR, key="rsa-4096")
    TrustStore([certs.ca_issued.certificate]).verify([fine.certificate], datetime.now(UTC))


def test_verified_chains_are_cached_with_their_validity(certs: CertSet) -> None:
    """A chain that verified is remembered by its field, bounded, and its dates are checked on every use;
    a chain that failed is not remembered."""
    now = datetime.now(UTC)
    store = TrustStore([certs.ca_issued.certificate], cache_size=3)
    key = certs.system.authentication()
    first = store.verify_key(key, now)
    assert store.verify_key(key, now) is first  # from the cache
    with pytest.raises(UntrustedCertificate, match="not valid at validation time"):
        store.verify_key(key, now + timedelta(days=400))
    with pytest.raises(UntrustedCertificate):
        store.verify_key(certs.impostor.authentication(), now)
    assert store.cached_chains == 1
    pem = certs.system.pem()
    for extra in range(5):  # the same chain, spelled differently: each its own entry, at most cache_size
        store.verify_key(b64(pem + b"#" * extra), now)
    assert store.cached_chains == 3


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
