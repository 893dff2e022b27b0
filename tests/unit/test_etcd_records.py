"""Key layout, record values, lock ids from revisions, the txn shapes and the caches fed by events —
against a model of etcd's txn semantics (tests/unit/etcd_model.py), without sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import Rejected
from actors.etcd import lock_txns, rule_txns, wire
from actors.etcd.keys import KeyLayout
from actors.etcd.lock_backend import Create, plan_create, plan_remove
from actors.etcd.lock_cache import LockCache
from actors.etcd.rule_cache import RuleCache
from actors.etcd.store_backend import Create as RuleCreate
from actors.etcd.store_backend import Modify, plan_modify
from actors.etcd.store_backend import plan_create as plan_rule_create
from actors.etcd.values import (
    LOCK_IDS_PER_REVISION,
    MalformedRecord,
    decode_lock,
    decode_rule,
    encode_lock,
    encode_rule,
    lock_id,
    lock_revision,
    request_of,
)
from actors.etcd.writes import Done, conflict_revision
from actors.records import Lock, LockFilter, NewLock, NewRule, PageRequest, Rule, RuleFilter
from tests.unit.etcd_model import ModelEtcd

LAYOUT = KeyLayout.from_prefix("ls/")
T = 1_800_000_000
ALL = PageRequest(0, 1000, "id", False)


# ------------------------------------------------------------------------------------------ keys


def test_layout() -> None:
    assert KeyLayout.from_prefix("a/b") == KeyLayout(b"a/b/")
    assert LAYOUT.lock_key("P|svc|1.0.0") == b"ls/locks/i/P|svc|1.0.0"
    assert LAYOUT.instance_of(b"ls/locks/i/P|svc|1.0.0") == "P|svc|1.0.0"
    assert LAYOUT.instance_of(LAYOUT.locks_marker) is None
    assert LAYOUT.locks_marker.startswith(LAYOUT.locks) and LAYOUT.lock_records.startswith(LAYOUT.locks)
    assert LAYOUT.rule_id_of(LAYOUT.rule_key("r1")) == "r1"
    assert LAYOUT.rules_marker.startswith(LAYOUT.rules) and not LAYOUT.rule_slots.startswith(LAYOUT.rules)
    assert not LAYOUT.expiry_leader.startswith((LAYOUT.locks, LAYOUT.rules))


@pytest.mark.parametrize("bad", ["", "  ", "a\nb", "x\x00"])
def test_bad_prefixes_are_refused_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match="etcd_prefix"):
        KeyLayout.from_prefix(bad)


@given(st.tuples(st.text(max_size=6), st.text(max_size=6), st.integers()),
       st.tuples(st.text(max_size=6), st.text(max_size=6), st.integers()))
def test_different_triples_never_share_a_slot(a: tuple[str, str, int], b: tuple[str, str, int]) -> None:
    assert (LAYOUT.rule_slot(*a) == LAYOUT.rule_slot(*b)) == (a == b)


# ------------------------------------------------------------------------------------------ values


@given(st.integers(min_value=1, max_value=2**40), st.integers(min_value=0, max_value=LOCK_IDS_PER_REVISION - 1))
def test_lock_ids_round_trip_and_order_by_revision_then_slot(revision: int, slot: int) -> None:
    assert lock_revision(lock_id(revision, slot)) == revision
    assert lock_id(revision, slot) < lock_id(revision + 1, 0)
    assert lock_id(revision, slot) < 2**63


def test_lock_and_rule_values_round_trip_with_their_request() -> None:
    lock = Lock(id=0, service_instance_id="P|s|1", owner="O", expires_at=T, temporary=True, orchestration_job_id="j")
    value = encode_lock(lock, 7, "tok")
    assert request_of(value) == "tok"
    assert decode_lock("P|s|1", value, 12) == Lock(12 * LOCK_IDS_PER_REVISION + 7, "P|s|1", "O", T, True, "j")
    rule = Rule("r1", "C", "s", "P|s|1", 3, "A", "B", T, T + 1)
    assert decode_rule("r1", encode_rule(rule, "tok")) == rule


@pytest.mark.parametrize("value", [b"", b"{", b'{"owner":"O"}', b'{"owner":"O","expiresAt":1,"slot":100000}',
                                   b'{"owner":1,"expiresAt":1}'])
def test_malformed_lock_values(value: bytes) -> None:
    with pytest.raises(MalformedRecord):
        decode_lock("P", value, 5)
    assert request_of(value) == ""


# ------------------------------------------------------------------------------------------ lock txns


def new(instance: str, owner: str = "O", expires_at: int = T + 60) -> NewLock:
    return NewLock(instance, owner, expires_at)


def same_locks(a: LockCache, b: LockCache) -> bool:
    """The same locks, and every index gives them in the same order (the next local id does not
    matter in etcd mode: ids come from revisions)."""
    return list(a.table.locks()) == list(b.table.locks()) and all(
        a.table.query(LockFilter(), PageRequest(0, 1000, field, desc), 0)
        == b.table.query(LockFilter(), PageRequest(0, 1000, field, desc), 0)
        for field in ("id", "owner", "serviceInstanceId", "expiresAt") for desc in (False, True)
    )


def catch_up(cache: LockCache | RuleCache, model: ModelEtcd, applied: int) -> int:
    prefix = LAYOUT.locks if isinstance(cache, LockCache) else LAYOUT.rules
    events = [event for event in model.events_after(applied) if event.kv.key.startswith(prefix)]
    cache.apply(events)
    return model.revision


def test_create_then_conflict_then_takeover_of_an_expired_lock() -> None:
    model, cache = ModelEtcd(), LockCache(LAYOUT)
    first = plan_create(cache, [new("A", expires_at=T + 5), new("B")], T, "r1")
    reply = model.txn(first.txn)
    assert reply.succeeded
    locks = first.result(reply.header.revision)
    assert [lock.id for lock in locks] == [lock_id(2, 0), lock_id(2, 1)]
    catch_up(cache, model, 0)
    assert cache.table.query(LockFilter(), ALL, T)[0] == locks

    # A stale plan (made before A was taken) loses; the fresh one says what the local mode says.
    stale = plan_create(LockCache(LAYOUT), [new("A", "Other")], T, "r2")
    assert not model.txn(stale.txn).succeeded
    with pytest.raises(Rejected, match="Already locked: A"):
        plan_create(cache, [new("A", "Other")], T, "r2")

    # After A expired, a create takes it over, guarded by A's grant revision.
    takeover = plan_create(cache, [new("A", "Other")], T + 5, "r3")
    assert takeover.txn.compare == [wire.unchanged(LAYOUT.lock_key("A"), 2)]
    reply = model.txn(takeover.txn)
    assert reply.succeeded
    catch_up(cache, model, 2)
    held = cache.table.get_by_instance("A")
    assert held is not None and held.owner == "Other" and held.id == lock_id(reply.header.revision, 0)


def test_a_failed_txn_reports_the_revision_to_catch_up_to() -> None:
    model, cache = ModelEtcd(), LockCache(LAYOUT)
    model.txn(plan_create(cache, [new("A")], T, "r1").txn)
    model.txn(plan_create(cache, [new("B")], T, "r2").txn)
    reply = model.txn(plan_create(cache, [new("A")], T, "r3").txn)
    assert not reply.succeeded and conflict_revision(reply) == 3


def test_remove_spares_a_lock_taken_over_meanwhile() -> None:
    model, cache = ModelEtcd(), LockCache(LAYOUT)
    model.txn(plan_create(cache, [new("A", expires_at=T + 1)], T, "r1").txn)
    catch_up(cache, model, 0)
    stale = plan_remove(cache, "O", ["A"], T)
    assert not isinstance(stale, Done)
    # Meanwhile A expired and another owner took it.
    model.txn(plan_create(cache, [new("A", "Other")], T + 1, "r2").txn)
    assert not model.txn(stale.txn).succeeded
    assert decode_lock("A", model.kvs[LAYOUT.lock_key("A")].value, 3).owner == "Other"


def test_expiry_deletes_only_unchanged_locks_and_only_under_its_term() -> None:
    model, cache = ModelEtcd(), LockCache(LAYOUT)
    model.txn(plan_create(cache, [new("A", expires_at=T + 1), new("B", expires_at=T + 1)], T, "r1").txn)
    catch_up(cache, model, 0)
    expired = list(cache.table.locks())
    model.txn(plan_create(cache, [new("B", "Other")], T + 2, "r2").txn)  # B taken over meanwhile
    leader = model.txn(wire.TxnRequest(compare=[wire.absent(LAYOUT.expiry_leader)],
                                       success=[wire.put(LAYOUT.expiry_leader, b"me")]))
    term = leader.header.revision
    assert not model.txn(lock_txns.expire_txn(LAYOUT, expired, term - 1)).succeeded  # a deposed leader
    reply = model.txn(lock_txns.expire_txn(LAYOUT, expired, term))
    assert lock_txns.expired_count(reply) == 1
    assert LAYOUT.lock_key("A") not in model.kvs and LAYOUT.lock_key("B") in model.kvs


def test_read_back_finds_the_request_and_its_revision() -> None:
    model, cache = ModelEtcd(), LockCache(LAYOUT)
    reply = model.txn(plan_create(cache, [new("A"), new("B")], T, "mine").txn)
    read = model.txn(lock_txns.read_back_txn(LAYOUT, ["A", "B"]))
    assert lock_txns.applied_at(read, "mine") == reply.header.revision
    assert lock_txns.applied_at(read, "other") is None


def test_events_and_lists_give_the_same_cache() -> None:
    model, cache = ModelEtcd(), LockCache(LAYOUT)
    for step in range(30):
        catch_up(cache, model, 0 if step == 0 else model.revision - 1)
        planned = plan_create(cache, [new(f"I{step % 7}", f"O{step % 3}", T + step % 5)], T + step / 3, f"r{step}")
        model.txn(planned.txn)
        if step % 4 == 3:
            removal = plan_remove(cache, f"O{step % 3}", [f"I{i}" for i in range(7)], T + step / 3)
            if not isinstance(removal, Done):
                model.txn(removal.txn)
    fed = LockCache(LAYOUT)
    fed.apply(model.events_after(0))
    listed = LockCache.build(LAYOUT, model.list(LAYOUT.locks))
    assert same_locks(fed, listed)


def test_malformed_records_are_counted_and_never_held() -> None:
    model, cache = ModelEtcd(), LockCache(LAYOUT)
    model.txn(plan_create(cache, [new("A")], T, "r1").txn)
    catch_up(cache, model, 0)
    model.txn(wire.TxnRequest(success=[wire.put(LAYOUT.lock_key("A"), b"garbage"),
                                       wire.put(LAYOUT.lock_key("B"), b"{}")]))
    cache.apply(model.events_after(2))
    assert len(cache.table) == 0 and cache.malformed == 2 and "ls/locks/i/" in cache.last_malformed
    built = LockCache.build(LAYOUT, model.list(LAYOUT.locks))
    assert len(built.table) == 0 and built.malformed == 2


# ------------------------------------------------------------------------------------------ rule txns


def ids(prefix: str) -> Callable[[], str]:
    counter = iter(range(10**6))
    return lambda: f"{prefix}{next(counter):04d}-0000-4000-8000-000000000000"


def slots_consistent(model: ModelEtcd) -> None:
    """The invariant every rule txn keeps: a rule's slot names it; a slot names a rule with its triple."""
    rules = {LAYOUT.rule_id_of(kv.key): decode_rule(LAYOUT.rule_id_of(kv.key) or "", kv.value)
             for kv in model.list(LAYOUT.rule_records)}
    slots = {kv.key: kv.value.decode() for kv in model.list(LAYOUT.rule_slots)}
    assert len(slots) == len(rules)
    for rule_id, rule in rules.items():
        assert slots[rule_txns.slot_of(LAYOUT, rule)] == rule_id


