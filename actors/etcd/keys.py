"""Where lockstore's records live in etcd, under one prefix (default `lockstore/`). Pure.

    <prefix>locks/i/<service instance id>        a lock; the key is also the uniqueness key "one
                                                 lock per service instance" (create compares on it)
    <prefix>locks/rev                            revision marker: every txn that changes locks puts it
    <prefix>rules/r/<rule id>                    a simple-store rule
    <prefix>rules/rev                            revision marker of the rules
    <prefix>rule-slots/<consumer>/<definition>/<priority>   uniqueness of (consumer, service definition,
                                                 priority): its value is the id of the rule holding it
    <prefix>expiry-leader                        the expiry election's key (on a lease)
    <prefix>probe/...                            keys the start-up limits probe names (never written)

Each instance watches `locks/` and `rules/` (records and marker; the slots are derived data, kept out
of the watch). The marker's mod_revision is the revision of the last change to its table, which is
what a linearizable read waits for (docs/multi-instance.md, "The read path").

Key parts in a slot key are percent-escaped (`/` and `%` only, and anything outside printable ASCII),
so two different triples never share a key; the last part of a record key is taken verbatim.

May import: the standard library. Never transports or bench.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

DEFAULT_PREFIX = "lockstore/"

_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in "/%")


def _part(text: str) -> str:
    return quote(text, safe=_SAFE)


@dataclass(frozen=True)
class KeyLayout:
    prefix: bytes

    @classmethod
    def from_prefix(cls, text: str = DEFAULT_PREFIX) -> KeyLayout:
        """The layout under `text` (a `/` is added when it does not end with one). Raises ValueError for
        an empty prefix or one with control characters."""
        if not text or not text.strip():
            raise ValueError("etcd_prefix must not be empty")
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
            raise ValueError(f"etcd_prefix {text!r} holds a control character")
        if not text.endswith("/"):
            text += "/"
        return cls(text.encode("utf-8"))

    # ------------------------------------------------------------------ locks

    @property
    def locks(self) -> bytes:
        """What the lock cache watches: records and marker."""
        return self.prefix + b"locks/"

    @property
    def lock_records(self) -> bytes:
        return self.prefix + b"locks/i/"

    @property
    def locks_marker(self) -> bytes:
        return self.prefix + b"locks/rev"

    def lock_key(self, service_instance_id: str) -> bytes:
        return self.lock_records + service_instance_id.encode("utf-8")

    def instance_of(self, key: bytes) -> str | None:
        """The service instance of a lock record key; None for any other key (the marker, say)."""
        if not key.startswith(self.lock_records):
            return None
        return key[len(self.lock_records) :].decode("utf-8", "surrogateescape")

    # ------------------------------------------------------------------ rules

    @property
    def rules(self) -> bytes:
        """What the rule cache watches: records and marker."""
        return self.prefix + b"rules/"

    @property
    def rule_records(self) -> bytes:
        return self.prefix + b"rules/r/"

    @property
    def rules_marker(self) -> bytes:
        return self.prefix + b"rules/rev"

    def rule_key(self, rule_id: str) -> bytes:
        return self.rule_records + rule_id.encode("utf-8")

    def rule_id_of(self, key: bytes) -> str | None:
        if not key.startswith(self.rule_records):
            return None
        return key[len(self.rule_records) :].decode("utf-8", "surrogateescape")

    @property
    def rule_slots(self) -> bytes:
        return self.prefix + b"rule-slots/"

    def rule_slot(self, consumer: str, service_definition: str, priority: int) -> bytes:
        return self.rule_slots + f"{_part(consumer)}/{_part(service_definition)}/{priority}".encode()

    # ------------------------------------------------------------------ coordination

    @property
    def expiry_leader(self) -> bytes:
        return self.prefix + b"expiry-leader"

    @property
    def probe(self) -> bytes:
        return self.prefix + b"probe/"
