"""The MQTT broker URL setting: `mqtt://host[:port]` or `mqtts://host[:port]`, parsed and shown without
its credentials. Pure; the settings rules (rules.py) and the MQTT edge both use it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}
TLS_SCHEMES = frozenset({"mqtts", "ssl"})


def redact_url(url: str) -> str:
    """A URL fit for a log line: any `user:password@` part is replaced by `***@`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


class MqttUrlError(ValueError):
    """A broker URL that cannot be used; `reason` says why without repeating the URL."""

    def __init__(self, url: str, reason: str, *, unsupported: bool = False) -> None:
        shown = redact_url(url)
        super().__init__(f"unsupported MQTT broker URL {shown!r}: {reason}" if unsupported
                         else f"MQTT broker URL {shown!r}: {reason}")
        self.reason = reason


class MqttSettingError(MqttUrlError):
    """Another MQTT setting the service cannot run with (a MqttUrlError, so start-up reports it the same way)."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)
        self.reason = message


def uses_tls(url: str) -> bool:
    """`mqtts://` (or paho's and the reference's `ssl://`) brokers are reached over TLS."""
    return urlsplit(url).scheme in TLS_SCHEMES


def parse_broker_url(url: str) -> tuple[str, int]:
    """`mqtt://host[:port]` or `mqtts://host[:port]` → (host, port).

    A path, a query or a fragment would be silently ignored (no topic or option is read from the URL), so
    they are refused. (Credentials in the URL are not used either; transports/config/rules.py warns about
    them.) Messages show the URL without its credentials.
    """
    expected = "expected mqtt://host[:port] or mqtts://host[:port]"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise MqttUrlError(url, "bad port: expected a number from 1 to 65535") from None
    host = parts.hostname
    if parts.scheme not in DEFAULT_PORTS or not host or any(c.isspace() or not c.isprintable() for c in url):
        raise MqttUrlError(url, expected, unsupported=True)
    if parts.path not in ("", "/") or "?" in url or "#" in url:
        raise MqttUrlError(url, f"has a path, query or fragment: {expected} (request topics are set by "
                           "mqtt_topic_prefix)")
    if port == 0:
        raise MqttUrlError(url, "bad port: expected a number from 1 to 65535")
    return host, port if port is not None else DEFAULT_PORTS[parts.scheme]
