"""Issue 7: what TLS costs — the lock query over HTTP vs HTTPS, with keep-alive and with a new
connection (so a full TLS handshake) per request, in one run.

    python -m bench.tls [--duration 5] [--connections 16] [--wait-quiet S]

Three services, started as child processes with certificates from a throw-away CA
(`transports.certs_tool`, the code behind `lockstore certs`), each with `--fsync never` and 20 locks:
  http    plain HTTP, declared identity (`Authorization: Bearer SYSTEM//Sysop`)
  https   TLS 1.2+/1.3, server certificate only, declared identity
  mtls    TLS with a client certificate, `--authentication-policy certificate` (operator certificate)
Load: `--connections` closed-loop workers in this trio process, each sending `POST .../lock/query {}`
and waiting for the answer (raw HTTP/1.1 from bench.harness: far cheaper than httpx). With keep-alive
each worker keeps one connection; without, it connects (and handshakes) for every request and closes
after the answer. Latency runs from connect (or send, with keep-alive) to the full response.

2 shared cores: the client's TLS work (handshakes: ECDHE + ECDSA) competes with the server's. Every row
shows CPU `server/client/other` in % of a core and the server's CPU per request, which other jobs on the
machine barely move.
"""

from __future__ import annotations

import argparse
import ssl
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from bench import harness as h
from transports.certs_tool import Bundle, write_bundle

LOCK_PATH = "/serviceorchestration/orchestration/mgmt/lock"
QUERY = h.http_request("POST", f"{LOCK_PATH}/query", b"{}")
SEED = (
    '{"locks":['
    + ",".join(f'{{"serviceInstanceId":"Bench{i}|svc|1.0.0","owner":"Owner{i % 4}","expiresAt":"2999-01-01T00:00:00Z"}}'
               for i in range(20))
    + "]}"
).encode()


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    client_tls: ssl.SSLContext | None

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.split("://", 1)[1].rsplit(":", 1)
        return host, int(port)


@contextmanager
def service(name: str, argv: Sequence[str], client_tls: ssl.SSLContext | None) -> Iterator[Service]:
    """bench.harness.server, plus the TLS context a client of this service needs."""
    with h.server(argv, ready_timeout=120) as running:
        yield Service(name, running.process, running.url, client_tls)


async def connect(svc: Service) -> h.HttpConnection:
    host, port = svc.host_port
    stream = await trio.open_tcp_stream(host, port)
    if svc.client_tls is None:
        return h.HttpConnection(stream)
    tls = trio.SSLStream(stream, svc.client_tls, server_hostname=host)
    await tls.do_handshake()
    return h.HttpConnection(tls)  # type: ignore[arg-type]  # any trio stream will do


@dataclass
class Run:
    service: str
    keep_alive: bool
    requests: int
    seconds: float
    statuses: dict[int, int]
    latency: h.Latency
    cpu: h.CpuUse

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def server_us_per_request(self) -> float:
        return self.cpu.server / 100 * self.seconds / self.requests * 1e6 if self.requests else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "keep_alive": self.keep_alive, "requests": self.requests,
                "seconds": self.seconds, "statuses": self.statuses, "latency": self.latency, "cpu": self.cpu,
                "rps": self.rps, "server_us_per_request": self.server_us_per_request}


async def closed_loop(svc: Service, *, keep_alive: bool, duration: float, connections: int
                      ) -> tuple[list[float], Counter[int], float]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    deadline = trio.current_time() + duration

    async def worker() -> None:
        connection = await connect(svc) if keep_alive else None
        while trio.current_time() < deadline:
            began = trio.current_time()
            fresh = connection or await connect(svc)
            status, _ = await fresh.exchange(QUERY)
            latencies.append(trio.current_time() - began)
            statuses[status] += 1
            if connection is None:
                await fresh.stream.aclose()
        if connection is not None:
            await connection.stream.aclose()

    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(worker)
    return latencies, statuses, time.perf_counter() - began


