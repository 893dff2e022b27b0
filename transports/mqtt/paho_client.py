"""paho's Client with what the session needs from its insides: the one module that leans on paho internals
(`_sock_recv`, `_in_packet`, `_out_messages`; checked against paho-mqtt 2.1 and 2.2).

1. **Read gate.** `loop_read()` keeps parsing packets until the socket would block (up to one per
   message in flight), so pausing *between* loop_read calls cannot bound the buffer. Every socket read
   goes through `_sock_recv`; answering "would block" while the buffer is full makes paho stop after the
   packet in hand and resume at the same byte later (it keeps partial packets between reads).
2. **Size guard.** paho reads a whole packet into memory before it looks at it (a 200 MiB PUBLISH is
   200 MiB, and more while it is appended to). Once paho knows a packet's length and it is over
   `max_packet`, the guard reads that packet's bytes itself, 64 KiB at a time, and throws them away,
   keeping only a PUBLISH's head (topic and packet id): to acknowledge it — else the broker would keep it
   in flight for us, and after `max_inflight_messages` of them send us no QoS 1/2 message at all — and to
   say in the log what was dropped. Memory stays at one piece; between pieces the event loop runs on.
   An oversize packet of another kind can only come from a broken broker: the link is dropped.
3. **Queue surgery** for outgoing QoS 1/2 messages: which is the oldest one awaiting its ack, and
   dropping one so that paho stops re-sending it after each reconnect.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MessageState

PUBLISH = 0x30
DISCARD_PIECE = 64 * 1024
PUBLISH_HEAD_BYTES = 2 + 65_535 + 2  # topic length, topic, packet id: all a PUBLISH head can take
_AWAITING_ACK = (MessageState.MQTT_MS_WAIT_FOR_PUBACK, MessageState.MQTT_MS_WAIT_FOR_PUBREC)
_IN_FLIGHT = (*_AWAITING_ACK, MessageState.MQTT_MS_WAIT_FOR_PUBCOMP)


@dataclass(frozen=True, slots=True)
class PublishHead:
    topic: bytes  # raw: it may not even be UTF-8
    qos: int
    packet_id: int | None  # None at QoS 0


def parse_publish_head(command: int, head: bytes | bytearray) -> PublishHead | None:
    """A PUBLISH's topic, QoS and packet id from its first bytes (after the fixed header); None while
    `head` is too short to hold them."""
    qos = (command >> 1) & 3
    if len(head) < 2:
        return None
    topic_end = 2 + int.from_bytes(head[:2], "big")
    end = topic_end + (2 if qos else 0)
    if len(head) < end:
        return None
    packet_id = int.from_bytes(head[topic_end:end], "big") if qos else None
    return PublishHead(bytes(head[2:topic_end]), qos, packet_id)


@dataclass(slots=True)
class OversizePacket:
    """A packet being skipped: its fixed header's command byte and length, and what is left to read."""

    command: int
    length: int
    left: int
    head: bytearray = field(default_factory=bytearray)

    def take(self, data: bytes) -> None:
        room = PUBLISH_HEAD_BYTES - len(self.head)
        if room > 0:
            self.head += data[:room]
        self.left -= len(data)

    def publish_head(self) -> PublishHead | None:
        return parse_publish_head(self.command, self.head)


class GatedClient(paho.Client):
    """paho's Client with a read gate, a size guard and queue surgery (see the module doc)."""

    def __init__(self, read_allowed: Callable[[], bool], *, max_packet: int | None = None,
                 on_oversize: Callable[[OversizePacket], None] | None = None, **kwargs: Any) -> None:
        self._read_allowed = read_allowed
        self._max_packet = max_packet
        self._on_oversize = on_oversize
        self._skipping: OversizePacket | None = None
        super().__init__(**kwargs)

    def _sock_recv(self, bufsize: int) -> bytes:
        if not self._read_allowed():
            raise BlockingIOError(errno.EAGAIN, "lockstore MQTT buffer is full")
        if self._skipping is None:
            packet = self._in_packet
            if (self._max_packet is None or not packet["have_remaining"] or packet["packet"]
                    or packet["remaining_length"] <= self._max_packet):
                return super()._sock_recv(bufsize)
            length = packet["remaining_length"]
            if packet["command"] & 0xF0 != PUBLISH:
                raise ConnectionError(f"the broker sent a {length}-byte packet (type {packet['command'] >> 4}), "
                                      f"over the {self._max_packet}-byte limit")
            self._skipping = OversizePacket(packet["command"], length, length)
        return self._skip_piece(self._skipping)

    def _skip_piece(self, skipping: OversizePacket) -> bytes:
        data = super()._sock_recv(min(skipping.left, DISCARD_PIECE))  # "would block" passes through to paho
        if not data:
            self._skipping = None
            return data  # end of stream: paho reports the connection lost
        skipping.take(data)
        if skipping.left > 0:
            raise BlockingIOError(errno.EAGAIN, "skipping an oversize MQTT packet")
        self._skipping = None
        self._in_packet = {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
                           "remaining_length": 0, "packet": bytearray(), "to_process": 0, "pos": 0}
        head = skipping.publish_head()
        if head is not None and head.packet_id is not None:
            if head.qos == 1:
                self._send_puback(head.packet_id)
            else:  # QoS 2: paho answers the broker's PUBREL for an unknown packet id with PUBCOMP
                self._send_pubrec(head.packet_id)
        if self._on_oversize is not None:
            self._on_oversize(skipping)
        raise BlockingIOError(errno.EAGAIN, "skipped an oversize MQTT packet")

    def forget_partial_packet(self) -> None:
        """A new connection starts at a packet boundary (paho resets its own state in reconnect())."""
        self._skipping = None

    def force_close(self) -> None:
        """Close the socket now (paho has no public way when a DISCONNECT cannot be written)."""
        self._sock_close()

    def oldest_unacknowledged(self) -> paho.MQTTMessage | None:
        """The oldest outgoing QoS 1/2 message sent and awaiting PUBACK / PUBREC."""
        with self._out_message_mutex:
            for message in self._out_messages.values():
                if message.state in _AWAITING_ACK:
                    return message
        return None

    def drop_outgoing(self, message: paho.MQTTMessage) -> bool:
        """Forget an outgoing QoS 1/2 message: paho will not send it again. False if it is gone already."""
        with self._out_message_mutex:
            if self._out_messages.get(message.mid) is not message:
                return False
            del self._out_messages[message.mid]
            if message.state in _IN_FLIGHT and self._inflight_messages > 0:
                self._inflight_messages -= 1
        return True
