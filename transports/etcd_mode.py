"""The composition of etcd mode (`state = "etcd"`): the settings made into an `EtcdState`, the start-up
check of the cluster, and what each etcd refusal means as a one-line start-up error.

In etcd mode there is no write-ahead log, no snapshotter and no data directory: the records live in
etcd, each instance caches them (actors/etcd/, docs/multi-instance.md). transports/service.py calls:

    mode = EtcdMode.from_settings(settings, clock)   # bad etcd settings or files: StartupError (exit 2)
    await mode.check()                               # the limits probe, before any nursery: StartupError
    await mode.start(nursery)                        # both caches listed and watching
    ... Operations(mode.state.locks, mode.state.store, ...) ...
    mode.stop()                                      # after the transports stopped: queued requests answered
    await mode.aclose()                              # once the nursery is done: the HTTP connections to etcd

Start-up errors (transports/startup.py's exit statuses): a cluster whose limits are too small for
`max_batch`, a refused user name or password, a user without permission on the prefix are settings
problems (2: restarting will not help); no member answering is a runtime problem (1).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import trio

from actors.clock import Clock
from actors.etcd.client import EtcdConfig
from actors.etcd.cluster import EtcdState
from actors.etcd.errors import (
    PERMISSION_DENIED,
    AuthenticationFailed,
    EtcdError,
    EtcdRequestError,
    EtcdUnavailable,
    lone_errors,
)
from actors.etcd.expiry import ExpirySettings
from actors.etcd.failover import parse_endpoints
from actors.etcd.keys import KeyLayout
from actors.etcd.limits import ClusterLimitsTooSmall, WorstCase
from actors.etcd.replica import CacheSettings
from transports.api.names import NAME_MAX_LENGTH, VERSION_MAX_LENGTH
from transports.config.settings import Settings
from transports.startup import CONFIGURATION, RUNTIME, StartupError

log = logging.getLogger("lockstore")

# The longest names a request can carry (transports/api/names.py): what the limits probe sends.
WORST_CASE = WorstCase(name_length=NAME_MAX_LENGTH, instance_length=2 * NAME_MAX_LENGTH + VERSION_MAX_LENGTH + 2)


def etcd_config(settings: Settings) -> EtcdConfig:
    """The client's configuration from the settings (already checked by their rules)."""
    return EtcdConfig(
        endpoints=parse_endpoints(settings.etcd_endpoints),
        ca=Path(settings.etcd_ca) if settings.etcd_ca else None,
        cert=Path(settings.etcd_cert) if settings.etcd_cert else None,
        key=Path(settings.etcd_key) if settings.etcd_key else None,
        username=settings.etcd_user,
        password=settings.etcd_password,
        request_timeout=settings.etcd_request_timeout,
        connect_timeout=min(2.0, settings.etcd_request_timeout),
        deadline=settings.etcd_deadline,
    )


def instance_name(settings: Settings) -> str:
    """What the expiry leader key says about its holder (`etcdctl get <prefix>expiry-leader`)."""
    return f"{socket.gethostname()}:{settings.port} pid {os.getpid()}"


def one_line(text: str) -> str:
    return " ".join(text.split())


def start_error(settings: Settings, error: EtcdError | ClusterLimitsTooSmall) -> StartupError:
    """The one-line start-up error for what etcd answered (or did not) at start-up."""
    where = ",".join(settings.etcd_endpoints)
    if isinstance(error, ClusterLimitsTooSmall):
        return StartupError(f"etcd {where}: {one_line(str(error))}", CONFIGURATION)
    if isinstance(error, AuthenticationFailed):
        who = f"etcd_user {settings.etcd_user!r}" if settings.etcd_user else "etcd_user (unset)"
        return StartupError(f"{who}: etcd {where} refuses it: {one_line(str(error))}", CONFIGURATION)
    if isinstance(error, EtcdRequestError) and error.code == PERMISSION_DENIED:
        return StartupError(
            f"etcd_prefix {settings.etcd_prefix!r}: etcd {where} refuses etcd_user {settings.etcd_user!r} "
            f"({one_line(str(error))}); grant it readwrite on the prefix: etcdctl role grant-permission ROLE "
            f"readwrite {settings.etcd_prefix} --prefix=true",
            CONFIGURATION,
        )
    if isinstance(error, EtcdUnavailable):
        return StartupError(f"etcd_endpoints {where}: {one_line(str(error))}", RUNTIME)
    return StartupError(f"etcd {where}: {one_line(str(error))}", RUNTIME)


@dataclass
class EtcdMode:
    settings: Settings
    state: EtcdState

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> EtcdMode:
        """Raises StartupError (exit 2) for a TLS file that cannot be used."""
        try:
            layout = KeyLayout.from_prefix(settings.etcd_prefix)
            state = EtcdState(
                etcd_config(settings), layout, clock, instance_name=instance_name(settings),
                cache=CacheSettings(catch_up=settings.etcd_catch_up, mailbox_capacity=settings.mailbox_capacity),
                expiry=ExpirySettings(skew_margin=settings.etcd_skew_margin,
                                      lease_ttl=settings.etcd_expiry_lease_ttl),
            )
        except ValueError as error:  # names the setting (etcd_ca, etcd_cert / etcd_key, etcd_prefix)
            raise StartupError(one_line(str(error)), CONFIGURATION) from None
        return cls(settings, state)

    async def check(self) -> None:
        """Check that the cluster takes a create of `max_batch` records as one txn (bounded by etcd_deadline
        when no member answers). Its txns also try the user, the password and the rights on the prefix.
        Each failure is a StartupError (the connections are closed first)."""
        endpoints = ",".join(self.settings.etcd_endpoints)
        log.info("state in etcd %s under prefix %r; checking the cluster", endpoints, self.settings.etcd_prefix)
        try:
            await self.state.check_limits(self.settings.max_batch, WORST_CASE)
        except (EtcdError, ClusterLimitsTooSmall) as error:
            await self.aclose()
            raise start_error(self.settings, error) from None

    async def start(self, nursery: trio.Nursery) -> None:
        """Start both caches in `nursery`; returns once both are loaded and watching (a refusal of the first
        lists is a StartupError, as in `check`)."""
        try:
            with lone_errors():
                await nursery.start(self.state.run)
        except EtcdError as error:
            await self.aclose()
            raise start_error(self.settings, error) from None
        locks, rules = self.state.locks.status(), self.state.store.status()
        log.info("etcd caches loaded: locks at revision %d, rules at revision %d; watching",
                 locks.applied_revision, rules.applied_revision)

    def stop(self) -> None:
        """Take no more requests; the queued ones are answered, then the caches' tasks end."""
        self.state.close()

    async def aclose(self) -> None:
        await self.state.aclose()
