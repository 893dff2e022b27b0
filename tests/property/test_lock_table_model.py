"""LockTable against a brute-force model: a list of dicts, filtered and sorted the obvious way.

Random create / remove / expire / query / clock-advance sequences (plus locks placed directly by
an "orchestrator", so temporary and job-id locks exist) must give the same answers and the same
Rejected messages; replaying the emitted events into a fresh table must reproduce the state, and so
must start-up's bulk path (a snapshot taken at any step into a LockLoader, the later events, then
one index build). Snapshot captures run interleaved with all of it and must read out exactly the
state of the moment they began.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from actors.capture_walk import CaptureWalk
from actors.errors import Rejected
from actors.locks import LockLoader, LockTable
from actors.records import LOCK_SORT_FIELDS, Lock, LockFilter, LocksCreated, LocksRemoved, NewLock, PageRequest
from tests.property.capture_pieces import CapturePieces

INSTANCES = [f"P{i}|svc|1.0.0" for i in range(9)] + ["p0|svc|1.0.0"]
OWNERS = ["Alice", "Bob", "alice", "Carol"]
JOBS = ["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"]
START = 1_800_000_000.0
FIELD = {"id": "id", "owner": "owner", "serviceInstanceId": "service_instance_id", "expiresAt": "expires_at"}

Model = list[dict[str, Any]]


def model_matches(lock: dict[str, Any], f: LockFilter, now: float) -> bool:
    return (
        now < lock["expires_at"]
        and (not f.ids or lock["id"] in f.ids)
        and (not f.orchestration_job_ids or lock["orchestration_job_id"] in f.orchestration_job_ids)
        and (not f.service_instance_ids or lock["service_instance_id"] in f.service_instance_ids)
        and (not f.owners or lock["owner"] in f.owners)
        and (f.expires_before is None or lock["expires_at"] < f.expires_before)
        and (f.expires_after is None or lock["expires_at"] > f.expires_after)
    )


def model_query(model: Model, f: LockFilter, page: PageRequest, now: float) -> tuple[list[Lock], int]:
    found = [lock for lock in model if model_matches(lock, f, now)]
    field = FIELD[page.sort_field]
    found.sort(key=lambda lock: (lock[field], lock["id"]), reverse=page.descending)
    start = page.number * page.size
    return [Lock(**lock) for lock in found[start : start + page.size]], len(found)


def model_create(model: Model, next_id: int, new: list[NewLock], now: float) -> list[dict[str, Any]] | str:
    """The created locks, or the rejection message."""
    if not new:
        return "Lock list is missing or empty"
    wanted = [entry.service_instance_id for entry in new]
    for i, instance in enumerate(wanted):
        if instance in wanted[:i]:
            return f"Duplicate service instance id: {instance}"
    active = {lock["service_instance_id"] for lock in model if now < lock["expires_at"]}
    locked = [instance for instance in wanted if instance in active]
    if locked:
        return "Already locked: " + ", ".join(locked)
    return [
        dict(
            id=next_id + i,
            service_instance_id=entry.service_instance_id,
            owner=entry.owner,
            expires_at=entry.expires_at,
            temporary=False,
            orchestration_job_id=None,
        )
        for i, entry in enumerate(new)
    ]


def new_locks() -> st.SearchStrategy[list[tuple[str, str, int]]]:
    entry = st.tuples(st.sampled_from(INSTANCES), st.sampled_from(OWNERS), st.integers(-2, 30))
    return st.lists(entry, min_size=1, max_size=4)


# A reference to a held lock (an index into the model, modulo its size) or a literal name: random
# names alone would rarely hit a lock that the random owner holds.
def held_or(names: st.SearchStrategy[str]) -> st.SearchStrategy[int | str]:
    return st.integers(0, 9) | names


# Filters are drawn as offsets from the current time and built in the rule: cheaper to draw than
# a strategy made per call, and the expiry bounds stay near the locks that exist.
offsets = st.none() | st.integers(-3, 32) | st.floats(-3, 32, allow_nan=False)
list_filters = st.tuples(
    st.lists(st.integers(1, 40), max_size=3),
    st.lists(st.sampled_from([*JOBS, "no-such-job"]), max_size=2),
    st.lists(st.sampled_from([*INSTANCES, "X|y|1"]), max_size=3),
    st.lists(st.sampled_from([*OWNERS, "Nobody"]), max_size=3),
)
filter_parts = st.tuples(st.none() | list_filters, offsets, offsets)


def build_filter(parts: Any, now: float) -> LockFilter:
    lists, before, after = parts
    ids, jobs, instances, owners = lists or ((), (), (), ())

    def at(offset: float | None) -> float | None:
        # integer offsets land exactly on whole-second expiry times, float ones between them
        return None if offset is None else (int(now) + offset if isinstance(offset, int) else now + offset)

    return LockFilter(
        ids=tuple(ids),
        orchestration_job_ids=tuple(jobs),
        service_instance_ids=tuple(instances),
        owners=tuple(owners),
        expires_before=at(before),
        expires_after=at(after),
    )


FIXED_FILTERS = [
    LockFilter(),
    LockFilter(owners=("Alice", "Bob")),
    LockFilter(orchestration_job_ids=tuple(JOBS)),
    LockFilter(service_instance_ids=tuple(INSTANCES[::2]), ids=tuple(range(1, 60, 3))),
]
# Every sort order, whole and in small pages (small pages over partly expired tables take the
# walking path). Replays check the whole answers only: shrinking reruns all of this many times.
ALL_PAGES = [
    PageRequest(number, size, field, desc)
    for number, size in [(0, 1000), (1, 2), (4, 1)]
    for field in LOCK_SORT_FIELDS
    for desc in (False, True)
]
WHOLE_PAGES = [page for page in ALL_PAGES if page.size == 1000]


pages = st.builds(
    PageRequest,
    number=st.integers(0, 4),
    size=st.integers(1, 6) | st.just(1000),
    sort_field=st.sampled_from(LOCK_SORT_FIELDS),
    descending=st.booleans(),
)


class LockTableMachine(CapturePieces, RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = LockTable()
        self.model: Model = []
        self.next_id = 1
        self.now = START
        self.events: list[LocksCreated | LocksRemoved] = []
        self.snapshots: list[tuple[list[Lock], int, int]] = [([], 1, 0)]  # locks, next id, events before
        self.capture: tuple[CaptureWalk[int, Lock], dict[int, Lock], list[Lock]] | None = None

    def _apply(self, event: LocksCreated | LocksRemoved) -> None:
        self.table.apply(event)
        self.events.append(event)
        self.snapshots.append((list(self.table.locks()), self.table.next_id, len(self.events)))

    def _model_insert(self, locks: list[dict[str, Any]]) -> None:
        for lock in locks:
            self.model = [m for m in self.model if m["service_instance_id"] != lock["service_instance_id"]]
            self.model.append(lock)
            self.next_id = max(self.next_id, lock["id"] + 1)

    # ------------------------------------------------------------------------- commands

    @rule(entries=new_locks())
    def create(self, entries: list[tuple[str, str, int]]) -> None:
        self._create([NewLock(instance, owner, int(self.now) + delta) for instance, owner, delta in entries])

    @rule()
    def create_nothing(self) -> None:
        self._create([])

    def _create(self, new: list[NewLock]) -> None:
        expected = model_create(self.model, self.next_id, new, self.now)
        try:
            event = self.table.plan_create(new, self.now)
        except Rejected as rejected:
            assert rejected.message == expected
            return
        assert not isinstance(expected, str), f"expected rejection {expected!r}"
        assert event == LocksCreated(tuple(Lock(**lock) for lock in expected))
        self._apply(event)
        self._model_insert(expected)

    @rule(
        entries=st.lists(
            st.tuples(st.sampled_from(INSTANCES), st.sampled_from(OWNERS), st.integers(1, 30), st.booleans()),
            min_size=1,
            max_size=3,
            unique_by=lambda entry: entry[0],
        ),
        job=st.sampled_from(JOBS),
    )
    def orchestrate(self, entries: list[tuple[str, str, int, bool]], job: str) -> None:
        """Locks placed by orchestration (temporary, with a job id) arrive as applied events."""
        active = {lock["service_instance_id"] for lock in self.model if self.now < lock["expires_at"]}
        free = [entry for entry in entries if entry[0] not in active]
        locks: list[dict[str, Any]] = [
            dict(
                id=self.next_id + i,
                service_instance_id=instance,
                owner=owner,
                expires_at=int(self.now) + delta,
                temporary=temporary,
                orchestration_job_id=job,
            )
            for i, (instance, owner, delta, temporary) in enumerate(free)
        ]
        if locks:
            self._apply(LocksCreated(tuple(Lock(**lock) for lock in locks)))
            self._model_insert(locks)

    @rule(
        owner_ref=st.none() | held_or(st.sampled_from(OWNERS)),
        instance_refs=st.lists(held_or(st.sampled_from([*INSTANCES, "X|y|1"])), max_size=5),
    )
    def remove(self, owner_ref: int | str | None, instance_refs: list[int | str]) -> None:
        """owner_ref None: the owner of the first named instance's lock, if any (the likely hit)."""

        def name(ref: int | str, field: str) -> str:
            if isinstance(ref, str):
                return ref
            return self.model[ref % len(self.model)][field] if self.model else INSTANCES[ref]

        instances = [name(ref, "service_instance_id") for ref in instance_refs]
        if owner_ref is None:
            first = self.table.get_by_instance(instances[0]) if instances else None
            owner = first.owner if first else "Alice"
        else:
            owner = name(owner_ref, "owner")
        by_instance = {lock["service_instance_id"]: lock for lock in self.model}
        expected: list[int] = []
        for instance in instances:
            lock = by_instance.get(instance)
            if (
                lock is not None
                and self.now < lock["expires_at"]
                and not lock["temporary"]
                and lock["owner"] == owner
                and lock["id"] not in expected
            ):
                expected.append(lock["id"])
        event = self.table.plan_remove(owner, instances, self.now)
        if not expected:
            assert event is None
            return
        assert event == LocksRemoved(tuple(expected), expired=False)
        self._apply(event)
        self.model = [lock for lock in self.model if lock["id"] not in expected]

    @rule()
    def expire(self) -> None:
        gone = sorted(
            (lock for lock in self.model if lock["expires_at"] <= self.now),
            key=lambda lock: (lock["expires_at"], lock["id"]),
        )
        event = self.table.plan_expire(self.now)
        if not gone:
            assert event is None
            return
        assert event == LocksRemoved(tuple(lock["id"] for lock in gone), expired=True)
        self._apply(event)
        self.model = [lock for lock in self.model if lock["expires_at"] > self.now]

    @rule(unknown=st.lists(st.integers(1, 60), min_size=1, max_size=3))
    def remove_unknown_ids(self, unknown: list[int]) -> None:
        """Replayed removals of ids that are gone (or never were) change nothing."""
        stale = tuple(i for i in unknown if all(lock["id"] != i for lock in self.model))
        if stale:
            self._apply(LocksRemoved(stale))

    def _records(self) -> Any:
        return self.table.locks()

    @rule(seconds=st.sampled_from([0.5, 1, 2, 3.25, 7, 15]), purge=st.booleans())
    def advance(self, seconds: float, purge: bool) -> None:
        """Time passes; the actor usually purges on waking, but a query may come first."""
        self.now += seconds
        if purge:
            self.expire()

    def _same_answers(self, table: LockTable, lock_filters: list[LockFilter], page_requests: list[PageRequest]) -> None:
        for f in lock_filters:
            for page in page_requests:
                expected = model_query(self.model, f, page, self.now)
                assert table.query(f, page, self.now) == expected, (f, page)

    @rule(parts=filter_parts, page=pages)
    def query(self, parts: Any, page: PageRequest) -> None:
        """The drawn filter with the drawn page, and with every sort order and a few page shapes."""
        self._same_answers(self.table, [build_filter(parts, self.now)], [page, *ALL_PAGES])

    def teardown(self) -> None:
        """A fresh table fed the event log (and one restored from a snapshot) answers the same.

        Checked once per run, at the end: as a rule it made shrinking a failure several times slower.
        """
        replayed = LockTable()
        for event in self.events:
            replayed.apply(event)
        restored = LockTable.restore(self.table.locks(), self.table.next_id)
        windows = [LockFilter(expires_after=self.now + 2), LockFilter(expires_before=self.now + 5)]
        for other in (replayed, restored):
            assert list(other.locks()) == list(self.table.locks())
            assert other.next_id == self.table.next_id
            assert other.next_expiry() == self.table.next_expiry()
            self._same_answers(other, FIXED_FILTERS + windows, WHOLE_PAGES)
            assert other.same_state(self.table)
        for locks, next_id, done in self.snapshots:  # start-up from a snapshot taken after any step
            loader = LockLoader(locks, next_id)
            for event in self.events[done:]:
                loader.apply(event)
            assert loader.table().same_state(self.table)
        while self.capture is not None and self._capture_piece(3):
            pass

    # ------------------------------------------------------------------------- invariants

    @invariant()
    def same_state(self) -> None:
        assert list(self.table.locks()) == [Lock(**lock) for lock in sorted(self.model, key=lambda m: m["id"])]
        assert len(self.table) == len(self.model)
        assert self.table.next_id == self.next_id
        assert self.table.next_expiry() == min((lock["expires_at"] for lock in self.model), default=None)
        by_instance = {lock["service_instance_id"]: Lock(**lock) for lock in self.model}
        for instance in INSTANCES:
            assert self.table.get_by_instance(instance) == by_instance.get(instance)


TestLockTableModel = LockTableMachine.TestCase
# Hypothesis' per-step cost dominates; 30 steps still fill the 10-instance table several times over.
TestLockTableModel.settings = settings(stateful_step_count=30, report_multiple_bugs=False)
