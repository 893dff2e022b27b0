"""Opt-in proof of key possession for MQTT requests (`mqtt_request_signatures = "required"`).

With the certificate policy, an MQTT request names its sender by the certificate in its `authentication`
field (as the reference does). A certificate is public: every subscriber of the request topics sees the
operator's, and could send it as its own. With signatures required, a request must also carry a signature
made with the certificate's private key, over everything that decides what the request does:

    "signature": {"timestamp": "2026-11-23T12:22:44.560Z", "nonce": "kq1U…", "value": "<Base64>"}

The signed bytes are `SIGNING_DOMAIN` followed by these parts, each as a 4-byte big-endian length and the
bytes themselves:

1. the topic the request is published to (UTF-8);
2. the topic the reply goes to: the template's `responseTopic`, or the MQTT 5 Response Topic property when
   that field is absent or blank; empty when there is none;
3. `signature.timestamp` and 4. `signature.nonce` (UTF-8);
5.–8. the template's `traceId`, `qosRequirement`, `params` and `payload` values exactly as they appear in
   the message (their JSON text, e.g. `{"owner":"X"}`; empty when the member is absent).

Algorithms follow the certificate's key (no algorithm field, so none can be substituted): ECDSA with
SHA-256 / SHA-384 / SHA-512 for P-256 / P-384 / P-521 keys (the DER signature, as Java's
`SHA256withECDSA` or `openssl dgst -sign` make it), RSASSA-PKCS1-v1_5 with SHA-256 for RSA keys
(`SHA256withRSA`). `value` is standard Base64.

Freshness and replay: the timestamp (ISO 8601 with Z or an offset) must be within `window` seconds of the
service's clock, either way; a signed request is remembered (by the digest of the signer's certificate and
the signed bytes, not by the signature, which ECDSA lets anyone re-shape) until its timestamp leaves the
window, and a second copy is refused. The nonce makes two deliberate, identical requests distinct.

`sign_request` is the client side: a pure function that tests and users call to build a signed request.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import Certificate

from transports.api.errors import ArrowheadError, ExceptionType
from transports.api.instants import parse_instant
from transports.security.java_base64 import java_base64

SIGNING_DOMAIN = b"lockstore-mqtt-request-signature-v1"
MAX_NONCE_CHARS = 128
MAX_TIMESTAMP_CHARS = 64
MAX_VALUE_CHARS = 1024  # Base64 of an RSA-4096 signature is 684 characters
DEFAULT_WINDOW = 30
DEFAULT_CAPACITY = 100_000  # signed requests remembered at once (~20 MB at most)

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
SIGNED_MEMBERS = ("traceId", "qosRequirement", "params", "payload")

_EC_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512,
}


class RequestSignature(msgspec.Struct, forbid_unknown_fields=True):
    timestamp: str
    nonce: str
    value: str


class _SignedMembers(msgspec.Struct):
    """The template's members as their JSON text (msgspec.Raw: the exact bytes of the message)."""

    traceId: msgspec.Raw = msgspec.Raw(b"")
    qosRequirement: msgspec.Raw = msgspec.Raw(b"")
    params: msgspec.Raw = msgspec.Raw(b"")
    payload: msgspec.Raw = msgspec.Raw(b"")
    signature: msgspec.Raw = msgspec.Raw(b"")


_members_decoder = msgspec.json.Decoder(_SignedMembers)
_signature_decoder = msgspec.json.Decoder(RequestSignature)


def signing_input(topic: str, reply_topic: str | None, timestamp: str, nonce: str,
                  members: Mapping[str, bytes]) -> bytes:
    """The bytes that are signed (see the module doc); `members` maps SIGNED_MEMBERS to their JSON text."""
    parts = [topic.encode(), (reply_topic or "").encode(), timestamp.encode(), nonce.encode()]
    parts += [members.get(name, b"") for name in SIGNED_MEMBERS]
    return SIGNING_DOMAIN + b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def _reply_topic(response_topic: object, response_topic_property: str | None) -> str | None:
    """The reply topic the service uses: the field unless absent or blank (transports/mqtt/dispatch.py)."""
    if isinstance(response_topic, str) and response_topic.strip():
        return response_topic
    return response_topic_property


