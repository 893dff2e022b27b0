"""The client-observed history checker (tests/etcd/history.py) on hand-made histories, good and bad."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from tests.etcd.history import Grant, Violation, check_grants

T = 1_800_000_000.0


def grant(instance: str, lock_id: int, requested: float, acknowledged: float, expires_at: float,
          released: float | None = None, client: str = "c") -> Grant:
    return Grant(instance, lock_id, client, T + requested, T + acknowledged, T + expires_at,
                 None if released is None else T + released)


def kinds(violations: list[Violation]) -> list[str]:
    return [violation.kind for violation in violations]


def test_a_good_history_passes() -> None:
    history = [
        grant("A", 100, 0.0, 0.1, 2.0),
        grant("A", 200, 1.9, 2.05, 4.0),  # requested before A expired, granted after
        grant("B", 150, 0.5, 0.6, 10.0, released=1.0),
        grant("B", 250, 1.1, 2.2, 5.0),  # after B's remove was sent
        grant("C", 300, 2.3, 2.4, 3.0),
    ]
    assert check_grants(history) == []


def test_a_grant_acknowledged_before_the_earlier_lock_expired_is_a_double_grant() -> None:
    history = [grant("A", 100, 0.0, 0.1, 2.0, client="x"), grant("A", 200, 0.5, 1.5, 4.0, client="y")]
    found = check_grants(history)
    assert kinds(found) == ["double grant"]
    assert "lock 200 (y)" in found[0].detail and "lock 100 (x)" in found[0].detail


def test_a_grant_acknowledged_before_the_remove_was_sent_is_a_double_grant() -> None:
    history = [grant("A", 100, 0.0, 0.1, 60.0, released=3.0), grant("A", 200, 1.0, 2.0, 60.0)]
    assert kinds(check_grants(history)) == ["double grant"]


def test_overlap_is_judged_by_id_order_not_by_report_order() -> None:
    # The later lock (id 200) reaches the checker first; it was acknowledged while 100 held the instance.
    history = [grant("A", 200, 0.5, 0.9, 4.0), grant("A", 100, 0.0, 0.1, 2.0)]
    assert kinds(check_grants(history)) == ["double grant"]


def test_non_consecutive_overlaps_are_found() -> None:
    # 200 is fine after 100, 300 is fine after 200, but 300 was acknowledged while 100 still held A.
    history = [
        grant("A", 100, 0.0, 0.1, 5.0),
        grant("A", 200, 4.0, 6.0, 7.0, released=4.5),
        grant("A", 300, 4.6, 4.8, 9.0),
    ]
    found = check_grants(history)
    assert kinds(found).count("double grant") >= 1
    assert any("lock 300" in v.detail and "lock 100" in v.detail for v in found)


def test_the_same_id_twice_is_reported() -> None:
    history = [grant("A", 100, 0.0, 0.1, 1.0), grant("B", 100, 0.0, 0.1, 1.0)]
    assert kinds(check_grants(history)) == ["duplicate id"]


def test_an_id_smaller_than_one_acknowledged_before_the_request_is_reported() -> None:
    history = [grant("A", 500, 0.0, 0.1, 1.0), grant("B", 400, 0.2, 0.3, 1.0)]
    assert kinds(check_grants(history)) == ["id order"]


def test_concurrent_requests_may_get_ids_in_either_order() -> None:
    history = [grant("A", 500, 0.0, 0.3, 1.0), grant("B", 400, 0.1, 0.2, 1.0)]
    assert check_grants(history) == []


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=2**32))
def test_a_serial_service_never_produces_violations(count: int, seed: int) -> None:
    """A model service: one grant at a time in id order, each after the previous lock on its instance
    ended: the checker must accept every such history."""
    rng = random.Random(seed)
    now = 0.0
    ends: dict[str, float] = {}
    history = []
    for lock_id in range(1, count + 1):
        instance = rng.choice("ABC")
        requested = now + rng.random()
        commit = max(requested + rng.random() * 0.1, ends.get(instance, 0.0))
        acknowledged = commit + rng.random() * 0.1
        expires = commit + 0.5 + rng.random()
        released = commit + rng.random() if rng.random() < 0.3 else None
        ends[instance] = min(expires, released if released is not None else expires)
        history.append(grant(instance, lock_id, requested, acknowledged, expires, released))
        now = commit
    assert check_grants(history) == []
