"""Simple-store rule state: the rules, their indexes, and the checks that turn commands into events.

Pure on purpose: no I/O, no clock, no id source of its own (time and ids are passed in). The store
actor asks a `plan_*` method whether a command is allowed and gets back the event (or `Rejected`),
logs the event, then `apply`s it; start-up replays the same events through `apply`, so live and
recovered state cannot drift apart. Plans never mutate, so a rejected request leaves no trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, NamedTuple

from actors.capture_walk import CaptureWalk
from actors.errors import Rejected
from actors.records import (
    NewRule,
    PageRequest,
    Rule,
    RuleFilter,
    RulesCreated,
    RulesRemoved,
    RulesUpdated,
    StoreEvent,
)
from actors.rule_indexes import SORT_KEYS, RuleIndexes

# Above this many (consumer, service definition) combinations the rule-set index is not worth probing.
_MAX_PAIR_PROBES = 1024


def conflict_message(consumer: str, service_definition: str, priority: int) -> str:
    return (
        "Conflicting rules, the combination of the following fields should be unique: "
        f"{consumer}, service definition: {service_definition}, priority: {priority}"
    )


def existing_message(consumer: str, service_definition: str, priority: int) -> str:
    return (
        f"There is already an existing entity with consumer name: {consumer}, "
        f"service definition: {service_definition}, priority: {priority}"
    )


SAME_RULE_SET_MESSAGE = (
    "Subscription ids should belong to the same rule set (same consumer and service definition)"
)


class _Source(NamedTuple):
    """Where a query takes its candidates from: `size` ids, covering the filters named in `covers`."""

    size: int
    covers: frozenset[str]
    ids: Callable[[], Iterable[str]]


def _given_filters(f: RuleFilter) -> frozenset[str]:
    given = {
        name
        for name, value in (
            ("ids", f.ids),
            ("consumers", f.consumers),
            ("service_definitions", f.service_definitions),
            ("service_instance_ids", f.service_instance_ids),
            ("created_by", f.created_by),
        )
        if value
    }
    if f.min_priority is not None or f.max_priority is not None:
        given.add("priority")
    return frozenset(given)


def _matcher(f: RuleFilter, skip: frozenset[str]) -> Callable[[Rule], bool] | None:
    """One predicate for the filters not in `skip` (None when there is nothing left to check)."""
    checks: list[Callable[[Rule], bool]] = []
    if f.ids and "ids" not in skip:
        ids = frozenset(f.ids)
        checks.append(lambda r: r.id in ids)
    if f.consumers and "consumers" not in skip:
        consumers = frozenset(f.consumers)
        checks.append(lambda r: r.consumer in consumers)
    if f.service_definitions and "service_definitions" not in skip:
        definitions = frozenset(f.service_definitions)
        checks.append(lambda r: r.service_definition in definitions)
    if f.service_instance_ids and "service_instance_ids" not in skip:
        instances = frozenset(f.service_instance_ids)
        checks.append(lambda r: r.service_instance_id in instances)
    if f.created_by and "created_by" not in skip:
        creator = f.created_by
        checks.append(lambda r: r.created_by == creator)
    if (f.min_priority is not None or f.max_priority is not None) and "priority" not in skip:
        low = f.min_priority if f.min_priority is not None else -(2**63)
        high = f.max_priority if f.max_priority is not None else 2**63
        checks.append(lambda r: low <= r.priority <= high)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda r: all(check(r) for check in checks)


class RuleTable:
    """All simple-store rules with the indexes every query filter, sort field and uniqueness check
    needs. Owned by exactly one actor; `rules` gives a snapshot seed, `RuleTable(rules)` bulk-loads one."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._adopt({rule.id: rule for rule in rules})  # the last of a repeated id wins, as in apply

    def _adopt(self, rules: dict[str, Rule]) -> None:
        """Index `rules` in one go (actors/rule_indexes.py) and keep the dict itself."""
        self._rules = rules
        self._indexes = RuleIndexes.build(list(rules.values())) if rules else RuleIndexes()
        self._hashed = self._indexes.hashed
        self._unique = self._indexes.unique
        self._sorted = self._indexes.sorted
        self._capture: CaptureWalk[str, Rule] | None = None  # a snapshot being read out (see begin_capture)

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._rules)

    def get(self, rule_id: str) -> Rule | None:
        return self._rules.get(rule_id)

    def records(self) -> list[Rule]:
        """Every rule in no particular order (a shallow copy: O(n), so the actor's snapshots use
        `begin_capture` instead)."""
        return list(self._rules.values())

    def rules(self) -> Iterator[Rule]:
        """Every rule in id order (deterministic, so equal states give equal snapshots)."""
        rules = self._rules
        return (rules[rule_id] for rule_id in self._sorted["id"])

    def same_state(self, other: RuleTable) -> bool:
        """Rules and every index equal (O(n); for tests and replay checks)."""
        return self._rules == other._rules and self._indexes == other._indexes

    # ------------------------------------------------------------------ snapshot capture

    def begin_capture(self) -> CaptureWalk[str, Rule]:
        """Start reading every rule as of now, in pieces between other messages (O(1) now)."""
        self._capture = CaptureWalk(self._sorted["id"], self._rules)
        return self._capture

    def end_capture(self, walk: CaptureWalk[str, Rule]) -> None:
        """Stop journaling changes for `walk` (finished or abandoned)."""
        if self._capture is walk:
            self._capture = None

    # ------------------------------------------------------------------ events

    def apply(self, event: StoreEvent) -> None:
        """Make an already-planned (and logged) change. Deterministic; also used for log replay."""
        rules, indexes, walk = self._rules, self._indexes, self._capture
        if isinstance(event, RulesCreated):
            batch = {r.id: r for r in event.rules}
            for rule_id in batch:
                if walk is not None:
                    walk.touched(rule_id)
                old = rules.pop(rule_id, None)
                if old is not None:  # never planned, but replay must not corrupt the indexes
                    indexes.remove(old)
            rules.update(batch)
            indexes.add_many(list(batch.values()))
        elif isinstance(event, RulesUpdated):
            # Two phases, so a swap never deletes the uniqueness entry its partner just took over.
            latest = {r.id: r for r in event.rules}.values()
            pairs = [(rules[r.id], r) for r in latest if r.id in rules]
            for old, new in pairs:
                indexes.remove(old, keep_if_same_as=new)
            for old, new in pairs:
                indexes.add(new, skip_if_same_as=old)
                if walk is not None:
                    walk.touched(new.id)
                rules[new.id] = new
        else:
            for rule_id in event.ids:
                if walk is not None:
                    walk.touched(rule_id)
                rule = rules.pop(rule_id, None)
                if rule is not None:
                    indexes.remove(rule)

    # ------------------------------------------------------------------ commands

    def plan_create(
        self, new: Sequence[NewRule], requester: str, now: int, new_id: Callable[[], str]
    ) -> RulesCreated:
        """All candidates or none. Candidate by candidate: a repeat of an earlier candidate, then a clash
        with a stored rule, is rejected."""
        seen: set[tuple[str, str, int]] = set()
        for candidate in new:
            key = (candidate.consumer, candidate.service_definition, candidate.priority)
            if key in seen:
                raise Rejected(conflict_message(*key))
            if key in self._unique:
                raise Rejected(existing_message(*key))
            seen.add(key)
        used: set[str] = set()
        rules = []
        for candidate in new:
            rule_id = self._fresh_id(new_id, used)
            rules.append(
                Rule(
                    id=rule_id,
                    consumer=candidate.consumer,
                    service_definition=candidate.service_definition,
                    service_instance_id=candidate.service_instance_id,
                    priority=candidate.priority,
                    created_by=requester,
                    updated_by=requester,
                    created_at=now,
                    updated_at=now,
                )
            )
        return RulesCreated(tuple(rules))

    def _fresh_id(self, new_id: Callable[[], str], used: set[str]) -> str:
        """A UUID4 never repeats in practice; a test generator might, and a reused id would overwrite."""
        for _ in range(16):
            rule_id = new_id()
            if rule_id not in used and rule_id not in self._rules:
                used.add(rule_id)
                return rule_id
        raise RuntimeError("the id generator keeps returning ids that are already in use")

    def plan_modify(
        self, priorities: Mapping[str, int], requester: str, now: int
    ) -> tuple[RulesUpdated | None, list[Rule]]:
        """New priorities for rules of one rule set, checked on the final state of the whole set, so
        swaps and rotations inside one request succeed (DECISIONS.md 8). Returns the event (None when
        nothing changes) and every named rule in its new version, by priority ascending."""
        if not priorities:  # the transports answer 400 first (DECISIONS.md 2); nothing to do here
            return None, []
        named: list[Rule] = []
        for rule_id in priorities:
            rule = self._rules.get(rule_id)
            if rule is None:
                raise Rejected(f"Not existing UUID: {rule_id}")
            named.append(rule)
        consumer, definition = named[0].consumer, named[0].service_definition
        if any(r.consumer != consumer or r.service_definition != definition for r in named):
            raise Rejected(SAME_RULE_SET_MESSAGE)

        taken: set[int] = set()
        repeated: set[int] = set()
        for rule_id in self._hashed["rule_set"][(consumer, definition)]:
            priority = priorities.get(rule_id, self._rules[rule_id].priority)
            (repeated if priority in taken else taken).add(priority)
        if repeated:
            raise Rejected(conflict_message(consumer, definition, min(repeated)))

        changed: list[Rule] = []
        result: list[Rule] = []
        for rule in named:
            priority = priorities[rule.id]
            if priority != rule.priority:
                rule = Rule(
                    id=rule.id,
                    consumer=rule.consumer,
                    service_definition=rule.service_definition,
                    service_instance_id=rule.service_instance_id,
                    priority=priority,
                    created_by=rule.created_by,
                    updated_by=requester,  # DECISIONS.md 7
                    created_at=rule.created_at,
                    updated_at=now,
                )
                changed.append(rule)
            result.append(rule)
        result.sort(key=attrgetter("priority"))  # unique within the set: no ties
        return (RulesUpdated(tuple(changed)) if changed else None), result

    def plan_remove(self, ids: Sequence[str]) -> RulesRemoved | None:
        """Unknown ids are ignored (the reference's delete-by-id semantics)."""
        present = tuple(dict.fromkeys(rule_id for rule_id in ids if rule_id in self._rules))
        return RulesRemoved(present) if present else None

    # ------------------------------------------------------------------ queries

    def query(self, f: RuleFilter, page: PageRequest) -> tuple[list[Rule], int]:
        """One page of the matching rules and the number of all matches.

        Candidates come from the smallest index among the given filters; the rest are checked per
        candidate. Few candidates are sorted; when they are a large share of the table, the global
        sorted index of the sort field is walked instead, so a broad filter does not sort the table.
        """
        start = page.number * page.size
        given = _given_filters(f)
        if not given:
            return self._slice(page, start), len(self._rules)
        source = min(self._sources(f), key=lambda s: (s.size, -len(s.covers)))
        rest = _matcher(f, source.covers)
        # A walk meets about (start + size) * n / k entries before the page is full (if matches are
        # spread evenly); handling the k candidates costs at least k. Walk only when that is cheaper.
        if (start + page.size) * len(self._rules) < source.size * source.size:
            rules = self._rules
            if source.covers >= given:
                count = source.size
            else:
                assert rest is not None
                count = sum(1 for rule_id in source.ids() if rest(rules[rule_id]))
            if start >= count:
                return [], count
            found = self._walk_page(f, page, start, budget=source.size)
            if found is not None:
                return found, count
        return self._sort_page(source, rest, page, start)

    def _slice(self, page: PageRequest, start: int) -> list[Rule]:
        """No filter at all: a positional slice of the sorted index, O(log n + size)."""
        count = len(self._rules)
        if start >= count:
            return []
        stop = min(start + page.size, count)
        if page.descending:  # islice(reverse=True) reverses the slice; it does not count from the end
            start, stop = count - stop, count - start
        entries = self._sorted[page.sort_field].islice(start, stop, reverse=page.descending)
        return [self._rules[rule_id] for rule_id in _entry_ids(page.sort_field, entries)]

    def _sort_page(
        self, source: _Source, rest: Callable[[Rule], bool] | None, page: PageRequest, start: int
    ) -> tuple[list[Rule], int]:
        rules = self._rules
        candidates = (rules[rule_id] for rule_id in source.ids())
        matches = list(candidates) if rest is None else [r for r in candidates if rest(r)]
        if start >= len(matches):
            return [], len(matches)
        matches.sort(key=SORT_KEYS[page.sort_field], reverse=page.descending)
        return matches[start : start + page.size], len(matches)

    def _walk_page(self, f: RuleFilter, page: PageRequest, start: int, budget: int) -> list[Rule] | None:
        """The page from the global sorted index; None when matches cluster late in the index and
        more than `budget` entries were read (sorting the candidates is then the cheaper way)."""
        every = _matcher(f, frozenset())
        assert every is not None
        rules = self._rules
        found: list[Rule] = []
        for read, rule_id in enumerate(self._walk(page.sort_field, page.descending)):
            if read >= budget:
                return None
            rule = rules[rule_id]
            if every(rule):
                if start:
                    start -= 1
                    continue
                found.append(rule)
                if len(found) == page.size:
                    break
        return found

    def _sources(self, f: RuleFilter) -> list[_Source]:
        """Every index that can enumerate candidates for `f`, with its exact size (no enumeration)."""
        sources = [_Source(len(self._rules), frozenset(), lambda: self._rules.keys())]
        if f.ids:
            present = [rule_id for rule_id in dict.fromkeys(f.ids) if rule_id in self._rules]
            sources.append(_Source(len(present), frozenset({"ids"}), lambda: present))
        for field, sort_field, values in (
            ("consumers", "consumer", f.consumers),
            ("service_definitions", "serviceDefinition", f.service_definitions),
            ("service_instance_ids", "serviceInstanceId", f.service_instance_ids),
        ):
            if values:
                sources.append(self._runs(field, sort_field, set(values)))
        if f.created_by:
            sources.append(self._union("created_by", "created_by", (f.created_by,)))
        if f.consumers and f.service_definitions:
            consumers, definitions = set(f.consumers), set(f.service_definitions)
            if len(consumers) * len(definitions) <= _MAX_PAIR_PROBES:
                pairs = {(c, d) for c in consumers for d in definitions}
                sources.append(self._union("consumers service_definitions", "rule_set", pairs))
        if f.min_priority is not None or f.max_priority is not None:
            index = self._sorted["priority"]
            low = 0 if f.min_priority is None else index.bisect_left((f.min_priority,))
            high = len(index) if f.max_priority is None else index.bisect_left((f.max_priority + 1,))
            high = max(low, high)
            sources.append(
                _Source(high - low, frozenset({"priority"}), lambda: (e[1] for e in index.islice(low, high)))
            )
        return sources

    def _runs(self, covers: str, sort_field: str, keys: Iterable[str]) -> _Source:
        """Candidates from a sorted (key, id) index: one key's entries are a contiguous run, from the
        bisection of (key,) to that of (key + NUL,), the smallest string greater than key."""
        index = self._sorted[sort_field]
        runs = [(index.bisect_left((key,)), index.bisect_left((key + "\0",))) for key in keys]
        runs = [(low, high) for low, high in runs if high > low]
        return _Source(
            sum(high - low for low, high in runs),
            frozenset(covers.split()),
            lambda: (entry[1] for low, high in runs for entry in index.islice(low, high)),
        )

    def _union(self, covers: str, index_name: str, keys: Iterable[Any]) -> _Source:
        index = self._hashed[index_name]
        sets = [index[k] for k in keys if k in index]
        return _Source(sum(map(len, sets)), frozenset(covers.split()), lambda: chain.from_iterable(sets))

    def _walk(self, field: str, descending: bool) -> Iterator[str]:
        index = self._sorted[field]
        return _entry_ids(field, reversed(index) if descending else iter(index))


