"""A minimal MQTT 3.1.1 client codec (QoS 0) on a plain trio socket, for the load generators and the raw
echo responder: on 2 cores shared with the server, paho's ~100+ µs of Python per message is CPU the
server under test would lose. Encoders and `PacketReader` are pure (tests/unit/test_mqtt_codec.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import trio

CONNECT, CONNACK, PUBLISH, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 8, 9, 12, 13, 14
DISCONNECT_PACKET = b"\xe0\x00"
MAX_REMAINING = 268_435_455  # four length bytes


class MalformedPacketError(ValueError):
    pass


def encode_length(value: int) -> bytes:
    """MQTT "remaining length": 7 bits per byte, least significant first, high bit = more follows."""
    if not 0 <= value <= MAX_REMAINING:
        raise ValueError(f"remaining length out of range: {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def decode_length(data: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """(remaining length, index after it) read at `start`, or None if the bytes are not all there."""
    value = 0
    for count in range(4):
        if start + count >= len(data):
            return None
        byte = data[start + count]
        value |= (byte & 0x7F) << (7 * count)
        if not byte & 0x80:
            return value, start + count + 1
    raise MalformedPacketError("remaining length longer than four bytes")


def _string(text: str) -> bytes:
    data = text.encode()
    if len(data) > 0xFFFF:
        raise ValueError("MQTT string longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_length(len(body)) + body


def encode_connect(client_id: str, keepalive: int = 60) -> bytes:
    """CONNECT, protocol level 4 (3.1.1), clean session, no will, no credentials."""
    return _packet(CONNECT << 4, _string("MQTT") + bytes([4, 0x02]) + keepalive.to_bytes(2, "big") + _string(client_id))


def encode_subscribe(packet_id: int, topics: Sequence[tuple[str, int]]) -> bytes:
    if not topics:
        raise ValueError("SUBSCRIBE needs at least one topic")
    body = packet_id.to_bytes(2, "big") + b"".join(_string(topic) + bytes([qos]) for topic, qos in topics)
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def encode_publish(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH (no packet id)."""
    return _packet(PUBLISH << 4, _string(topic) + payload)


def parse_publish(first: int, body: bytes) -> tuple[str, bytes]:
    """(topic, payload) of a PUBLISH; a packet id (QoS 1/2) is skipped."""
    if len(body) < 2:
        raise MalformedPacketError("PUBLISH shorter than its topic length")
    end = 2 + int.from_bytes(body[:2], "big")
    if end > len(body):
        raise MalformedPacketError("PUBLISH topic runs past the packet")
    topic = body[2:end].decode()
    if (first >> 1) & 0x03:
        end += 2
    return topic, body[end:]


class PacketReader:
    """Splits a byte stream into (first byte, body) packets; a partial packet waits for more bytes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer
        buffer += data
        packets = []
        position = 0
        while len(buffer) - position >= 2:
            found = decode_length(buffer, position + 1)
            if found is None:
                break
            length, start = found
            if start + length > len(buffer):
                break
            packets.append((buffer[position], bytes(buffer[start : start + length])))
            position = start + length
        del buffer[:position]
        return packets


class RawMqtt:
    """One MQTT 3.1.1 client connection on a trio stream (trio sets TCP_NODELAY), QoS 0 only."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = PacketReader()
        self.pending: deque[tuple[int, bytes]] = deque()

    @classmethod
    async def open(cls, host: str, port: int, client_id: str, topics: Sequence[tuple[str, int]] = (),
                   keepalive: int = 60) -> RawMqtt:
        """Connect (clean session) and subscribe; `keepalive` 0: the broker never drops an idle client."""
        conn = cls(await trio.open_tcp_stream(host, port))
        try:
            await conn.stream.send_all(encode_connect(client_id, keepalive))
            first, body = await conn.next_packet()
            if first >> 4 != CONNACK or len(body) < 2 or body[1] != 0:
                raise ConnectionError(f"broker refused CONNECT: {first:#x} {body!r}")
            if topics:
                await conn.stream.send_all(encode_subscribe(1, topics))
                first, body = await conn.next_packet()
                if first >> 4 != SUBACK or any(code >= 0x80 for code in body[2:]):
                    raise ConnectionError(f"broker refused SUBSCRIBE: {first:#x} {body!r}")
        except BaseException:
            await trio.aclose_forcefully(conn.stream)
            raise
        return conn

    async def fill(self) -> None:
        """Read once from the socket; whole packets go to `pending`."""
        data = await self.stream.receive_some(1 << 16)
        if not data:
            raise ConnectionError("broker closed the connection")
        self.pending.extend(self.reader.feed(data))

    async def next_packet(self) -> tuple[int, bytes]:
        while not self.pending:
            await self.fill()
        return self.pending.popleft()

    async def next_publish(self) -> tuple[str, bytes]:
        while True:
            first, body = await self.next_packet()
            if first >> 4 == PUBLISH:
                return parse_publish(first, body)

    async def aclose(self) -> None:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            try:
                await self.stream.send_all(DISCONNECT_PACKET)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            await self.stream.aclose()