def measure(svc: Service, *, keep_alive: bool, duration: float, connections: int) -> Run:
    with h.CpuMeter(svc.process.pid, client_is_self=True) as meter:
        latencies, statuses, seconds = trio.run(
            lambda: closed_loop(svc, keep_alive=keep_alive, duration=duration, connections=connections))
    return Run(svc.name, keep_alive, len(latencies), seconds, dict(statuses), h.summarize(latencies), meter.use)


def seed(svc: Service) -> None:
    async def go() -> int:
        connection = await connect(svc)
        status, _ = await connection.exchange(h.http_request("POST", f"{LOCK_PATH}/create", SEED))
        await connection.stream.aclose()
        return status

    status = trio.run(go)
    if status != 201:
        raise RuntimeError(f"{svc.name}: seeding locks answered {status}")


def contexts(bundle: Bundle) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server_only = ssl.create_default_context(cafile=str(bundle.ca))
    mutual = ssl.create_default_context(cafile=str(bundle.ca))
    mutual.load_cert_chain(*bundle.operator)
    return server_only, mutual


def report(runs: list[Run], note: str) -> str:
    base = {r.keep_alive: r for r in runs if r.service == "http"}
    rows = []
    for r in runs:
        ratio = r.rps / base[r.keep_alive].rps if r.keep_alive in base else float("nan")
        errors = sum(n for s, n in r.statuses.items() if s != 200)
        rows.append((r.service, "keep-alive" if r.keep_alive else "new connection", round(r.rps),
                     f"{ratio:.2f}×", r.latency.p50, r.latency.p99, round(r.server_us_per_request),
                     r.cpu.describe(), errors))
    table = h.markdown_table(
        ["service", "connections", "req/s", "vs http", "p50 ms", "p99 ms", "server µs/req", "cpu s/c/o %", "non-200"],
        rows)
    return f"## TLS cost: lock query (`POST {LOCK_PATH}/query`, 20 locks)\n\n{note}\n\n{table}\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, help="first wait up to S s for an idle machine")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        root = Path(tmp)
        bundle = write_bundle(root / "certs")
        server_only, mutual = contexts(bundle)
        tls = ["--tls-cert", str(bundle.server[0]), "--tls-key", str(bundle.server[1])]
        configs = [
            ("http", [], None),
            ("https", tls, server_only),
            ("mtls", [*tls, "--tls-ca", str(bundle.ca), "--tls-client-auth", "optional",
                      "--authentication-policy", "certificate"], mutual),
        ]
        runs: list[Run] = []
        with service(*_service_args(root, *configs[0])) as plain, service(*_service_args(root, *configs[1])) as https, \
                service(*_service_args(root, *configs[2])) as mtls:
            services = [plain, https, mtls]
            for svc in services:
                seed(svc)
            if args.wait_quiet:
                h.wait_until_quiet(args.wait_quiet)
            note = (f"{h.machine_note()}; {args.connections} closed-loop clients, {args.duration:g} s per row; "
                    "client in the benchmark process (trio, raw HTTP/1.1); TLS 1.3, EC P-256 certificates")
            for keep_alive in (True, False):
                for svc in services:
                    runs.append(measure(svc, keep_alive=keep_alive, duration=args.duration,
                                        connections=args.connections))
                    print(f"  {svc.name:5} {'keep-alive' if keep_alive else 'new conn':10} "
                          f"{runs[-1].rps:8.0f} req/s", flush=True)
    print(report(runs, note))
    print(f"raw numbers: {h.write_results('tls', {'note': note, 'runs': runs})}")


def _service_args(root: Path, name: str, options: list[str], client: ssl.SSLContext | None
                  ) -> tuple[str, list[str], ssl.SSLContext | None]:
    argv = h.lockstore(root / name, "--fsync", "never", *options)
    return name, argv, client


if __name__ == "__main__":
    main()
