"""RuleTable against a brute-force model (a list of dicts): same answers, same Rejected messages, and
replaying the emitted events rebuilds the same state - one by one, and as start-up does it (a
snapshot taken after any step into a RuleLoader, the later events, one index build). Snapshot
captures run interleaved with all of it and must read out exactly the state they began with."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors.capture_walk import CaptureWalk
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
from tests.property.capture_pieces import CapturePieces

CONSUMERS = ["Alice", "Bob", "Carol"]
DEFINITIONS = ["temp", "humid"]
PROVIDERS = ["P1", "P2"]
REQUESTERS = ["Sysop", "Admin"]
UNKNOWN = "ffffffff-ffff-4fff-bfff-ffffffffffff"
SORT_ATTR = {
    "id": "id",
    "consumer": "consumer",
    "serviceDefinition": "service_definition",
    "priority": "priority",
    "serviceInstanceId": "service_instance_id",
    "createdAt": "created_at",
}

Row = dict[str, Any]


def make_id(n: int) -> str:
    """Deterministic ids whose lexicographic order is unrelated to creation order."""
    return str(uuid.UUID(bytes=hashlib.md5(str(n).encode()).digest(), version=4))


def conflict(consumer: str, definition: str, priority: int) -> str:
    return (
        "Conflicting rules, the combination of the following fields should be unique: "
        f"{consumer}, service definition: {definition}, priority: {priority}"
    )


class Model:
    """The store's rules as the reference describes them, computed the slow, obvious way."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def find(self, rule_id: str) -> Row | None:
        return next((r for r in self.rows if r["id"] == rule_id), None)

    def create(self, cands: list[NewRule], requester: str, now: int, ids: list[str]) -> list[Row]:
        for i, c in enumerate(cands):
            key = (c.consumer, c.service_definition, c.priority)
            if any((e.consumer, e.service_definition, e.priority) == key for e in cands[:i]):
                raise Rejected(conflict(*key))
            if any((r["consumer"], r["service_definition"], r["priority"]) == key for r in self.rows):
                raise Rejected(
                    f"There is already an existing entity with consumer name: {c.consumer}, "
                    f"service definition: {c.service_definition}, priority: {c.priority}"
                )
        created = [
            {
                "id": rule_id,
                "consumer": c.consumer,
                "service_definition": c.service_definition,
                "service_instance_id": c.service_instance_id,
                "priority": c.priority,
                "created_by": requester,
                "updated_by": requester,
                "created_at": now,
                "updated_at": now,
            }
            for c, rule_id in zip(cands, ids, strict=True)
        ]
        self.rows += created
        return [dict(r) for r in created]

    def modify(self, priorities: dict[str, int], requester: str, now: int) -> tuple[list[str], list[Row]]:
        named = []
        for rule_id in priorities:
            row = self.find(rule_id)
            if row is None:
                raise Rejected(f"Not existing UUID: {rule_id}")
            named.append(row)
        first = named[0]
        if any(
            (r["consumer"], r["service_definition"]) != (first["consumer"], first["service_definition"]) for r in named
        ):
            raise Rejected("Subscription ids should belong to the same rule set (same consumer and service definition)")
        same_set = [
            r
            for r in self.rows
            if (r["consumer"], r["service_definition"]) == (first["consumer"], first["service_definition"])
        ]
        final: list[int] = [priorities[r["id"]] if r["id"] in priorities else r["priority"] for r in same_set]
        repeated = [p for p in final if final.count(p) > 1]
        if repeated:
            raise Rejected(conflict(first["consumer"], first["service_definition"], min(repeated)))
        changed = []
        for row in named:
            if row["priority"] != priorities[row["id"]]:
                row.update(priority=priorities[row["id"]], updated_by=requester, updated_at=now)
                changed.append(row["id"])
        return changed, sorted((dict(r) for r in named), key=lambda r: r["priority"])

    def remove(self, ids: list[str]) -> list[str]:
        gone = [r["id"] for r in self.rows if r["id"] in ids]
        self.rows = [r for r in self.rows if r["id"] not in ids]
        return gone

    def query(self, f: RuleFilter, page: PageRequest) -> tuple[list[Row], int]:
        def keep(r: Row) -> bool:
            return (
                (not f.ids or r["id"] in f.ids)
                and (not f.consumers or r["consumer"] in f.consumers)
                and (not f.service_definitions or r["service_definition"] in f.service_definitions)
                and (not f.service_instance_ids or r["service_instance_id"] in f.service_instance_ids)
                and (not f.created_by or r["created_by"] == f.created_by)
                and (f.min_priority is None or r["priority"] >= f.min_priority)
                and (f.max_priority is None or r["priority"] <= f.max_priority)
            )

        attr = SORT_ATTR[page.sort_field]
        hits = sorted(filter(keep, self.rows), key=lambda r: (r[attr], r["id"]), reverse=page.descending)
        start = page.number * page.size
        return [dict(r) for r in hits[start : start + page.size]], len(hits)


