"""Checking what clients saw: was any service instance ever granted to two locks at once? Pure.

Clients record every lock they were granted (`Grant`): which instance, the lock id the service gave,
the wall-clock times the create was sent and acknowledged, the lock's expiresAt, and, if its owner
removed it, when that remove was sent. The service and the clients share one clock here (one
machine), so the service only hands an instance to a new lock once the old one's expiresAt has passed
on that clock, or once the old one's remove has arrived (which is after it was sent).

A grant is committed at some instant between its request and its acknowledgement, and lock ids
grow in commit order (they are fencing tokens). So for two grants a, b on one instance with a.id <
b.id, b committed after a; a ended no earlier than min(a.expires_at, a.released). If b was already
acknowledged before that, b was granted while a certainly held the instance: a double grant. The
check only reports what is certain — it never needs the service's internal timeline — and it also
checks that ids are unique and never go backwards in real time (a grant acknowledged before another
was requested has the smaller id).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Grant:
    instance: str
    lock_id: int
    client: str
    requested: float  # wall clock when the create was sent
    acknowledged: float  # wall clock when its 201 arrived
    expires_at: float  # the lock's expiresAt (seconds since the epoch)
    released: float | None = None  # wall clock when its owner's remove was sent (None: never removed)

    @property
    def held_until_at_least(self) -> float:
        """The earliest instant this lock can have ended."""
        return min(self.expires_at, self.released if self.released is not None else math.inf)


@dataclass(frozen=True)
class Violation:
    kind: str  # "double grant", "duplicate id", "id order"
    detail: str


def check_grants(grants: Iterable[Grant]) -> list[Violation]:
    """Every certain violation in a client-observed history (empty: none)."""
    grants = list(grants)
    violations: list[Violation] = []
    by_id: dict[int, Grant] = {}
    for grant in grants:
        other = by_id.setdefault(grant.lock_id, grant)
        if other is not grant:
            violations.append(Violation("duplicate id", f"lock id {grant.lock_id} granted to {other} and {grant}"))
    per_instance: dict[str, list[Grant]] = defaultdict(list)
    for grant in grants:
        per_instance[grant.instance].append(grant)
    for instance, history in per_instance.items():
        history.sort(key=lambda grant: grant.lock_id)
        for later_index, later in enumerate(history):
            for earlier in history[:later_index]:
                if later.acknowledged < earlier.held_until_at_least:
                    violations.append(
                        Violation(
                            "double grant",
                            f"{instance}: lock {later.lock_id} ({later.client}) acknowledged at {later.acknowledged:.3f} "
                            f"while lock {earlier.lock_id} ({earlier.client}) held it until at least "
                            f"{earlier.held_until_at_least:.3f}",
                        )
                    )
    by_acknowledgement = sorted(grants, key=lambda grant: grant.acknowledged)
    by_request = sorted(grants, key=lambda grant: grant.requested)
    # For each grant b, the largest id among grants acknowledged before b was requested must be smaller.
    largest_before = -1
    position = 0
    for later in by_request:
        while position < len(by_acknowledgement) and by_acknowledgement[position].acknowledged < later.requested:
            largest_before = max(largest_before, by_acknowledgement[position].lock_id)
            position += 1
        if largest_before >= later.lock_id:
            violations.append(
                Violation("id order", f"lock {later.lock_id} requested at {later.requested:.3f}, after a grant "
                                      f"with id {largest_before} was acknowledged")
            )
    return violations
