"""Structured logs: one line per record, as JSON or as key=value pairs (`--log-format`).

Every record carries time, level, logger and message; records that describe a request (the access
log, `transports/observability/access.py`) add their fields under the `lockstore` attribute of the record
(`extra={"lockstore": {...}}`), and the formatters print them as fields of their own so that a log
shipper can index them. Nothing here knows about secrets: the rule is that no caller puts one in a
record (no Authorization header, no MQTT password; broker URLs go through `redact_url`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal, TextIO

LogFormat = Literal["keyvalue", "json"]
FIELDS_ATTRIBUTE = "lockstore"  # the `extra` key request fields travel under


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text (one strftime per second)


def _timestamp(record: logging.LogRecord) -> str:
    """UTC, millisecond precision, ISO 8601 (`2026-11-23T12:00:00.123Z`)."""
    seconds = int(record.created)
    millis = int((record.created - seconds) * 1000)
    if _second[0] != seconds:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{millis:03d}Z"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of one record, in print order: ts, level, logger, msg, request fields, exc."""
    fields: dict[str, Any] = {
        "ts": _timestamp(record),
        "level": record.levelname,
        "logger": record.name,
        "msg": record.getMessage(),
    }
    extra = getattr(record, FIELDS_ATTRIBUTE, None)
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            if value is not None:
                fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json.dumps(fields, ensure_ascii=False, default=str)


_NEEDS_QUOTES = re.compile(r'[\s"=\\]')


def _kv_value(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    text = value if type(value) is str else str(value)
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, with \" \\ \n escapes


class KeyValueFormatter(logging.Formatter):
    """`key=value` pairs (logfmt); values with spaces, quotes or `=` are double-quoted."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return " ".join(f"{key}={_kv_value(value)}" for key, value in fields.items())


def formatter_for(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else KeyValueFormatter()


def configure_logging(level: str, log_format: LogFormat = "keyvalue", stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one stream handler in `log_format` at `level`."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    # paho's own DEBUG chatter is not useful at INFO, and hypercorn's error log is ours already.
    logging.getLogger("lockstore.mqtt.paho").setLevel(max(logging.INFO, root.level))
