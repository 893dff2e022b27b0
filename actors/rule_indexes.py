"""The simple store's indexes over its rules: which exist, how one rule enters and leaves them, and how
a whole snapshot's worth of rules is indexed in one go.

Pure data structures; `RuleTable` (actors/store.py) owns one `RuleIndexes` and keeps it in step with
its id -> rule dict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, TypeVar

from sortedcontainers import SortedList

from actors.bulk_index import grouped_unsorted, keyed_entries, presorted
from actors.records import RULE_SORT_FIELDS, Rule

_K = TypeVar("_K")

rule_id: Callable[[Rule], str] = attrgetter("id")

# Sort keys per wire field name. Every key ends with the id, so ties break by id in the requested
# direction (DECISIONS.md) and the global sorted indexes hold exactly these keys.
SORT_KEYS: dict[str, Callable[[Rule], Any]] = {
    "id": rule_id,
    "consumer": attrgetter("consumer", "id"),
    "serviceDefinition": attrgetter("service_definition", "id"),
    "priority": attrgetter("priority", "id"),
    "serviceInstanceId": attrgetter("service_instance_id", "id"),
    "createdAt": attrgetter("created_at", "id"),
}
assert set(SORT_KEYS) == set(RULE_SORT_FIELDS)

# Equality indexes: key of a rule -> ids of the rules with that key. Consumer, service definition and
# service instance need none: their sorted (key, id) index holds each key's ids as one contiguous run.
HASH_KEYS: dict[str, Callable[[Rule], Any]] = {
    "created_by": attrgetter("created_by"),
    "rule_set": attrgetter("consumer", "service_definition"),
}

# The uniqueness rule of the store: at most one rule per (consumer, service definition, priority).
unique_key: Callable[[Rule], tuple[str, str, int]] = attrgetter("consumer", "service_definition", "priority")


def _link(index: dict[_K, set[str]], key: _K, rule_id: str) -> None:
    ids = index.get(key)
    if ids is None:
        index[key] = {rule_id}
    else:
        ids.add(rule_id)


def _unlink(index: dict[_K, set[str]], key: _K, rule_id: str) -> None:
    ids = index[key]
    ids.discard(rule_id)
    if not ids:
        del index[key]  # empty sets would leak memory and make equal states compare unequal


class RuleIndexes:
    """`hashed[name][key]` = ids, `unique[(consumer, definition, priority)]` = id, `sorted[field]` = the
    sort keys of every rule in order (the id index holds ids, the others (key, id) tuples)."""

    __slots__ = ("hashed", "sorted", "unique")

    def __init__(self) -> None:
        self.hashed: dict[str, dict[Any, set[str]]] = {name: {} for name in HASH_KEYS}
        self.unique: dict[tuple[str, str, int], str] = {}
        self.sorted: dict[str, SortedList] = {name: SortedList() for name in SORT_KEYS}

    @classmethod
    def build(cls, rules: Sequence[Rule]) -> RuleIndexes:
        """Index `rules` (distinct ids) at once; equal to adding them one by one in this order."""
        indexes = cls()
        in_id_order = sorted(rules, key=rule_id)
        entries: dict[str, list[Any]] = {"id": list(map(rule_id, in_id_order))}
        for field, key in SORT_KEYS.items():
            if field != "id":
                entries[field] = keyed_entries(in_id_order, key)
        for field in SORT_KEYS:
            indexes.sorted[field] = presorted(entries[field])
        for name, key in HASH_KEYS.items():
            indexes.hashed[name] = grouped_unsorted(map(key, in_id_order), map(rule_id, in_id_order))
        # In the given order, so that the last of two rules with one key wins, as it does one by one.
        indexes.unique = dict(zip(map(unique_key, rules), map(rule_id, rules), strict=True))
        return indexes

    def add_many(self, rules: Sequence[Rule]) -> None:
        """Index new rules (ids not indexed yet)."""
        for rule in rules:
            for name, key in HASH_KEYS.items():
                _link(self.hashed[name], key(rule), rule.id)
            self.unique[unique_key(rule)] = rule.id
        for name, key in SORT_KEYS.items():
            # update() rebuilds in one sort when the batch is large, else adds one by one.
            self.sorted[name].update([key(rule) for rule in rules])

    def add(self, rule: Rule, skip_if_same_as: Rule | None = None) -> None:
        other = skip_if_same_as
        for name, key in HASH_KEYS.items():
            k = key(rule)
            if other is None or key(other) != k:
                _link(self.hashed[name], k, rule.id)
        self.unique[unique_key(rule)] = rule.id
        for name, key in SORT_KEYS.items():
            k = key(rule)
            if other is None or key(other) != k:
                self.sorted[name].add(k)

    def remove(self, rule: Rule, keep_if_same_as: Rule | None = None) -> None:
        other = keep_if_same_as
        for name, key in HASH_KEYS.items():
            k = key(rule)
            if other is None or key(other) != k:
                _unlink(self.hashed[name], k, rule.id)
        unique = unique_key(rule)
        if self.unique.get(unique) == rule.id:
            del self.unique[unique]
        for name, key in SORT_KEYS.items():
            k = key(rule)
            if other is None or key(other) != k:
                self.sorted[name].remove(k)

    def __eq__(self, other: object) -> bool:
        """Every index equal (O(n); for tests and replay checks)."""
        if not isinstance(other, RuleIndexes):
            return NotImplemented
        return (
            self.hashed == other.hashed
            and self.unique == other.unique
            and all(list(self.sorted[name]) == list(other.sorted[name]) for name in SORT_KEYS)
        )

    __hash__ = None  # type: ignore[assignment]