def sign_request(key: SigningKey, topic: str, template: Mapping[str, Any], *, timestamp: str, nonce: str,
                 response_topic_property: str | None = None) -> bytes:
    """The body of a signed MQTT request: `template` (traceId, authentication, responseTopic,
    qosRequirement, params, payload — any may be absent; a msgspec.Raw value is sent as it is) encoded as
    JSON, with its `signature` member. The caller gives the time (`2026-11-23T12:22:44.560Z`) and a fresh
    random nonce (e.g. `secrets.token_urlsafe(16)`); `response_topic_property` is the MQTT 5 Response
    Topic the request will carry, if any."""
    encoded = {name: msgspec.Raw(msgspec.json.encode(value)) for name, value in template.items() if name != "signature"}
    members = {name: bytes(encoded[name]) for name in SIGNED_MEMBERS if name in encoded}
    reply_topic = _reply_topic(template.get("responseTopic"), response_topic_property)
    signed = signing_input(topic, reply_topic, timestamp, nonce, members)
    if isinstance(key, rsa.RSAPrivateKey):
        value = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    else:
        value = key.sign(signed, ec.ECDSA(_EC_HASHES[key.curve.name]()))
    signature = RequestSignature(timestamp, nonce, base64.b64encode(value).decode())
    return msgspec.json.encode({**encoded, "signature": signature})


def _auth(message: str) -> ArrowheadError:
    return ArrowheadError(message, ExceptionType.AUTH)


def _invalid() -> ArrowheadError:
    return _auth("Invalid request signature has been provided")


def _verify(certificate: Certificate, value: bytes, signed: bytes) -> None:
    public_key = certificate.public_key()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(value, signed, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name in _EC_HASHES:
            public_key.verify(value, signed, ec.ECDSA(_EC_HASHES[public_key.curve.name]()))
        else:
            raise _auth("The certificate's key cannot sign requests (RSA or ECDSA P-256/384/521 keys can)")
    except InvalidSignature:
        raise _invalid() from None


@dataclass
class RequestSignatures:
    """The service side: checks each request's signature and remembers the recent ones (replays)."""

    window: int = DEFAULT_WINDOW
    capacity: int = DEFAULT_CAPACITY
    _seen: dict[bytes, float] = field(default_factory=dict, repr=False)
    _expiries: list[tuple[float, bytes]] = field(default_factory=list, repr=False)

    def check(self, body: bytes, topic: str, reply_topic: str | None, signer: Certificate, now: datetime) -> None:
        """Raise ArrowheadError (401) unless `body` carries a fresh, unseen signature by `signer`'s key."""
        try:
            members = _members_decoder.decode(body)
        except (msgspec.DecodeError, RecursionError):
            raise _invalid() from None
        if bytes(members.signature) in (b"", b"null"):
            raise _auth("No request signature has been provided")
        try:
            signature = _signature_decoder.decode(members.signature)
        except (msgspec.DecodeError, RecursionError):
            raise _invalid() from None
        if not (0 < len(signature.nonce) <= MAX_NONCE_CHARS and len(signature.timestamp) <= MAX_TIMESTAMP_CHARS
                and len(signature.value) <= MAX_VALUE_CHARS):
            raise _invalid()
        try:
            signed_at = parse_instant(signature.timestamp)
            value = java_base64(signature.value)
        except (ValueError, UnicodeEncodeError):
            raise _invalid() from None
        moment = now.timestamp()
        if abs(moment - signed_at) > self.window:
            raise _auth(f"Request signature timestamp {signature.timestamp} is not within {self.window} seconds "
                        "of the service's clock")
        signed = signing_input(topic, reply_topic, signature.timestamp, signature.nonce, {
            name: bytes(getattr(members, name)) for name in SIGNED_MEMBERS
        })
        _verify(signer, value, signed)
        self._remember(hashlib.sha256(signer.fingerprint(hashes.SHA256()) + signed).digest(),
                       signed_at + self.window, moment)

    def _remember(self, key: bytes, expires: float, now: float) -> None:
        while self._expiries and self._expiries[0][0] < now:
            expired, old = heapq.heappop(self._expiries)
            if self._seen.get(old) == expired:
                del self._seen[old]
        if key in self._seen:
            raise _auth("Request has already been received: a signed request is executed once")
        if len(self._seen) >= self.capacity:
            raise ArrowheadError(f"Service unavailable: more than {self.capacity} signed requests within "
                                 f"{self.window} seconds", ExceptionType.EXTERNAL_SERVER_ERROR)
        self._seen[key] = expires
        heapq.heappush(self._expiries, (expires, key))
