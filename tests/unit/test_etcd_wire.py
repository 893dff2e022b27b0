"""The etcd gateway codecs, endpoint handling and error verdicts: pure, no sockets."""

from __future__ import annotations

import base64
import json
import random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.etcd import wire
from actors.etcd.errors import (
    INVALID_ARGUMENT,
    OUT_OF_RANGE,
    UNAUTHENTICATED,
    UNAVAILABLE,
    AuthenticationFailed,
    Compacted,
    EtcdRequestError,
    Verdict,
    request_error,
    verdict,
)
from actors.etcd.failover import Backoff, EndpointRing, parse_endpoints

# ------------------------------------------------------------------------------------------ requests


def test_requests_send_base64_keys_and_leave_out_unset_fields() -> None:
    body = json.loads(wire.encode(wire.RangeRequest(b"a/", wire.prefix_end(b"a/"), limit=5)))
    assert body == {"key": base64.b64encode(b"a/").decode(), "range_end": base64.b64encode(b"a0").decode(),
                    "limit": 5}
    assert json.loads(wire.encode(wire.RangeRequest(b"k"))) == {"key": "aw=="}


def test_a_compare_with_zero_still_sends_the_zero() -> None:
    """`create_revision == 0` is the "key is absent" compare: leaving the 0 out would still mean 0 to
    etcd, but the request must say what it means."""
    body = json.loads(wire.encode(wire.absent(b"k")))
    assert body == {"key": "aw==", "target": "CREATE", "create_revision": 0}
    assert json.loads(wire.encode(wire.unchanged(b"k", 7))) == {"key": "aw==", "target": "MOD", "mod_revision": 7}


def test_nested_txn_encoding() -> None:
    txn = wire.TxnRequest(
        compare=[wire.created_at(b"l", 3)],
        success=[wire.nested(wire.TxnRequest(compare=[wire.unchanged(b"x", 2)], success=[wire.delete(b"x")])),
                 wire.put(b"m")],
        failure=[wire.get(b"m")],
    )
    body = json.loads(wire.encode(txn))
    assert body["success"][0] == {"request_txn": {"compare": [{"key": "eA==", "target": "MOD", "mod_revision": 2}],
                                                  "success": [{"request_delete_range": {"key": "eA=="}}]}}
    assert body["success"][1] == {"request_put": {"key": "bQ=="}}  # empty value: left out, as proto3 does
    assert body["failure"] == [{"request_range": {"key": "bQ=="}}]


# ------------------------------------------------------------------------------------------ replies


def test_replies_read_int64_strings_and_absent_fields() -> None:
    reply = wire.decode(
        b'{"header":{"cluster_id":"18446744073709551615","revision":"42"},"kvs":[{"key":"YQ==",'
        b'"create_revision":"3","mod_revision":"41","version":"2","value":"dg=="}],"count":"1"}',
        wire.RangeResponse,
    )
    assert reply.header.revision == 42 and reply.header.cluster_id == 2**64 - 1
    assert reply.kvs == [wire.KeyValue(b"a", 3, 41, 2, b"v", 0)]
    assert reply.more is False and reply.count == 1
    assert wire.decode(b'{"header":{"revision":"9"}}', wire.TxnResponse).succeeded is False


def test_watch_messages() -> None:
    message = wire.decode(
        b'{"result":{"header":{"revision":"5"},"events":[{"kv":{"key":"eA==","mod_revision":"5","value":"MQ=="}},'
        b'{"type":"DELETE","kv":{"key":"eQ==","mod_revision":"5"}}]}}',
        wire.WatchMessage,
    )
    assert message.result is not None
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in message.result.events] == [
        ("PUT", b"x", 5), ("DELETE", b"y", 5)]
    cancelled = wire.decode(b'{"result":{"header":{},"canceled":true,"compact_revision":"3"}}', wire.WatchMessage)
    assert cancelled.result is not None and cancelled.result.canceled and cancelled.result.compact_revision == 3
    failed = wire.decode(b'{"error":{"grpc_code":16,"message":"etcdserver: invalid auth token"}}', wire.WatchMessage)
    assert failed.error is not None and failed.error.grpc_code == 16


def test_error_bodies_json_or_not() -> None:
    reply = wire.error_reply(b'{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}')
    assert (reply.code, reply.message) == (14, "etcdserver: no leader")
    html = wire.error_reply(b"<html>502 Bad Gateway</html>")
    assert html.code == 2 and "502" in html.message


def test_a_reply_of_the_wrong_shape_raises_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        wire.decode(b'{"header":{"revision":"not a number"}}', wire.RangeResponse)
    with pytest.raises(msgspec.DecodeError):
        wire.decode(b"[1,2", wire.RangeResponse)


# ------------------------------------------------------------------------------------------ prefix ends


@pytest.mark.parametrize(
    ("prefix", "end"), [(b"a/", b"a0"), (b"a\xff", b"b"), (b"\xff\xff", b"\x00"), (b"", b"\x00")]
)
def test_prefix_end(prefix: bytes, end: bytes) -> None:
    assert wire.prefix_end(prefix) == end