def rows(rules: Any) -> list[Row]:
    return [msgspec.structs.asdict(r) for r in rules]


def rejection(call: Any) -> tuple[str | None, Any]:
    try:
        return None, call()
    except Rejected as err:
        return err.message, None


new_rules = st.builds(
    lambda c, d, p, prov: NewRule(
        consumer=c, service_instance_id=f"{prov}|{d}|1.0.0", service_definition=d, priority=p
    ),
    st.sampled_from(CONSUMERS),
    st.sampled_from(DEFINITIONS),
    st.integers(1, 6),
    st.sampled_from(PROVIDERS),
)
candidates = st.lists(new_rules, min_size=1, max_size=5)
# A clean first batch, so that most runs query, page and permute a populated table.
seed_batch = st.lists(
    new_rules, min_size=6, max_size=24, unique_by=lambda c: (c.consumer, c.service_definition, c.priority)
)


INSTANCES = [f"{p}|{d}|1.0.0" for p in PROVIDERS for d in DEFINITIONS]


def maybe(values: list[str]) -> st.SearchStrategy[tuple[str, ...]]:
    """Mostly absent: broad filters are what make the planner walk a sorted index instead of sorting."""
    return st.one_of(st.just(()), st.just(()), st.lists(st.sampled_from(values), min_size=1, max_size=2).map(tuple))


filters = st.builds(
    RuleFilter,
    consumers=maybe([*CONSUMERS, "Zed"]),
    service_definitions=maybe(DEFINITIONS),
    service_instance_ids=maybe(INSTANCES),
    created_by=st.sampled_from([None, "", *REQUESTERS, "Nobody"]),
    min_priority=st.none() | st.none() | st.integers(1, 5),
    max_priority=st.none() | st.none() | st.integers(1, 5),
)


