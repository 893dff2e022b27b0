"""The MQTT benchmark's pure parts: its MQTT 3.1.1 codec (bench/mqtt_codec.py), request builders and report helpers."""

from __future__ import annotations

import argparse
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import harness as h
from bench import mqtt_bench as b
from bench import mqtt_codec as c


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
     (268_435_455, b"\xff\xff\xff\x7f")],
)
def test_remaining_length_known_encodings(value: int, encoded: bytes) -> None:
    assert c.encode_length(value) == encoded
    assert c.decode_length(b"\x30" + encoded + b"rest", 1) == (value, 1 + len(encoded))


def test_remaining_length_limits() -> None:
    with pytest.raises(ValueError):
        c.encode_length(268_435_456)
    with pytest.raises(ValueError):
        c.encode_length(-1)
    assert c.decode_length(b"\x30\x80\x80", 1) is None  # continuation bytes still to come
    with pytest.raises(c.MalformedPacketError):
        c.decode_length(b"\x30\xff\xff\xff\xff\x01", 1)


def test_connect_and_subscribe_bytes() -> None:
    assert c.encode_connect("c1", keepalive=60) == (
        b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1"
    )
    assert c.encode_subscribe(1, [("a/b", 0), ("c", 1)]) == b"\x82\x0c\x00\x01\x00\x03a/b\x00\x00\x01c\x01"
    with pytest.raises(ValueError):
        c.encode_subscribe(1, [])


def test_publish_round_trip_through_the_reader_in_any_chunking() -> None:
    big = b"x" * 300  # a two-byte remaining length
    stream = c.encode_publish("t/1", b'{"a":1}') + c.encode_publish("t/2", big) + c.DISCONNECT_PACKET
    for size in (1, 2, 3, 7, len(stream)):
        reader = c.PacketReader()
        packets = []
        for start in range(0, len(stream), size):
            packets += reader.feed(stream[start : start + size])
        assert [first >> 4 for first, _ in packets] == [c.PUBLISH, c.PUBLISH, c.DISCONNECT]
        assert c.parse_publish(*packets[0]) == ("t/1", b'{"a":1}')
        assert c.parse_publish(*packets[1]) == ("t/2", big)


@given(st.text(min_size=1, max_size=40), st.binary(max_size=400), st.integers(1, 50))
def test_reader_gives_back_what_was_published(topic: str, payload: bytes, chunk: int) -> None:
    data = c.encode_publish(topic, payload) * 2
    reader = c.PacketReader()
    packets = [p for i in range(0, len(data), chunk) for p in reader.feed(data[i : i + chunk])]
    assert [c.parse_publish(*p) for p in packets] == [(topic, payload)] * 2


def test_parse_publish_skips_the_packet_id_of_qos_1() -> None:
    body = b"\x00\x01t\x12\x34payload"
    assert c.parse_publish(0x32, body) == ("t", b"payload")
    assert c.parse_publish(0x30, body) == ("t", b"\x124payload")
    with pytest.raises(c.MalformedPacketError):
        c.parse_publish(0x30, b"\x00\x09ab")


@pytest.mark.parametrize("operation", [*b.OPERATIONS, "echo"])
def test_requests_are_arrowhead_templates(operation: str) -> None:
    topic, body = b.build_request(operation, "arrowhead/x", "bench/replies/x/1", "C", 3, 17)
    template = json.loads(body)
    assert template["authentication"] == "SYSTEM//Sysop"
    assert template["responseTopic"] == "bench/replies/x/1"
    assert template["qosRequirement"] == 0
    assert topic.startswith("arrowhead/x/")
    expected = {
        "lock create": ("orchestration/management/lock/create",
                        {"locks": [{"serviceInstanceId": "PCx3x17|svc|1.0.0", "owner": "Owner",
                                    "expiresAt": "2999-01-01T00:00:00Z"}]}),
        "lock query": ("orchestration/management/lock/query",
                       {"owners": ["Owner"], "pagination": {"page": 0, "size": 10}}),
        "lock remove": ("orchestration/management/lock/remove", ["PCx3x17|svc|1.0.0"]),
        "store query": ("orchestration/management/store/query", {"consumerNames": ["C1"]}),
        "echo": ("monitor/echo", None),
    }[operation]
    assert topic.endswith(expected[0])
    assert template.get("payload") == expected[1]
    assert template.get("params") == ({"owner": "Owner"} if operation == "lock remove" else None)


def test_instance_ids_are_unique_and_plain() -> None:
    ids = {b.instance_id(tag, r, s) for tag in "CW" for r in range(12) for s in range(12)}
    assert len(ids) == 2 * 12 * 12
    assert all(i.split("|")[0].isalnum() for i in ids)
    with pytest.raises(ValueError):
        b.build_request("lock nap", "p", "t", "C", 0, 0)


