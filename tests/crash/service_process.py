"""Start the real `lockstore serve` as a child process and find its HTTP address."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import trio

LOCKSTORE = [sys.executable, "-m", "transports.cli"]
SYSOP = {"Authorization": "Bearer SYSTEM//Sysop"}
LOCK = "/serviceorchestration/orchestration/mgmt/lock"


async def start(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[trio.Process, str]:
    """Spawn the service on a free port; return the process and its base URL once it serves.

    `env` adds variables (e.g. LOCKSTORE_FAILPOINTS, see wal/failpoints.py).
    """
    process = await trio.lowlevel.open_process(
        [*LOCKSTORE, "serve", "--port", "0", "--data-dir", str(data_dir), *extra],
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert process.stderr is not None
    seen = b""
    with trio.fail_after(20):
        while True:
            chunk = await process.stderr.receive_some(4096)
            if not chunk:
                raise AssertionError(f"service exited before serving:\n{seen.decode(errors='replace')}")
            seen += chunk
            match = re.search(rb"serving HTTP on (http://[0-9.:]+)", seen)
            if match:
                break
    return process, match[1].decode()


async def drain(process: trio.Process) -> None:
    """Keep reading the child's stderr so it never blocks on a full pipe."""
    assert process.stderr is not None
    try:
        while await process.stderr.receive_some(65536):
            pass
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass


def run_to_exit(data_dir: Path, *extra: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run the CLI expecting it to stop by itself (e.g. refusing to start)."""
    return subprocess.run(
        [*LOCKSTORE, "serve", "--port", "0", "--data-dir", str(data_dir), *extra],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


async def all_locks(url: str) -> list[dict[str, Any]]:
    """Every lock the service at `url` holds, page by page in id order."""
    found: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        page = 0
        while True:
            body = {"pagination": {"page": page, "size": 1000, "direction": "ASC", "sortField": "id"}}
            reply = (await client.post(f"{LOCK}/query", json=body, headers=SYSOP)).json()
            found += reply["entries"]
            if len(found) >= reply["count"]:
                return found
            page += 1
