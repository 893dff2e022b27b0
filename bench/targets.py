"""What a run measures, started by the harness (and stopped after it) or given as a URL.

Each target is a context manager yielding a `Target`: its name in the results, the transport, the
endpoint clients connect to, and the server processes to sample. Targets run one after another, never
side by side, so that on a small machine no peer takes CPU from another's run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench import harness
from bench.operations import Endpoint

MQTT_PREFIX = "arrowhead/serviceorchestration"


@dataclass(frozen=True)
class Target:
    name: str  # "lockstore", "quart-echo", "noop", "mqtt-echo", "etcd", or the URL given
    transport: str  # "http" | "mqtt"
    endpoint: Endpoint
    pids: tuple[int, ...] = ()  # server first, then helpers (the broker); empty for a remote target
    notes: tuple[str, ...] = field(default=())


class Unavailable(Exception):
    """A peer that is not installed: the message says how to install it; the run skips it."""


@contextmanager
def _data_dir(data_dir: Path | None) -> Iterator[Path]:
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        yield data_dir
        return
    directory = Path(tempfile.mkdtemp(prefix="lockstore-bench-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def lockstore_http(fsync: str, data_dir: Path | None = None, options: tuple[str, ...] = ()) -> Iterator[Target]:
    """The real `lockstore serve` on a free loopback port with a fresh (or the given) data directory."""
    with _data_dir(data_dir) as directory, harness.server(
        harness.lockstore(directory, "--fsync", fsync, *options)
    ) as server:
        yield Target("lockstore", "http", Endpoint("http", server.url), (server.process.pid,))


@contextmanager
def quart_echo() -> Iterator[Target]:
    """The framework ceiling: bare quart-trio on hypercorn, same paths, decodes and encodes like-sized JSON."""
    with harness.server(harness.framework_ceiling()) as server:
        yield Target("quart-echo", "http", Endpoint("http", server.url), (server.process.pid,))


@contextmanager
def noop_http() -> Iterator[Target]:
    """A fixed reply from a bare trio socket loop: what the harness itself costs and can reach."""
    with harness.server(harness.framework_ceiling("--raw")) as server:
        yield Target("noop", "http", Endpoint("http", server.url), (server.process.pid,))


@contextmanager
def lockstore_mqtt(fsync: str, data_dir: Path | None = None, options: tuple[str, ...] = ()) -> Iterator[Target]:
    """The real service with its MQTT transport, through a mosquitto the harness starts."""
    from bench.mqtt_targets import lockstore_over_mqtt, mosquitto_broker

    with mosquitto_broker() as broker, _data_dir(data_dir) as directory, lockstore_over_mqtt(
        broker, directory, "--fsync", fsync, *options
    ) as service:
        yield Target("lockstore", "mqtt", service.endpoint, (service.pid, broker.pid))


@contextmanager
def mqtt_echo(raw: bool = False) -> Iterator[Target]:
    """The transport ceiling: a bare echo responder on the service's own MQTT session code (raw=True:
    on the harness's minimal codec, the MQTT no-op)."""
    from bench.mqtt_targets import mosquitto_broker
    from bench.mqtt_targets import mqtt_echo as start_echo

    with mosquitto_broker() as broker, start_echo(broker, raw=raw) as service:
        yield Target("noop" if raw else "mqtt-echo", "mqtt", service.endpoint, (service.pid, broker.pid))


@contextmanager
def etcd() -> Iterator[Target]:
    """etcd on loopback with a temporary data dir, checked first (`self_check`: create, conflict, query,
    remove against the real server) so that a wrong mapping is never measured."""
    import trio

    from bench.etcd_peer import ETCD_INSTALL_HINT, etcd_server, find_etcd, self_check

    if find_etcd() is None:
        raise Unavailable(ETCD_INSTALL_HINT)
    with etcd_server() as server:
        problems = trio.run(self_check, server.endpoint)
        if problems:
            raise Unavailable("etcd failed the harness's self-check: " + "; ".join(problems))
        yield Target("etcd", "http", server.endpoint, (server.pid,))


@contextmanager
def remote(url: str, transport: str, pid: int | None = None, prefix: str = MQTT_PREFIX) -> Iterator[Target]:
    """An already-running service (http://host:port, or mqtt://host:port for its broker)."""
    scheme = urlsplit(url).scheme
    kind = "mqtt" if scheme == "mqtt" else "http"
    if kind != transport:
        raise ValueError(f"--target {url} is {kind}, but --transport is {transport}")
    yield Target(url, transport, Endpoint(kind, url, prefix=prefix), (pid,) if pid else ())
