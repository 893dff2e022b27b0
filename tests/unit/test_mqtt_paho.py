"""The size guard's pure parts (transports/mqtt/paho_client.py): reading a PUBLISH head from the bytes kept while
the rest of an oversize packet is thrown away. The guard itself runs against mosquitto in
tests/mqtt/test_mqtt_size.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from transports.mqtt.paho_client import PUBLISH, PUBLISH_HEAD_BYTES, OversizePacket, PublishHead, parse_publish_head


def publish_head_bytes(topic: bytes, qos: int, packet_id: int) -> bytes:
    return len(topic).to_bytes(2, "big") + topic + (packet_id.to_bytes(2, "big") if qos else b"")


@given(topic=st.binary(max_size=300), qos=st.integers(0, 2), packet_id=st.integers(1, 65535),
       rest=st.binary(max_size=50), flags=st.sampled_from([0, 1, 8, 9]))
def test_parse_publish_head_round_trip(topic: bytes, qos: int, packet_id: int, rest: bytes, flags: int) -> None:
    command = PUBLISH | (qos << 1) | flags  # flags: retain and dup bits do not matter
    head = publish_head_bytes(topic, qos, packet_id)
    assert parse_publish_head(command, head + rest) == PublishHead(topic, qos, packet_id if qos else None)
    for cut in range(len(head)):  # too short: not yet
        assert parse_publish_head(command, head[:cut]) is None


def test_oversize_packet_keeps_only_the_head() -> None:
    topic = b"t" * 65_535
    head = publish_head_bytes(topic, 1, 4242)
    packet = OversizePacket(PUBLISH | 2, length=len(head) + 10_000_000, left=len(head) + 10_000_000)
    piece = 64 * 1024
    data = head + b"x" * 10_000_000
    for start in range(0, len(data), piece):
        packet.take(data[start:start + piece])
    assert packet.left == 0
    assert len(packet.head) == PUBLISH_HEAD_BYTES == len(head)
    assert packet.publish_head() == PublishHead(topic, 1, 4242)