class RuleLoader:
    """The rule table at start-up, before its indexes exist: a snapshot's rules, then the log's events
    after it applied to the id -> rule dict only; `table()` indexes the result once. Replaying a day
    of changes into a fully indexed table costs a dozen index updates per change instead.
    """

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules = {rule.id: rule for rule in rules}

    def __len__(self) -> int:
        return len(self._rules)

    def apply(self, event: StoreEvent) -> None:
        """What `RuleTable.apply` does to the rules (the property tests compare them)."""
        rules = self._rules
        if isinstance(event, RulesCreated):
            rules.update((rule.id, rule) for rule in event.rules)
        elif isinstance(event, RulesUpdated):
            for rule in event.rules:
                if rule.id in rules:
                    rules[rule.id] = rule
        else:
            for rule_id in event.ids:
                rules.pop(rule_id, None)

    def table(self) -> RuleTable:
        """The indexed table; the loader hands its dict over and must not be used again."""
        table = RuleTable()
        table._adopt(self._rules)
        self._rules = {}
        return table


def _entry_ids(field: str, entries: Iterable[Any]) -> Iterator[str]:
    """Ids from entries of a sorted index: the id index holds ids, the others (key, id) tuples."""
    return iter(entries) if field == "id" else (entry[1] for entry in entries)
