"""Signed MQTT requests without sockets (transports/security/request_signatures.py): the signed bytes, the client
helper, what a signature binds, freshness and replays."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.api.errors import ArrowheadError
from transports.security.certificates import ProfileType
from transports.security.certs_tool import Issued, arrowhead_cn, issue, make_ca
from transports.security.request_signatures import RequestSignatures, sign_request, signing_input

TOPIC = "arrowhead/serviceorchestration/orchestration/management/lock/remove"
NOW = datetime(2026, 11, 23, 12, 22, 44, 560000, tzinfo=UTC)
STAMP = "2026-11-23T12:22:44.560Z"
CA = make_ca()
OPERATOR = issue(CA, arrowhead_cn("Operator"), ProfileType.OPERATOR)
SYSTEM = issue(CA, arrowhead_cn("TemperatureManager"), ProfileType.SYSTEM)
P384 = issue(CA, arrowhead_cn("Operator"), ProfileType.OPERATOR, key="ec-p384")
RSA = issue(CA, arrowhead_cn("Operator"), ProfileType.OPERATOR, key="rsa-2048")


def template(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"traceId": "t-1", "authentication": "<the operator's certificate>", "responseTopic": "r/1",
                            "qosRequirement": 1, "params": {"owner": "TemperatureManager"}, "payload": ["A|b|1.0.0"]}
    base.update(changes)
    return base


def signed(signer: Issued = OPERATOR, topic: str = TOPIC, *, stamp: str = STAMP, nonce: str = "n-1",
           property_topic: str | None = None, **changes: Any) -> bytes:
    key = signer.key
    return sign_request(key, topic, template(**changes), timestamp=stamp, nonce=nonce,
                        response_topic_property=property_topic)


def check(body: bytes, *, topic: str = TOPIC, reply_topic: str | None = "r/1", signer: Issued = OPERATOR,
          now: datetime = NOW, guard: RequestSignatures | None = None) -> None:
    (guard or RequestSignatures()).check(body, topic, reply_topic, signer.certificate, now)


def refused(message: str, body: bytes, **kwargs: Any) -> None:
    with pytest.raises(ArrowheadError) as caught:
        check(body, **kwargs)
    assert (caught.value.status, caught.value.message) == (401, message)


INVALID = "Invalid request signature has been provided"


def test_signing_input_layout() -> None:
    """The exact bytes, for implementers in other languages: the domain, then each part as a 4-byte
    big-endian length and its bytes (topic, reply topic, timestamp, nonce, then the JSON text of traceId,
    qosRequirement, params and payload; empty when absent)."""
    members = {"traceId": b'"t"', "payload": b"[1]"}
    assert signing_input("a/b", None, "T", "N", members) == (
        b"lockstore-mqtt-request-signature-v1"
        b"\x00\x00\x00\x03a/b" b"\x00\x00\x00\x00" b"\x00\x00\x00\x01T" b"\x00\x00\x00\x01N"
        b'\x00\x00\x00\x03"t"' b"\x00\x00\x00\x00" b"\x00\x00\x00\x00" b"\x00\x00\x00\x03[1]"
    )


def test_the_helper_builds_the_template_with_its_signature() -> None:
    body = signed()
    decoded = json.loads(body)
    assert {k: v for k, v in decoded.items() if k != "signature"} == template()
    assert set(decoded["signature"]) == {"timestamp", "nonce", "value"}
    assert decoded["signature"]["timestamp"] == STAMP and decoded["signature"]["nonce"] == "n-1"
    base64.b64decode(decoded["signature"]["value"], validate=True)
    raw = msgspec.Raw(b'{ "owner" : "X" }')  # sent as it is, and signed as it is
    assert b'"params":{ "owner" : "X" }' in signed(params=raw)
    check(signed(params=raw))


@pytest.mark.parametrize("signer", [OPERATOR, P384, RSA], ids=["P-256", "P-384", "RSA-2048"])
def test_signatures_verify_for_each_key_type(signer: Issued) -> None:
    check(signed(signer), signer=signer)


def test_every_part_is_bound() -> None:
    """Whatever an attacker who saw a signed request changes, the signature no longer matches."""
    body = signed()
    check(body)
    for changed in (signed(traceId="t-2"), signed(qosRequirement=0), signed(params={"owner": "Someone"}),
                    signed(payload=["B|b|1.0.0"]), signed(params=None), signed(payload=None)):
        original = json.loads(body)
        original_signature = original.pop("signature")
        forged = json.loads(changed)
        forged["signature"] = original_signature  # the operator's signature, someone else's request
        refused(INVALID, msgspec.json.encode(forged))
    refused(INVALID, body, topic=TOPIC.replace("remove", "create"))  # republished to another operation
    refused(INVALID, body, reply_topic="attacker/replies")  # the reply redirected (an MQTT 5 property)
    refused(INVALID, body, signer=SYSTEM)  # checked with another certificate's key
    forged = json.loads(body)
    forged["signature"]["nonce"] = "n-2"
    refused(INVALID, msgspec.json.encode(forged))
    forged = json.loads(body)
    forged["signature"]["timestamp"] = "2026-11-23T12:22:45Z"
    refused(INVALID, msgspec.json.encode(forged))


def test_the_exact_json_text_is_signed() -> None:
    """The members are signed as their JSON text in the message: re-encoding them with other spacing (a
    bridge that parses and re-serialises) breaks the signature, while unsigned members may change."""
    body = json.loads(signed())
    check(msgspec.json.encode(body))
    refused(INVALID, json.dumps(body).encode())  # ", " and ": " inside params
    body["authentication"] = "anything"  # not signed: the signature is checked with the verified certificate
    body["extra"] = [1, 2]
    check(msgspec.json.encode(body), guard=RequestSignatures())


def test_the_response_topic_property_is_what_is_signed() -> None:
    """With a blank responseTopic field, the MQTT 5 Response Topic property is the reply topic: signed."""
    body = signed(responseTopic=" ", property_topic="r/prop")
    check(body, reply_topic="r/prop")
    refused(INVALID, body, reply_topic="attacker/replies")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(payload=json_values, other=json_values, params=st.dictionaries(st.text(max_size=8), st.text(max_size=8)))
def test_any_payload_is_signed_and_bound(payload: Any, other: Any, params: dict[str, str]) -> None:
    """Model: a signature verifies for the payload it was made over, and only for that payload."""
    body = signed(payload=payload, params=params)
    check(body)
    if msgspec.json.encode(other) != msgspec.json.encode(payload):
        forged = json.loads(signed(payload=other, params=params))
        forged["signature"] = json.loads(body)["signature"]
        refused(INVALID, msgspec.json.encode(forged))


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (None, "No request signature has been provided"),
        ("absent", "No request signature has been provided"),
        ("text", INVALID),
        ({"timestamp": STAMP, "nonce": "n"}, INVALID),
        ({"timestamp": STAMP, "nonce": "n", "value": "AAAA", "extra": 1}, INVALID),
        ({"timestamp": STAMP, "nonce": "", "value": "AAAA"}, INVALID),
        ({"timestamp": STAMP, "nonce": "n" * 129, "value": "AAAA"}, INVALID),
        ({"timestamp": STAMP, "nonce": "n", "value": "A" * 2000}, INVALID),
        ({"timestamp": STAMP, "nonce": "n", "value": "not base64!"}, INVALID),
        ({"timestamp": "yesterday", "nonce": "n", "value": "AAAA"}, INVALID),
        ({"timestamp": 12, "nonce": "n", "value": "AAAA"}, INVALID),
        ({"timestamp": STAMP, "nonce": "n", "value": "AAAA"}, INVALID),  # well-formed, but not a signature
    ],
)
def test_missing_or_malformed_signatures(signature: Any, message: str) -> None:
    body = json.loads(signed())
    if signature == "absent":
        del body["signature"]
    else:
        body["signature"] = signature
    refused(message, msgspec.json.encode(body))


def test_freshness_window() -> None:
    guard = RequestSignatures(window=30)
    check(signed(stamp="2026-11-23T12:22:15Z"), guard=guard)  # 29.56 s old
    check(signed(stamp="2026-11-23T12:23:14Z"), guard=guard)  # 29.44 s ahead
    for stamp in ("2026-11-23T12:22:14Z", "2026-11-23T12:23:15.000Z", "2026-11-23T13:22:44.560+01:00Z"):
        with pytest.raises(ArrowheadError) as caught:
            check(signed(stamp=stamp), guard=guard)
        assert caught.value.status == 401
    refused("Request signature timestamp 2026-11-23T12:22:14Z is not within 30 seconds of the service's clock",
            signed(stamp="2026-11-23T12:22:14Z"))
    check(signed(stamp="2026-11-23T13:22:44+01:00"), guard=guard)  # an offset is fine


def test_replays_are_refused_once_seen() -> None:
    guard = RequestSignatures(window=30)
    body = signed()
    check(body, guard=guard)
    refused("Request has already been received: a signed request is executed once", body, guard=guard)
    check(signed(nonce="n-2"), guard=guard)  # the same request again, deliberately: a new nonce
    refused("Request has already been received: a signed request is executed once", body, guard=guard,
            now=NOW + timedelta(seconds=5))


def test_a_reshaped_ecdsa_signature_is_still_a_replay() -> None:
    """ECDSA signatures are malleable: (r, n - s) verifies too, so a replay is recognised by what was
    signed and by whom, never by the signature bytes."""
    guard = RequestSignatures()
    body = json.loads(signed())
    check(msgspec.json.encode(body), guard=guard)
    r, s = decode_dss_signature(base64.b64decode(body["signature"]["value"]))
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256
    body["signature"]["value"] = base64.b64encode(encode_dss_signature(r, order - s)).decode()
    reshaped = msgspec.json.encode(body)
    check(reshaped)  # a valid signature, made without the key
    refused("Request has already been received: a signed request is executed once", reshaped, guard=guard)


def test_remembered_requests_are_bounded_and_forgotten() -> None:
    guard = RequestSignatures(window=30, capacity=2)
    check(signed(nonce="a"), guard=guard)
    check(signed(nonce="b"), guard=guard)
    with pytest.raises(ArrowheadError) as caught:
        check(signed(nonce="c"), guard=guard)
    assert (caught.value.status, caught.value.message) == (
        503, "Service unavailable: more than 2 signed requests within 30 seconds")
    later = NOW + timedelta(seconds=31)  # a and b have left the window: forgotten, room again
    check(signed(nonce="c", stamp="2026-11-23T12:23:15Z"), guard=guard, now=later)
    assert len(guard._seen) == 1  # the memory bound itself is what is tested
