"""The real `lockstore serve` in a child process, for tests whose client is synchronous (schemathesis,
blocking sockets) and so cannot share the test's trio loop with an in-process service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LOCKSTORE = [sys.executable, "-m", "transports.cli", "serve"]
_SERVING = re.compile(r"serving HTTP on (https?://[0-9.]+:\d+)")


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)  # everything the server logged so far
    http_server: str = "native"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return "\n".join(self.lines)

    def rss_bytes(self) -> int:
        """Resident set size of the server process now (Linux /proc)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


@contextmanager
def live_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None,
                http_server: str = "native") -> Iterator[LiveServer]:
    """Start the service (with `http_server`, "native" or "hypercorn") on a free port; stop it (SIGTERM, then
    SIGKILL) on exit."""
    process = subprocess.Popen(
        [*LOCKSTORE, "--port", "0", "--data-dir", str(data_dir), "--http-server", http_server, *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert process.stderr is not None
    lines: list[str] = []
    found = threading.Event()
    urls: list[str] = []

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            match = _SERVING.search(line)
            if match and not found.is_set():
                urls.append(match[1])
                found.set()
        found.set()

    reader = threading.Thread(target=drain, name="live-server-stderr", daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while not found.wait(0.05):
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("service did not start:\n" + "\n".join(lines))
    if not urls:
        process.wait(5)
        raise AssertionError("service exited before serving:\n" + "\n".join(lines))
    server = LiveServer(urls[0], process, lines, http_server)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(5)
