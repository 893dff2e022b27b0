"""RuleTable: the simple-store rules, exact Rejected messages, query planning and paging, the bulk
(start-up) build, and snapshot captures read out while the table changes."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import msgspec
import pytest

from actors.errors import Rejected
from actors.records import (
    RULE_SORT_FIELDS,
    NewRule,
    PageRequest,
    Rule,
    RuleFilter,
    RulesCreated,
    RulesRemoved,
    RulesUpdated,
    decode_event,
    encode_event,
)
from actors.store import RuleLoader, RuleTable

CONFLICT = (
    "Conflicting rules, the combination of the following fields should be unique: {}, "
    "service definition: {}, priority: {}"
)
EXISTING = "There is already an existing entity with consumer name: {}, service definition: {}, priority: {}"
SAME_SET = "Subscription ids should belong to the same rule set (same consumer and service definition)"


def id_source(prefix: str = "0") -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix * 8}-0000-4000-8000-{next(counter):012d}"


def new(consumer: str, definition: str, priority: int, provider: str = "Provider") -> NewRule:
    return NewRule(
        consumer=consumer,
        service_instance_id=f"{provider}|{definition}|1.0.0",
        service_definition=definition,
        priority=priority,
    )


def create(
    table: RuleTable, *rules: NewRule, by: str = "Sysop", now: int = 100, ids: Callable[[], str] | None = None
) -> list[Rule]:
    event = table.plan_create(rules, by, now, ids or id_source())
    table.apply(event)
    return list(event.rules)


def page(number: int = 0, size: int = 1000, field: str = "id", descending: bool = True) -> PageRequest:
    return PageRequest(number=number, size=size, sort_field=field, descending=descending)


def ids_of(rules: list[Rule]) -> list[str]:
    return [r.id for r in rules]


# ------------------------------------------------------------------------------------------ create


def test_create_fills_audit_fields_ids_and_keeps_request_order() -> None:
    table = RuleTable()
    event = table.plan_create([new("C", "svc", 2), new("C", "svc", 1)], "Admin", 1234, id_source("a"))
    assert len(table) == 0  # planning does not mutate
    table.apply(event)
    assert [r.priority for r in event.rules] == [2, 1]
    first = event.rules[0]
    assert first == Rule(
        id="aaaaaaaa-0000-4000-8000-000000000001",
        consumer="C",
        service_definition="svc",
        service_instance_id="Provider|svc|1.0.0",
        priority=2,
        created_by="Admin",
        updated_by="Admin",
        created_at=1234,
        updated_at=1234,
    )
    assert table.get(first.id) == first
    assert len(table) == 2
    assert table.get("ffffffff-0000-4000-8000-000000000001") is None


def test_create_rejects_duplicate_inside_request_at_second_occurrence() -> None:
    table = RuleTable()
    with pytest.raises(Rejected) as err:
        table.plan_create(
            [new("C", "svc", 1), new("C", "other", 1), new("C", "svc", 1, "P2")], "S", 1, id_source()
        )
    assert err.value.message == CONFLICT.format("C", "svc", 1)


def test_create_rejects_clash_with_stored_rule_and_creates_nothing() -> None:
    table = RuleTable()
    create(table, new("C", "svc", 1))
    with pytest.raises(Rejected) as err:
        table.plan_create([new("C", "svc", 2), new("C", "svc", 1, "Other")], "S", 1, id_source("b"))
    assert err.value.message == EXISTING.format("C", "svc", 1)
    assert len(table) == 1


def test_create_checks_candidate_by_candidate() -> None:
    table = RuleTable()
    create(table, new("C", "svc", 1))
    # Candidate 1 clashes with a stored rule before candidate 3 repeats candidate 2.
    with pytest.raises(Rejected) as err:
        table.plan_create(
            [new("C", "svc", 1), new("D", "svc", 1), new("D", "svc", 1)], "S", 1, id_source("b")
        )
    assert err.value.message == EXISTING.format("C", "svc", 1)
    # Candidate 2 repeats candidate 1 before candidate 3 clashes with a stored rule.
    with pytest.raises(Rejected) as err:
        table.plan_create(
            [new("D", "svc", 1), new("D", "svc", 1), new("C", "svc", 1)], "S", 1, id_source("b")
        )
    assert err.value.message == CONFLICT.format("D", "svc", 1)


def test_uniqueness_key_is_consumer_definition_priority() -> None:
    table = RuleTable()
    create(table, new("C", "svc", 1), new("D", "svc", 1), new("C", "other", 1), new("C", "svc", 2))
    assert len(table) == 4
    # Same key with a different service instance is still a clash.
    with pytest.raises(Rejected, match="existing entity"):
        table.plan_create([new("D", "svc", 1, "AnotherProvider")], "S", 1, id_source("b"))


def test_create_skips_ids_that_are_already_used() -> None:
    table = RuleTable()
    create(table, new("C", "svc", 1), ids=lambda: "00000000-0000-4000-8000-000000000001")
    ids = iter(
        [
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002",
            "00000000-0000-4000-8000-000000000002",
            "00000000-0000-4000-8000-000000000003",
        ]
    )
    event = table.plan_create([new("C", "svc", 2), new("C", "svc", 3)], "S", 1, lambda: next(ids))
    assert [r.id[-1] for r in event.rules] == ["2", "3"]
    with pytest.raises(RuntimeError):
        table.plan_create([new("C", "svc", 4)], "S", 1, lambda: "00000000-0000-4000-8000-000000000001")


# ------------------------------------------------------------------------------------------ modify


def rule_set(table: RuleTable, *priorities: int, consumer: str = "C", definition: str = "svc") -> list[Rule]:
    return create(
        table, *(new(consumer, definition, p, f"P{p}") for p in priorities), ids=id_source(consumer[0])
    )


def test_modify_unknown_id() -> None:
    table = RuleTable()
    a, _ = rule_set(table, 1, 2)
    other = create(table, new("X", "svc", 1), ids=id_source("e"))[0]
    unknown = "ffffffff-ffff-4fff-bfff-ffffffffffff"
    with pytest.raises(Rejected) as err:
        table.plan_modify({a.id: 3, unknown: 4}, "S", 5)
    assert err.value.message == f"Not existing UUID: {unknown}"
    # Unknown ids are reported before the rule-set check, whatever the key order.
    with pytest.raises(Rejected) as err:
        table.plan_modify({a.id: 3, other.id: 4, unknown: 5}, "S", 5)
    assert err.value.message == f"Not existing UUID: {unknown}"


@pytest.mark.parametrize(("consumer", "definition"), [("D", "svc"), ("C", "other")])
def test_modify_rejects_rules_of_different_sets(consumer: str, definition: str) -> None:
    table = RuleTable()
    a, _ = rule_set(table, 1, 2)
    foreign = create(table, new(consumer, definition, 7), ids=id_source("e"))[0]
    with pytest.raises(Rejected) as err:
        table.plan_modify({a.id: 3, foreign.id: 4}, "S", 5)
    assert err.value.message == SAME_SET


def test_modify_swap_succeeds_and_sets_updated_fields() -> None:
    table = RuleTable()
    a, b = rule_set(table, 1, 2)
    event, result = table.plan_modify({a.id: 2, b.id: 1}, "Operator", 999)
    assert table.get(a.id) == a  # planning does not mutate
    assert event is not None
    assert {r.id: (r.priority, r.updated_by, r.updated_at) for r in event.rules} == {
        a.id: (2, "Operator", 999),
        b.id: (1, "Operator", 999),
    }
    assert [(r.id, r.priority) for r in result] == [(b.id, 1), (a.id, 2)]
    table.apply(event)
    new_a = table.get(a.id)
    assert new_a is not None
    assert (new_a.priority, new_a.created_by, new_a.created_at) == (2, "Sysop", 100)
    # The uniqueness index followed the swap: the freed slot is still taken, a new one is free.
    with pytest.raises(Rejected, match=r"priority: 1$"):
        table.plan_create([new("C", "svc", 1)], "S", 1, id_source("f"))
    create(table, new("C", "svc", 3), ids=id_source("f"))
    assert table.same_state(RuleTable(table.rules()))


def test_modify_three_way_rotation() -> None:
    table = RuleTable()
    a, b, c = rule_set(table, 1, 2, 3)
    event, result = table.plan_modify({a.id: 2, b.id: 3, c.id: 1}, "S", 5)
    assert event is not None and len(event.rules) == 3
    assert ids_of(result) == [c.id, a.id, b.id]
    table.apply(event)
    found, count = table.query(RuleFilter(consumers=("C",)), page(field="priority", descending=False))
    assert (ids_of(found), count) == ([c.id, a.id, b.id], 3)
    assert table.same_state(RuleTable(table.rules()))


def test_modify_colliding_with_unnamed_rule_of_the_set_is_rejected() -> None:
    table = RuleTable()
    a, _, _ = rule_set(table, 1, 2, 5)
    rule_set(table, 3, consumer="Dave")  # other sets do not count
    with pytest.raises(Rejected) as err:
        table.plan_modify({a.id: 5}, "S", 5)
    assert err.value.message == CONFLICT.format("C", "svc", 5)
    assert table.plan_modify({a.id: 3}, "S", 5)[0] is not None


def test_modify_names_the_smallest_repeated_priority() -> None:
    table = RuleTable()
    a, _, _, d = rule_set(table, 1, 2, 3, 4)
    with pytest.raises(Rejected) as err:
        table.plan_modify({d.id: 3, a.id: 2}, "S", 5)
    assert err.value.message == CONFLICT.format("C", "svc", 2)


def test_modify_leaves_unchanged_rules_alone() -> None:
    table = RuleTable()
    _, b, c = rule_set(table, 1, 2, 3)
    event, result = table.plan_modify({c.id: 3, b.id: 2}, "S", 5)
    assert event is None
    assert result == [b, c]
    event, result = table.plan_modify({c.id: 9, b.id: 2}, "Op", 5)
    assert event == RulesUpdated((msgspec.structs.replace(c, priority=9, updated_by="Op", updated_at=5),))
    assert result[0] == b  # untouched: same updated_by/updated_at
    assert (result[1].id, result[1].priority, result[1].updated_by) == (c.id, 9, "Op")


def test_modify_with_an_empty_map_changes_nothing() -> None:
    table = RuleTable()
    rule_set(table, 1)
    assert table.plan_modify({}, "S", 5) == (None, [])


# ------------------------------------------------------------------------------------------ remove


def test_remove_ignores_unknown_and_duplicate_ids() -> None:
    table = RuleTable()
    a, _ = rule_set(table, 1, 2)
    unknown = "ffffffff-ffff-4fff-bfff-ffffffffffff"
    assert table.plan_remove([unknown]) is None
    assert table.plan_remove([]) is None
    event = table.plan_remove([unknown, a.id, a.id])
    assert event == RulesRemoved((a.id,))
    assert len(table) == 2
    table.apply(event)
    assert table.get(a.id) is None and len(table) == 1
    table.apply(RulesRemoved((a.id, unknown)))  # replaying unknown ids is harmless
    assert len(table) == 1
    # The removed rule's slot is free again and it no longer matches any query.
    create(table, new("C", "svc", 1), ids=id_source("9"))
    assert table.query(RuleFilter(ids=(a.id,)), page()) == ([], 0)
    assert table.same_state(RuleTable(table.rules()))


# ------------------------------------------------------------------------------------------ query


def sample_table() -> tuple[RuleTable, list[Rule]]:
    table = RuleTable()
    rules: list[Rule] = []
    ids = iter(f"{n:08x}-0000-4000-8000-000000000000" for n in (7, 3, 9, 1, 5, 8, 2, 6, 4, 10))
    for n, (consumer, definition, priority, by, now) in enumerate(
        [
            ("Alice", "temp", 1, "Sysop", 10),
            ("Alice", "temp", 2, "Sysop", 20),
            ("Alice", "humid", 1, "Admin", 10),
            ("Bob", "temp", 1, "Sysop", 30),
            ("Bob", "temp", 3, "Admin", 20),
            ("Bob", "humid", 2, "Sysop", 10),
            ("Carol", "temp", 2, "Sysop", 30),
            ("Carol", "light", 5, "Admin", 10),
            ("Carol", "light", 4, "Sysop", 20),
            ("Dave", "temp", 1, "Sysop", 30),
        ]
    ):
        rules += create(
            table, new(consumer, definition, priority, f"P{n % 3}"), by=by, now=now, ids=lambda: next(ids)
        )
    return table, rules


def brute(rules: list[Rule], keep: Callable[[Rule], bool], field: str, descending: bool) -> list[Rule]:
    attr = {
        "id": "id",
        "consumer": "consumer",
        "serviceDefinition": "service_definition",
        "priority": "priority",
        "serviceInstanceId": "service_instance_id",
        "createdAt": "created_at",
    }[field]
    return sorted((r for r in rules if keep(r)), key=lambda r: (getattr(r, attr), r.id), reverse=descending)


FILTER_CASES: list[tuple[RuleFilter, Callable[[Rule], bool]]] = [
    (RuleFilter(), lambda r: True),
    (RuleFilter(consumers=("Alice",)), lambda r: r.consumer == "Alice"),
    (RuleFilter(consumers=("Alice", "Carol", "Nobody")), lambda r: r.consumer in ("Alice", "Carol")),
    (RuleFilter(service_definitions=("temp",)), lambda r: r.service_definition == "temp"),
    (
        RuleFilter(consumers=("Alice", "Bob"), service_definitions=("temp", "light")),
        lambda r: r.consumer in ("Alice", "Bob") and r.service_definition in ("temp", "light"),
    ),
    (
        RuleFilter(service_instance_ids=("P0|temp|1.0.0", "P2|light|1.0.0")),
        lambda r: r.service_instance_id in ("P0|temp|1.0.0", "P2|light|1.0.0"),
    ),
    (RuleFilter(created_by="Sysop"), lambda r: r.created_by == "Sysop"),
    (RuleFilter(created_by="sysop"), lambda r: False),
    (RuleFilter(created_by="Sysop", min_priority=2), lambda r: r.created_by == "Sysop" and r.priority >= 2),
    (
        RuleFilter(service_definitions=("temp",), min_priority=2, max_priority=3),
        lambda r: r.service_definition == "temp" and 2 <= r.priority <= 3,
    ),
    (RuleFilter(created_by="Admin", max_priority=4), lambda r: r.created_by == "Admin" and r.priority <= 4),
    (RuleFilter(min_priority=2, max_priority=2), lambda r: r.priority == 2),
    (RuleFilter(min_priority=3, max_priority=2), lambda r: False),
    (
        RuleFilter(
            ids=(
                "00000001-0000-4000-8000-000000000000",
                "00000009-0000-4000-8000-000000000000",
                "00000001-0000-4000-8000-000000000000",
                "0000ffff-0000-4000-8000-000000000000",
            )
        ),
        lambda r: r.id in ("00000001-0000-4000-8000-000000000000", "00000009-0000-4000-8000-000000000000"),
    ),
    (
        RuleFilter(
            ids=("00000001-0000-4000-8000-000000000000", "00000009-0000-4000-8000-000000000000"),
            consumers=("Alice",),
        ),
        lambda r: r.id == "00000009-0000-4000-8000-000000000000",
    ),
    (
        RuleFilter(
            consumers=("Bob",), created_by="Sysop", service_instance_ids=("P1|temp|1.0.0", "P2|humid|1.0.0")
        ),
        lambda r: (
            r.consumer == "Bob"
            and r.created_by == "Sysop"
            and r.service_instance_id in ("P1|temp|1.0.0", "P2|humid|1.0.0")
        ),
    ),
]


@pytest.mark.parametrize(("f", "keep"), FILTER_CASES)
def test_query_filters_combine_with_and_across_or_within(f: RuleFilter, keep: Callable[[Rule], bool]) -> None:
    table, rules = sample_table()
    expected = brute(rules, keep, "id", True)
    assert table.query(f, page()) == (expected, len(expected))


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("field", RULE_SORT_FIELDS)
def test_query_sorts_every_field_both_ways_with_ties_by_id(field: str, descending: bool) -> None:
    table, rules = sample_table()
    for f, keep in FILTER_CASES:
        expected = brute(rules, keep, field, descending)
        assert table.query(f, page(field=field, descending=descending)) == (expected, len(expected))
        for size in (1, 3):
            pages = [
                table.query(f, page(n, size, field, descending)) for n in range(len(expected) // size + 2)
            ]
            assert [r for found, _ in pages for r in found] == expected
            assert all(count == len(expected) for _, count in pages)


def test_query_tie_order_is_explicit() -> None:
    table, _ = sample_table()
    found, _ = table.query(
        RuleFilter(consumers=("Alice", "Bob", "Carol", "Dave")), page(field="createdAt", descending=False)
    )
    at_10 = [r.id[:8] for r in found if r.created_at == 10]
    assert at_10 == ["00000006", "00000007", "00000008", "00000009"]
    found, _ = table.query(RuleFilter(created_by="Sysop"), page(field="priority", descending=True))
    assert [(r.priority, r.id[:8]) for r in found] == [
        (4, "00000004"),
        (2, "00000008"),
        (2, "00000003"),
        (2, "00000002"),
        (1, "0000000a"),
        (1, "00000007"),
        (1, "00000001"),
    ]


def test_pagination_edges() -> None:
    table, rules = sample_table()
    every = RuleFilter(created_by="Sysop")
    total = sum(r.created_by == "Sysop" for r in rules)
    assert total == 7
    full, _ = table.query(every, page())
    assert table.query(every, page(0, 7)) == (full, 7)
    assert table.query(every, page(1, 7)) == ([], 7)  # exactly past the end
    assert table.query(every, page(2, 3)) == (full[6:], 7)  # last, partial page
    assert table.query(every, page(1, 5)) == (full[5:], 7)
    assert table.query(every, page(10**9, 1000)) == ([], 7)  # far past the end
    assert table.query(RuleFilter(consumers=("Nobody",)), page()) == ([], 0)
    assert table.query(RuleFilter(), page(3, 3)) == (table.query(RuleFilter(), page())[0][9:], 10)
    assert table.query(RuleFilter(), page(4, 3)) == ([], 10)
    assert RuleTable().query(RuleFilter(), page()) == ([], 0)


def test_broad_and_narrow_plans_agree_on_a_larger_table() -> None:
    """Walk the sorted index (broad filter, small page) and sort candidates (narrow filter) alike."""
    table = RuleTable()
    consumers = [f"Consumer{c}" for c in range(12)]
    candidates = [
        new(c, f"svc{d}", p, f"P{(p * 7 + d) % 5}") for c in consumers for d in range(4) for p in range(1, 8)
    ]
    for n, chunk in enumerate(candidates[i : i + 50] for i in range(0, len(candidates), 50)):
        table.apply(table.plan_create(chunk, "Sysop" if n % 3 else "Admin", n % 4, id_source(str(n % 10))))
    rules = list(table.rules())
    assert len(rules) == 12 * 4 * 7
    cases: list[tuple[RuleFilter, Callable[[Rule], bool]]] = [
        (RuleFilter(created_by="Sysop"), lambda r: r.created_by == "Sysop"),
        (
            RuleFilter(created_by="Sysop", max_priority=6),
            lambda r: r.created_by == "Sysop" and r.priority <= 6,
        ),
        (RuleFilter(service_definitions=("svc0", "svc1", "svc2")), lambda r: r.service_definition != "svc3"),
        (
            RuleFilter(consumers=("Consumer3",), min_priority=2),
            lambda r: r.consumer == "Consumer3" and r.priority > 1,
        ),
        (RuleFilter(min_priority=2), lambda r: r.priority >= 2),
    ]
    for f, keep in cases:
        for field in RULE_SORT_FIELDS:
            for descending in (False, True):
                expected = brute(rules, keep, field, descending)
                for number, size in ((0, 5), (3, 7), (0, 1000), (40, 10)):
                    found, count = table.query(f, page(number, size, field, descending))
                    assert (found, count) == (expected[number * size : (number + 1) * size], len(expected))


# ------------------------------------------------------------------------------------------ replay


def test_replaying_logged_events_rebuilds_the_same_state() -> None:
    table = RuleTable()
    log: list[bytes] = []

    def do(event: RulesCreated | RulesUpdated | RulesRemoved | None) -> None:
        if event is not None:
            log.append(encode_event(event))
            table.apply(event)

    do(
        table.plan_create(
            [new("C", "svc", p) for p in (1, 2, 3)] + [new("D", "svc", 1)], "S", 1, id_source("a")
        )
    )
    a, b, c = (
        r.id for r in table.query(RuleFilter(consumers=("C",)), page(field="priority", descending=False))[0]
    )
    do(table.plan_modify({a: 3, b: 1, c: 2}, "Op", 2)[0])
    do(table.plan_remove([b]))
    do(table.plan_create([new("C", "svc", 1)], "S", 3, id_source("b")))
    replayed = RuleTable()
    for frame in log:
        event = decode_event(frame)
        assert isinstance(event, RulesCreated | RulesUpdated | RulesRemoved)
        replayed.apply(event)
    assert replayed.same_state(table)
    assert list(replayed.rules()) == list(table.rules())
    assert RuleTable(table.rules()).same_state(table)
    assert not RuleTable().same_state(table)


def test_rules_iterates_in_id_order() -> None:
    table, rules = sample_table()
    assert list(table.rules()) == sorted(rules, key=lambda r: r.id)


# ------------------------------------------------------------------------------------------ bulk build


def _rule(n: int, consumer: str, definition: str, priority: int, by: str = "Sysop") -> Rule:
    rule_id = f"{(n * 2654435761) % 2**32:08x}-0000-4000-8000-{n:012d}"  # id order unrelated to n
    return Rule(rule_id, consumer, definition, f"P{n % 7}|{definition}|1.0.0", priority, by, by, n % 50, n % 50)


def _events(count: int) -> list[RulesCreated | RulesUpdated | RulesRemoved]:
    """Creates in batches, priority changes, removals: what a day of the store's log looks like."""
    events: list[RulesCreated | RulesUpdated | RulesRemoved] = []
    rules = [_rule(n, f"C{n % 37}", f"svc{n % 11}", n // 407 + 1, "Sysop" if n % 4 else "Op") for n in range(count)]
    for start in range(0, count, 100):
        events.append(RulesCreated(tuple(rules[start : start + 100])))
    for n in range(0, count, 9):
        events.append(RulesUpdated((msgspec.structs.replace(rules[n], priority=1000 + n, updated_at=99),)))
    events.append(RulesRemoved(tuple(r.id for r in rules[::13])))
    return events


def test_bulk_build_equals_applying_events_one_by_one() -> None:
    one_by_one = RuleTable()
    events = _events(3000)
    for event in events:
        one_by_one.apply(event)
    bulk = RuleTable(reversed(list(one_by_one.rules())))
    assert bulk.same_state(one_by_one)
    assert len(bulk) > 2000
    for index in bulk._sorted.values():
        index._check()  # SortedLists assembled without a sort are internally sound
    middle = RuleTable()
    for event in events[: len(events) // 2]:
        middle.apply(event)
    loader = RuleLoader(middle.rules())  # start-up: a snapshot, then the rest of the log
    for event in events[len(events) // 2 :]:
        loader.apply(event)
    assert len(loader) == len(one_by_one)
    assert loader.table().same_state(one_by_one)
    every = RuleFilter(consumers=("C3", "C5"), service_definitions=("svc2",))
    for field in RULE_SORT_FIELDS:
        assert bulk.query(every, page(1, 3, field)) == one_by_one.query(every, page(1, 3, field))


def test_loader_and_table_agree_on_events_never_planned() -> None:
    """Replay must not diverge even on odd events: updates of absent rules, creates over present ids."""
    base = [_rule(n, "C", f"s{n}", 1) for n in range(5)]
    odd: list[RulesCreated | RulesUpdated | RulesRemoved] = [
        RulesUpdated((_rule(77, "C", "s77", 1),)),
        RulesCreated((msgspec.structs.replace(base[1], priority=5),)),
        RulesRemoved((base[2].id, "not-there")),
        RulesUpdated((msgspec.structs.replace(base[3], priority=7), msgspec.structs.replace(base[3], priority=8))),
    ]
    table, loader = RuleTable(base), RuleLoader(base)
    for event in odd:
        table.apply(event)
        loader.apply(event)
    assert loader.table().same_state(table)


def test_filters_read_exact_runs_of_the_sorted_indexes() -> None:
    """A consumer that is a prefix of another, or differs by a NUL, never picks up the other's rules."""
    names = ["Al", "Al\x00", "Al\x00x", "Alice", "Ak", "Am", ""]
    table = RuleTable(_rule(n, name, name or "x", 1) for n, name in enumerate(names))
    for name in names:
        found, count = table.query(RuleFilter(consumers=(name,)), page())
        assert [r.consumer for r in found] == [name] and count == 1
        found, count = table.query(RuleFilter(service_definitions=(name or "x",)), page())
        assert [r.service_definition for r in found] == [name or "x"] and count == 1
    assert table.query(RuleFilter(consumers=("A",)), page()) == ([], 0)


def _drain(walk: object, limit: int) -> list[Rule]:
    got: list[Rule] = []
    while (piece := walk.next(limit)) is not None:  # type: ignore[attr-defined]
        got += piece
    return got


@pytest.mark.parametrize("change", ["create", "update", "remove", "recreate"])
def test_capture_reads_the_state_of_its_start_whatever_changes_at_any_point(change: str) -> None:
    """Every change to every rule (and a new rule at every id position), after every number of pieces."""
    start = [_rule(n, f"C{n}", "svc", 1) for n in range(6)]
    positions = sorted(r.id for r in start)
    for read in range(7):
        for victim in range(6):
            table = RuleTable(start)
            walk = table.begin_capture()
            got: list[Rule] = []
            for _ in range(read):
                got += walk.next(1) or []
            if change == "create":  # an id just below, equal-prefixed or above any position
                table.apply(RulesCreated((msgspec.structs.replace(start[0], id=positions[victim][:-1] + "0"),)))
            elif change == "update":
                table.apply(RulesUpdated((msgspec.structs.replace(start[victim], priority=9),)))
            elif change == "remove":
                table.apply(RulesRemoved((start[victim].id,)))
            else:
                table.apply(RulesRemoved((start[victim].id,)))
                table.apply(RulesCreated((msgspec.structs.replace(start[victim], consumer="New"),)))
            got += _drain(walk, 1)
            table.end_capture(walk)
            assert sorted(got, key=lambda r: r.id) == sorted(start, key=lambda r: r.id), (read, victim)
