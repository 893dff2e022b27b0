"""What a run measures, started by the harness (and stopped after it) or given as a URL.

Each target is a context manager yielding a `Target`: its name in the results, the transport, the
endpoint clients connect to, and the server processes to sample. Targets run one after another, never
side by side, so that on a small machine no peer takes CPU from another's run.

Target options (`Connection`): HTTP targets can be served over TLS (`tls="on"`: server certificate
only; `"mutual"`: the client presents a certificate and lockstore takes the identity from it,
`--authentication-policy certificate`), from a throw-away CA made for the run (`lockstore certs`'
code), and clients can open a new connection (a full TCP, and TLS, handshake) for every request.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from bench import mqtt_targets, processes
from bench.operations import Endpoint
from bench.processes import Unavailable

MQTT_PREFIX = "arrowhead/serviceorchestration"
TLS_MODES = ("off", "on", "mutual")


@dataclass(frozen=True)
class Target:
    name: str  # "lockstore", "lockstore+tls", "quart-echo", "noop", "mqtt-echo", "etcd", or the URL given
    transport: str  # "http" | "mqtt"
    endpoint: Endpoint
    pids: tuple[int, ...] = ()  # server first, then helpers (the broker); empty for a remote target
    notes: tuple[str, ...] = field(default=())
    metrics: Endpoint | None = None  # lockstore's HTTP API, for /metrics (None: not a lockstore we started)
    ready_s: float = 0.0  # lockstore: from spawning it to serving
    start_log: tuple[str, ...] = ()  # lockstore: its log up to serving (start-up phases)
    ready_rss_mib: float = 0.0  # lockstore: resident memory when it began to serve
    ready_peak_rss_mib: float = 0.0  # and the most it had held by then
    gc_log: Path | None = None  # lockstore: where its garbage collections are logged (processes.lockstore)
    after: Callable[[], list[str]] | None = None  # notes taken once its runs are over (bench/etcd_targets.py)


@dataclass(frozen=True)
class Connection:
    """How clients reach an HTTP target: `tls` one of TLS_MODES; `new_per_request`: no keep-alive."""

    tls: str = "off"
    new_per_request: bool = False

    def suffix(self) -> str:
        """What the target's name gets: "+tls", "+mtls" or nothing."""
        return {"off": "", "on": "+tls", "mutual": "+mtls"}[self.tls]


@dataclass(frozen=True)
class _Tls:
    """The files of one TLS set-up: the options a server needs and how a client connects."""

    lockstore_options: tuple[str, ...] = ()
    echo_options: tuple[str, ...] = ()
    ca: str = ""
    cert: str = ""
    key: str = ""

    def endpoint(self, url: str, connection: Connection) -> Endpoint:
        return Endpoint("http", url, tls_ca=self.ca, tls_cert=self.cert, tls_key=self.key,
                        new_connection=connection.new_per_request)


@contextmanager
def _tls(mode: str) -> Iterator[_Tls]:
    """Certificates from a throw-away CA for `mode` (nothing for "off"), removed afterwards."""
    if mode not in TLS_MODES:
        raise ValueError(f"TLS mode {mode!r}: one of {', '.join(TLS_MODES)}")
    if mode == "off":
        yield _Tls()
        return
    from transports.security.certs_tool import write_bundle

    with tempfile.TemporaryDirectory(prefix="lockstore-bench-certs-") as directory:
        bundle = write_bundle(Path(directory) / "certs")
        cert, key = (str(path) for path in bundle.server)
        serve = ("--tls-cert", cert, "--tls-key", key)
        echo = ("--certfile", cert, "--keyfile", key)
        if mode == "on":
            yield _Tls(serve, echo, str(bundle.ca))
            return
        ca = str(bundle.ca)
        serve += ("--tls-ca", ca, "--tls-client-auth", "required", "--authentication-policy", "certificate")
        operator_cert, operator_key = (str(path) for path in bundle.operator)  # dnQualifier op: sysop
        yield _Tls(serve, (*echo, "--ca-certs", ca), ca, operator_cert, operator_key)


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
def _gc_log() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lockstore-bench-gc-") as directory:
        yield Path(directory) / "gc.log"


HTTP_SERVERS = ("native", "hypercorn")


def lockstore_name(http_server: str, connection: Connection = Connection()) -> str:
    """"lockstore" (the native server, the default), "lockstore/hypercorn"; then "+tls" or "+mtls"."""
    return "lockstore" + ("" if http_server == "native" else f"/{http_server}") + connection.suffix()