def test_rule_create_and_a_swap_of_priorities() -> None:
    model, cache = ModelEtcd(), RuleCache(LAYOUT)
    created = plan_rule_create(cache, [NewRule("C", "P|s|1", "s", 1), NewRule("C", "Q|s|1", "s", 2)], "Sysop", T,
                               ids("a"), "r1")
    assert model.txn(created.txn).succeeded
    catch_up(cache, model, 0)
    a, b = created.rules
    swap = plan_modify(cache, {a.id: 2, b.id: 1}, "Op", T + 1, "r2")
    assert isinstance(swap, Modify)
    # Both slots are overwritten in place (no delete + create of one key in one txn), nothing new is claimed.
    assert [c.target for c in swap.txn.compare] == ["MOD", "MOD"]
    assert not any(op.request_delete_range for op in swap.txn.success)
    assert model.txn(swap.txn).succeeded
    catch_up(cache, model, 2)
    slots_consistent(model)
    assert [(r.id, r.priority) for r in cache.table.query(RuleFilter(), PageRequest(0, 10, "priority", False))[0]] \
        == [(b.id, 1), (a.id, 2)]


def test_moving_to_a_free_priority_claims_the_new_slot_and_frees_the_old() -> None:
    model, cache = ModelEtcd(), RuleCache(LAYOUT)
    created = plan_rule_create(cache, [NewRule("C", "P|s|1", "s", 1)], "S", T, ids("a"), "r1")
    model.txn(created.txn)
    catch_up(cache, model, 0)
    move = plan_modify(cache, {created.rules[0].id: 5}, "S", T, "r2")
    assert isinstance(move, Modify)
    assert wire.absent(LAYOUT.rule_slot("C", "s", 5)) in move.txn.compare
    assert wire.delete(LAYOUT.rule_slot("C", "s", 1)) in move.txn.success
    # Another instance takes priority 5 first: the move loses, and planned again it is the local answer.
    other = plan_rule_create(RuleCache(LAYOUT), [NewRule("C", "Q|s|1", "s", 5)], "S", T, ids("b"), "r3")
    assert model.txn(other.txn).succeeded
    assert not model.txn(move.txn).succeeded
    catch_up(cache, model, 2)
    with pytest.raises(Rejected, match="the following fields should be unique: C, service definition: s, priority: 5"):
        plan_modify(cache, {created.rules[0].id: 5}, "S", T, "r2")
    slots_consistent(model)


