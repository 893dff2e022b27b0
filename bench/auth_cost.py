"""What the certificate policy costs per MQTT message (issue 12): the `authentication` field's chain
check and, when required, the request signature. Pure function calls, no broker: the time is the event
loop time one message takes in `authenticate_mqtt_certificate`.

    python -m bench auth-cost [--repeat 200]

Cases: an operator's chain (P-256, and RSA-2048 through an intermediate) first seen (verified) and
seen again (cached); the same with a signature check; and what an attacker can send: a field of 16,000
decoy certificates (a 9.4 MB one cost ~1.9 s per message before the bounds), the largest field accepted
(64 KiB) with text around the certificate, and the most certificates accepted (5) arranged for path
building's worst cases (a ladder of interchangeable same-key CAs; a loop of two CAs with decoys; two
self-issued CAs signing each other), with cheap and expensive keys (P-256, P-521, RSA-4096).
"""

from __future__ import annotations

import base64
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from transports.api.errors import ArrowheadError
from transports.security.certificates import CertificatePolicy, MqttRequest, ProfileType, authenticate_mqtt_certificate
from transports.security.certs_tool import Issued, PrivateKey, arrowhead_cn, issue, make_ca, new_key
from transports.security.client_chains import TrustStore
from transports.security.request_signatures import RequestSignatures, sign_request

TOPIC = "arrowhead/serviceorchestration/orchestration/management/lock/query"
CLOUD = "TestCloud.Company.arrowhead.eu"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def timed(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, max) milliseconds over `repeat` calls; a refusal counts like an answer."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            run()
        except ArrowheadError:
            pass
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def _ca(subject: str, issuer: str, key: PrivateKey, signer: PrivateKey) -> x509.Certificate:
    now = datetime.now(UTC)
    usage = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
        .sign(signer, hashes.SHA256())
    )


def pem_field(certificates: list[x509.Certificate]) -> str:
    return b64(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))


def ladder(spec: str, count: int) -> str:
    """An operator certificate and `count` CAs with one name and one key, each naming that name as its
    issuer: every CA is a candidate issuer of every other (path building's worst case before dedup)."""
    key = new_key(spec)
    decoys = [_ca("Decoy.Company.arrowhead.eu", "Decoy.Company.arrowhead.eu", key, key) for _ in range(count)]
    leaf = issue(Issued(decoys[0], key), arrowhead_cn("Operator"), ProfileType.OPERATOR).certificate
    return pem_field([leaf, *decoys])


def self_issued_loop(spec: str) -> str:
    """Two self-issued CAs of one name signing each other (as in a key rollover): each is the other's
    issuer, and self-issued steps do not count towards the depth limit."""
    first, second = new_key(spec), new_key(spec)
    a = _ca("X.Company.arrowhead.eu", "X.Company.arrowhead.eu", first, second)
    b = _ca("X.Company.arrowhead.eu", "X.Company.arrowhead.eu", second, first)
    leaf = issue(Issued(a, first), arrowhead_cn("Operator"), ProfileType.OPERATOR).certificate
    return pem_field([leaf, a, b])


def cycle(spec: str, decoys: int) -> str:
    """X issued by Y and Y issued by X (a loop path building may walk to its depth limit), plus decoys
    with those names and other keys (each a failed signature check at every step)."""
    x_key, y_key = new_key(spec), new_key(spec)
    x = _ca("X.Company.arrowhead.eu", "Y.Company.arrowhead.eu", x_key, y_key)
    y = _ca("Y.Company.arrowhead.eu", "X.Company.arrowhead.eu", y_key, x_key)
    extra = [_ca(name, "Z.Company.arrowhead.eu", new_key(spec), new_key(spec))
             for name in ("X.Company.arrowhead.eu", "Y.Company.arrowhead.eu") * decoys][:decoys]
    leaf = issue(Issued(x, x_key), arrowhead_cn("Operator"), ProfileType.OPERATOR).certificate
    return pem_field([leaf, x, y, *extra])


