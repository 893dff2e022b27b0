"""The composition root: replay the log, start the log committer, the actors and the transports in
one structured tree, and shut them down in order.

Shutdown order (ARCHITECTURE.md): transports stop taking requests and finish the in-flight ones;
then the actors drain their mailboxes; then the log flushes its last batch, fsyncs and closes.

With `state = "etcd"` (transports/etcd_mode.py) the actors are the etcd mode's caches instead: no log,
no snapshots, no data directory; they drain the same way, then the connections to etcd close.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig

from actors.clock import Clock, SystemClock
from actors.lock_actor import LockActor
from actors.locks import LockTable
from actors.records import LocksCreated, LocksRemoved, decode_event
from actors.services import LockService, StoreService
from actors.snapshots import Snapshotter
from actors.store import RuleTable
from actors.store_actor import StoreActor
from transports.api.operations import Limits, Operations
from transports.config.broker_url import parse_broker_url, redact_url, uses_tls
from transports.config.settings import Settings
from transports.etcd_mode import EtcdMode
from transports.http.app import HttpAccess, create_app
from transports.http.connection import ServerLimits
from transports.http.framing import RefuseAmbiguousRequests
from transports.http.handlers import HttpApi
from transports.http.hypercorn_server import serve as hypercorn_serve
from transports.http.keepalive import CloseAtShutdown
from transports.http.native_app import NativeApp
from transports.http.server import NativeServer
from transports.http.tls_scope import ClientCertificateScope, TlsHypercornConfig
from transports.mqtt.dispatch import MqttAccess, MqttDispatcher
from transports.mqtt.server import MqttServer
from transports.observability.access import NativeRequestObserver
from transports.observability.monitor import Monitor, wire_monitor
from transports.security.certificates import CertificatePolicy, cloud_of_server
from transports.security.identity import ManagementPolicy, normalize_whitelist
from transports.security.tls import HttpsSetup, https_setup, mqtt_client_context
from transports.service_registry import ServiceRegistration, registry_setup
from transports.service_registry.payloads import served_http_routes
from transports.startup import check_before_start, open_data_dir
from wal.log import WriteAheadLog

log = logging.getLogger("lockstore")


@dataclass
class RunningService:
    """What a running service exposes to its starter (the CLI, or a test)."""

    http_urls: list[str]
    operations: Operations
    wal: WriteAheadLog | None  # None in etcd mode
    mqtt: MqttServer | None = None
    shutdown: trio.Event = field(default_factory=trio.Event)
    stopped: trio.Event = field(default_factory=trio.Event)  # set once the log is closed
    monitor: Monitor | None = None  # metrics and health (transports/observability/monitor.py)
    snapshotter: Snapshotter | None = None  # snapshots + compaction (actors/snapshots.py)
    etcd: EtcdMode | None = None  # etcd mode's state (transports/etcd_mode.py)


def replay(payloads: list[bytes], locks: LockTable, store: RuleTable) -> None:
    """Apply the logged events, in order, to empty tables."""
    for payload in payloads:
        event = decode_event(payload)
        if isinstance(event, LocksCreated | LocksRemoved):
            locks.apply(event)
        else:
            store.apply(event)


def _hypercorn_config(settings: Settings, https: HttpsSetup | None = None) -> HypercornConfig:
    config = TlsHypercornConfig(https.context) if https is not None else HypercornConfig()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.accesslog = None  # the access log is ours (observability/access.py): structured, with the requester
    config.errorlog = logging.getLogger("lockstore.http")
    # At shutdown idle connections close at once and busy ones right after their in-flight response
    # (transports/http/hypercorn_server.py); this bounds only clients that stopped reading.
    config.graceful_timeout = 5.0
    config.keep_alive_timeout = 30.0
    config.include_server_header = False  # as the native server: both answer with the same headers
    return config


async def run_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[RunningService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until SIGINT/SIGTERM (or `RunningService.shutdown` is set), then stop in order."""
    clock = clock or SystemClock()
    started = time.perf_counter()
    # Every setting's rule, then the HTTP address: SettingsError / StartupError (transports/startup.py).
    check_before_start(settings)
    # TLS files next, before the log is opened: a bad path or key stops start-up with a TlsConfigError.
    https = https_setup(settings)
    certificate = None
    if settings.authentication_policy == "certificate":
        assert https is not None and https.server_cn is not None and https.trust is not None  # https_setup checks
        certificate = CertificatePolicy(cloud_of_server(https.server_cn), https.trust)
    if settings.mqtt_url:
        parse_broker_url(settings.mqtt_url)  # a bad URL is a start-up error too (MqttUrlError)
    mqtt_tls = mqtt_client_context(settings) if settings.mqtt_url and uses_tls(settings.mqtt_url) else None
    registry = registry_setup(settings, https)  # None when standalone; bad settings: RegistryConfigError
    data_dir = Path(settings.data_dir)
    etcd = EtcdMode.from_settings(settings, clock) if settings.state == "etcd" else None
    wal: WriteAheadLog | None = None
    lock_actor: LockService
    store_actor: StoreService
    if etcd is not None:
        lock_actor, store_actor = etcd.state.locks, etcd.state.store
    else:
        # Snapshots + the log after them (actors/snapshots.py); logs what it loaded and how long it took.
        # A data_dir that cannot be used is a StartupError naming it.
        state = open_data_dir(settings)
        wal, recovery, locks, store = state.wal, state.recovery, state.locks, state.store
        if settings.fsync == "never":
            log.warning("fsync=never: replies do NOT wait for the disk; a crash can lose acknowledged "
                        "changes. Use this for benchmarks only.")
        lock_actor = local_locks = LockActor(locks, wal, clock, settings.mailbox_capacity)
        store_actor = local_store = StoreActor(store, wal, clock, mailbox_capacity=settings.mailbox_capacity)
    operations = Operations(
        lock_actor, store_actor, clock, Limits(settings.max_page_size, settings.max_batch)
    )
    access = HttpAccess(
        ManagementPolicy(settings.management_policy), normalize_whitelist(settings.management_whitelist),
        certificate,
    )
    app = create_app(operations, access)
    mqtt = None
    if settings.mqtt_url:
        dispatcher = MqttDispatcher(
            operations, MqttAccess(access.policy, access.whitelist, certificate), settings.mqtt_topic_prefix
        )
        mqtt = MqttServer.from_url(
            settings.mqtt_url, dispatcher, client_id=settings.mqtt_client_id, username=settings.mqtt_username,
            password=settings.mqtt_password, keepalive=settings.mqtt_keepalive, protocol=settings.mqtt_protocol,
            max_request_bytes=settings.mqtt_max_request_bytes, reply_topic_prefix=settings.mqtt_reply_topic_prefix,
            tls=mqtt_tls, shared_group=settings.mqtt_shared_group,
        )
    monitor = wire_monitor(settings, app, wal, lock_actor, store_actor, mqtt, etcd.state if etcd else None)
    joining = ServiceRegistration(registry, served_http_routes()) if registry else None
    http_stop = trio.Event()  # HTTP stops taking requests once set: after the ServiceRegistry revocations
    if wal is not None:
        monitor.health.replayed = True
        monitor.health.replay_detail = f"{recovery.frames} records from {recovery.segments} segment(s)"
    if etcd is not None:
        await etcd.check()  # the cluster's limits, user and rights: a StartupError of its own, before any task

    async with trio.open_nursery() as log_nursery:
        if wal is not None:
            await log_nursery.start(wal.run)
        async with trio.open_nursery() as actor_nursery:
            snapshotter = None
            if etcd is not None:
                await etcd.start(actor_nursery)  # both caches loaded and watching
            else:
                assert wal is not None
                await actor_nursery.start(local_locks.run)
                await actor_nursery.start(local_store.run)
                snapshotter = Snapshotter(
                    data_dir / "wal", wal, [local_locks.capture, local_store.capture],
                    every_records=settings.snapshot_every_records, every_bytes=settings.snapshot_every_bytes,
                    fsync=settings.fsync == "always", since_lsn=state.loaded.from_lsn - 1,
                )
                await actor_nursery.start(snapshotter.run)
            running = RunningService([], operations, wal, mqtt, monitor=monitor, snapshotter=snapshotter, etcd=etcd)
            monitor.health.stopping = running.shutdown.is_set
            monitor.metrics.sources.snapshotter = snapshotter
            async with trio.open_nursery() as edge_nursery:
                signal_watch = trio.CancelScope()
                if handle_signals:
                    edge_nursery.start_soon(_wait_for_signal, running.shutdown, signal_watch)
                if settings.http_server == "native":
                    # HTTP/1.1 only: a client offered h2 by ALPN would speak it to a server that does not.
                    if https is not None:
                        https.context.set_alpn_protocols(["http/1.1"])
                    observer = NativeRequestObserver(monitor.observe(app))
                    server = NativeServer(NativeApp(HttpApi(operations, access), app, observer),
                                          ServerLimits(max_connections=settings.http_max_connections),
                                          https.context if https is not None else None)
                    serve = partial(server.serve, settings.host, settings.port, shutdown_trigger=http_stop.wait)
                else:
                    served = ClientCertificateScope(app) if https else app
                    serve = partial(
                        hypercorn_serve,
                        monitor.observe(RefuseAmbiguousRequests(CloseAtShutdown(served, running.shutdown.is_set))),
                        _hypercorn_config(settings, https),
                        shutdown_trigger=http_stop.wait,
                    )
                urls = await edge_nursery.start(serve)
                running.http_urls = list(urls)
                monitor.health.serving = True
                monitor.health.registry = joining  # registration: after HTTP is bound, before MQTT subscribes
                go_on = joining is None or await joining.join(edge_nursery, urls, running.shutdown)
                if not go_on:
                    running.shutdown.set()
                if mqtt is not None and go_on:
                    await edge_nursery.start(mqtt.run)
                    log.info("serving MQTT through %s (connecting in the background)",
                             redact_url(settings.mqtt_url or ""))
                if go_on:
                    log.info("serving HTTP on %s (ready in %.2f s; %s server)", ", ".join(urls),
                             time.perf_counter() - started, settings.http_server)
                    task_status.started(running)
                await running.shutdown.wait()
                signal_watch.cancel()
                if joining is not None:
                    await joining.leave()  # while HTTP still answers
                http_stop.set()
                if mqtt is not None:
                    mqtt.stop()
                edge_nursery.cancel_scope.deadline = trio.current_time() + 15.0
            log.info("transports stopped; draining actors")
            if snapshotter is not None:
                snapshotter.stop()
            if etcd is not None:
                etcd.stop()
            lock_actor.mailbox.close()
            store_actor.mailbox.close()
        if wal is not None:
            await wal.aclose()
    if etcd is not None:
        await etcd.aclose()
    running.stopped.set()
    log.info("write-ahead log flushed and closed; bye" if wal is not None else "etcd connections closed; bye")
    if joining is not None and joining.failure is not None:
        raise joining.failure  # service_registry_required: start-up failed (after an orderly stop)


async def _wait_for_signal(shutdown: trio.Event, scope: trio.CancelScope) -> None:
    with scope, trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            shutdown.set()
            return
