"""The session's bounded receive buffer: what paho hands over, what is let in, who waits for what.

paho's on_message only appends here. While the buffer is full the session reads no byte from the
socket (the read gate in mqtt_paho), so TCP flow control pushes back on the broker. What is let in:
messages paho could read (a topic that is not UTF-8 is dropped, never the session) with a payload
within `max_message_bytes`. Both kinds of drop are counted and logged, with the client-supplied
topic shortened.
"""

from __future__ import annotations

import collections
import logging

import paho.mqtt.client as paho
import trio

from transports.api.topics import shown
from transports.mqtt.session_types import IncomingMessage, MessageProperties

log = logging.getLogger("lockstore.mqtt")


class Inbox:
    def __init__(self, capacity: int, max_message_bytes: int | None) -> None:
        self.capacity = capacity
        self.max_message_bytes = max_message_bytes
        self.high_water = 0  # the most messages ever held (never above capacity)
        self.dropped_too_large = 0  # over max_message_bytes (here, or skipped at the socket by mqtt_paho)
        self.dropped_unreadable = 0  # paho could not hand it over (e.g. a topic that is not UTF-8)
        self._messages: collections.deque[IncomingMessage] = collections.deque()
        self._data_lot = trio.lowlevel.ParkingLot()  # consumers waiting for a message
        self._space_lot = trio.lowlevel.ParkingLot()  # the reader waiting for room
        self._closed = False

    def __len__(self) -> int:
        return len(self._messages)

    def has_room(self) -> bool:
        return len(self._messages) < self.capacity

    async def wait_for_room(self) -> None:
        while len(self._messages) >= self.capacity and not self._closed:
            await self._space_lot.park()

    async def receive(self) -> IncomingMessage:
        """The next message; trio.EndOfChannel once closed and empty."""
        await trio.lowlevel.checkpoint()
        while not self._messages:
            if self._closed:
                raise trio.EndOfChannel
            await self._data_lot.park()
        message = self._messages.popleft()
        self._space_lot.unpark_all()
        return message

    def close(self) -> None:
        """No more messages will come; what is here stays receivable."""
        self._closed = True
        self._data_lot.unpark_all()
        self._space_lot.unpark_all()

    def admit(self, message: paho.MQTTMessage) -> None:
        """paho's on_message."""
        try:
            topic = message.topic  # raises if the broker passed on a topic that is not UTF-8
            props = None
            if message.properties is not None:
                response_topic = getattr(message.properties, "ResponseTopic", None)
                correlation = getattr(message.properties, "CorrelationData", None)
                if response_topic is not None or correlation is not None:
                    props = MessageProperties(response_topic, correlation)
            incoming = IncomingMessage(topic, bytes(message.payload), message.qos, message.retain, props)
        except Exception as error:  # one unreadable message is dropped, never the session
            self.dropped_unreadable += 1
            log.warning("MQTT message dropped: it cannot be read (%s)", shown(str(error)))
            return
        limit = self.max_message_bytes
        if limit is not None and len(incoming.payload) > limit:
            self.too_large(len(incoming.payload), incoming.topic, "message")
            return
        self._messages.append(incoming)
        self.high_water = max(self.high_water, len(self._messages))
        self._data_lot.unpark()

    def too_large(self, size: int, topic: str, what: str) -> None:
        self.dropped_too_large += 1
        log.warning("MQTT %s of %d bytes on %s dropped: over the %s-byte request limit (mqtt_max_request_bytes)",
                    what, size, shown(topic), self.max_message_bytes)