def run(repeat: int = 200) -> int:
    """Print one line per case: the median and longest event-loop time of one message, in ms."""
    ca = make_ca()
    operator = issue(ca, arrowhead_cn("Operator"), ProfileType.OPERATOR)
    cloud = make_ca(issuer=ca, common_name="Sub.TestCloud.Company.arrowhead.eu", key="rsa-2048")
    rsa_operator = issue(cloud, arrowhead_cn("Operator"), ProfileType.OPERATOR, key="rsa-2048")
    plain = CertificatePolicy(CLOUD, TrustStore([ca.certificate]))
    now = datetime.now(UTC)

    def fresh(key: str, signatures: RequestSignatures | None = None,
              bodies: list[bytes] | None = None) -> Callable[[], object]:
        """A check with an empty cache each time (the first message of a client)."""
        def run() -> object:
            policy = CertificatePolicy(CLOUD, TrustStore([ca.certificate], request_signatures=signatures))
            return authenticate_mqtt_certificate(key, TOPIC, policy, now,
                                                 MqttRequest(bodies.pop(), None) if bodies else None)
        return run

    def signed_bodies(signer: Issued, key: str) -> list[bytes]:
        """Signed requests made beforehand (signing is the client's work), each with its own nonce."""
        stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return [sign_request(signer.key, TOPIC, {"traceId": "t", "authentication": key, "payload": {}},
                             timestamp=stamp, nonce=secrets.token_urlsafe(16)) for _ in range(repeat + 1)]

    operator_key = b64(operator.certificate_pem())
    rsa_key = b64(rsa_operator.certificate_pem() + cloud.certificate_pem())
    decoys = b64(operator.certificate_pem() * 16_000)
    padded = b64(operator.certificate_pem() + b"#" * (48 * 1024 - len(operator.certificate_pem()) - 1))
    signed_policy = CertificatePolicy(CLOUD, TrustStore([ca.certificate],
                                                        request_signatures=RequestSignatures(capacity=10**7)))
    cached_signed = signed_bodies(operator, operator_key)
    authenticate_mqtt_certificate(operator_key, TOPIC, signed_policy, now, MqttRequest(cached_signed.pop(), None))
    cases: list[tuple[str, Callable[[], object]]] = [
        ("operator P-256, first message (verify)", fresh(operator_key)),
        ("operator P-256, again (cached)", lambda: authenticate_mqtt_certificate(operator_key, TOPIC, plain, now)),
        ("operator RSA-2048 + intermediate, first message", fresh(rsa_key)),
        ("operator RSA-2048 + intermediate, again (cached)",
         lambda: authenticate_mqtt_certificate(rsa_key, TOPIC, plain, now)),
        ("operator P-256, signed request, first message",
         fresh(operator_key, RequestSignatures(capacity=10**7), signed_bodies(operator, operator_key))),
        ("operator P-256, signed request, chain cached (signature check)",
         lambda: authenticate_mqtt_certificate(operator_key, TOPIC, signed_policy, now,
                                               MqttRequest(cached_signed.pop(), None))),
        (f"attacker: {len(decoys) / 1e6:.1f} MB field, 16,000 certificates (refused unread)", fresh(decoys)),
        ("attacker: 64 KiB field around one certificate", fresh(padded)),
    ]
    for spec in ("ec-p256", "ec-p521", "rsa-4096"):
        cases.append((f"attacker: ladder of 4 same-key {spec} CAs (5 certificates)", fresh(ladder(spec, 4))))
        cases.append((f"attacker: loop X<->Y + 2 decoys, {spec} (5 certificates)", fresh(cycle(spec, 2))))
        cases.append((f"attacker: two self-issued CAs signing each other, {spec}", fresh(self_issued_loop(spec))))
    print(f"{'case':70} {'median ms':>10} {'max ms':>8}   ({repeat} runs each)")
    for name, run in cases:
        median, longest = timed(run, repeat)
        print(f"{name:70} {median:10.3f} {longest:8.3f}")
    return 0