def test_store_seed_has_distinct_priorities() -> None:
    topic, body = b.store_seed_request("p", "r")
    assert topic == "p/orchestration/management/store/create"
    candidates = json.loads(body)["payload"]["candidates"]
    assert len(candidates) == b.STORE_RULES
    assert len({c["priority"] for c in candidates}) == b.STORE_RULES


def test_reply_status() -> None:
    assert b.reply_status(b'{"status":201,"traceId":"x","payload":{"entries":[]}}') == 201
    assert b.reply_status(b"not json") == 0
    assert b.reply_status(b'{"payload":1}') == 0


def test_spread_deals_requesters_over_connections() -> None:
    assert b.spread(64, 8) == [list(range(i, 64, 8)) for i in range(8)]
    assert b.spread(3, 8) == [[0], [1], [2]]
    assert b.spread(5, 2) == [[0, 2, 4], [1, 3]]
    assert sorted(i for group in b.spread(10, 3) for i in group) == list(range(10))


def _run(responder: str, operation: str, completed: int, seconds: float, responder_cpu: float,
         statuses: dict[int, int] | None = None, lost: int = 0) -> b.Run:
    return b.Run(responder, operation, completed, seconds, statuses or {200: completed}, lost,
                 h.Latency(1, 2, 3, 4, completed), b.Cpu(responder=responder_cpu))


def test_rates_costs_and_ratios() -> None:
    echo = _run("echo", "lock query", 4000, 2.0, 50.0)  # 2,000 req/s, 250 µs of CPU each
    service = _run("fsync=always", "lock query", 2000, 2.0, 100.0)  # 1,000 req/s, 1,000 µs each
    assert echo.rps == 2000
    assert echo.responder_us_per_request == pytest.approx(250)
    assert service.responder_us_per_request == pytest.approx(1000)
    diagnostic = [_run("echo", b.DIAGNOSTIC, 10, 1, 1), _run("fsync=always", b.DIAGNOSTIC, 5, 1, 1)]
    others = [_run("fsync=never", "lock query", 1, 1, 1), _run("fsync=always", "lock create", 1, 1, 1)]
    assert b.ratio_rows([echo, service, *diagnostic, *others], "echo", "fsync=always") == [
        ("lock query", 1000, 2000, 0.5)]
    assert b.cost_ratio(echo, service.responder_us_per_request) == pytest.approx(0.25)


def test_problems_names_wrong_statuses_and_losses() -> None:
    assert b.problems(_run("echo", "lock create", 10, 1, 1, {201: 10}), 201) == ""
    assert b.problems(_run("s", "lock create", 12, 1, 1, {201: 10, 400: 2}, lost=3), 201) == (
        "ERRORS status 400: 2, 3 requesters got no reply")


def test_attribute_takes_the_first_layer_named_in_a_stack_of_the_trio_thread() -> None:
    trio_thread = "run (trio/_core/_run.py:1);unrolled_run (trio/_core/_run.py:2)"
    handle = f"{trio_thread};MqttServer._worker (transports/mqtt.py:9);MqttDispatcher.handle (transports/mqtt_requests.py:1)"
    collapsed = "\n".join([
        f"{handle};validate_create (transports/lock_requests.py:5) 3",
        f"{handle} 2",
        f"{trio_thread} 5",
        "Thread.run (threading.py:1);WorkerThread._work (trio/_core/_thread_cache.py:211) 40",  # not counted
        "garbage line",
    ])
    assert b.attribute(collapsed) == [
        ("request validation (transports/*_requests.py validate_*)", 0.3),
        ("request template decode, auth, reply encode (MqttDispatcher.handle)", 0.2),
        (b.REST, 0.5),
    ]
    assert b.attribute("") == []


def test_render_gives_the_verdict_per_operation() -> None:
    runs = [_run("echo", "lock create", 4000, 2.0, 50.0), _run("fsync=always", "lock create", 2600, 2.0, 60.0),
            _run("echo", "lock query", 4000, 2.0, 50.0), _run("fsync=always", "lock query", 1000, 2.0, 90.0)]
    ceiling = _run("raw echo", "lock create", 20000, 2.0, 20.0)
    args = argparse.Namespace(inflight=64, duration=2.0)
    report, targets = b.render(runs, ceiling, args, "test machine", durable="fsync=always", ceiling="echo")
    assert targets["lock create"]["measured"] == pytest.approx(0.65)
    assert targets["lock query"]["measured"] == pytest.approx(0.25)
    assert "met (1.08× target)" in report
    assert "MISSED (0.42× target)" in report
    assert "not what limits the rows above" in report
    close, _ = b.render(runs, _run("raw echo", "lock create", 4000, 2.0, 20.0), args, "m", durable="fsync=always",
                        ceiling="echo")
    assert "may be limiting" in close