def test_a_modify_that_changes_nothing_needs_no_txn() -> None:
    model, cache = ModelEtcd(), RuleCache(LAYOUT)
    created = plan_rule_create(cache, [NewRule("C", "P|s|1", "s", 1)], "S", T, ids("a"), "r1")
    model.txn(created.txn)
    catch_up(cache, model, 0)
    assert isinstance(plan_modify(cache, {created.rules[0].id: 1}, "S", T, "r2"), Done)


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 4), st.lists(st.integers(1, 6), min_size=1, max_size=3)),
                min_size=1, max_size=25))
def test_two_instances_with_stale_caches_keep_every_rule_invariant(steps: list[tuple[int, int, list[int]]]) -> None:
    """Two instances plan on caches that learn of the other's writes only when they write themselves
    (after their own txn, won or lost, as the write loop waits for its cache): whatever they
    interleave, slots stay consistent, priorities unique per rule set, and the caches end equal to a
    fresh list."""
    model = ModelEtcd()
    caches = [RuleCache(LAYOUT), RuleCache(LAYOUT)]
    applied = [0, 0]
    sources = [ids("a"), ids("b")]
    for who, action, priorities in steps:
        cache = caches[who]
        for _attempt in range(5):
            rules = cache.table.query(RuleFilter(), ALL)[0]
            try:
                if action <= 1 or not rules:
                    planned: object = plan_rule_create(
                        cache, [NewRule("C", f"P{p}|s|1", "s", p) for p in dict.fromkeys(priorities)], "S", T,
                        sources[who], f"r{who}")
                else:
                    chosen = rules[: len(priorities)]
                    planned = plan_modify(cache, {r.id: p for r, p in zip(chosen, priorities, strict=False)}, "S", T, "m")
            except Rejected:
                break
            if isinstance(planned, Done):
                break
            assert isinstance(planned, RuleCreate | Modify)
            reply = model.txn(planned.txn)
            applied[who] = catch_up(cache, model, applied[who])
            if reply.succeeded:
                break
        slots_consistent(model)
    for who, cache in enumerate(caches):
        catch_up(cache, model, applied[who])
        listed = RuleCache.build(LAYOUT, model.list(LAYOUT.rules))
        assert cache.table.same_state(listed.table)
        priorities_seen = [rule.priority for rule in cache.table.rules()]
        assert len(priorities_seen) == len(set(priorities_seen))


