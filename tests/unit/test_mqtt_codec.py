"""The harness's minimal MQTT 3.1.1 codec (bench/mqtt_codec.py): what the load generator and the raw echo
responder speak instead of paho."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
