"""A real mosquitto broker for tests, on a free loopback port, stoppable and restartable on that port.

No mocks: the MQTT tests talk to the broker the service will meet in production. The Debian package
installs /usr/sbin/mosquitto; LOCKSTORE_MOSQUITTO may point elsewhere. A missing broker is a failure
of the test environment, never a reason to skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DEFAULT_MOSQUITTO = "/usr/sbin/mosquitto"


class MosquittoNotFoundError(RuntimeError):
    pass


def find_mosquitto() -> str:
    candidate = os.environ.get("LOCKSTORE_MOSQUITTO") or DEFAULT_MOSQUITTO
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("mosquitto")
    if found:
        return found
    raise MosquittoNotFoundError(
        f"mosquitto broker not found at {candidate} nor on PATH; the MQTT tests need a real broker: "
        "install the Debian package 'mosquitto' (apt-get install mosquitto) or set LOCKSTORE_MOSQUITTO"
    )


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoBroker:
    """One mosquitto process. `start()` after `stop()`/`kill()` reuses the same port."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, executable: str | None = None, extra_config: str = "") -> None:
        self.workdir = workdir
        self.extra_config = extra_config
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.executable = executable or find_mosquitto()
        self.port = 0
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        if self.running:
            raise RuntimeError("mosquitto is already running")
        # A port picked by free_loopback_port() can be taken before mosquitto binds it: then pick again,
        # but only on the first start (a restart must come back on the same port).
        attempts = 3 if self.port == 0 else 1
        for attempt in range(attempts):
            if self.port == 0 or attempt > 0:
                self.port = free_loopback_port()
            if self._launch(timeout):
                return
        raise RuntimeError(f"mosquitto did not start on 127.0.0.1:{self.port}; log:\n{self.log_text()[-2000:]}")

    def _launch(self, timeout: float) -> bool:
        self.config_path.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "set_tcp_nodelay true\n"
            "persistence false\n"
            "log_dest stderr\n"
            # As root mosquitto would switch to user "mosquitto", who cannot read pytest's tmp dirs.
            + ("user root\n" if os.geteuid() == 0 else "")
            +
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            + self.extra_config
        )
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.executable, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.01)
        self.kill()
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """Orderly stop (SIGTERM): clients see their connections close."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Crash (SIGKILL)."""
        self._end(signal.SIGKILL, 5.0)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