@given(st.lists(st.tuples(st.integers(0, 1), st.booleans(), st.lists(st.integers(0, 4), min_size=1, max_size=3),
                          st.integers(0, 3)), min_size=1, max_size=40))
def test_two_instances_with_stale_caches_never_grant_a_held_instance(
    steps: list[tuple[int, bool, list[int], int]]
) -> None:
    """Creates and removes from two instances with stale caches, as time passes: a create commits
    only over free or expired instances, ids grow with every grant, and the caches end equal."""
    model = ModelEtcd()
    caches = [LockCache(LAYOUT), LockCache(LAYOUT)]
    applied = [0, 0]
    now = float(T)
    last_id = 0
    for number, (who, create, instances, pause) in enumerate(steps):
        now += pause * 0.5
        cache = caches[who]
        names = [f"I{i}" for i in dict.fromkeys(instances)]
        for _attempt in range(5):
            try:
                planned = (plan_create(cache, [new(n, f"O{who}", int(now) + 1 + number % 3) for n in names], now,
                                       f"r{number}")
                           if create else plan_remove(cache, f"O{who}", names, now))
            except Rejected:
                break
            if isinstance(planned, Done):
                break
            before = dict(model.kvs)
            reply = model.txn(planned.txn)
            applied[who] = catch_up(cache, model, applied[who])
            if reply.succeeded:
                if isinstance(planned, Create):
                    for lock in planned.result(reply.header.revision):
                        old = before.get(LAYOUT.lock_key(lock.service_instance_id))
                        if old is not None:
                            assert decode_lock(lock.service_instance_id, old.value, old.mod_revision).expires_at <= now
                        assert lock.id > last_id
                        last_id = lock.id
                break
    for who, cache in enumerate(caches):
        catch_up(cache, model, applied[who])
        assert same_locks(cache, LockCache.build(LAYOUT, model.list(LAYOUT.locks)))
