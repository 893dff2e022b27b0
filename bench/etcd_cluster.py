"""A 3-member etcd cluster on loopback for the etcd-mode targets (`--state etcd`): lockstore instances in
etcd mode run on it, and the etcd peer can be driven against it directly.

The members' data live in one temporary directory on the system's disk (not tmpfs), like the single
etcd peer's and lockstore's own logs: every member fsyncs each commit, so the figures include what a
durable quorum write costs here. The single etcd peer's roomy limits (far above what `max_batch` 1000
needs: README, "Running several instances") and compaction every 5 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.etcd_peer import (
    ETCD_INSTALL_HINT,
    MAX_REQUEST_BYTES,
    MAX_TXN_OPS,
    QUOTA_BACKEND_BYTES,
    _free_ports,
    _stop,
    _wait_healthy,
    find_etcd,
)

MEMBERS = 3


@dataclass(frozen=True)
class EtcdCluster:
    urls: tuple[str, ...]  # client URLs, member 0 first
    pids: tuple[int, ...]
    data_dir: Path


def member_command(binary: str, name: str, data_dir: Path, client: str, peer: str, initial: str) -> list[str]:
    return [
        binary,
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={initial}",
        "--initial-cluster-state=new",
        "--initial-cluster-token=lockstore-bench",
        "--logger=zap",
        "--log-outputs=stderr",
        "--log-level=error",
        f"--max-txn-ops={MAX_TXN_OPS}",
        f"--max-request-bytes={MAX_REQUEST_BYTES}",
        f"--quota-backend-bytes={QUOTA_BACKEND_BYTES}",
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=5m",
    ]


@contextmanager
def etcd_cluster(data_dir: Path | None = None, *, ready_timeout: float = 30) -> Iterator[EtcdCluster]:
    """Three members that found each other and are healthy; stopped and removed on exit. Raises
    RuntimeError (ETCD_INSTALL_HINT when etcd is missing, else the members' log tails)."""
    binary = find_etcd()
    if binary is None:
        raise RuntimeError(ETCD_INSTALL_HINT)
    scratch = Path(tempfile.mkdtemp(prefix="etcd-bench-cluster-", dir=data_dir))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ETCD_")}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for attempt in range(3):  # a free port can be taken between picking and binding
            ports = _free_ports(2 * MEMBERS)
            clients = [f"http://127.0.0.1:{ports[2 * n]}" for n in range(MEMBERS)]
            peers = [f"http://127.0.0.1:{ports[2 * n + 1]}" for n in range(MEMBERS)]
            initial = ",".join(f"m{n}={peer}" for n, peer in enumerate(peers))
            logs = [scratch / f"m{n}-{attempt}.log" for n in range(MEMBERS)]
            for n in range(MEMBERS):
                with logs[n].open("wb") as log:
                    processes.append(subprocess.Popen(
                        member_command(binary, f"m{n}", scratch / f"m{n}-{attempt}", clients[n], peers[n], initial),
                        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env))
            if all(_wait_healthy(process, url, ready_timeout) for process, url in zip(processes, clients, strict=True)):
                break
            tails = "\n".join(log.read_text(errors="replace")[-1500:] for log in logs)
            for process in processes:
                _stop(process)
            processes.clear()
            if "address already in use" not in tails or attempt == 2:
                raise RuntimeError(f"the etcd cluster did not become healthy:\n{tails}")
        yield EtcdCluster(tuple(clients), tuple(process.pid for process in processes), scratch)
    finally:
        for process in processes:
            _stop(process)
        shutil.rmtree(scratch, ignore_errors=True)
