"""What an MQTT run needs, started on loopback (free ports, temporary directories) and stopped after it:
a mosquitto broker, the real `lockstore serve` with its MQTT transport on that broker, and the bare
echo responder `bench.mqtt_echo` (the transport's ceiling).

All three are plain (synchronous) context managers, usable outside trio. A responder counts as ready
when it answers an MQTT echo request (the service connects to the broker in the background, after it
serves HTTP): the probe is a blocking socket on the `bench.mqtt_codec` codec.

The echo responder answers every request topic, whatever the operation, with
`{"status":200,"payload":"Got it!"}`: status 200 is a success to the harness (`Reply.ok`), and a
CreateRules answered by it gets no rule ids.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import processes
from bench.mqtt_client import request
from bench.mqtt_codec import (
    PUBLISH,
    SUBACK,
    PacketReader,
    encode_connect,
    encode_publish,
    encode_subscribe,
    parse_publish,
)
from bench.operations import Echo, Endpoint
from bench.processes import HOST, Unavailable, file_tail, free_port, stop

DEFAULT_PREFIX = "arrowhead/serviceorchestration"
MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_INSTALL_HINT = (
    "mosquitto is not installed: as root run `apt-get update && apt-get install -y mosquitto` (Debian package "
    "'mosquitto'), or set LOCKSTORE_MOSQUITTO to the broker's path."
)
READY_TIMEOUT = 60.0  # a service replays its log before it serves: generous

_numbers = itertools.count()


class MosquittoNotInstalledError(Unavailable):
    pass


@dataclass(frozen=True)
class Broker:
    pid: int
    port: int
    url: str  # mqtt://127.0.0.1:PORT
    host: str = HOST


@dataclass(frozen=True)
class Service:
    """A responder answering through a broker: its process and the endpoint clients use."""

    pid: int
    endpoint: Endpoint
    http_url: str = ""  # lockstore's HTTP API (health, metrics); "" for the echo
    ready_s: float = 0.0  # lockstore: from spawning it to serving HTTP
    start_log: tuple[str, ...] = ()  # lockstore: its log up to serving


# ------------------------------------------------------------------------------------------ mosquitto


def find_mosquitto() -> str:
    """The broker executable (LOCKSTORE_MOSQUITTO, /usr/sbin/mosquitto, or on PATH), else how to install it."""
    candidate = os.environ.get("LOCKSTORE_MOSQUITTO") or MOSQUITTO
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("mosquitto")
    if found:
        return found
    raise MosquittoNotInstalledError(MOSQUITTO_INSTALL_HINT)


def mosquitto_config(port: int, *, as_root: bool) -> str:
    """Loopback only, anonymous, no persistence, TCP_NODELAY (small request/reply messages)."""
    return (f"listener {port} {HOST}\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
            # As root mosquitto would switch to user "mosquitto", who may not read our temporary directory.
            + ("user root\n" if as_root else ""))


def _listening(process: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.01)
    return False


@contextmanager
def mosquitto_broker() -> Iterator[Broker]:
    """A mosquitto on a free loopback port (a port taken before mosquitto binds it: another is tried)."""
    executable = find_mosquitto()
    with tempfile.TemporaryDirectory(prefix="lockstore-bench-mosquitto-") as workdir:
        config, log_path = Path(workdir) / "mosquitto.conf", Path(workdir) / "mosquitto.log"
        process: subprocess.Popen[bytes] | None = None
        for _ in range(3):
            port = free_port()
            config.write_text(mosquitto_config(port, as_root=os.geteuid() == 0))
            with log_path.open("ab") as log:
                process = subprocess.Popen([executable, "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT)
            if _listening(process, port, 5.0):
                break
            stop(process, signal.SIGKILL, 5)
            process = None
        if process is None:
            raise RuntimeError(f"mosquitto did not start; log:\n{file_tail(log_path)}")
        try:
            yield Broker(process.pid, port, f"mqtt://{HOST}:{port}")
        finally:
            stop(process, signal.SIGTERM, 5)


# ------------------------------------------------------------------------------------------ readiness


def echo_answered(endpoint: Endpoint, timeout: float) -> bool:
    """One MQTT echo request on a fresh blocking connection: True if a reply came within `timeout`."""
    host, port = endpoint.url.removeprefix("mqtt://").rsplit(":", 1)
    tag = f"probe{os.getpid():x}{next(_numbers):x}"
    reply_topic = f"bench/r/{tag}/0"
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        topic, body = request(Echo(), endpoint.prefix, reply_topic, tag, endpoint.authorization, time.time())
        sock.sendall(encode_connect(f"bench-{tag}") + encode_subscribe(1, [(reply_topic, 0)]))
        reader, subscribed = PacketReader(), False
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                return False
            if not data:
                return False
            for first, packet in reader.feed(data):
                if first >> 4 == SUBACK and not subscribed:  # SUBACK: our reply topic exists, ask
                    subscribed = True
                    sock.sendall(encode_publish(topic, body))
                elif first >> 4 == PUBLISH and parse_publish(first, packet)[0] == reply_topic:
                    sock.sendall(b"\xe0\x00")
                    return True
    return False


def wait_answering(endpoint: Endpoint, process: subprocess.Popen[bytes], log: str | Path,
                   limit: float = READY_TIMEOUT) -> None:
    """Until the responder answers an echo request; RuntimeError (with its log) if it exits or never does."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"responder exited with {process.returncode}:\n{_log_text(log)}")
        try:
            if echo_answered(endpoint, 0.5):
                return
        except OSError:  # the broker is not there (yet)
            time.sleep(0.1)
    raise RuntimeError(f"no reply to an MQTT echo request within {limit:g} s:\n{_log_text(log)}")