class RuleTableMachine(CapturePieces, RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = RuleTable()
        self.model = Model()
        self.replayed = RuleTable()
        self.commits = 0
        self.issued = 0
        self.events: list[RulesCreated | RulesUpdated | RulesRemoved] = []
        self.snapshots: list[tuple[list[Rule], int]] = [([], 0)]  # rules, events before
        self.capture: tuple[CaptureWalk[str, Rule], dict[str, Rule], list[Rule]] | None = None

    def new_id(self) -> str:
        self.issued += 1
        return make_id(self.issued)

    def commit(self, event: RulesCreated | RulesUpdated | RulesRemoved) -> None:
        self.table.apply(event)
        self.commits += 1
        # Replay as start-up does: the logged bytes, decoded, into a table that saw nothing else.
        logged = decode_event(encode_event(event))
        assert isinstance(logged, RulesCreated | RulesUpdated | RulesRemoved)
        self.replayed.apply(logged)
        self.events.append(logged)
        self.snapshots.append((list(self.table.rules()), len(self.events)))

    def rule_sets(self) -> dict[tuple[str, str], list[Row]]:
        sets: dict[tuple[str, str], list[Row]] = {}
        for r in self.model.rows:
            sets.setdefault((r["consumer"], r["service_definition"]), []).append(r)
        return sets

    def known_ids(self) -> list[str]:
        return [r["id"] for r in self.model.rows] + [UNKNOWN]

    @initialize(cands=seed_batch, requester=st.sampled_from(REQUESTERS), now=st.integers(0, 3))
    def seed(self, cands: list[NewRule], requester: str, now: int) -> None:
        if cands:
            self.create(cands, requester, now)

    @rule(cands=candidates, requester=st.sampled_from(REQUESTERS), now=st.integers(0, 3))
    def create(self, cands: list[NewRule], requester: str, now: int) -> None:
        before = self.issued
        got_error, event = rejection(lambda: self.table.plan_create(cands, requester, now, self.new_id))
        ids = [make_id(before + i + 1) for i in range(len(cands))]
        want_error, want = rejection(lambda: self.model.create(cands, requester, now, ids))
        assert got_error == want_error
        if event is not None:
            assert rows(event.rules) == want
            self.commit(event)

    def _modify(self, priorities: dict[str, int], requester: str, now: int) -> None:
        got_error, got = rejection(lambda: self.table.plan_modify(priorities, requester, now))
        want_error, want = rejection(lambda: self.model.modify(priorities, requester, now))
        assert got_error == want_error
        if got is not None:
            event, named = got
            changed, want_named = want
            assert rows(named) == want_named
            if event is None:
                assert changed == []
            else:
                assert [r.id for r in event.rules] == changed
                self.commit(event)

    @rule(data=st.data(), requester=st.sampled_from(REQUESTERS), now=st.integers(0, 3))
    def modify(self, data: st.DataObject, requester: str, now: int) -> None:
        # Mostly ids of one rule set (the interesting case), sometimes any known or unknown id.
        pools = [[r["id"] for r in rs] for rs in self.rule_sets().values()] + [self.known_ids()]
        pool = data.draw(st.sampled_from(pools))
        ids = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique=True))
        priorities = data.draw(st.lists(st.integers(1, 7), min_size=len(ids), max_size=len(ids)))
        self._modify(dict(zip(ids, priorities, strict=True)), requester, now)

    @rule(data=st.data(), requester=st.sampled_from(REQUESTERS), now=st.integers(0, 3))
    def permute_a_rule_set(self, data: st.DataObject, requester: str, now: int) -> None:
        """Swaps and rotations: a permutation of priorities inside one rule set always succeeds."""
        choices = [rs for rs in self.rule_sets().values() if len(rs) >= 2]
        if not choices:
            return
        members = data.draw(st.sampled_from(choices))
        chosen = data.draw(
            st.lists(st.sampled_from(members), min_size=2, max_size=len(members), unique_by=lambda r: r["id"])
        )
        shuffled = data.draw(st.permutations([r["priority"] for r in chosen]))
        before = self.commits
        moved = [r["priority"] for r in chosen] != shuffled
        self._modify({r["id"]: p for r, p in zip(chosen, shuffled, strict=True)}, requester, now)
        assert self.commits == before + (1 if moved else 0)

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(st.sampled_from(self.known_ids()), max_size=2))
        event = self.table.plan_remove(ids)
        gone = self.model.remove(ids)
        if event is None:
            assert gone == []
        else:
            assert sorted(event.ids) == sorted(gone)
            self.commit(event)

    @rule(data=st.data(), f=filters, number=st.integers(0, 5), size=st.sampled_from([1, 2, 3, 5, 1000]))
    def query(self, data: st.DataObject, f: RuleFilter, number: int, size: int) -> None:
        ids = data.draw(st.just([]) | st.lists(st.sampled_from(self.known_ids()), max_size=3))
        f = msgspec.structs.replace(f, ids=tuple(ids))
        for field in RULE_SORT_FIELDS:
            for descending in (False, True):
                page = PageRequest(number=number, size=size, sort_field=field, descending=descending)
                found, count = self.table.query(f, page)
                assert (rows(found), count) == self.model.query(f, page)

    def _records(self) -> Any:
        return self.table.rules()

    def teardown(self) -> None:
        """Start-up from a snapshot taken after any step gives the same state; a capture still
        running reads out its state."""
        for rules, done in self.snapshots:
            loader = RuleLoader(rules)
            for event in self.events[done:]:
                loader.apply(event)
            assert loader.table().same_state(self.table)
        while self.capture is not None and self._capture_piece(3):
            pass

    @invariant()
    def same_rules_and_replay_rebuilds_them(self) -> None:
        assert rows(self.table.rules()) == sorted(self.model.rows, key=lambda r: r["id"])
        assert len(self.table) == len(self.model.rows)
        assert self.replayed.same_state(self.table)
        assert RuleTable(self.table.rules()).same_state(self.table)


TestRuleTableModel = RuleTableMachine.TestCase
# Drawing steps is most of the cost; 30 steps still grow rule sets big enough for swaps and paging.
TestRuleTableModel.settings = settings(stateful_step_count=30)
