"""The MQTT session's vocabulary: its settings, the messages it delivers, the errors it raises."""

from __future__ import annotations

import re
import secrets
import socket
import ssl
from dataclasses import dataclass
from typing import Literal

# Room for a PUBLISH's topic, packet id and MQTT 5 properties (a Response Topic and Correlation Data
# of up to 64 KiB each) on top of its payload.
PACKET_HEADROOM = 256 * 1024
MQTT_MAX_PACKET = 268_435_455  # the largest remaining length MQTT can express


def generated_client_id() -> str:
    """`lockstore-<host>-<random>`: unique per process, so that two instances on one broker do not take
    each other's session away, and still telling the broker's log which machine it is."""
    host = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname().split(".")[0]).strip("-")[:40] or "host"
    return f"lockstore-{host}-{secrets.token_hex(4)}"


class MqttError(Exception):
    """Base of the errors this module raises."""


class MqttNotConnectedError(MqttError):
    """publish() while there is no ready connection; nothing was handed to paho."""


class MqttConnectionLostError(MqttError):
    """The link dropped before a QoS 0 message was completely written; it may or may not have gone."""


class MqttSessionClosedError(MqttError):
    """The session has ended (aclose, cancellation or failure of run())."""


class MqttSubscribeError(MqttError):
    """The broker refused one of the configured subscriptions (fatal: run() raises it)."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Everything the session needs. `subscriptions` are (topic filter, max QoS) pairs."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""  # empty: generated_client_id(), stable for the life of the session
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    clean_session: bool = True  # MQTT 5: the Clean Start flag
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    subscriptions: tuple[tuple[str, int], ...] = ()
    max_buffered: int = 256  # received messages held for the consumer; the socket is not read beyond
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    connect_timeout: float = 5.0  # TCP/TLS connect, and again CONNACK + SUBACK
    session_expiry: int = 0  # MQTT 5 with clean_session=False: Session Expiry Interval (s)
    tls: ssl.SSLContext | None = None
    # Received payloads over this are dropped (and counted); MQTT 5 tells the broker too (Maximum Packet
    # Size on CONNECT, with PACKET_HEADROOM for the topic and properties), and packets over that are
    # skipped at the socket without being held in memory. None: no limit.
    max_message_bytes: int | None = None
    give_up_after_losses: int = 2  # see mqtt_watch.StuckPublishWatch

    def __post_init__(self) -> None:
        if self.protocol not in ("3.1.1", "5"):
            raise ValueError(f"protocol must be '3.1.1' or '5', not {self.protocol!r}")
        if self.max_buffered < 1:
            raise ValueError("max_buffered must be at least 1")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        if self.keepalive < 0 or self.connect_timeout <= 0:
            raise ValueError("keepalive must be >= 0 and connect_timeout > 0")
        if self.max_message_bytes is not None and self.max_message_bytes < 1:
            raise ValueError("max_message_bytes must be at least 1")
        if self.give_up_after_losses < 1:
            raise ValueError("give_up_after_losses must be at least 1")
        for topic, qos in self.subscriptions:
            if not topic or qos not in (0, 1, 2):
                raise ValueError(f"bad subscription {(topic, qos)!r}")


@dataclass(frozen=True, slots=True)
class MessageProperties:
    """The MQTT 5 request/response properties (spec 4.10); other properties are not exposed."""

    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: MessageProperties | None  # None unless a Response Topic or Correlation Data came
