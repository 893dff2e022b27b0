"""lockstore instances in etcd mode for tests: each with its own client, caches and tasks.

`instance(...)` runs one EtcdState (the lock and store actors of etcd mode) in the caller's trio run;
several of them on one cluster behave like several lockstore processes, except that they share the
event loop (tests/etcd/test_processes.py runs separate OS processes too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from actors.clock import Clock, SystemClock
from actors.etcd.client import EtcdConfig
from actors.etcd.cluster import EtcdState
from actors.etcd.errors import lone_errors
from actors.etcd.expiry import ExpirySettings
from actors.etcd.keys import KeyLayout
from actors.etcd.replica import CacheSettings

# Short enough that a stalled watch or a dead member costs a test seconds, not minutes.
TEST_CACHE = CacheSettings(catch_up=15.0, stall=1.0, page_size=500)
TEST_EXPIRY = ExpirySettings(lease_ttl=3, batch=100)


def config(endpoints: Sequence[str], **overrides: object) -> EtcdConfig:
    settings: dict[str, object] = {"endpoints": tuple(endpoints), "request_timeout": 2.0, "connect_timeout": 1.0,
                                   "deadline": 20.0}
    settings.update(overrides)
    return EtcdConfig(**settings)  # type: ignore[arg-type]


@asynccontextmanager
async def instance(
    endpoints: Sequence[str],
    layout: KeyLayout,
    *,
    name: str = "instance",
    clock: Clock | None = None,
    cache: CacheSettings = TEST_CACHE,
    expiry: ExpirySettings = TEST_EXPIRY,
    **client: object,
) -> AsyncIterator[EtcdState]:
    """A running etcd-mode instance (both caches loaded); stopped and closed on exit."""
    state = EtcdState(config(endpoints, **client), layout, clock or SystemClock(), instance_name=name, cache=cache,
                      expiry=expiry)
    try:
        with lone_errors():  # a start-up failure comes out as itself, as it does from EtcdState.run
            async with trio.open_nursery() as nursery:
                await nursery.start(state.run)
                try:
                    yield state
                finally:
                    state.close()
    finally:
        await state.aclose()
