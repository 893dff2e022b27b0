"""LockTable rules, one at a time: create / remove / expire / query, exact Rejected messages,
pagination edges, that a broad page never materialises the table, the bulk (start-up) build, and
snapshot captures read out while the table changes."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from actors.errors import Rejected
from actors.locks import LockLoader, LockTable
from actors.records import LOCK_SORT_FIELDS, Lock, LockFilter, LocksCreated, LocksRemoved, NewLock, PageRequest

NOW = 1_800_000_000.0
T = int(NOW)
EVERYTHING = LockFilter()


def new(instance: str, owner: str = "Owner", expires_at: int = T + 60) -> NewLock:
    return NewLock(service_instance_id=instance, owner=owner, expires_at=expires_at)


def page(number: int = 0, size: int = 1000, sort: str = "id", desc: bool = False) -> PageRequest:
    return PageRequest(number=number, size=size, sort_field=sort, descending=desc)


def create(table: LockTable, *entries: NewLock, now: float = NOW) -> LocksCreated:
    event = table.plan_create(entries, now)
    table.apply(event)
    return event


def ids(locks: list[Lock]) -> list[int]:
    return [lock.id for lock in locks]


def query_ids(table: LockTable, f: LockFilter = EVERYTHING, now: float = NOW, **page_args: object) -> list[int]:
    return ids(table.query(f, page(**page_args), now)[0])  # type: ignore[arg-type]


def rejection(table: LockTable, entries: list[NewLock], now: float = NOW) -> str:
    with pytest.raises(Rejected) as info:
        table.plan_create(entries, now)
    return info.value.message


# --------------------------------------------------------------------------- empty table


def test_empty_table() -> None:
    table = LockTable()
    assert len(table) == 0
    assert table.next_id == 1
    assert table.next_expiry() is None
    assert table.plan_expire(NOW) is None
    assert table.plan_remove("Owner", ["A"], NOW) is None
    assert table.get_by_instance("A") is None
    assert list(table.locks()) == []
    for field in LOCK_SORT_FIELDS:
        assert table.query(EVERYTHING, page(sort=field), NOW) == ([], 0)


# --------------------------------------------------------------------------- create


def test_create_assigns_consecutive_ids_in_request_order_and_plan_does_not_mutate() -> None:
    table = LockTable()
    event = table.plan_create([new("B", "Bob", T + 5), new("A", "Alice", T + 9)], NOW)
    assert len(table) == 0 and table.next_id == 1  # planning changes nothing
    assert event == LocksCreated(
        (
            Lock(id=1, service_instance_id="B", owner="Bob", expires_at=T + 5),
            Lock(id=2, service_instance_id="A", owner="Alice", expires_at=T + 9),
        )
    )
    assert all(not lock.temporary and lock.orchestration_job_id is None for lock in event.locks)
    table.apply(event)
    assert len(table) == 2 and table.next_id == 3
    assert table.get_by_instance("A") == event.locks[1]
    assert [lock.id for lock in create(table, new("C")).locks] == [3]


def test_already_locked_lists_every_conflict_once_in_request_order_and_creates_nothing() -> None:
    table = LockTable()
    create(table, new("A"), new("B"), new("C"))
    message = rejection(table, [new("C"), new("X"), new("A"), new("Y")])
    assert message == "Already locked: C, A"
    assert len(table) == 3 and table.get_by_instance("X") is None and table.next_id == 4


def test_single_conflict_message() -> None:
    table = LockTable()
    create(table, new("Provider|svc|1.0.0"))
    assert rejection(table, [new("Provider|svc|1.0.0")]) == "Already locked: Provider|svc|1.0.0"


def test_duplicate_in_request_is_rejected_naming_the_first_repeat_before_conflicts() -> None:
    table = LockTable()
    create(table, new("A"))
    assert rejection(table, [new("B"), new("A"), new("C"), new("C"), new("B")]) == ("Duplicate service instance id: C")
    assert rejection(table, [new("A"), new("A")]) == "Duplicate service instance id: A"


def test_empty_create_is_rejected() -> None:
    assert rejection(LockTable(), []) == "Lock list is missing or empty"


@pytest.mark.parametrize("now", [NOW, NOW + 0.5, NOW + 10])
def test_expired_lock_never_blocks_and_apply_replaces_it(now: float) -> None:
    table = LockTable()
    old = create(table, new("A", "Old", expires_at=T)).locks[0]  # expired from now == expires_at on
    created = create(table, new("A", "New", T + 100), now=now).locks[0]
    assert created.id == 2
    assert table.get_by_instance("A") == created
    assert len(table) == 1 and list(table.locks()) == [created]
    assert old not in list(table.locks())
    assert table.next_expiry() == T + 100
    assert query_ids(table, now=now) == [2]


def test_lock_blocks_until_its_last_instant() -> None:
    table = LockTable()
    create(table, new("A", expires_at=T + 1))
    assert rejection(table, [new("A")], now=NOW + 0.999) == "Already locked: A"
    table.plan_create([new("A")], NOW + 1)  # now == expires_at: expired, no conflict


def test_ids_grow_and_are_never_reused() -> None:
    table = LockTable()
    create(table, new("A"), new("B"))
    table.apply(LocksRemoved((2,)))
    assert table.next_id == 3
    assert create(table, new("C")).locks[0].id == 3
    table.apply(LocksCreated((Lock(id=100, service_instance_id="Z", owner="Orch", expires_at=T + 9),)))
    assert table.next_id == 101
    table.apply(LocksRemoved((100,)))
    assert table.next_id == 101
    table.apply(LocksCreated((Lock(id=50, service_instance_id="Y", owner="Orch", expires_at=T + 9),)))
    assert table.next_id == 101


def test_apply_of_an_existing_id_replaces_that_lock() -> None:
    table = LockTable()
    create(table, new("A"))
    table.apply(LocksCreated((Lock(id=1, service_instance_id="B", owner="X", expires_at=T + 3),)))
    assert list(table.locks()) == [Lock(id=1, service_instance_id="B", owner="X", expires_at=T + 3)]
    assert table.get_by_instance("A") is None
    assert query_ids(table, LockFilter(owners=("Owner",))) == []


# --------------------------------------------------------------------------- remove


def _mixed_table() -> LockTable:
    table = LockTable()
    create(table, new("A", "Owner"), new("B", "Other"), new("C", "owner"), new("D", "Owner", T + 1))
    table.apply(
        LocksCreated(
            (
                Lock(id=5, service_instance_id="E", owner="Owner", expires_at=T + 60, temporary=True),
                Lock(id=6, service_instance_id="F", owner="Owner", expires_at=T + 60, orchestration_job_id="j"),
            )
        )
    )
    return table


def test_remove_takes_only_the_owners_active_non_temporary_locks() -> None:
    table = _mixed_table()
    event = table.plan_remove("Owner", ["F", "A", "B", "C", "D", "E", "unknown", "A"], NOW + 1)
    # B: other owner; C: owner differs in case; D: expired (now == expires_at); E: temporary.
    assert event == LocksRemoved((6, 1), expired=False)
    assert len(table) == 6  # planning changes nothing
    table.apply(event)
    assert sorted(lock.id for lock in table.locks()) == [2, 3, 4, 5]


def test_remove_of_nothing_is_none() -> None:
    table = _mixed_table()
    assert table.plan_remove("Nobody", ["A", "B"], NOW) is None
    assert table.plan_remove("Owner", [], NOW) is None
    assert table.plan_remove("Owner", ["E"], NOW) is None


def test_removing_unknown_ids_is_ignored() -> None:
    table = _mixed_table()
    table.apply(LocksRemoved((99, 1, 1)))
    assert sorted(lock.id for lock in table.locks()) == [2, 3, 4, 5, 6]
    assert table.get_by_instance("A") is None


# --------------------------------------------------------------------------- expiry


def test_expire_takes_every_lock_with_expires_at_at_or_before_now_earliest_first() -> None:
    table = LockTable()
    create(table, new("A", expires_at=T + 3), new("B", expires_at=T + 1), new("C", expires_at=T + 2))
    create(table, new("D", expires_at=T + 1))
    assert table.next_expiry() == T + 1
    assert table.plan_expire(NOW + 0.5) is None
    assert table.plan_expire(NOW + 1) == LocksRemoved((2, 4), expired=True)
    event = table.plan_expire(NOW + 2.5)
    assert event == LocksRemoved((2, 4, 3), expired=True)
    table.apply(event)
    assert table.next_expiry() == T + 3
    assert [lock.service_instance_id for lock in table.locks()] == ["A"]


# --------------------------------------------------------------------------- query filters


def _query_table() -> LockTable:
    table = LockTable()
    create(
        table,
        new("A", "Alice", T + 10),
        new("B", "Bob", T + 20),
        new("C", "Alice", T + 30),
        new("D", "Carol", T + 40),
        new("E", "bob", T + 5),
    )
    table.apply(
        LocksCreated(
            (
                Lock(6, "F", "Alice", T + 50, temporary=True, orchestration_job_id="job-1"),
                Lock(7, "G", "Bob", T + 60, orchestration_job_id="job-2"),
            )
        )
    )
    return table


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (LockFilter(), [1, 2, 3, 4, 5, 6, 7]),
        (LockFilter(ids=(3, 1, 99, 3)), [1, 3]),
        (LockFilter(owners=("Alice", "bob")), [1, 3, 5, 6]),
        (LockFilter(owners=("alice",)), []),
        (LockFilter(service_instance_ids=("D", "G", "nope")), [4, 7]),
        (LockFilter(orchestration_job_ids=("job-1", "job-9")), [6]),
        # the job filter excludes job-less locks even when ids are given (DECISIONS.md 6)
        (LockFilter(ids=(1, 6, 7), orchestration_job_ids=("job-1",)), [6]),
        (LockFilter(ids=(1, 7), orchestration_job_ids=("job-1", "job-2")), [7]),  # starts from the ids
        (LockFilter(owners=("Alice",), ids=(1, 2, 6)), [1, 6]),
        (LockFilter(owners=("Alice", "Bob"), service_instance_ids=("A", "B", "D")), [1, 2]),
        (LockFilter(expires_before=T + 20), [1, 5]),
        (LockFilter(expires_after=T + 40), [6, 7]),
        (LockFilter(expires_after=T + 10, expires_before=T + 40), [2, 3]),
        (LockFilter(expires_after=T + 10.5, expires_before=T + 30.5), [2, 3]),
        (LockFilter(expires_after=T + 40, expires_before=T + 10), []),
        (LockFilter(owners=("Alice",), expires_before=T + 31), [1, 3]),
        (LockFilter(owners=("Alice", "Bob"), expires_after=T + 20, expires_before=T + 60), [3, 6]),
    ],
)
def test_query_filters(f: LockFilter, expected: list[int]) -> None:
    table = _query_table()
    locks, count = table.query(f, page(), NOW)
    assert ids(locks) == expected
    assert count == len(expected)


@pytest.mark.parametrize("f", [LockFilter(), LockFilter(owners=("Alice", "Bob", "bob", "Carol"))])
def test_expired_locks_never_match_even_before_the_purge(f: LockFilter) -> None:
    table = _query_table()
    assert query_ids(table, f, now=NOW + 10) == [2, 3, 4, 6, 7]  # A expires at exactly T + 10
    assert table.query(f, page(), NOW + 30)[1] == 3
    assert table.query(f, page(), NOW + 60) == ([], 0)
    assert len(table) == 7


@pytest.mark.parametrize("desc", [False, True])
def test_expiry_window_pages_sorted_by_expiry_stop_at_the_window_edges(desc: bool) -> None:
    table = _query_table()  # expiries: 5 -> T+5, 1 -> T+10, 2 -> T+20, 3 -> T+30, 4 -> T+40, 6, 7
    window = LockFilter(expires_after=T + 5, expires_before=T + 40)
    expected = [3, 2, 1] if desc else [1, 2, 3]
    pages = [table.query(window, page(number=n, size=2, sort="expiresAt", desc=desc), NOW) for n in range(3)]
    assert pages == [
        ([lock for lock in table.locks() if lock.id in expected[:2]][:: -1 if desc else 1], 3),
        ([lock for lock in table.locks() if lock.id == expected[2]], 3),
        ([], 3),
    ]


def test_expiry_window_is_clamped_to_active_locks() -> None:
    table = _query_table()
    assert query_ids(table, LockFilter(expires_after=T - 100, expires_before=T + 21), now=NOW + 10) == [2]


# --------------------------------------------------------------------------- pagination and sorting


def _ties_table() -> LockTable:
    table = LockTable()
    create(
        table,
        new("P|s|1", "Bob", T + 20),
        new("A|s|1", "Alice", T + 10),
        new("Z|s|1", "Bob", T + 10),
        new("M|s|1", "Alice", T + 30),
        new("B|s|1", "Bob", T + 10),
    )
    return table


SORTED = {
    ("id", False): [1, 2, 3, 4, 5],
    ("id", True): [5, 4, 3, 2, 1],
    ("owner", False): [2, 4, 1, 3, 5],
    ("owner", True): [5, 3, 1, 4, 2],
    ("serviceInstanceId", False): [2, 5, 4, 1, 3],
    ("serviceInstanceId", True): [3, 1, 4, 5, 2],
    ("expiresAt", False): [2, 3, 5, 1, 4],
    ("expiresAt", True): [4, 1, 5, 3, 2],
}


@pytest.mark.parametrize(("sort", "desc"), list(SORTED))
@pytest.mark.parametrize("f", [LockFilter(), LockFilter(owners=("Alice", "Bob"))], ids=["broad", "narrow"])
def test_each_sort_field_both_directions_ties_by_id(sort: str, desc: bool, f: LockFilter) -> None:
    table = _ties_table()
    expected = SORTED[sort, desc]
    assert query_ids(table, f, sort=sort, desc=desc) == expected
    # size 1 pages walk the same order one by one; a page past the end is empty but counted
    singles = [table.query(f, page(number=n, size=1, sort=sort, desc=desc), NOW) for n in range(6)]
    assert [ids(locks) for locks, _ in singles] == [[i] for i in expected] + [[]]
    assert {count for _, count in singles} == {5}
    assert table.query(f, page(number=1, size=3, sort=sort, desc=desc), NOW) == (
        [lock for lock in table.query(f, page(sort=sort, desc=desc), NOW)[0][3:]],
        5,
    )
    assert table.query(f, page(number=7, size=2, sort=sort, desc=desc), NOW) == ([], 5)


@pytest.mark.parametrize(("sort", "desc"), list(SORTED))
def test_broad_pages_with_expired_locks_still_in_the_table(sort: str, desc: bool) -> None:
    table = _ties_table()  # the three locks expiring at T + 10 lapse, unpurged
    expected = [i for i in SORTED[sort, desc] if i in (1, 4)]
    assert query_ids(table, now=NOW + 10, sort=sort, desc=desc) == expected
    assert [query_ids(table, now=NOW + 10, sort=sort, desc=desc, number=n, size=1) for n in range(3)] == [
        [expected[0]],
        [expected[1]],
        [],
    ]


def test_invalid_page_or_sort_field_is_a_programming_error() -> None:
    table = _ties_table()
    with pytest.raises(ValueError):
        table.query(EVERYTHING, page(sort="expires_at"), NOW)
    with pytest.raises(ValueError):
        table.query(EVERYTHING, page(size=0), NOW)
    with pytest.raises(ValueError):
        table.query(EVERYTHING, page(number=-1), NOW)


# --------------------------------------------------------------------------- snapshot restore


def test_get_and_records_see_every_held_lock() -> None:
    table = _query_table()
    assert table.get(6) == Lock(6, "F", "Alice", T + 50, temporary=True, orchestration_job_id="job-1")
    assert table.get(99) is None
    assert sorted(table.records(), key=lambda lock: lock.id) == list(table.locks())
    table.apply(LocksRemoved((6,)))
    assert table.get(6) is None and len(table.records()) == 6


def test_restore_reproduces_the_table() -> None:
    table = _query_table()
    table.apply(LocksRemoved((7,)))
    restored = LockTable.restore(table.locks(), table.next_id)
    assert list(restored.locks()) == list(table.locks())
    assert restored.next_id == table.next_id == 8
    assert restored.next_expiry() == table.next_expiry()
    for f in [LockFilter(), LockFilter(orchestration_job_ids=("job-1",)), LockFilter(owners=("Alice",))]:
        for sort in LOCK_SORT_FIELDS:
            assert restored.query(f, page(sort=sort), NOW) == table.query(f, page(sort=sort), NOW)
    with pytest.raises(ValueError):
        LockTable.restore([*table.locks(), Lock(99, "A", "X", T)], 100)


def _history(count: int) -> tuple[LockTable, list[LocksCreated | LocksRemoved]]:
    """A table built one event at a time: owners, instances and expiries in no id order, job locks,
    removals, expiries and instances taken over by a newer lock."""
    table = LockTable()
    events: list[LocksCreated | LocksRemoved] = []

    def apply(event: LocksCreated | LocksRemoved) -> None:
        table.apply(event)
        events.append(event)

    for i in range(1, count + 1):
        job = f"job-{i % 7}" if i % 3 == 0 else None
        instance = f"P{(i * 7919) % (count // 2):05d}|svc|1.0.0"  # every instance locked twice
        apply(LocksCreated((Lock(i, instance, f"Owner{i % 13}", T + (i * 31) % 500, i % 3 == 0, job),)))
        if i % 5 == 0:
            apply(LocksRemoved((i - 2, i + 1000)))
    apply(LocksRemoved(tuple(range(10, 40)), expired=True))
    return table, events


def test_bulk_build_equals_applying_events_one_by_one() -> None:
    table, events = _history(3000)
    restored = LockTable.restore(reversed(list(table.locks())), table.next_id)  # any order
    assert restored.same_state(table)
    assert len(restored) == len(table) > 1000
    for index in (restored._ids, restored._by_owner, restored._by_instance, restored._by_expiry):
        index._check()  # the SortedList assembled without a sort is internally sound
    # start-up: a snapshot from the middle of the history, the rest of the log into a loader
    middle = LockTable()
    for event in events[: len(events) // 2]:
        middle.apply(event)
    loader = LockLoader(middle.locks(), middle.next_id)
    for event in events[len(events) // 2 :]:
        loader.apply(event)
    assert len(loader) == len(table)
    assert loader.table().same_state(table)
    assert not LockTable().same_state(table)
    assert LockTable.restore([], 17).next_id == 17


def test_restore_names_the_first_duplicate_in_snapshot_order() -> None:
    locks = [Lock(3, "A", "X", T), Lock(1, "B", "X", T), Lock(2, "A", "Y", T), Lock(1, "C", "X", T)]
    with pytest.raises(ValueError, match="lock 2 / 'A' twice"):
        LockTable.restore(locks, 5)


def _drain(walk: object, limit: int = 1000) -> list[Lock]:
    got: list[Lock] = []
    while (piece := walk.next(limit)) is not None:  # type: ignore[attr-defined]
        got += piece
    return got


@pytest.mark.parametrize("change", ["remove", "replace instance", "replace id", "create"])
def test_capture_reads_the_state_of_its_start_whatever_changes_at_any_point(change: str) -> None:
    """Every change to every lock, after every number of pieces read one lock at a time."""
    for read in range(7):
        for victim in range(1, 7):
            table = LockTable.restore([Lock(i, f"I{i}", "O", T + i) for i in range(1, 7)], 7)
            before = list(table.locks())
            walk = table.begin_capture()
            got = _drain_some(walk, read)
            if change == "remove":
                table.apply(LocksRemoved((victim,)))
            elif change == "replace instance":  # a newer lock takes the instance over
                table.apply(LocksCreated((Lock(100 + victim, f"I{victim}", "N", T),)))
            elif change == "replace id":
                table.apply(LocksCreated((Lock(victim, f"J{victim}", "N", T),)))
            else:
                table.apply(LocksCreated((Lock(100 + victim, f"K{victim}", "N", T),)))
            got += _drain(walk, 1)
            table.end_capture(walk)
            assert sorted(got, key=lambda lock: lock.id) == before, (read, victim)
            assert walk.count == len(before)


def _drain_some(walk: object, pieces: int) -> list[Lock]:
    got: list[Lock] = []
    for _ in range(pieces):
        got += walk.next(1) or []  # type: ignore[attr-defined]
    return got


def test_an_ended_capture_stops_journaling() -> None:
    table, _ = _history(200)
    walk = table.begin_capture()
    assert len(_drain(walk, 7)) == len(table)
    table.end_capture(walk)
    table.apply(LocksRemoved(tuple(range(1, 100))))
    assert walk._journal == {} and walk.next(5) is None
    stale = table.begin_capture()
    newer = table.begin_capture()  # a new capture replaces an abandoned one
    table.end_capture(stale)  # ending the abandoned one leaves the newer one running
    table.apply(LocksRemoved((150,)))
    assert 150 in newer._journal


# --------------------------------------------------------------------------- cost of a broad page

BIG = 200_000


@pytest.fixture(scope="module")
def big_table() -> LockTable:
    # owners and instances interleave so no sort order equals id order; every 50th lock is expired
    # but unpurged, so the broad path has to skip non-matches while walking a sort index.
    locks = (
        Lock(
            id=i,
            service_instance_id=f"P{(i * 7919) % BIG:06d}|svc|1.0.0",
            owner=f"Owner{i % 97}",
            expires_at=T - 5 if i % 50 == 0 else T + (i * 31) % 10_000 + 1,
        )
        for i in range(1, BIG + 1)
    )
    return LockTable.restore(locks, BIG + 1)


_brute_force_cache: dict[tuple[str, bool], list[Lock]] = {}


def _brute_force_order(table: LockTable, sort: str, desc: bool) -> list[Lock]:
    if (sort, desc) not in _brute_force_cache:
        attr = {"serviceInstanceId": "service_instance_id", "expiresAt": "expires_at"}.get(sort, sort)
        active = [lock for lock in table.locks() if lock.expires_at > NOW]
        active.sort(key=lambda lock: (getattr(lock, attr), lock.id), reverse=desc)
        _brute_force_cache[sort, desc] = active[:100]
    return _brute_force_cache[sort, desc]


def _peak_bytes(call: object) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        call()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("number", [0, 3])
@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("sort", LOCK_SORT_FIELDS)
def test_broad_page_never_materialises_the_table(big_table: LockTable, sort: str, desc: bool, number: int) -> None:
    request = page(number=number, size=10, sort=sort, desc=desc)
    locks, count = big_table.query(EVERYTHING, request, NOW)
    assert count == BIG - BIG // 50
    assert len(locks) == 10
    assert locks == _brute_force_order(big_table, sort, desc)[number * 10 : number * 10 + 10]
    # a list of 2*10^5 references alone would be 1.6 MB; a page query stays within a few KB
    assert _peak_bytes(lambda: big_table.query(EVERYTHING, request, NOW)) < 64_000
    # a tight expiry window: the count is a bisection, the page a slice or a sort of the window
    window = LockFilter(expires_after=T + 100, expires_before=T + 110)
    assert _peak_bytes(lambda: big_table.query(window, request, NOW)) < 64_000


def test_broad_page_is_fast_relative_to_a_full_sort(big_table: LockTable) -> None:
    request = page(number=2, size=10, sort="owner", desc=True)
    expected = sorted(
        (lock for lock in big_table.locks() if lock.expires_at > NOW), key=lambda lock: (lock.owner, lock.id)
    )[::-1][20:30]
    assert big_table.query(EVERYTHING, request, NOW)[0] == expected

    def best_of(call: object, repeat: int = 5) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            call()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times)

    full_sort = best_of(lambda: sorted(big_table.locks(), key=lambda lock: (lock.owner, lock.id)), 2)
    one_page = best_of(lambda: big_table.query(EVERYTHING, request, NOW))
    assert one_page * 100 < full_sort  # in practice ~10^4 times faster


def test_single_owner_pages_are_index_slices_and_match_brute_force() -> None:
    """The owner fast path (one owner, id/owner order, nothing expired held) against a brute-force answer."""
    table = LockTable()
    now = 1_000.0
    owners = ["Alpha", "Beta", "Gamma"]
    table.apply(table.plan_create([NewLock(f"P{i}|svc|1.0.0", owners[i % 3], 5_000 + i) for i in range(40)], now))
    table.apply(table.plan_remove("Beta", ["P1|svc|1.0.0", "P7|svc|1.0.0"], now))
    for owner in owners:
        mine = sorted((lock for lock in table.locks() if lock.owner == owner), key=lambda lock: lock.id)
        for field in ("id", "owner"):
            for descending in (False, True):
                expected = mine[::-1] if descending else mine
                for size in (1, 3, 5, 20):
                    for number in range(0, len(mine) // size + 2):
                        page = PageRequest(number=number, size=size, sort_field=field, descending=descending)
                        entries, count = table.query(LockFilter(owners=(owner,)), page, now)
                        assert count == len(mine)
                        assert entries == expected[number * size : number * size + size]
