"""The log formatters against hostile text (transports/observability/logging_setup.py): whatever a field holds — control
characters from a path, an MQTT topic or trace id, lone surrogates, 200 KB of it — each record is one line
of printable characters, and the value can be read back (JSON: exactly; key=value: as a Python string
literal) unless it was cut, visibly, at MAX_FIELD_CHARS.
"""

from __future__ import annotations

import ast
import json
import logging
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.observability.logging_setup import (
    MAX_FIELD_CHARS,
    MAX_TRACEBACK_CHARS,
    JsonFormatter,
    KeyValueFormatter,
    cap,
)

HOSTILE = [
    "\x00", "\x07", "\x1b[31mred\x1b[0m", "\r\n", "\n", "\t", "\x7f", "\x85", "\x9b31m", "\u2028", "\u2029",
    "\u202e", "\u200b", "\ufeff", "\ud800", "\udfff", "\U000e0001", "\U0010ffff", "\xa0",
]
FORMATTERS = {"json": JsonFormatter(), "keyvalue": KeyValueFormatter()}


def record(message: str = "m", fields: dict[str, Any] | None = None, exc: BaseException | None = None,
           args: tuple[Any, ...] = ()) -> logging.LogRecord:
    made = logging.LogRecord("lockstore.access", logging.INFO, __file__, 1, message, args, None)
    if exc is not None:
        try:
            raise exc
        except BaseException:
            made.exc_info = sys.exc_info()
    made.lockstore = fields or {}
    return made


def value_of(line: str, log_format: str, key: str) -> Any:
    """The value of `key`, the last field of a line."""
    if log_format == "json":
        return json.loads(line)[key]
    text = line.rsplit(f" {key}=", 1)[1]
    return ast.literal_eval(text) if text.startswith('"') else text


def assert_safe(line: str) -> None:
    assert "\n" not in line and line.isprintable(), repr(line)


@pytest.mark.parametrize("log_format", FORMATTERS)
@pytest.mark.parametrize("hostile", HOSTILE, ids=[f"U+{ord(text[0]):04X}" for text in HOSTILE])
def test_non_printable_characters_are_escaped_everywhere(log_format: str, hostile: str) -> None:
    text = f"/p{hostile}x"
    line = FORMATTERS[log_format].format(record(f"GET {text} 200", {"path": text, "reply_topic": text},
                                                exc=ValueError(text)))
    assert_safe(line)
    assert value_of(line.split(" exc=", 1)[0], log_format, "reply_topic") == text


@pytest.mark.parametrize("log_format", FORMATTERS)
@given(text=st.text(st.characters(codec=None), max_size=200))
def test_any_text_comes_back_from_one_printable_line(log_format: str, text: str) -> None:
    line = FORMATTERS[log_format].format(record("m", {"n": 1, "f": text}))
    assert_safe(line)
    if log_format == "keyvalue" and text and text.isprintable() and not any(c in text for c in ' "=\\'):
        assert line.endswith(f" f={text}")  # plain values stay bare
    assert value_of(line, log_format, "f") == text


def test_key_value_quotes_and_escapes() -> None:
    line = KeyValueFormatter().format(record("m", {"a": 'say "hi"', "b": "c:\\x1b", "c": "\x1b", "d": "\u2028"}))
    assert line.endswith(' a="say \\"hi\\"" b="c:\\\\x1b" c="\\x1b" d="\\u2028"')


def test_json_escapes_what_json_dumps_leaves_raw() -> None:
    line = JsonFormatter().format(record("m", {"f": "\x7f\x9b\u2028\U000e0001"}))
    assert line.endswith('"f": "\\u007f\\u009b\\u2028\\udb40\\udc01"}')


@pytest.mark.parametrize("log_format", FORMATTERS)
def test_every_field_is_capped_with_a_visible_marker(log_format: str) -> None:
    huge = "t" * 200_000
    line = FORMATTERS[log_format].format(record("MQTT %s", {"status": 123456789, "trace_id": huge}, args=(huge,)))
    cut = "t" * MAX_FIELD_CHARS + f"…(+{200_000 - MAX_FIELD_CHARS} chars)"
    assert value_of(line, log_format, "trace_id") == cut
    message = f"MQTT {huge}"
    assert f"{message[:MAX_FIELD_CHARS]}…(+{len(message) - MAX_FIELD_CHARS} chars)" in line
    assert len(line) < 3 * MAX_FIELD_CHARS
    assert value_of(line.rsplit(" trace_id=", 1)[0], log_format, "status") in (123456789, "123456789")


@pytest.mark.parametrize("log_format", FORMATTERS)
def test_a_traceback_keeps_its_exception_and_stays_bounded(log_format: str) -> None:
    line = FORMATTERS[log_format].format(record("failed", exc=ValueError("x\x1b" * 1_000_000)))
    assert_safe(line)
    assert len(line) < MAX_TRACEBACK_CHARS + 4 * MAX_FIELD_CHARS
    assert "ValueError: x" in line and "chars)" in line
    deep = RecursionError("".join(f"frame {n}\n" for n in range(100_000)))
    line = FORMATTERS[log_format].format(record("failed", exc=deep))
    assert len(line) < 2 * MAX_TRACEBACK_CHARS and "frame 99999" in line  # the end of it is kept


def test_cap() -> None:
    assert cap("abc", 3) == "abc"
    assert cap("abcd", 3) == "abc…(+1 chars)"


def test_non_text_values_are_capped_too() -> None:
    class Huge:
        def __str__(self) -> str:
            return "h" * 10_000

    line = JsonFormatter().format(record("m", {"obj": Huge(), "ok": True, "ms": 1.5}))
    data = json.loads(line)
    assert data["obj"].endswith(f"…(+{10_000 - MAX_FIELD_CHARS} chars)")
    assert data["ok"] is True and data["ms"] == 1.5
