"""What the operations layer may ask of the lock and store actors, whichever backend holds the state.

Two implementations each: the local mode's LockActor / StoreActor (tables in memory, write-ahead log on
disk) and the etcd mode's EtcdLockActor / EtcdStoreActor (actors/etcd/: tables cached from an etcd
cluster). The same request gives the same answer and the same `Rejected` message on both; failures
of the backend are `Unavailable` (or the log's LogUnavailable, ActorStopped at shutdown), which the
transports turn into 503s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import trio

from actors.records import Lock, LockFilter, NewLock, NewRule, PageRequest, Rule, RuleFilter
from actors.runtime import Mailbox


class LockService(Protocol):
    @property
    def mailbox(self) -> Mailbox:
        """The actor's mailbox (metrics read its depth)."""
        ...

    @property
    def purged(self) -> int:
        """Expired locks this instance removed."""
        ...

    async def create(self, locks: Sequence[NewLock]) -> list[Lock]: ...

    async def query(self, lock_filter: LockFilter, page: PageRequest) -> tuple[list[Lock], int]: ...

    async def remove(self, owner: str, service_instance_ids: Sequence[str]) -> int: ...

    async def count(self) -> int: ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None: ...


class StoreService(Protocol):
    @property
    def mailbox(self) -> Mailbox: ...

    async def query(self, rule_filter: RuleFilter, page: PageRequest) -> tuple[list[Rule], int]: ...

    async def create(self, rules: Sequence[NewRule], requester: str) -> list[Rule]: ...

    async def modify_priorities(self, priorities: Mapping[str, int], requester: str) -> list[Rule]: ...

    async def remove(self, ids: Sequence[str]) -> int: ...

    async def count(self) -> int: ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None: ...


if TYPE_CHECKING:  # mypy checks that both backends keep matching the faces above

    from actors.etcd.lock_backend import EtcdLockActor
    from actors.etcd.store_backend import EtcdStoreActor
    from actors.lock_actor import LockActor
    from actors.store_actor import StoreActor

    def _conforms(
        local_locks: LockActor, etcd_locks: EtcdLockActor, local_store: StoreActor, etcd_store: EtcdStoreActor
    ) -> tuple[LockService, LockService, StoreService, StoreService]:
        return local_locks, etcd_locks, local_store, etcd_store
