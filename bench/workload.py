"""The named scenarios: which operations a run sends, in what mix, and what it loads first.

A scenario is pure: `setup` lists the operations that prepare the target (preloaded locks and rules),
and `workload` makes, per load-generator process, a `Workload` that yields the next operation and
hears each reply (so the churn mix removes locks it really holds). The engine (`bench.loadgen`) decides
*when* operations are sent; this module only decides *what*.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.operations import (
    CreateLocks,
    CreateRules,
    Echo,
    ModifyPriorities,
    Operation,
    QueryLocks,
    QueryRules,
    RemoveLocks,
    RemoveRules,
    Reply,
    RuleSpec,
    instance_name,
)

CHURN_TTL_S = 60  # the issue: orchestrator churn creates locks with a 60 s expiry
LONG_TTL_S = 24 * 3600  # preloaded and bulk-loaded locks outlive any run
PRELOAD_OWNERS = 100  # preloaded locks are spread over this many owners
RULES_PER_CONSUMER = 10  # preloaded rules: one rule set per consumer (10 providers of `svc`), priorities 1..10
BULK_BATCH = 100  # records per bulk-load request
STARTUP_OWNERS = 5000  # the start-up scenario's built locks belong to Owner0 .. Owner4999


@dataclass(frozen=True)
class Sizes:
    """How much a scenario loads: `preload` records before the run; `records` for the bulk loads."""

    preload: int = 10_000
    records: int = 100_000
    log_records: int = 100_000  # start-up: log events after the snapshots


@dataclass(frozen=True)
class WorkerContext:
    """What one load-generator process knows. `tag` is unique per run (letters and digits), so runs
    against a long-lived target never collide; `prepared` is this worker's share of what setup made
    (the ids of each create reply)."""

    worker: int
    workers: int
    seed: int
    tag: str
    sizes: Sizes
    prepared: tuple[tuple[str, ...], ...] = ()


class Workload:
    """Yields operations one at a time; hears the replies. Subclasses keep their own state."""

    def next(self) -> tuple[str, Operation]:
        raise NotImplementedError

    def answered(self, operation: Operation, reply: Reply) -> None:
        """Called for every reply, in completion order (which may differ from send order)."""


class Constant(Workload):
    def __init__(self, name: str, make: Callable[[int], Operation]) -> None:
        self._name = name
        self._make = make
        self._sequence = 0

    def next(self) -> tuple[str, Operation]:
        self._sequence += 1
        return self._name, self._make(self._sequence)


def startup_owner(number: int) -> str:
    """The owner of built lock `number` (bench.startup.build)."""
    return f"Owner{number % STARTUP_OWNERS}"


def preload_owner(number: int) -> str:
    return f"Pre{number % PRELOAD_OWNERS}"


def preload_instance(tag: str, number: int) -> str:
    return instance_name(f"Pre{tag}", number)


def preload_consumer(tag: str, number: int) -> str:
    return f"Pre{tag}c{number}"


def _preload_locks(tag: str, count: int) -> list[Operation]:
    """`count` long-lived locks, numbered 0..count-1, owner `preload_owner(n)`, in 100-lock creates."""
    by_owner: dict[str, list[str]] = {}
    for number in range(count):
        by_owner.setdefault(preload_owner(number), []).append(preload_instance(tag, number))
    operations: list[Operation] = []
    for owner, instances in by_owner.items():
        for at in range(0, len(instances), BULK_BATCH):
            operations.append(CreateLocks(owner, tuple(instances[at : at + BULK_BATCH]), LONG_TTL_S))
    return operations


def _consumer_rules(consumer: str, count: int) -> tuple[RuleSpec, ...]:
    """One rule set: `count` providers of one service definition for a consumer, priorities 1..count.
    (modify-priorities only takes ids of one rule set: same consumer and service definition.)"""
    return tuple(RuleSpec(consumer, f"Prov{p}|svc|1.0.0", p) for p in range(1, count + 1))


def _preload_rules(tag: str, count: int, per_consumer: int = RULES_PER_CONSUMER) -> list[Operation]:
    """One create per consumer (so each reply's ids are one consumer's rules)."""
    consumers = max(1, count // per_consumer)
    return [CreateRules(_consumer_rules(preload_consumer(tag, c), per_consumer)) for c in range(consumers)]


# ------------------------------------------------------------------------------------------ mixes


class OrchestratorChurn(Workload):
    """An orchestrator's day: lock 1-3 instances for 60 s, look at what an owner holds, release the
    oldest locks it holds (those whose create was answered 2xx). 40% create, 20% query, 40% remove."""

    OWNERS = 8

    def __init__(self, context: WorkerContext) -> None:
        self._rng = random.Random(context.seed)
        self._owners = [f"Orch{context.tag}w{context.worker}o{j}" for j in range(self.OWNERS)]
        self._prefix = f"Ch{context.tag}w{context.worker}"
        self._sequence = 0
        self._held: deque[tuple[str, tuple[str, ...]]] = deque()

    def next(self) -> tuple[str, Operation]:
        draw = self._rng.random()
        if draw < 0.4 or (not self._held and draw >= 0.6):
            owner = self._rng.choice(self._owners)
            count = self._rng.randint(1, 3)
            instances = tuple(instance_name(self._prefix, self._sequence + k) for k in range(count))
            self._sequence += count
            return "create", CreateLocks(owner, instances, CHURN_TTL_S)
        if draw < 0.6:
            return "query-owner", QueryLocks(self._rng.choice(self._owners), 0, 10)
        owner, instances = self._held.popleft()
        return "remove", RemoveLocks(owner, instances)

    def answered(self, operation: Operation, reply: Reply) -> None:
        if isinstance(operation, CreateLocks) and reply.ok:
            self._held.append((operation.owner, operation.instances))


class RuleChurn(Workload):
    """A rule administrator: new consumers get 3 rules, their priorities are rotated, then removed.
    40% create, 30% modify-priorities, 30% remove, each on a consumer this worker made. A rule set
    being modified is out of the pool until its answer comes, so it is never removed meanwhile (the
    modify would then fail for a reason of the benchmark's own making)."""

    def __init__(self, context: WorkerContext) -> None:
        self._rng = random.Random(context.seed)
        self._prefix = f"Rc{context.tag}w{context.worker}c"
        self._sequence = 0
        self._made: deque[tuple[str, ...]] = deque()

    def next(self) -> tuple[str, Operation]:
        draw = self._rng.random()
        if draw < 0.4 or not self._made:
            self._sequence += 1
            return "create", CreateRules(_consumer_rules(f"{self._prefix}{self._sequence}", 3))
        if draw < 0.7:
            at = self._rng.randrange(len(self._made))
            ids = self._made[at]
            del self._made[at]
            shift = self._rng.randint(1, len(ids) - 1) if len(ids) > 1 else 0
            rotated = tuple((ids[i], (i + shift) % len(ids) + 1) for i in range(len(ids)))
            return "modify", ModifyPriorities(rotated)
        return "remove", RemoveRules(self._made.popleft())

    def answered(self, operation: Operation, reply: Reply) -> None:
        if isinstance(operation, CreateRules) and reply.ok and reply.ids:
            self._made.append(reply.ids)
        elif isinstance(operation, ModifyPriorities):
            self._made.append(tuple(rule for rule, _ in operation.priorities))  # back in the pool


class Cycle(Workload):
    """Walks through this worker's share of prepared items in order, then keeps going round."""

    def __init__(self, name: str, items: Sequence[Operation], fallback: Operation) -> None:
        self._name = name
        self._items = items
        self._fallback = fallback
        self._at = 0

    def next(self) -> tuple[str, Operation]:
        if not self._items:
            return self._name, self._fallback
        operation = self._items[self._at % len(self._items)]
        self._at += 1
        return self._name, operation


# ------------------------------------------------------------------------------------------ scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    workload: Callable[[WorkerContext], Workload]
    setup: Callable[[str, Sizes], list[Operation]] = field(default=lambda tag, sizes: [])
    mode: str = "open"  # the default load model: "open" (fixed rate) or "closed" (fixed concurrency)
    rate: float = 200.0
    concurrency: int = 16
    locks_only: bool = True  # only lock operations (echo included): etcd can run it too
    total: Callable[[Sizes], int] | None = None  # a fixed number of requests (bulk loads) instead of a duration
    removes: str | None = None  # "locks" | "rules": every request removes one; the run counts the hits
    startup: bool = False  # lockstore only, started on a data directory the harness builds (`records`)


def _share(context: WorkerContext, count: int) -> range:
    """This worker's numbers among 0..count-1 (every workers-th, starting at its index)."""
    return range(context.worker, count, context.workers)


def _echo(number: int) -> Operation:
    return Echo()


def _lock_create(context: WorkerContext) -> Workload:
    prefix = f"Lc{context.tag}w{context.worker}"
    owner = f"Owner{context.worker}"
    return Constant("create", lambda n: CreateLocks(owner, (instance_name(prefix, n),), CHURN_TTL_S))


def _lock_remove(context: WorkerContext) -> Workload:
    removes: list[Operation] = [
        RemoveLocks(preload_owner(n), (preload_instance(context.tag, n),))
        for n in _share(context, context.sizes.preload)
    ]
    return Cycle("remove", removes, RemoveLocks("Nobody", (instance_name("Gone", 0),)))


def _lock_query(context: WorkerContext) -> Workload:
    rng = random.Random(context.seed)
    owners = min(PRELOAD_OWNERS, max(1, context.sizes.preload))
    return Constant("query-owner", lambda n: QueryLocks(preload_owner(rng.randrange(owners)), 0, 10))


def _rule_query(context: WorkerContext) -> Workload:
    rng = random.Random(context.seed)
    consumers = max(1, context.sizes.preload // RULES_PER_CONSUMER)
    return Constant("query-consumer", lambda n: QueryRules(preload_consumer(context.tag, rng.randrange(consumers))))


def _rule_modify(context: WorkerContext) -> Workload:
    # Swap priorities 1 and 2 of a preloaded consumer's first two rules, alternating, so that every
    # request changes something and none conflicts.
    pairs = [ids[:2] for ids in context.prepared if len(ids) >= 2]
    swaps: list[Operation] = [ModifyPriorities(((a, 2), (b, 1))) for a, b in pairs]
    swaps += [ModifyPriorities(((a, 1), (b, 2))) for a, b in pairs]
    return Cycle("modify", swaps, ModifyPriorities(()))


def _rule_remove(context: WorkerContext) -> Workload:
    removes: list[Operation] = [RemoveRules((rule,)) for ids in context.prepared for rule in ids]
    return Cycle("remove", removes, RemoveRules(("00000000-0000-0000-0000-000000000000",)))


class StartupMix(Workload):
    """While snapshots are taken: alternately create a fresh long-lived lock and query one built
    owner's locks (page of 10), as bench/replay.py's snapshot run did."""

    def __init__(self, context: WorkerContext) -> None:
        self._rng = random.Random(context.seed)
        self._owner = f"Snap{context.tag}w{context.worker}"
        self._sequence = 0

    def next(self) -> tuple[str, Operation]:
        self._sequence += 1
        if self._sequence % 2:
            return "create", CreateLocks(self._owner, (instance_name(self._owner, self._sequence),), LONG_TTL_S)
        return "query-owner", QueryLocks(startup_owner(self._rng.randrange(STARTUP_OWNERS)), 0, 10)


def _bulk_locks(context: WorkerContext) -> Workload:
    prefix = f"Bulk{context.tag}w{context.worker}"
    return Constant(
        "create-100",
        lambda n: CreateLocks(
            f"Loader{context.worker}",
            tuple(instance_name(prefix, n * BULK_BATCH + k) for k in range(BULK_BATCH)),
            LONG_TTL_S,
        ),
    )


def _bulk_rules(context: WorkerContext) -> Workload:
    prefix = f"Bulk{context.tag}w{context.worker}c"
    return Constant("create-100", lambda n: CreateRules(_bulk_consumer_rules(f"{prefix}{n}")))


def _bulk_consumer_rules(consumer: str) -> tuple[RuleSpec, ...]:
    return tuple(RuleSpec(consumer, f"Prov{p}|svc{d}|1.0.0", p) for d in range(10) for p in range(1, 11))


def _bulk_requests(sizes: Sizes) -> int:
    return max(1, sizes.records // BULK_BATCH)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("echo", "monitor echo: the transport and framework, no state", lambda c: Constant("echo", _echo)),
        Scenario(
            "lock-create",
            "create one fresh lock (60 s expiry) per request",
            _lock_create,
        ),
        Scenario(
            "lock-query",
            "query one of 100 owners' locks (page of 10) over `preload` preloaded locks",
            _lock_query,
            setup=lambda tag, sizes: _preload_locks(tag, sizes.preload),
        ),
        Scenario(
            "lock-remove",
            "remove preloaded locks one per request, in order (then removes of absent locks)",
            _lock_remove,
            setup=lambda tag, sizes: _preload_locks(tag, sizes.preload),
            removes="locks",
        ),
        Scenario(
            "orchestrator-churn",
            "40% create 1-3 locks (60 s expiry), 20% query by owner, 40% remove the oldest held",
            OrchestratorChurn,
        ),
        Scenario(
            "rule-lookups",
            "query a random consumer's rules (page of 10) over `preload` preloaded rules",
            _rule_query,
            setup=lambda tag, sizes: _preload_rules(tag, sizes.preload),
            locks_only=False,
        ),
        Scenario(
            "rule-create",
            "create one fresh consumer's rule per request",
            lambda c: Constant(
                "create", lambda n: CreateRules((RuleSpec(f"Rn{c.tag}w{c.worker}c{n}", "Prov1|svc|1.0.0", 1),))
            ),
            locks_only=False,
        ),
        Scenario(
            "rule-modify",
            "swap two preloaded rules' priorities per request",
            _rule_modify,
            setup=lambda tag, sizes: _preload_rules(tag, sizes.preload),
            locks_only=False,
        ),
        Scenario(
            "rule-remove",
            "remove preloaded rules one per request, in order",
            _rule_remove,
            setup=lambda tag, sizes: _preload_rules(tag, sizes.preload),
            locks_only=False,
            removes="rules",
        ),
        Scenario(
            "rule-churn",
            "40% create a consumer's 3 rules, 30% rotate their priorities, 30% remove them",
            RuleChurn,
            locks_only=False,
        ),
        Scenario(
            "bulk-load-locks",
            "load `records` long-lived locks in 100-lock creates as fast as the target takes them",
            _bulk_locks,
            mode="closed",
            total=_bulk_requests,
        ),
        Scenario(
            "bulk-load-rules",
            "load `records` rules in 100-rule creates as fast as the target takes them",
            _bulk_rules,
            mode="closed",
            total=_bulk_requests,
            locks_only=False,
        ),
        Scenario(
            "startup",
            "start lockstore on `records` live records + `log-records` log events (phases, ready time, RSS); "
            "then 50% create a lock, 50% query a built owner's locks while it snapshots every `snapshot-every`",
            StartupMix,
            mode="closed",
            concurrency=8,
            locks_only=False,
            startup=True,
        ),
    )
}
