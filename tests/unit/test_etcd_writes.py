"""The write loop (actors/etcd/writes.py) with a scripted cache and a scripted etcd: when it pays for the
read barrier, how it re-plans after losing a race, how it settles a txn whose answer was lost, and that
it gives up after a bounded number of attempts. No sockets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from actors.errors import Rejected
from actors.etcd import wire
from actors.etcd.errors import OutcomeUnknown
from actors.etcd.stats import EtcdStats
from actors.etcd.writes import MAX_ATTEMPTS, Attempt, Done, TooMuchContention, write


@dataclass
class Gate:
    applied: int = 0


@dataclass
class ScriptedReplica:
    """A cache at some revision; `fresh()` moves it to the cluster's newest state."""

    revision: int
    newest: int
    log: list[str] = field(default_factory=list)
    gate: Gate = field(default_factory=Gate)

    async def fresh(self) -> None:
        self.log.append("fresh")
        self.revision = self.gate.applied = self.newest

    async def caught_up(self, revision: int) -> None:
        self.log.append(f"caught_up {revision}")
        self.revision = self.gate.applied = max(self.revision, revision)

    async def ask(self, message: Callable[[int], Any]) -> Any:
        return message(self.revision)


@dataclass
class ScriptedEtcd:
    replies: list[wire.TxnResponse | Exception]
    stats: EtcdStats = field(default_factory=EtcdStats)
    sent: int = 0

    async def txn(self, request: wire.TxnRequest) -> wire.TxnResponse:
        self.sent += 1
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


@dataclass(frozen=True)
class Planned:
    at: int
    txn: wire.TxnRequest = field(default_factory=wire.TxnRequest)

    def result(self, revision: int) -> str:
        return f"planned at {self.at}, committed at {revision}"


def won(revision: int) -> wire.TxnResponse:
    return wire.TxnResponse(header=wire.ResponseHeader(revision=revision), succeeded=True)


def lost(marker: int) -> wire.TxnResponse:
    marker_kv = wire.RangeResponse(kvs=[wire.KeyValue(b"m", mod_revision=marker)])
    return wire.TxnResponse(succeeded=False, responses=[wire.ResponseOp(response_range=marker_kv)])


def locked_before(revision: int) -> Callable[[int], Planned]:
    """A create whose instance was locked in every state before `revision` (then freed by someone)."""

    def plan(at: int) -> Planned:
        if at < revision:
            raise Rejected("Already locked: P")
        return Planned(at)

    return plan


async def run(replica: ScriptedReplica, etcd: ScriptedEtcd, plan: Callable[[int], Planned | Done[str]],
              resolve: Callable[[Sequence[Attempt[str]]], Any] | None = None, *, guarded: bool) -> str:
    return await write(replica, etcd, plan, resolve, guarded=guarded)  # type: ignore[arg-type]


async def test_a_guarded_write_plans_on_the_cache_first_and_pays_the_barrier_only_to_reject() -> None:
    replica, etcd = ScriptedReplica(revision=5, newest=9), ScriptedEtcd([won(10)])
    assert await run(replica, etcd, locked_before(0), guarded=True) == "planned at 5, committed at 10"
    assert replica.log == ["caught_up 10"]  # no barrier on the way: one round trip, the txn

    # The stale cache still shows the instance locked, though another instance freed it (revision 8):
    # the rejection would be a stale read, so the barrier comes first, and the create goes through.
    replica, etcd = ScriptedReplica(revision=5, newest=9), ScriptedEtcd([won(10)])
    assert await run(replica, etcd, locked_before(8), guarded=True) == "planned at 9, committed at 10"
    assert replica.log == ["fresh", "caught_up 10"]


async def test_a_rejection_on_a_fresh_cache_is_the_answer() -> None:
    replica, etcd = ScriptedReplica(revision=5, newest=9), ScriptedEtcd([])
    with pytest.raises(Rejected, match="Already locked"):
        await run(replica, etcd, locked_before(100), guarded=True)
    assert replica.log == ["fresh"] and etcd.sent == 0


async def test_no_change_is_a_read_too() -> None:
    replica, etcd = ScriptedReplica(revision=5, newest=9), ScriptedEtcd([])

    def plan(at: int) -> Done[str]:
        return Done(f"as of {at}")

    assert await run(replica, etcd, plan, guarded=True) == "as of 9"
    assert replica.log == ["fresh"]


async def test_an_unguarded_write_plans_on_a_fresh_cache() -> None:
    replica, etcd = ScriptedReplica(revision=5, newest=9), ScriptedEtcd([won(10)])
    assert await run(replica, etcd, locked_before(0), guarded=False) == "planned at 9, committed at 10"
    assert replica.log == ["fresh", "caught_up 10"]


async def test_a_lost_race_catches_up_with_the_winner_and_plans_again() -> None:
    replica, etcd = ScriptedReplica(revision=5, newest=5), ScriptedEtcd([lost(7), won(8)])
    assert await run(replica, etcd, locked_before(0), guarded=True) == "planned at 7, committed at 8"
    assert replica.log == ["caught_up 7", "caught_up 8"]
    assert etcd.stats.txn_conflicts == 1 and etcd.stats.write_retries == 1


async def test_a_lost_answer_that_was_applied_is_the_answer() -> None:
    replica, etcd = ScriptedReplica(revision=5, newest=5), ScriptedEtcd([OutcomeUnknown("timeout")])
    asked: list[int] = []

    async def resolve(unknown: Sequence[Attempt[str]]) -> tuple[Attempt[str], int] | None:
        asked.append(len(unknown))
        return unknown[-1], 6

    assert await run(replica, etcd, locked_before(0), resolve, guarded=True) == "planned at 5, committed at 6"
    assert asked == [1] and etcd.sent == 1  # never sent twice
    assert etcd.stats.unknown_committed == 1


async def test_a_lost_answer_that_was_not_applied_is_planned_again_and_checked_after_a_conflict() -> None:
    replica, etcd = ScriptedReplica(revision=5, newest=6), ScriptedEtcd([OutcomeUnknown("timeout"), lost(7)])
    looks: list[int] = []

    async def resolve(unknown: Sequence[Attempt[str]]) -> tuple[Attempt[str], int] | None:
        looks.append(len(unknown))
        if len(looks) == 1:
            return None  # right after the lost answer: not applied (yet)
        return unknown[0], 7  # after the second attempt lost its race: the first one did commit, late

    assert await run(replica, etcd, locked_before(0), resolve, guarded=True) == "planned at 5, committed at 7"
    assert looks == [1, 1] and etcd.sent == 2
    assert replica.log == ["fresh", "caught_up 7"]


async def test_endless_conflicts_give_up_with_a_503() -> None:
    replica = ScriptedReplica(revision=1, newest=1)
    etcd = ScriptedEtcd([lost(2 + n) for n in range(MAX_ATTEMPTS)])
    with trio.fail_after(10), pytest.raises(TooMuchContention, match=f"gave up after {MAX_ATTEMPTS} attempts"):
        await run(replica, etcd, locked_before(0), guarded=True)
    assert etcd.sent == MAX_ATTEMPTS
