"""Reply-topic checks and log shortening (transports/api/topics.py), against a character-by-character model
of what paho and mosquitto 2 accept (found by publishing each case to mosquitto 2.0.11 at QoS 1: every
refused one ended the connection with "Malformed packet" or "Protocol error")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.api.topics import (
    MAX_TOPIC_BYTES,
    MAX_TOPIC_LEVELS,
    ReplyTopicRule,
    prefix_setting_problem,
    reply_topic_problem,
    shown,
)


def publishable(topic: str) -> bool:
    """The model: the rules written out one by one."""
    if not topic or topic.startswith("$"):
        return False
    for char in topic:
        code = ord(char)
        if char in "+#" or code <= 0x1F or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF:
            return False
        if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
            return False
    return len(topic.encode("utf-8")) <= MAX_TOPIC_BYTES and topic.count("/") + 1 <= MAX_TOPIC_LEVELS


@pytest.mark.parametrize(("topic", "problem"), [
    ("replies/me", None),
    (" ", None),  # odd, but mosquitto takes it
    ("a/\ufffd/é/😀", None),
    ("/".join(["l"] * MAX_TOPIC_LEVELS), None),
    ("r" * MAX_TOPIC_BYTES, None),
    ("", "is empty"),
    ("#", "contains the wildcard '#'"),
    ("replies/+/x", "contains the wildcard '+'"),
    ("a\x00b", "contains the character U+0000"),
    ("a\tb", "contains the character U+0009"),
    ("a\x7fb", "contains the character U+007F"),
    ("a\u0085b", "contains the character U+0085"),
    ("a\ufdd0", "contains the character U+FDD0"),
    ("a\uffff", "contains the character U+FFFF"),
    ("a\U0010fffe", "contains the character U+10FFFE"),
    ("a\ud800", "contains the character U+D800"),  # a lone surrogate cannot even be encoded
    ("$SYS/broker/x", "starts with '$' (reserved for the broker)"),
    ("r" * (MAX_TOPIC_BYTES + 1), "is longer than 65535 bytes"),
    ("é" * (MAX_TOPIC_BYTES // 2 + 1), "is longer than 65535 bytes"),  # 32,768 characters, 65,536 bytes
    ("/".join(["l"] * (MAX_TOPIC_LEVELS + 1)), "has more than 200 levels"),
])
def test_reply_topic_problem(topic: str, problem: str | None) -> None:
    assert reply_topic_problem(topic) == problem
    assert publishable(topic) == (problem is None)


topic_chars = st.characters(codec=None) | st.sampled_from("/+#$\x00\x01\x7f\x85\ud800\udfff\ufdd0\ufffe\uffff\U0001ffff")


@given(st.text(topic_chars, max_size=40) | st.lists(st.sampled_from(["a", "", "é"]), max_size=210).map("/".join))
def test_reply_topic_problem_agrees_with_the_model(topic: str) -> None:
    assert (reply_topic_problem(topic) is None) == publishable(topic)


@pytest.mark.parametrize("prefix", ["replies", "replies/", "replies//"])
def test_reply_topic_rule_is_the_filter_prefix_slash_hash(prefix: str) -> None:
    rule = ReplyTopicRule(prefix)
    for allowed in ("replies", "replies/", "replies/a", "replies/a/b/c"):
        assert rule.allows(allowed), allowed
    for refused in ("repliesX", "repliesX/a", "other/replies/a", "replie", "", "/replies/a", "Replies/a"):
        assert not rule.allows(refused), refused


def test_no_rule_allows_everything() -> None:
    assert ReplyTopicRule().allows("anything/at/all")
    assert ReplyTopicRule(None).prefix is None


@pytest.mark.parametrize(("prefix", "problem"), [
    ("replies/", None),
    ("a/b", None),
    ("/", "must name at least one topic level"),
    ("", "must name at least one topic level"),
    ("replies/#", "contains the wildcard '#'"),
    ("$SYS/", "starts with '$' (reserved for the broker)"),
])
def test_prefix_setting_problem(prefix: str, problem: str | None) -> None:
    assert prefix_setting_problem(prefix) == problem


def test_shown_cuts_and_escapes() -> None:
    assert shown("short") == "'short'"
    assert shown("a\x00\x1b[31mb") == "'a\\x00\\x1b[31mb'"
    long = "x" * 10_000
    assert shown(long) == "'" + "x" * 120 + "'…(+9880 more)"
    assert shown(b"\xff" * 200, limit=2) == "b'\\xff\\xff'…(+198 more)"
    assert shown(None) == "None"
    assert shown([1] * 1000, limit=10) == "[1, 1, 1, …(+2990 more)"


@given(st.text(max_size=500), st.integers(1, 300))
def test_shown_is_bounded_and_printable(value: str, limit: int) -> None:
    text = shown(value, limit)
    assert text.isprintable()
    assert len(text) <= 12 * limit + 30  # repr escapes a character to at most 10 characters (\U0010ffff)
