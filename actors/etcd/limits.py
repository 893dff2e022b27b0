"""Does a create of `max_batch` records fit in one etcd txn on this cluster? Asked once, at start-up.

A bulk create is all-or-nothing because it is one txn, so the cluster must accept the largest one
lockstore sends. etcd does not publish its limits; they are learnt by sending the largest txns for real,
made so that they can never apply (their first compare tests the value of a key that does not exist,
which is always false; every key is under `<prefix>probe/`). etcd checks the number of operations
(`--max-txn-ops`, default 128) when the request arrives and its size (`--max-request-bytes`, default
1.5 MiB) before proposing it, so a txn that fits passes both checks and then fails its compare,
changing nothing (not even the revision).

The largest txns, for n = max_batch (names of the longest lengths the validation allows):
- lock create: n compares, n + 1 puts (the locks, the marker);
- rule create: 2n compares, 2n + 1 puts (rule, slot; the marker).
So `--max-txn-ops` must be at least 2n + 1, and `--max-request-bytes` at least the larger txn's size
(about 330 bytes per rule at the longest names: see `needed`). The rule create needs more of both than
the lock create, so only it is sent (a probe that a larger one does not cover would be sent too): at
max_batch 1000 it is 1.5 MB of JSON, the bulk of a start-up's cost on a small cluster.

May import: actors.etcd.wire, .client, .errors, .keys, .lock_txns, .rule_txns, .values; actors.records. Never
transports or bench.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.etcd import lock_txns, rule_txns, wire
from actors.etcd.client import EtcdClient
from actors.etcd.errors import RESOURCE_EXHAUSTED, EtcdRequestError
from actors.etcd.keys import KeyLayout
from actors.etcd.values import LOCK_IDS_PER_REVISION
from actors.records import Lock, Rule

# proto encoding overhead of one op or compare (tags, lengths, the RequestOp wrapper): generous
_PER_OP_BYTES = 16


class ClusterLimitsTooSmall(Exception):
    """The cluster refuses a txn as large as a create of max_batch records; the message says what to set."""


@dataclass(frozen=True)
class WorstCase:
    """The longest values a request can carry (the wiring passes transports.api.names' limits)."""

    name_length: int = 63  # system names (owner, consumer, createdBy) and service definitions
    instance_length: int = 63 + 1 + 63 + 1 + 14  # provider|definition|version


def _probe_layout(layout: KeyLayout) -> KeyLayout:
    return KeyLayout(layout.probe)


def _never(txn: wire.TxnRequest, layout: KeyLayout) -> wire.TxnRequest:
    """The txn with its first compare replaced by one that is always false (same count of compares)."""
    impossible = wire.Compare(layout.probe + b"never", wire.VALUE, value=b"never")
    return wire.TxnRequest(compare=[impossible, *txn.compare[1:]], success=txn.success, failure=txn.failure)


def probe_txns(layout: KeyLayout, max_batch: int, worst: WorstCase) -> dict[str, wire.TxnRequest]:
    """The largest lock and rule create txns for `max_batch` records, made never to apply."""
    probe = _probe_layout(layout)
    name = "N" * worst.name_length
    expiry = 10**11  # far future, 12 digits
    locks = [
        Lock(id=0, service_instance_id=f"{i:0{worst.instance_length}d}", owner=name, expires_at=expiry)
        for i in range(max_batch)
    ]
    rules = [
        Rule(
            id=f"{i:08d}-0000-4000-8000-000000000000",
            consumer=name,
            service_definition=name,
            service_instance_id="I" * worst.instance_length,
            priority=2**31 - 1 - i,
            created_by=name,
            updated_by=name,
            created_at=expiry,
            updated_at=expiry,
        )
        for i in range(max_batch)
    ]
    token = "0" * 16
    return {
        "locks": _never(lock_txns.create_txn(probe, locks, {}, token), probe),
        "rules": _never(rule_txns.create_txn(probe, rules, token), probe),
    }


def needed(txn: wire.TxnRequest) -> tuple[int, int]:
    """(operations, bytes) etcd counts for a txn: the larger of its compare and op lists, and an
    estimate of its protobuf size (keys, values and a little per entry)."""
    ops = max(len(txn.compare), len(txn.success), len(txn.failure))
    size = sum(len(c.key) + len(c.value or b"") + _PER_OP_BYTES for c in txn.compare)
    for op in (*txn.success, *txn.failure):
        if op.request_put is not None:
            size += len(op.request_put.key) + len(op.request_put.value) + _PER_OP_BYTES
        elif op.request_range is not None:
            size += len(op.request_range.key) + _PER_OP_BYTES
    return ops, size


async def check_cluster_limits(
    client: EtcdClient, layout: KeyLayout, max_batch: int, worst: WorstCase | None = None
) -> None:
    """Raise ClusterLimitsTooSmall (the message names the etcd flag and the value it needs) unless the
    cluster accepts a create of `max_batch` locks and of `max_batch` rules as one txn each. Other etcd
    failures (unreachable, auth) propagate as they are."""
    if not 1 <= max_batch < LOCK_IDS_PER_REVISION:
        raise ClusterLimitsTooSmall(
            f"max_batch {max_batch} is out of range for etcd mode: a lock id holds the position of the lock in "
            f"its create request in its last digits (at most {LOCK_IDS_PER_REVISION - 1})"
        )
    txns = probe_txns(layout, max_batch, worst or WorstCase())
    ops_needed = max(needed(txn)[0] for txn in txns.values())
    bytes_needed = max(needed(txn)[1] for txn in txns.values())
    for what, txn in _largest_first(txns):
        try:
            reply = await client.txn(txn)
        except EtcdRequestError as error:
            message = str(error)
            if "too many operations" in message:
                raise ClusterLimitsTooSmall(
                    f"etcd refuses a create of max_batch={max_batch} {what} as one txn ({message}): start every "
                    f"etcd member with --max-txn-ops={ops_needed} or more, or lower max_batch"
                ) from None
            if "request is too large" in message or error.code == RESOURCE_EXHAUSTED:
                raise ClusterLimitsTooSmall(
                    f"etcd refuses a create of max_batch={max_batch} {what} as one txn ({message}): start every "
                    f"etcd member with --max-request-bytes={_round_up(bytes_needed)} or more, or lower max_batch"
                ) from None
            raise
        if reply.succeeded:  # cannot happen: its first compare is false
            raise RuntimeError("the limits probe txn applied; its keys under the probe prefix must be removed")


def _largest_first(txns: dict[str, wire.TxnRequest]) -> list[tuple[str, wire.TxnRequest]]:
    """The probes to send, largest first, leaving out any that needs no more operations and no more bytes
    than one already sent (if the larger fits, so does it: the rule create covers the lock create)."""
    chosen: list[tuple[str, wire.TxnRequest]] = []
    for what, txn in sorted(txns.items(), key=lambda item: needed(item[1]), reverse=True):
        ops, size = needed(txn)
        if not any(ops <= needed(sent)[0] and size <= needed(sent)[1] for _, sent in chosen):
            chosen.append((what, txn))
    return chosen


def _round_up(size: int) -> int:
    """A comfortable flag value: the size plus a quarter, rounded up to a whole KiB."""
    padded = size + size // 4
    return -(-padded // 1024) * 1024
