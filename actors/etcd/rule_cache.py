"""The rule table as a cache of etcd: built from a list, then changed by watch events. Pure.

The table is the local mode's RuleTable (same indexes, same queries, same planning). Beside it the
cache keeps each rule's mod_revision, which the compares of a modify or remove need. Events of one
revision are applied together, as one RulesRemoved, one RulesUpdated and one RulesCreated, so a
priority swap (two rules trading slots in one txn) goes through RuleTable's two-phase update.
Undecodable values are counted and treated as no rule (see lock_cache.py).

May import: actors.etcd.wire, .keys, .values; actors.store, actors.records. Never transports or bench.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import attrgetter

from actors.etcd import wire
from actors.etcd.keys import KeyLayout
from actors.etcd.values import MalformedRecord, decode_rule
from actors.records import Rule, RulesCreated, RulesRemoved, RulesUpdated
from actors.store import RuleLoader, RuleTable

_mod_revision = attrgetter("kv.mod_revision")


class RuleCache:
    def __init__(
        self, layout: KeyLayout, table: RuleTable | None = None, revisions: dict[str, int] | None = None
    ) -> None:
        self.layout = layout
        self.table = table if table is not None else RuleTable()
        self.revisions = revisions if revisions is not None else {}  # rule id -> its key's mod_revision
        self.malformed = 0
        self.last_malformed = ""

    @classmethod
    def build(cls, layout: KeyLayout, kvs: Iterable[wire.KeyValue]) -> RuleCache:
        cache = cls(layout)
        rules: list[Rule] = []
        for kv in kvs:
            rule = cache._decode(kv)
            if rule is not None:
                rules.append(rule)
                cache.revisions[rule.id] = kv.mod_revision
        cache.table = RuleLoader(rules).table()
        return cache

    def apply(self, events: Sequence[wire.Event]) -> int:
        """Apply a watch response's events; the newest revision among them (0 if none)."""
        newest = 0
        table, revisions = self.table, self.revisions
        for revision, group in groupby(events, key=_mod_revision):
            removed: list[str] = []
            updated: list[Rule] = []
            created: list[Rule] = []
            for event in group:
                rule_id = self.layout.rule_id_of(event.kv.key)
                if rule_id is None:
                    continue  # the revision marker
                rule = None if event.type == wire.DELETE_EVENT else self._decode(event.kv)
                if rule is None:
                    if table.get(rule_id) is not None:
                        removed.append(rule_id)
                    revisions.pop(rule_id, None)
                    continue
                (updated if table.get(rule_id) is not None else created).append(rule)
                revisions[rule_id] = revision
            if removed:
                table.apply(RulesRemoved(tuple(removed)))
            if updated:
                table.apply(RulesUpdated(tuple(updated)))
            if created:
                table.apply(RulesCreated(tuple(created)))
            newest = max(newest, revision)
        return newest

    def _decode(self, kv: wire.KeyValue) -> Rule | None:
        rule_id = self.layout.rule_id_of(kv.key)
        if rule_id is None:
            return None
        try:
            return decode_rule(rule_id, kv.value)
        except MalformedRecord as error:
            self.malformed += 1
            self.last_malformed = f"{kv.key.decode('utf-8', 'replace')}: {error}"
            return None