def _log_text(log: str | Path) -> str:
    return file_tail(log) if isinstance(log, Path) else log


# ------------------------------------------------------------------------------------------ responders


@contextmanager
def lockstore_over_mqtt(broker: Broker, data_dir: Path, *options: str,
                        prefix: str = DEFAULT_PREFIX, gc_log: Path | None = None) -> Iterator[Service]:
    """The real `lockstore serve` (HTTP on a free loopback port) with its MQTT transport on `broker`
    under `prefix`; `options` are more `serve` options (`--fsync never`, ...; not a `--log-level` above
    INFO: readiness is read from its "serving HTTP on" log line). Stopped with SIGTERM."""
    client_id = f"lockstore-bench-{os.getpid()}-{next(_numbers)}"  # the broker drops a reused client id
    argv = [*processes.lockstore(data_dir, *options, gc_log=gc_log), "--mqtt-url", broker.url,
            "--mqtt-client-id", client_id, "--mqtt-topic-prefix", prefix]
    with processes.server(argv, ready_timeout=READY_TIMEOUT) as server:
        endpoint = Endpoint("mqtt", broker.url, prefix=prefix)
        try:
            wait_answering(endpoint, server.process, "")
        except RuntimeError as error:
            raise RuntimeError(f"lockstore over MQTT: {error}\n" + "\n".join(server.tail)) from None
        yield Service(server.process.pid, endpoint, server.url, server.ready_s, tuple(server.tail))


@contextmanager
def mqtt_echo(broker: Broker, *options: str, raw: bool = False, prefix: str = DEFAULT_PREFIX) -> Iterator[Service]:
    """`bench.mqtt_echo` on `broker`: on the service's own MQTT session code (paho), or with `raw` on the
    harness's codec (the MQTT no-op: what client and broker reach alone). Stopped with SIGINT."""
    argv = [sys.executable, "-m", "bench.mqtt_echo", "--host", broker.host, "--port", str(broker.port),
            "--prefix", prefix, *(["--raw"] if raw else []), *options]
    with tempfile.TemporaryDirectory(prefix="lockstore-bench-echo-") as workdir:
        log_path = Path(workdir) / "echo.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=Path(__file__).resolve().parents[1])
        try:
            endpoint = Endpoint("mqtt", broker.url, prefix=prefix)
            wait_answering(endpoint, process, log_path)
            yield Service(process.pid, endpoint)
        finally:
            stop(process, signal.SIGINT, 10)
