r"""Structured logs: one line per record, as JSON or as key=value pairs (`--log-format`).

Every record carries time, level, logger and message; records that describe a request (the access
log, `transports/observability/access.py`) add their fields under the `lockstore` attribute of the record
(`extra={"lockstore": {...}}`), and the formatters print them as fields of their own so that a log
shipper can index them. Nothing here knows about secrets: the rule is that no caller puts one in a
record (no Authorization header, no MQTT password; broker URLs go through `config.broker_url.redact_url`).

Much of what is logged comes from outside (paths, MQTT topics and trace ids, requester names), so the
formatters, which every logger goes through, make each line safe whatever the caller passed:

- no character that is not printable (`str.isprintable`: controls such as ESC, BEL, NUL, CR/LF, DEL, the
  C1 range, line and paragraph separators, format characters, lone surrogates …) reaches the output:
  key=value writes it as `\xNN`, `\uNNNN` or `\UNNNNNNNN` (`\n`, `\r`, `\t` by name) inside a quoted
  value; JSON as its `\uNNNN` escape, so a JSON reader gets the original text back;
- every field is cut at `MAX_FIELD_CHARS` characters with a visible `…(+N chars)` marker (a 200 MiB
  MQTT trace id was logged whole); a traceback's lines are cut the same way and the whole traceback
  keeps its last `MAX_TRACEBACK_CHARS` characters.
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
MAX_FIELD_CHARS = 4096
MAX_TRACEBACK_CHARS = 65536


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text (one strftime per second)


def _timestamp(record: logging.LogRecord) -> str:
    """UTC, millisecond precision, ISO 8601 (`2026-11-23T12:00:00.123Z`)."""
    seconds = int(record.created)
    millis = int((record.created - seconds) * 1000)
    if _second[0] != seconds:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{millis:03d}Z"


def cap(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text`, cut at `limit` characters with a marker saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} chars)"


def cap_traceback(text: str) -> str:
    """Each line capped, and only the last MAX_TRACEBACK_CHARS characters (the exception is at the end)."""
    if len(text) > MAX_FIELD_CHARS:
        text = "\n".join(cap(line) for line in text.split("\n"))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = f"(…{len(text) - MAX_TRACEBACK_CHARS} chars)…{text[-MAX_TRACEBACK_CHARS:]}"
    return text


def _field(value: Any) -> Any:
    """A field value fit for either format: numbers and booleans as they are, anything else as capped text."""
    if type(value) in (int, float, bool):
        return value
    return cap(value if type(value) is str else str(value))


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of one record, in print order: ts, level, logger, msg, request fields. Values are capped
    (`cap`); escaping is the format's business."""
    fields: dict[str, Any] = {
        "ts": _timestamp(record),
        "level": record.levelname,
        "logger": record.name,
        "msg": cap(record.getMessage()),
    }
    extra = getattr(record, FIELDS_ATTRIBUTE, None)
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            if value is not None:
                fields[key] = _field(value)
    return fields


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    """A non-printable character as a Python-style escape."""
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape_nonprintable(text: str) -> str:
    """`text` with every non-printable character replaced by its escape (backslashes are left alone)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _json_escape(char: str) -> str:
    """A character as JSON `\\uNNNN` escape(s): a surrogate pair above U+FFFF."""
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, nothing non-printable in it (see the module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        if record.exc_info:
            fields["exc"] = cap_traceback(self.formatException(record.exc_info))
        line = json.dumps(fields, ensure_ascii=False, default=str)
        if line.isprintable():
            return line
        # json.dumps escaped the C0 controls; what is left (DEL, C1, separators …) can only be inside a
        # string, where its \uNNNN escape means the same character.
        return "".join(char if char.isprintable() else _json_escape(char) for char in line)


_NEEDS_QUOTES = re.compile(r'[\s"=\\]')


def _kv_value(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    text = value if type(value) is str else str(value)
    if text and text.isprintable() and _NEEDS_QUOTES.search(text) is None:
        return text
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escape_nonprintable(quoted)}"'


class KeyValueFormatter(logging.Formatter):
    """`key=value` pairs (logfmt); values with spaces, quotes, `=`, backslashes or non-printable characters
    are double-quoted, with `\\` and `\"` and the escapes of the module doc."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        if record.exc_info:
            fields["exc"] = cap_traceback(self.formatException(record.exc_info))
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
    # httpx logs every request at INFO: in etcd mode that is a line per etcd round trip (the etcd client
    # logs what matters under lockstore.etcd, and /metrics counts the requests).
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