@contextmanager
def lockstore_http(fsync: str, data_dir: Path | None = None, options: tuple[str, ...] = (),
                   connection: Connection = Connection(), http_server: str = "native") -> Iterator[Target]:
    """The real `lockstore serve` on a free loopback port with a fresh (or the given) data directory, with
    its native HTTP server or hypercorn (`--http-server`)."""
    with _data_dir(data_dir) as directory, _tls(connection.tls) as tls, _gc_log() as gc_log, processes.server(
        processes.lockstore(directory, "--fsync", fsync, "--http-server", http_server, *tls.lockstore_options,
                            *options, gc_log=gc_log)
    ) as server:
        endpoint = tls.endpoint(server.url, connection)
        pid = server.process.pid
        yield Target(lockstore_name(http_server, connection), "http", endpoint, (pid,),
                     metrics=replace(endpoint, new_connection=False), ready_s=server.ready_s,
                     start_log=tuple(server.tail), ready_rss_mib=processes.rss_mib(pid),
                     ready_peak_rss_mib=processes.peak_rss_mib(pid), gc_log=gc_log)


@contextmanager
def quart_echo(connection: Connection = Connection()) -> Iterator[Target]:
    """The framework ceiling: bare quart-trio on hypercorn, same paths, decodes and encodes like-sized JSON."""
    with _tls(connection.tls) as tls, processes.server(processes.framework_ceiling(*tls.echo_options)) as server:
        yield Target("quart-echo" + connection.suffix(), "http", tls.endpoint(server.url, connection),
                     (server.process.pid,))


@contextmanager
def noop_http(connection: Connection = Connection()) -> Iterator[Target]:
    """A fixed reply from a bare trio socket loop: what the harness itself costs and can reach."""
    if connection.tls != "off":
        raise Unavailable("the no-op responder has no TLS")
    with processes.server(processes.framework_ceiling("--raw")) as server:
        yield Target("noop", "http", Endpoint("http", server.url, new_connection=connection.new_per_request),
                     (server.process.pid,))


@contextmanager
def lockstore_mqtt(fsync: str, data_dir: Path | None = None, options: tuple[str, ...] = ()) -> Iterator[Target]:
    """The real service with its MQTT transport, through a mosquitto the harness starts."""
    with mqtt_targets.mosquitto_broker() as broker, _data_dir(data_dir) as directory, _gc_log() as gc_log, \
            mqtt_targets.lockstore_over_mqtt(broker, directory, "--fsync", fsync, *options, gc_log=gc_log) as service:
        yield Target("lockstore", "mqtt", service.endpoint, (service.pid, broker.pid),
                     metrics=Endpoint("http", service.http_url), ready_s=service.ready_s,
                     start_log=service.start_log, ready_rss_mib=processes.rss_mib(service.pid),
                     ready_peak_rss_mib=processes.peak_rss_mib(service.pid), gc_log=gc_log)


@contextmanager
def mqtt_echo(raw: bool = False) -> Iterator[Target]:
    """The transport ceiling: a bare echo responder on the service's own MQTT session code (raw=True:
    on the harness's minimal codec, the MQTT no-op)."""
    with mqtt_targets.mosquitto_broker() as broker, mqtt_targets.mqtt_echo(broker, raw=raw) as service:
        yield Target("noop" if raw else "mqtt-echo", "mqtt", service.endpoint, (service.pid, broker.pid))


@contextmanager
def etcd(connection: Connection = Connection()) -> Iterator[Target]:
    """etcd on loopback with a temporary data dir, checked first (`self_check`: create, conflict, query,
    remove against the real server) so that a wrong mapping is never measured."""
    import trio

    from bench.etcd_peer import ETCD_INSTALL_HINT, etcd_server, find_etcd, self_check

    if connection != Connection():
        raise Unavailable("the etcd peer runs without TLS, on keep-alive connections")
    if find_etcd() is None:
        raise Unavailable(ETCD_INSTALL_HINT)
    with etcd_server() as server:
        problems = trio.run(self_check, server.endpoint)
        if problems:
            raise Unavailable("etcd failed the harness's self-check: " + "; ".join(problems))
        yield Target("etcd", "http", server.endpoint, (server.pid,))


@contextmanager
def remote(url: str, transport: str, pid: int | None = None, prefix: str = MQTT_PREFIX,
           connection: Connection = Connection(), ca: str = "", cert: str = "", key: str = "") -> Iterator[Target]:
    """An already-running service (http[s]://host:port, or mqtt://host:port for its broker)."""
    scheme = urlsplit(url).scheme
    kind = "mqtt" if scheme == "mqtt" else "http"
    if kind != transport:
        raise ValueError(f"--target {url} is {kind}, but --transport is {transport}")
    endpoint = Endpoint(kind, url, prefix=prefix, tls_ca=ca, tls_cert=cert, tls_key=key,
                        new_connection=connection.new_per_request)
    yield Target(url, transport, endpoint, (pid,) if pid else ())
