"""Planned rule changes as etcd txns whose compares guard every assumption of the plan. Pure.

The plans are RuleTable's (actors/store.py) on the instance's cache. Uniqueness of (consumer,
service definition, priority) is kept by slot keys (keys.py) whose value is the id of the rule
holding the slot. Invariant, kept by every txn below: a rule's slot exists and names it, and every
slot names a rule with that triple. So "rule R is unchanged since revision m" (`mod_revision == m` on
its key) also guarantees that the slot R held then is still R's.

- create: per rule, its key and its slot are absent (`create_revision == 0`); puts both.
- modify-priorities: per changed rule, its key is unchanged since the cache saw it; per slot taken
  that none of those rules held, the slot is absent. Slots are overwritten, not deleted and re-created,
  when one changed rule takes another's (a swap: etcd refuses two ops on one key in a txn); slots
  vacated and not taken again are deleted.
- remove: per rule, its key is unchanged; deletes the key and its slot.

Every txn also puts the rules' revision marker, and reads it when its compares fail (see
writes.conflict_revision).

May import: actors.etcd.wire, .keys, .values; actors.records. Never transports or bench.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from actors.etcd import wire
from actors.etcd.keys import KeyLayout
from actors.etcd.values import encode_rule, request_of
from actors.records import Rule


def slot_of(layout: KeyLayout, rule: Rule) -> bytes:
    return layout.rule_slot(rule.consumer, rule.service_definition, rule.priority)


def create_txn(layout: KeyLayout, rules: Sequence[Rule], request: str) -> wire.TxnRequest:
    compare: list[wire.Compare] = []
    success: list[wire.RequestOp] = []
    for rule in rules:
        key, slot = layout.rule_key(rule.id), slot_of(layout, rule)
        compare += [wire.absent(key), wire.absent(slot)]
        success += [wire.put(key, encode_rule(rule, request)), wire.put(slot, rule.id.encode())]
    success.append(wire.put(layout.rules_marker))
    return wire.TxnRequest(compare=compare, success=success, failure=[wire.get(layout.rules_marker)])


def modify_txn(
    layout: KeyLayout, before: Sequence[Rule], after: Sequence[Rule], revisions: Mapping[str, int], request: str
) -> wire.TxnRequest:
    """`after[i]` is the new version of `before[i]` (same id); `revisions[id]` the mod_revision the cache
    holds for each rule in `before`."""
    old_slots = {slot_of(layout, rule) for rule in before}
    new_slots = {slot_of(layout, rule): rule.id for rule in after}
    compare = [wire.unchanged(layout.rule_key(rule.id), revisions[rule.id]) for rule in before]
    compare += [wire.absent(slot) for slot in new_slots if slot not in old_slots]
    success = [wire.put(layout.rule_key(rule.id), encode_rule(rule, request)) for rule in after]
    success += [wire.put(slot, rule_id.encode()) for slot, rule_id in new_slots.items()]
    success += [wire.delete(slot) for slot in old_slots if slot not in new_slots]
    success.append(wire.put(layout.rules_marker))
    return wire.TxnRequest(compare=compare, success=success, failure=[wire.get(layout.rules_marker)])


def remove_txn(layout: KeyLayout, rules: Sequence[Rule], revisions: Mapping[str, int]) -> wire.TxnRequest:
    compare = [wire.unchanged(layout.rule_key(rule.id), revisions[rule.id]) for rule in rules]
    success = [wire.delete(key) for rule in rules for key in (layout.rule_key(rule.id), slot_of(layout, rule))]
    success.append(wire.put(layout.rules_marker))
    return wire.TxnRequest(compare=compare, success=success, failure=[wire.get(layout.rules_marker)])


def read_back_txn(layout: KeyLayout, rule_ids: Sequence[str]) -> wire.TxnRequest:
    return wire.TxnRequest(success=[wire.get(layout.rule_key(rule_id)) for rule_id in rule_ids])


def applied_at(layout: KeyLayout, reply: wire.TxnResponse, request: str) -> tuple[str, int] | None:
    """(rule id, revision) of a rule a read-back shows written by `request`, or None."""
    for op in reply.responses:
        if op.response_range is not None:
            for kv in op.response_range.kvs:
                rule_id = layout.rule_id_of(kv.key)
                if rule_id is not None and request_of(kv.value) == request:
                    return rule_id, kv.mod_revision
    return None
