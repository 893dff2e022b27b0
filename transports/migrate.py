"""`lockstore migrate --data-dir D --to-etcd ...`: move a stopped single-instance service's state into an
etcd cluster, in the key layout etcd mode serves (docs/multi-instance.md).

- The data directory is read without changing it (transports/migrate_source.py): the state a service
  started on it would serve.
- The prefix must be empty (no record, no running instance) unless `--allow-non-empty`: then records
  whose keys already exist there (the same service instance locked, the same rule id or the same
  consumer/definition/priority) are left as they are and counted.
- Records are written in txns of `--batch` records (default 50: a rule create of 50 is 101 operations,
  within etcd's default --max-txn-ops of 128), each txn the one etcd mode's own create would send
  (compares that the keys are free, the table's revision marker), after the cluster's limits were
  checked for that batch. A txn whose answer is lost is settled by reading its keys back, never sent
  twice blindly (as in actors/etcd/writes.py).
- **Lock ids change**: in etcd mode an id is the granting txn's revision × 100,000 + its place in the
  txn. Before the locks are written the cluster's revision is raised (empty writes of the locks'
  revision marker) until every new id is larger than every id the local log ever granted, so ids
  stay growing fencing tokens across the move. `--id-map FILE` writes old → new per lock.
- Expired locks are not moved (a service would have purged them); rules keep their ids and times.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TypeVar

import msgspec

from actors.etcd import lock_txns, rule_txns, wire
from actors.etcd.client import EtcdClient
from actors.etcd.errors import OutcomeUnknown
from actors.etcd.keys import KeyLayout
from actors.etcd.limits import check_cluster_limits
from actors.etcd.values import LOCK_IDS_PER_REVISION, request_of
from actors.records import Lock, Rule
from transports.config.settings import Settings
from transports.etcd_mode import WORST_CASE, etcd_config
from transports.migrate_source import LocalState
from transports.startup import CONFIGURATION, StartupError

DEFAULT_BATCH = 50
R = TypeVar("R", Lock, Rule)


class MigrationRefused(StartupError):
    """The migration cannot start or go on; one line, with the exit status (2: settings, 1: runtime)."""


@dataclass
class Report:
    locks_held: int = 0
    locks_expired: int = 0  # not moved
    locks_written: int = 0
    locks_present: int = 0  # already in etcd (--allow-non-empty): left as they are
    rules_written: int = 0
    rules_present: int = 0
    txns: int = 0
    revision_raised_by: int = 0
    id_map: list[tuple[Lock, int]] = field(default_factory=list)  # (local lock, its new id)
    seconds: float = 0.0

    def lines(self, prefix: str, endpoints: str) -> list[str]:
        ids = ""
        if self.id_map:
            news = [new for _, new in self.id_map]
            ids = (f"; lock ids are new (etcd mode's fencing tokens, all larger than any the local log granted): "
                   f"{min(news)} to {max(news)}")
        return [
            f"locks: {self.locks_held} held, {self.locks_expired} expired (not moved), {self.locks_written} written"
            f"{f', {self.locks_present} already in etcd (left as they are)' if self.locks_present else ''}{ids}",
            f"rules: {self.rules_written} written"
            f"{f', {self.rules_present} already in etcd (left as they are)' if self.rules_present else ''}",
            f"into etcd {endpoints} under prefix {prefix!r} in {self.txns} txns"
            f"{f' (cluster revision raised by {self.revision_raised_by} first)' if self.revision_raised_by else ''}"
            f", {self.seconds:.2f} s",
        ]


def write_id_map(report: Report, out: IO[str]) -> None:
    """One JSON object per moved lock: {"serviceInstanceId", "owner", "old", "new"}."""
    encode = msgspec.json.Encoder().encode
    for lock, new in report.id_map:
        out.write(encode({"serviceInstanceId": lock.service_instance_id, "owner": lock.owner, "old": lock.id,
                          "new": new}).decode() + "\n")


async def migrate(settings: Settings, state: LocalState, now: float, *, batch: int = DEFAULT_BATCH,
                  allow_non_empty: bool = False) -> Report:
    """Write `state` into the cluster of `settings` (etcd_endpoints, etcd_prefix, TLS, user)."""
    started = time.perf_counter()
    layout = KeyLayout.from_prefix(settings.etcd_prefix)
    report = Report()
    all_locks = list(state.locks.locks())
    locks = [lock for lock in all_locks if lock.expires_at > now]
    report.locks_held, report.locks_expired = len(all_locks), len(all_locks) - len(locks)
    rules = list(state.store.rules())
    async with EtcdClient(etcd_config(settings)) as client:
        occupied = await client.range(wire.RangeRequest(layout.prefix, wire.prefix_end(layout.prefix), count_only=True))
        if occupied.count and not allow_non_empty:
            raise MigrationRefused(
                f"etcd_prefix {settings.etcd_prefix!r} already holds {occupied.count} keys (records, or a running "
                "instance): refusing to migrate into it; stop its instances and choose an empty prefix, or add "
                "--allow-non-empty to keep what is there and add the rest", CONFIGURATION)
        await check_cluster_limits(client, layout, batch, WORST_CASE)
        if locks:
            report.revision_raised_by = await raise_revision(client, layout, state.locks.next_id - 1)
        for chunk in _chunks(locks, batch):
            written, present = await commit_records(
                client, chunk, lambda pending, token: lock_txns.create_txn(layout, pending, {}, token),
                lambda pending: [layout.lock_key(lock.service_instance_id) for lock in pending], report)
            report.locks_written += sum(len(group) for group, _ in written)
            report.locks_present += present
            for group, revision in written:
                report.id_map += [(lock, new.id) for lock, new in zip(group, lock_txns.granted(group, revision),
                                                                      strict=True)]
        for rule_chunk in _chunks(rules, batch):
            rules_written, present = await commit_records(
                client, rule_chunk, lambda pending, token: rule_txns.create_txn(layout, pending, token),
                lambda pending: [key for rule in pending for key in (layout.rule_key(rule.id),
                                                                     rule_txns.slot_of(layout, rule))], report)
            report.rules_written += sum(len(group) for group, _ in rules_written)
            report.rules_present += present
        if not allow_non_empty and (report.locks_present or report.rules_present):
            raise MigrationRefused(f"etcd_prefix {settings.etcd_prefix!r}: another writer added records while "
                                   "the migration ran; what was written stays (see the counts with "
                                   "--allow-non-empty)", 1)
    report.seconds = time.perf_counter() - started
    return report


def _chunks(records: Sequence[R], size: int) -> list[list[R]]:
    return [list(records[start:start + size]) for start in range(0, len(records), size)]


async def raise_revision(client: EtcdClient, layout: KeyLayout, largest_local_id: int) -> int:
    """Put the locks' marker until the next txn's revision makes every new lock id larger than
    `largest_local_id`; how many puts it took."""
    needed = largest_local_id // LOCK_IDS_PER_REVISION + 1  # lock_id(needed, 0) > largest_local_id
    bump = wire.TxnRequest(success=[wire.put(layout.locks_marker)])
    revision = (await client.range(wire.RangeRequest(layout.locks_marker))).header.revision
    puts = 0
    while revision + 1 < needed:
        try:
            revision = (await client.txn(bump)).header.revision
        except OutcomeUnknown:  # harmless if it applied: read where the cluster is
            revision = (await client.range(wire.RangeRequest(layout.locks_marker))).header.revision
        puts += 1
    return puts


async def commit_records(
    client: EtcdClient,
    records: list[R],
    build: Callable[[list[R], str], wire.TxnRequest],
    keys_of: Callable[[list[R]], list[bytes]],
    report: Report,
) -> tuple[list[tuple[list[R], int]], int]:
    """Write `records` in one txn, or as many as are not in etcd yet. Returns ([(records written together,
    revision)], how many were present already). A lost answer is settled by reading the keys back: an
    earlier attempt of this call that applied shows its token there."""
    pending = records
    attempts: dict[str, list[R]] = {}
    written: list[tuple[list[R], int]] = []
    present = 0
    while pending:
        token = secrets.token_hex(8)
        attempts[token] = pending
        try:
            reply = await client.txn(build(pending, token))
            report.txns += 1
            if reply.succeeded:
                written.append((pending, reply.header.revision))
                return written, present
        except OutcomeUnknown:
            pass  # applied or not: the read below tells
        applied, foreign = await read_back(client, keys_of, pending, attempts)
        for token_seen, revision in applied:
            group = attempts[token_seen]
            written.append((group, revision))
        done = {id(record) for group, _ in written for record in group}
        remaining = [record for record in pending if id(record) not in done]
        present += sum(1 for record in remaining if foreign(record))
        pending = [record for record in remaining if not foreign(record)]
    return written, present


async def read_back(
    client: EtcdClient, keys_of: Callable[[list[R]], list[bytes]], pending: list[R], attempts: dict[str, list[R]],
) -> tuple[list[tuple[str, int]], Callable[[R], bool]]:
    """Which of this call's attempts applied (token, revision), and a test for records whose keys someone
    else holds."""
    reply = await client.txn(wire.TxnRequest(success=[wire.get(key) for key in keys_of(pending)]))
    held: dict[bytes, wire.KeyValue] = {}
    for op in reply.responses:
        if op.response_range is not None:
            for kv in op.response_range.kvs:
                held[kv.key] = kv
    applied: dict[str, int] = {}
    for kv in held.values():
        token = request_of(kv.value)
        if token in attempts:
            applied[token] = kv.mod_revision
    ours = {key for token in applied for key in keys_of(attempts[token])}

    def foreign(record: R) -> bool:
        return any(key in held and key not in ours for key in keys_of([record]))

    return list(applied.items()), foreign

