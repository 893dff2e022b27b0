"""Liveness and readiness (`/health/live`, `/health/ready`), for systemd watchdogs, load balancers and
orchestrators.

- live: the event loop answers. Nothing else: a live-but-unready service must not be restarted.
- ready: every condition for taking traffic holds — the log was replayed, HTTP is serving, MQTT is
  connected (if configured), the service is registered in the ServiceRegistry (if configured), writes
  become durable (the log accepts appends and the committer makes progress), and the service is not
  shutting down (so a proxy drains it before it stops). In etcd mode the log's two checks are replaced
  by etcd's: a member answers, and each cache has caught up with a quorum read (`refresh()` asks,
  since that takes a round trip; the route calls it before `ready()`).

The report is a msgspec Struct so that the OpenAPI document describes exactly what is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

import msgspec

if TYPE_CHECKING:
    from actors.etcd.cluster import EtcdState
    from transports.mqtt.server import MqttServer
    from wal.log import WriteAheadLog

Status = Literal["UP", "DOWN"]
# The committer has had pending records and no progress for this long: writes are not becoming durable.
STALL_SECONDS = 5.0
# etcd mode: how long /health/ready waits for a quorum read and for the caches to reach it.
ETCD_READY_TIMEOUT = 1.0


class Registration(Protocol):
    """The ServiceRegistry registration, when configured (transports/service_registry/lifecycle.py)."""

    registered: bool
    detail: str


class CheckResult(msgspec.Struct, omit_defaults=True):
    status: Status
    detail: str | None = None


class HealthReport(msgspec.Struct, omit_defaults=True):
    """`status` is UP only when every check is UP."""

    status: Status
    checks: dict[str, CheckResult] = msgspec.field(default_factory=dict)


def _check(ok: bool, detail: str | None = None) -> CheckResult:
    return CheckResult("UP" if ok else "DOWN", detail)


class Health:
    """Readiness of one service; the composition root flips `replayed` and `serving` as it starts."""

    def __init__(
        self,
        wal: WriteAheadLog | None,
        mqtt: MqttServer | None,
        *,
        fsync: bool = True,
        mqtt_broker: str | None = None,
        stopping: Callable[[], bool] = lambda: False,
        now: Callable[[], float] = time.monotonic,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.wal = wal
        self.mqtt = mqtt
        self.fsync = fsync
        self.mqtt_broker = mqtt_broker  # for the detail text; no credentials (see logging_setup.redact_url)
        self.stopping = stopping
        self.replayed = False
        self.replay_detail: str | None = None
        self.serving = False
        self.registry: Registration | None = None  # set when a service_registry is configured
        self.etcd: EtcdState | None = None  # set in etcd mode: its checks replace the log's
        self._etcd_checks: dict[str, CheckResult] = {"etcd": _check(False, "not checked yet")}
        self._now = now
        self._stall = stall_seconds
        self._watched_durable = -1
        self._pending_since: float | None = None

    def live(self) -> HealthReport:
        return HealthReport("UP")

    async def refresh(self, timeout: float = ETCD_READY_TIMEOUT) -> None:
        """etcd mode: ask etcd and the caches now (one shared quorum read per table); `ready()` reports it."""
        if self.etcd is not None:
            checks = await self.etcd.readiness(timeout)
            self._etcd_checks = {check.name: _check(check.ok, check.detail or None) for check in checks}

    def ready(self) -> HealthReport:
        if self.etcd is None:
            checks = {"log_replayed": _check(self.replayed, self.replay_detail)}
        else:
            checks = dict(self._etcd_checks)
        checks["http"] = _check(self.serving, None if self.serving else "not serving yet")
        if self.etcd is None:
            checks["writes_durable"] = self._wal_check()
        checks["shutdown"] = _check(not self.stopping(), "shutting down" if self.stopping() else None)
        if self.mqtt is not None:
            connected = self.mqtt.session.connected
            where = f" {self.mqtt_broker}" if self.mqtt_broker else ""
            checks["mqtt"] = _check(connected, f"connected to{where}" if connected else f"not connected to{where}")
        if self.registry is not None:
            checks["service_registry"] = _check(self.registry.registered, self.registry.detail)
        status: Status = "UP" if all(check.status == "UP" for check in checks.values()) else "DOWN"
        return HealthReport(status, checks)

    def _wal_check(self) -> CheckResult:
        wal = self.wal
        if wal is None:
            return _check(False, "no write-ahead log")
        if not wal.available:
            return _check(False, "the write-ahead log is closed or failed")
        durable, pending = wal.durable_lsn, wal.appended_lsn - wal.durable_lsn
        now = self._now()
        if pending <= 0 or durable != self._watched_durable:
            # Progress (or nothing to do): restart the watch from here.
            self._watched_durable = durable
            self._pending_since = now if pending > 0 else None
        elif self._pending_since is None:
            self._pending_since = now
        if self._pending_since is not None and now - self._pending_since > self._stall:
            return _check(False, f"{pending} record(s) waiting for the disk for {now - self._pending_since:.1f} s")
        if not self.fsync:
            return _check(True, "fsync=never: acknowledged writes can be lost in a crash")
        return _check(True)
