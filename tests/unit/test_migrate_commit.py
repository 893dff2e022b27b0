"""`lockstore migrate`'s txn loop (transports/migrate.py `commit_records`) against a model of etcd's txns
(tests/unit/etcd_model.py) whose answers get lost: a txn whose answer was lost is settled by reading its
keys back, never applied twice, also when it commits only after its retry was sent; keys someone else
holds are counted and left alone. (The real cluster runs the whole command: tests/etcd/test_migrate.py.)"""

from __future__ import annotations

from collections.abc import Callable

from actors.etcd import lock_txns, wire
from actors.etcd.errors import OutcomeUnknown
from actors.etcd.keys import KeyLayout
from actors.etcd.values import encode_lock
from actors.records import Lock
from tests.unit.etcd_model import ModelEtcd
from transports.migrate import Report, commit_records

LAYOUT = KeyLayout.from_prefix("m/")


class LossyEtcd:
    """The model behind a link that loses answers: `plan` says, per txn sent, what happens to it —
    "ok", "lost" (applied, answer lost), "dropped" (never applied, answer lost) or "late" (not applied
    now, not seen by the read-back that follows; applied just before the next writing txn arrives)."""

    def __init__(self, plan: list[str]) -> None:
        self.model = ModelEtcd()
        self.plan = plan
        self.sent: list[wire.TxnRequest] = []
        self._late: wire.TxnRequest | None = None

    async def txn(self, request: wire.TxnRequest) -> wire.TxnResponse:
        writes = any(op.request_put is not None for op in request.success)
        if self._late is not None and writes:
            self.model.txn(self._late)
            self._late = None
        fate = self.plan.pop(0) if writes and self.plan else "ok"
        if writes:
            self.sent.append(request)
        if fate == "dropped":
            raise OutcomeUnknown("request timed out")
        if fate == "late":
            self._late = request
            raise OutcomeUnknown("request timed out")
        reply = self.model.txn(request)
        if fate == "lost":
            raise OutcomeUnknown("connection lost after sending")
        return reply


def locks(count: int) -> list[Lock]:
    return [Lock(0, f"I{n}|svc|1.0.0", "Owner", 4_000_000_000) for n in range(count)]


def keys_of(pending: list[Lock]) -> list[bytes]:
    return [LAYOUT.lock_key(lock.service_instance_id) for lock in pending]


def build() -> Callable[[list[Lock], str], wire.TxnRequest]:
    return lambda pending, token: lock_txns.create_txn(LAYOUT, pending, {}, token)


async def run(etcd: LossyEtcd, records: list[Lock]) -> tuple[list[tuple[list[Lock], int]], int]:
    return await commit_records(etcd, records, build(), keys_of, Report())  # type: ignore[arg-type]


def stored(etcd: LossyEtcd) -> list[bytes]:
    return [kv.key for kv in etcd.model.list(LAYOUT.lock_records)]


async def test_a_lost_answer_of_an_applied_txn_is_found_and_not_applied_again() -> None:
    etcd = LossyEtcd(["lost"])
    written, present = await run(etcd, locks(3))
    assert present == 0 and len(etcd.sent) == 1  # settled by the read-back: nothing sent twice
    (group, revision), = written
    assert [lock.service_instance_id for lock in group] == [f"I{n}|svc|1.0.0" for n in range(3)]
    assert revision == etcd.model.kvs[LAYOUT.lock_key("I0|svc|1.0.0")].mod_revision
    assert len(stored(etcd)) == 3


async def test_a_txn_that_was_never_applied_is_sent_again() -> None:
    etcd = LossyEtcd(["dropped", "dropped"])
    written, present = await run(etcd, locks(2))
    assert len(etcd.sent) == 3 and present == 0 and len(written) == 1 and len(stored(etcd)) == 2


async def test_a_txn_applied_after_its_retry_was_sent_is_the_one_that_counts() -> None:
    etcd = LossyEtcd(["late"])
    written, present = await run(etcd, locks(2))
    # The retry lost its race to the late one (its keys were taken); the read-back found the first token.
    assert len(etcd.sent) == 2 and present == 0
    (group, revision), = written
    first_token = etcd.sent[0].success[0].request_put
    assert first_token is not None
    kv = etcd.model.kvs[LAYOUT.lock_key("I0|svc|1.0.0")]
    assert kv.value == first_token.value and revision == kv.mod_revision
    assert len(group) == 2 and len(stored(etcd)) == 2


async def test_keys_someone_else_holds_are_counted_and_left_alone() -> None:
    etcd = LossyEtcd([])
    foreign = Lock(0, "I1|svc|1.0.0", "Someone", 4_000_000_000)
    etcd.model.txn(wire.TxnRequest(success=[wire.put(LAYOUT.lock_key(foreign.service_instance_id),
                                                     encode_lock(foreign, 0, "other-writer"))]))
    written, present = await run(etcd, locks(3))
    assert present == 1
    (group, _), = written
    assert [lock.service_instance_id for lock in group] == ["I0|svc|1.0.0", "I2|svc|1.0.0"]
    assert b"Someone" in etcd.model.kvs[LAYOUT.lock_key("I1|svc|1.0.0")].value  # untouched