@given(st.binary(min_size=1, max_size=6), st.binary(max_size=8))
def test_prefix_range_holds_exactly_the_keys_with_the_prefix(prefix: bytes, key: bytes) -> None:
    end = wire.prefix_end(prefix)
    inside = prefix <= key and (end == b"\x00" or key < end)
    assert inside == key.startswith(prefix)


# ------------------------------------------------------------------------------------------ streams


@given(st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=4), min_size=1, max_size=6),
       st.randoms(use_true_random=False))
def test_json_lines_survive_any_chunking(objects: list[dict[str, str]], rng: random.Random) -> None:
    stream = b"".join(json.dumps(obj).encode() + b"\n" for obj in objects)
    cuts = sorted(rng.sample(range(len(stream) + 1), k=min(len(stream) + 1, rng.randrange(0, 8))))
    lines = wire.JsonLines()
    out: list[bytes] = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += lines.feed(stream[start:stop])
    assert [json.loads(line) for line in out] == objects
    assert lines.pending == 0


def test_json_lines_refuse_an_endless_line() -> None:
    lines = wire.JsonLines(limit=100)
    lines.feed(b"x" * 60)
    with pytest.raises(ValueError, match="longer than 100"):
        lines.feed(b"x" * 60)


# ------------------------------------------------------------------------------------------ verdicts


@pytest.mark.parametrize(
    ("code", "message", "write", "expected"),
    [
        (UNAVAILABLE, "etcdserver: no leader", True, Verdict.RETRY),  # refused before proposing (hasleader)
        (8, "etcdserver: too many requests", True, Verdict.RETRY),
        (UNAVAILABLE, "etcdserver: request timed out", True, Verdict.UNKNOWN_OUTCOME),
        (UNAVAILABLE, "etcdserver: request timed out", False, Verdict.RETRY),
        (UNAVAILABLE, "etcdserver: leader changed", True, Verdict.UNKNOWN_OUTCOME),
        (4, "context deadline exceeded", True, Verdict.UNKNOWN_OUTCOME),
        (UNAUTHENTICATED, "etcdserver: invalid auth token", True, Verdict.REAUTHENTICATE),
        (INVALID_ARGUMENT, "etcdserver: revision of auth store is old", True, Verdict.REAUTHENTICATE),
        (INVALID_ARGUMENT, "etcdserver: too many operations in txn request", True, Verdict.FINAL),
        (INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request", True, Verdict.FINAL),
        (OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted", False, Verdict.FINAL),
        (8, "etcdserver: mvcc: database space exceeded", True, Verdict.FINAL),
        (7, "etcdserver: permission denied", True, Verdict.FINAL),
    ],
)
def test_verdicts(code: int, message: str, write: bool, expected: Verdict) -> None:
    assert verdict(code, message, write=write) is expected


def test_final_errors_by_kind() -> None:
    assert isinstance(request_error(OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
                      Compacted)
    failed = request_error(INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password")
    assert isinstance(failed, AuthenticationFailed)
    empty = request_error(INVALID_ARGUMENT, "etcdserver: user name is empty")
    assert isinstance(empty, AuthenticationFailed) and "requires a user name and password" in str(empty)
    other = request_error(INVALID_ARGUMENT, "etcdserver: request is too large")
    assert type(other) is EtcdRequestError and other.code == INVALID_ARGUMENT


# ------------------------------------------------------------------------------------------ endpoints


def test_parse_endpoints() -> None:
    assert parse_endpoints("http://h1:2379, http://h2:2379/,http://h1:2379") == ("http://h1:2379", "http://h2:2379")
    assert parse_endpoints(["https://[::1]:2379"]) == ("https://[::1]:2379",)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "no etcd endpoint"),
        (" , ", "no etcd endpoint"),
        ("h1:2379", "is not http://host:port"),
        ("http://h1", "is not http://host:port"),
        ("http://h1:99999", "is not http://host:port"),
        ("unix:///run/etcd.sock", "is not http://host:port"),
        ("http://h1:2379/v3", "no path"),
        ("http://user:pw@h1:2379", "no path, query or user"),
        ("http://h1:2379,https://h2:2379", "mix http:// and https://"),
    ],
)
def test_bad_endpoints_are_named(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_endpoints(text)


def test_ring_moves_on_once_per_failure_of_the_current_endpoint() -> None:
    ring = EndpointRing(("a", "b", "c"))
    ring.failed("a")
    ring.failed("a")  # a second request that failed on "a" does not skip "b"
    assert ring.current == "b" and not ring.round_failed
    ring.failed("b")
    ring.failed("c")
    assert ring.current == "a" and ring.round_failed
    ring.succeeded("a")
    assert not ring.round_failed and ring.failures_in_a_row == 0


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2**32))
def test_backoff_grows_to_its_cap_with_jitter(attempt: int, seed: int) -> None:
    backoff = Backoff(base=0.05, cap=2.0, rng=random.Random(seed))
    step = min(2.0, 0.05 * 2 ** (attempt - 1))
    assert step / 2 <= backoff.delay(attempt) <= step
