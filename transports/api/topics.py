"""Where the service may publish a reply, and how client-supplied MQTT values are shown in logs (pure, no I/O).

A request names its reply topic itself (`responseTopic`, or the MQTT 5 Response Topic property), so
anything can be there. It is checked before the request runs, because publishing to a bad topic hurts:
paho raises ValueError on wildcards or a topic over 65,535 bytes, and mosquitto drops the whole
connection ("Malformed packet", "Protocol error") on a topic it refuses — with a QoS 1/2 reply paho
would then send it again after every reconnect. A request whose reply topic is refused is not executed
and gets no reply (there is nowhere safe to send one).
"""

from __future__ import annotations

import re

MAX_TOPIC_BYTES = 65_535  # an MQTT UTF-8 string has a 16-bit length
# mosquitto (TOPIC_HIERARCHY_LIMIT) refuses a topic with more than 200 '/', i.e. more than 201 levels;
# we stay at 200 levels, a round number a little inside what the broker takes.
MAX_TOPIC_LEVELS = 200

# What MQTT forbids in a UTF-8 string (U+0000, surrogates) or says it SHOULD NOT contain (C0 and C1
# controls, non-characters); mosquitto 2 disconnects a client that publishes to a topic with any of them.
# Plus the wildcards, which a publish topic cannot have.
_NONCHARACTERS = "".join(f"{chr(plane + 0xFFFE)}{chr(plane + 0xFFFF)}" for plane in range(0x10000, 0x110000, 0x10000))
_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff" + _NONCHARACTERS + "+#]")

LOG_FIELD_CHARS = 120  # how much of a client-supplied value a log line shows


def reply_topic_problem(topic: str) -> str | None:
    """Why `topic` cannot be published to (a short phrase for the log), or None if it can."""
    if not topic:
        return "is empty"
    if len(topic) > MAX_TOPIC_BYTES:  # every character takes at least one byte: too long, whatever it holds
        return f"is longer than {MAX_TOPIC_BYTES} bytes"
    # The usual case first: ASCII, where printable means no control character (a few µs less per request).
    clean = topic.isascii() and topic.isprintable() and "+" not in topic and "#" not in topic
    refused = None if clean else _REFUSED.search(topic)
    if refused is not None:
        char = refused.group()
        if char in "+#":
            return f"contains the wildcard {char!r}"
        return f"contains the character U+{ord(char):04X}"
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        return f"is longer than {MAX_TOPIC_BYTES} bytes"
    if topic.startswith("$"):
        return "starts with '$' (reserved for the broker)"
    if topic.count("/") >= MAX_TOPIC_LEVELS:
        return f"has more than {MAX_TOPIC_LEVELS} levels"
    return None


class ReplyTopicRule:
    """The optional `mqtt_reply_topic_prefix`: replies only go to the prefix or below it, as the topic
    filter `<prefix>/#` would match (a trailing '/' in the setting changes nothing). None: anywhere."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix
        self._base = prefix.rstrip("/") if prefix is not None else None

    def allows(self, topic: str) -> bool:
        base = self._base
        return base is None or topic == base or (topic.startswith(base) and topic[len(base) : len(base) + 1] == "/")


def prefix_setting_problem(prefix: str) -> str | None:
    """Why `prefix` cannot be an allowed reply-topic prefix, or None if it can."""
    base = prefix.rstrip("/")
    if not base:
        return "must name at least one topic level"
    return reply_topic_problem(base)


def shown(value: object, limit: int = LOG_FIELD_CHARS) -> str:
    """A client-supplied value for a log line: at most `limit` characters of it, non-printable ones
    escaped (repr), and how much was cut. A log line must never carry a whole megabyte trace id."""
    if isinstance(value, str | bytes | bytearray):
        cut = max(0, len(value) - limit)
        text = repr(value[:limit])
    else:
        full = repr(value)
        cut = max(0, len(full) - limit)
        text = full[:limit]
    return f"{text}…(+{cut} more)" if cut else text
