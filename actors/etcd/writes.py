"""One client write in etcd mode: plan on the cache, commit as one guarded txn, re-plan when it loses.

    plan in the actor (LockTable / RuleTable `plan_*`: the local mode's checks and messages) -> txn
    whose compares guard the plan -> success: wait until the cache has applied the txn's revision,
    answer -> compares failed: wait until the cache has the change that beat us (the revision the
    txn's failure branch read), plan again -> ...

So each request is answered as if it had run alone at one instant (serialisable in etcd's order, and
linearizable: a txn commits after the request began). A rejection is a read, so it is only given
from a cache that passed the read barrier (or caught up with a failed txn) after the request began;
see `guarded` for which writes may plan optimistically first.

A txn whose answer was lost (`OutcomeUnknown`) may have committed, or may still commit. Retrying it
blindly could answer "Already locked" about the request's own lock, so `resolve` first reads back
the keys the request wrote, looking for its token (values.py): found, the request succeeded at that
revision; not found, it is planned again — and the later attempt's compares cannot pass if the lost
one commits after all (both write the same keys, planned on the same state), so at most one applies.
Attempts are bounded; after that the client gets 503 and must retry (docs/multi-instance.md).

May import: trio; actors.etcd.wire, .client, .errors, .replica; actors.errors. Never transports or bench.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import trio

from actors.errors import Rejected, Unavailable
from actors.etcd import wire
from actors.etcd.client import EtcdClient
from actors.etcd.errors import OutcomeUnknown
from actors.etcd.replica import Cache, Replica

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
C = TypeVar("C", bound=Cache)

MAX_ATTEMPTS = 24  # conflicts + unknown outcomes, per request
QUIET_CONFLICTS = 3  # after this many conflicts in a row, wait a little (random) before planning again


class Attempt(Protocol[T_co]):
    """A planned write: its txn, and the answer once it committed at a revision."""

    @property
    def txn(self) -> wire.TxnRequest: ...

    def result(self, revision: int) -> T_co: ...


@dataclass(frozen=True)
class Done(Generic[T]):
    """The plan needs no write (nothing to change): this is the answer."""

    value: T


class TooMuchContention(Unavailable):
    """Other instances kept changing what a request read: it gave up (503; the client retries)."""


def conflict_revision(reply: wire.TxnResponse) -> int:
    """The table's revision when a txn's compares failed: what the cache must reach to re-plan (the
    failure branch of every write txn reads the table's marker)."""
    for op in reply.responses:
        if op.response_range is not None and op.response_range.kvs:
            return op.response_range.kvs[0].mod_revision
    return 0


async def write(
    replica: Replica[C],
    client: EtcdClient,
    plan: Callable[[C], Attempt[T] | Done[T]],
    resolve: Callable[[Sequence[Attempt[T]]], Awaitable[tuple[Attempt[T], int] | None]] | None = None,
    *,
    guarded: bool = False,
    rng: random.Random | None = None,
) -> T:
    """Run one write request to its answer (raises Rejected with the local mode's message, or Unavailable).

    `guarded`: every record the plan reads is guarded by a compare of its txn (creates, modifies), so
    a plan made on a stale cache can only fail its compares, never succeed wrongly: such a write is
    first planned on the cache as it is, and pays for the read barrier only when its answer is a
    rejection or needs no txn (those answers are reads). A remove, which simply does not see records
    missing from a stale cache, plans on a fresh one from the start."""
    stats = client.stats
    unknown: list[Attempt[T]] = []
    conflicts = 0
    fresh = not guarded
    if fresh:
        await replica.fresh()
    attempts = 0
    while attempts < MAX_ATTEMPTS:
        try:
            planned = await replica.ask(plan)
        except Rejected:
            found = await _resolved(unknown, resolve, replica, client)
            if found is not None:
                return found
            if not fresh:  # a rejection is a read: it must see every write acknowledged before it
                fresh = True
                await replica.fresh()
                continue
            raise
        if isinstance(planned, Done):
            if not fresh:
                fresh = True
                await replica.fresh()
                continue
            return planned.value
        if attempts:
            stats.write_retries += 1
        attempts += 1
        try:
            reply = await client.txn(planned.txn)
        except OutcomeUnknown:
            unknown.append(planned)
            found = await _resolved(unknown, resolve, replica, client)
            if found is not None:
                return found
            fresh = True
            await replica.fresh()
            continue
        if reply.succeeded:
            await replica.caught_up(reply.header.revision)
            return planned.result(reply.header.revision)
        stats.txn_conflicts += 1
        conflicts += 1
        found = await _resolved(unknown, resolve, replica, client)
        if found is not None:
            return found
        # The failure branch read the table's marker after the request began: a cache that has reached
        # it is as fresh as a read barrier would make it.
        fresh = True
        beaten_by = conflict_revision(reply)
        if beaten_by > replica.gate.applied:
            await replica.caught_up(beaten_by)
        else:  # the failure branch saw nothing newer than the cache: ask the cluster
            await replica.fresh()
        if conflicts > QUIET_CONFLICTS:
            await trio.sleep((rng or random).uniform(0, 0.005 * conflicts))
    raise TooMuchContention(f"gave up after {MAX_ATTEMPTS} attempts: other instances kept changing the same records")


async def _resolved(
    unknown: Sequence[Attempt[T]],
    resolve: Callable[[Sequence[Attempt[T]]], Awaitable[tuple[Attempt[T], int] | None]] | None,
    replica: Replica[C],
    client: EtcdClient,
) -> T | None:
    """If one of the attempts whose outcome was lost did commit, its answer (once the cache has it)."""
    if not unknown or resolve is None:
        return None
    found = await resolve(unknown)
    if found is None:
        return None
    attempt, revision = found
    client.stats.unknown_committed += 1
    await replica.caught_up(revision)
    return attempt.result(revision)
