"""One instance's etcd backend, composed: the client, the lock and store actors, and their health.

What the service's composition root does with it in etcd mode (docs/multi-instance.md, "Wiring"):

    state = EtcdState(config, KeyLayout.from_prefix(prefix), clock, instance_name=...)
    await state.check_limits(max_batch, WorstCase(...))   # ClusterLimitsTooSmall: a one-line start-up error
    await nursery.start(state.run)                        # both caches loaded
    ... Operations(state.locks, state.store, ...) ...
    state.close()                                         # at shutdown, after the transports stopped
    await state.aclose()                                  # once run() has returned

`readiness()` is /health/ready's etcd part; `stats`, `locks.status()`, `store.status()` and
`locks.expiry` hold what /metrics reads.

May import: trio; the faces of actors.etcd (.client, .keys, .lock_backend, .store_backend, .expiry, .replica,
.limits, .stats, .errors); actors.clock, actors.errors. Never transports or bench.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from actors.clock import Clock
from actors.errors import Unavailable
from actors.etcd.client import EtcdClient, EtcdConfig
from actors.etcd.errors import lone_errors
from actors.etcd.expiry import ExpirySettings
from actors.etcd.keys import KeyLayout
from actors.etcd.limits import WorstCase, check_cluster_limits
from actors.etcd.lock_backend import EtcdLockActor
from actors.etcd.replica import CacheSettings
from actors.etcd.stats import EtcdStats
from actors.etcd.store_backend import EtcdStoreActor, random_rule_id


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


class EtcdState:
    def __init__(
        self,
        config: EtcdConfig,
        layout: KeyLayout,
        clock: Clock,
        *,
        instance_name: str,
        cache: CacheSettings | None = None,
        expiry: ExpirySettings | None = None,
        new_rule_id: Callable[[], str] = random_rule_id,
    ) -> None:
        self.layout = layout
        self.stats = EtcdStats()
        self.client = EtcdClient(config, stats=self.stats)
        self.locks = EtcdLockActor(
            self.client, layout, clock, cache=cache, expiry=expiry, instance_name=instance_name
        )
        self.store = EtcdStoreActor(self.client, layout, clock, new_id=new_rule_id, cache=cache)

    async def check_limits(self, max_batch: int, worst: WorstCase | None = None) -> None:
        await check_cluster_limits(self.client, self.layout, max_batch, worst)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Both actors; started once both caches are loaded; returns after `close()` once both drained."""
        with lone_errors():  # start-up errors (a refused password, say) come out as themselves
            async with trio.open_nursery() as nursery:
                await nursery.start(self.locks.run)
                await nursery.start(self.store.run)
                task_status.started()

    def close(self) -> None:
        self.locks.close()
        self.store.close()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def readiness(self, timeout: float = 1.0) -> list[Check]:
        """etcd answers a quorum read, and each cache has caught up with it, within `timeout` seconds."""
        checks: list[Check] = []
        for name, replica in (("locks", self.locks.replica), ("rules", self.store.replica)):
            status = replica.status()
            if not status.loaded:
                checks.append(Check(f"etcd_cache_{name}", False, "not loaded yet"))
                continue
            try:
                with trio.fail_after(timeout):
                    await replica.fresh()
            except trio.TooSlowError:
                checks.append(Check(f"etcd_cache_{name}", False, f"not current within {timeout:g} s "
                                    f"(at revision {status.applied_revision}; {status.last_error or 'no error'})"))
            except Unavailable as error:
                checks.append(Check(f"etcd_cache_{name}", False, str(error)))
            else:
                checks.append(Check(f"etcd_cache_{name}", True, f"revision {replica.gate.applied}"))
        reachable = all(check.ok for check in checks) or (self.client.last_success is not None and (
            trio.current_time() - self.client.last_success < timeout
        ))
        detail = self.client.current_endpoint if reachable else self.client.last_error
        checks.insert(0, Check("etcd", reachable, detail))
        return checks
