"""`lockstore serve --state etcd` starting, and refusing to start, on real members: TLS and user/password
from the settings (the password from the environment, never echoed); a cluster whose limits cannot take
a create of max_batch records as one txn, a wrong password, a user without rights on the prefix, and no
member answering each stop start-up with ONE line naming the setting or the etcd flag to change (exit 2
for settings, 1 for a cluster that is not there right now), never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio

from actors.clock import SystemClock
from tests.etcd.cluster import EtcdCluster
from tests.etcd.conftest import SECURE_PASSWORD, SECURE_PREFIX, SECURE_USER, tls_paths
from tests.integration.conftest import LOCK, SYSOP, future, start_service
from transports.startup import CONFIGURATION, RUNTIME, StartupError
from transports.status import parse_metrics, summarize

CLI = [sys.executable, "-m", "transports.cli", "serve", "--port", "0", "--log-level", "ERROR", "--state", "etcd"]


def serve(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def the_one_line(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == status, result.stderr
    assert lines[0].startswith("lockstore: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def secured_args(cluster: EtcdCluster, prefix: str) -> list[str]:
    paths = tls_paths(cluster)
    return ["--etcd-endpoints", ",".join(cluster.endpoints), "--etcd-prefix", prefix, "--etcd-ca", str(paths["ca"]),
            "--etcd-cert", str(paths["cert"]), "--etcd-key", str(paths["key"]), "--etcd-user", SECURE_USER]


def test_limits_too_small_for_max_batch_name_the_flag(secured_etcd: EtcdCluster) -> None:
    # The secured member runs with etcd's default --max-txn-ops (128): max_batch 1000 needs 2001.
    result = serve(*secured_args(secured_etcd, SECURE_PREFIX + "startup/"),
                   env={"LOCKSTORE_ETCD_PASSWORD": SECURE_PASSWORD})
    line = the_one_line(result, CONFIGURATION, "max_batch=1000", "--max-txn-ops=2001 or more", "or lower max_batch")
    assert SECURE_PASSWORD not in line


def test_a_wrong_password_names_the_user_and_is_never_shown(secured_etcd: EtcdCluster) -> None:
    secret = "not-the-Pa55word"
    result = serve(*secured_args(secured_etcd, SECURE_PREFIX + "startup/"), "--max-batch", "10",
                   env={"LOCKSTORE_ETCD_PASSWORD": secret})
    the_one_line(result, CONFIGURATION, f"etcd_user {SECURE_USER!r}", "authentication failed")
    assert secret not in result.stderr + result.stdout


def test_no_member_answering_is_a_runtime_failure_within_the_deadline() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once the socket is closed
    started = time.monotonic()
    result = serve("--etcd-endpoints", f"http://127.0.0.1:{port}", "--etcd-request-timeout", "0.5",
                   "--etcd-deadline", "1")
    the_one_line(result, RUNTIME, f"etcd_endpoints http://127.0.0.1:{port}", "no etcd member answered")
    assert time.monotonic() - started < 20


async def test_a_user_without_rights_on_the_prefix_is_told_which_grant_is_missing(
        secured_etcd: EtcdCluster, tmp_path: Path, nursery: trio.Nursery) -> None:
    paths = tls_paths(secured_etcd)
    settings = {"state": "etcd", "etcd_endpoints": list(secured_etcd.endpoints), "etcd_prefix": "elsewhere/",
                "etcd_ca": str(paths["ca"]), "etcd_cert": str(paths["cert"]), "etcd_key": str(paths["key"]),
                "etcd_user": SECURE_USER, "etcd_password": SECURE_PASSWORD, "max_batch": 10}
    with pytest.raises(StartupError) as refused:
        await start_service(nursery, tmp_path / "data", SystemClock(), **settings)  # type: ignore[arg-type]
    assert refused.value.exit_status == CONFIGURATION
    assert "etcd_prefix 'elsewhere/'" in str(refused.value) and "grant-permission" in str(refused.value)
    assert not (tmp_path / "data").exists()  # etcd mode has no data directory


async def test_serves_over_tls_with_a_user_and_reports_etcd_in_health_and_metrics(
        secured_etcd: EtcdCluster, tmp_path: Path, nursery: trio.Nursery) -> None:
    paths = tls_paths(secured_etcd)
    settings = {"state": "etcd", "etcd_endpoints": list(secured_etcd.endpoints),
                "etcd_prefix": SECURE_PREFIX + f"serve-{time.time_ns()}/", "etcd_ca": str(paths["ca"]),
                "etcd_cert": str(paths["cert"]), "etcd_key": str(paths["key"]), "etcd_user": SECURE_USER,
                "etcd_password": SECURE_PASSWORD, "max_batch": 60}  # 121 operations: within etcd's default 128
    running = await start_service(nursery, tmp_path / "data", SystemClock(), **settings)  # type: ignore[arg-type]
    assert running.wal is None and running.snapshotter is None and not (tmp_path / "data").exists()
    async with httpx.AsyncClient(base_url=running.http_urls[0], timeout=10) as http:
        created = await http.post(f"{LOCK}/create", headers=SYSOP, json={"locks": [
            {"serviceInstanceId": "Tls|svc|1", "owner": "Owner", "expiresAt": future(600)}]})
        assert created.status_code == 201, created.text
        ready = await http.get("/health/ready")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert {"etcd", "etcd_cache_locks", "etcd_cache_rules"} <= set(checks) and "writes_durable" not in checks
        metrics = (await http.get("/metrics")).text
        assert 'lockstore_etcd_requests_total{outcome="ok",path="/v3/kv/txn"}' in metrics
        assert 'lockstore_etcd_cache_revision{table="locks"}' in metrics
        assert SECURE_PASSWORD not in metrics
        summary = summarize(running.http_urls[0], ready.json(), parse_metrics(metrics), time.time())
        assert "etcd:    " in summary and "caches:  locks at " in summary and "log:" not in summary  # status
    running.shutdown.set()
    with trio.fail_after(10):
        await running.stopped.wait()
