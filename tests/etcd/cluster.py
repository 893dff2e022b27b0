"""A real etcd cluster for tests: members on free loopback ports, data in temporary directories.

No mocks: the multi-instance tests run against Debian's etcd-server (3.4), the engine production uses.
A missing binary is a failure of the test environment, never a reason to skip (`.ci/install-system-deps`
installs it; LOCKSTORE_ETCD may point elsewhere).

Members can be killed (-9), stopped (SIGTERM), restarted on the same ports and data, frozen (SIGSTOP)
and thawed (SIGCONT). Nothing is left behind: every member is started with PR_SET_PDEATHSIG = SIGKILL
(it dies with the test process, even if that is killed -9), `close()` kills them all and removes their
data, and an atexit hook does the same for clusters never closed. Start members only from the main
thread (a worker thread's exit would fire the death signal).

Data lives on /dev/shm when it exists (etcd fsyncs every commit; tmpfs makes that free, and the
machine's disk is shared), else in the system's temporary directory.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from actors.etcd import wire

DEFAULT_ETCD = "/usr/bin/etcd"
PR_SET_PDEATHSIG = 1

# Faster elections than etcd's defaults (100 ms / 1000 ms), so leader faults cost the tests less time,
# and limits roomy enough for max_batch = 1000 creates in one txn (docs/multi-instance.md).
TEST_FLAGS = (
    "--heartbeat-interval=50",
    "--election-timeout=500",
    "--max-txn-ops=20000",
    "--max-request-bytes=2097152",
    "--logger=zap",
    "--log-outputs=stderr",
    "--log-level=warn",
)


class EtcdNotFoundError(RuntimeError):
    pass


def find_etcd() -> str:
    candidate = os.environ.get("LOCKSTORE_ETCD") or DEFAULT_ETCD
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("etcd")
    if found:
        return found
    raise EtcdNotFoundError(
        f"etcd not found at {candidate} nor on PATH; the multi-instance tests need a real cluster: run "
        "`bash .ci/install-system-deps` (Debian's etcd-server) or set LOCKSTORE_ETCD"
    )


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class Tls:
    """TLS on the members' client port (peers stay on plain loopback): the members' certificate, and the
    client certificate the test harness itself presents (the members require one)."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    scheme: str = "http"
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    member_id: int = 0

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, size: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""


_live: weakref.WeakSet[EtcdCluster] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for cluster in list(_live):
        cluster.close()


ROOT_PREFIX = "lockstore-etcd-"
OWNER_FILE = "owner.pid"


def _new_root() -> Path:
    """A fresh data directory, marked with this process's pid; the leftovers of killed runs are swept."""
    scratch = _scratch()
    sweep_leftovers(Path(scratch or tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=scratch))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    return root


def sweep_leftovers(scratch: Path) -> list[Path]:
    """Remove the data directories of test runs that were killed (SIGTERM or -9 skip every cleanup; their
    members died with them, PR_SET_PDEATHSIG): those whose owner process is gone. On tmpfs each holds
    ~120 MB of memory."""
    removed = []
    for root in scratch.glob(f"{ROOT_PREFIX}*"):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or being created right now
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
        except PermissionError:
            pass  # alive, someone else's
    return removed


@dataclass(eq=False)
class EtcdCluster:
    size: int = 3
    flags: Sequence[str] = TEST_FLAGS
    tls: Tls | None = None
    root: Path = field(default_factory=_new_root)
    members: list[Member] = field(default_factory=list)

    def __post_init__(self) -> None:
        _live.add(self)  # from here on, close() (or the atexit hook) removes the root
        self.binary = find_etcd()
        self.admin: str | None = None  # "root:password" for etcdctl once authentication is on

    # ------------------------------------------------------------------ life cycle

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        """Start every member (they find each other), wait until each one is healthy."""
        for attempt in range(3):  # a free port can be taken between picking and binding
            ports = free_ports(2 * self.size)
            scheme = "https" if self.tls else "http"
            self.members = [
                Member(f"m{i}", ports[2 * i], ports[2 * i + 1], self.root / f"m{i}-{attempt}",
                       self.root / f"m{i}-{attempt}.log", scheme)
                for i in range(self.size)
            ]
            for member in self.members:
                self._launch(member, "new")
            try:
                for member in self.members:
                    self.wait_healthy(member, timeout)
                break
            except RuntimeError:
                logs = "\n".join(member.log_tail() for member in self.members)
                self._kill_all()
                if "address already in use" not in logs or attempt == 2:
                    raise
        self._learn_ids()
        return self

    def close(self) -> None:
        self._kill_all()
        shutil.rmtree(self.root, ignore_errors=True)
        _live.discard(self)

    def _kill_all(self) -> None:
        for member in self.members:
            process, member.process = member.process, None
            if process is not None and process.poll() is None:
                if member.paused:
                    process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
            member.paused = False

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(member.client_url for member in self.members)

    def command(self, member: Member, state: str) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        command = [
            self.binary,
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={member.client_url}",
            f"--advertise-client-urls={member.client_url}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={initial}",
            f"--initial-cluster-state={state}",
            "--initial-cluster-token=lockstore-tests",
            *self.flags,
        ]
        if self.tls is not None:
            command += [f"--cert-file={self.tls.cert}", f"--key-file={self.tls.key}",
                        f"--trusted-ca-file={self.tls.ca}", "--client-cert-auth"]
        return command

    def _launch(self, member: Member, state: str) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("ETCD")}
        with member.log_path.open("ab") as log:
            member.process = subprocess.Popen(
                self.command(member, state), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, preexec_fn=_die_with_parent, start_new_session=True,
            )

    # ------------------------------------------------------------------ faults

    def kill(self, member: Member) -> None:
        """Crash the member (SIGKILL)."""
        self._end(member, signal.SIGKILL)

    def stop(self, member: Member) -> None:
        """Orderly stop (SIGTERM)."""
        self._end(member, signal.SIGTERM)

    def restart(self, member: Member, timeout: float = 30.0) -> None:
        """Start a stopped or killed member again on its ports and data; wait until it is healthy."""
        if member.running:
            raise RuntimeError(f"{member.name} is running")
        self._launch(member, "existing")
        self.wait_healthy(member, timeout)

    def pause(self, member: Member) -> None:
        """Freeze the member (SIGSTOP): its sockets stay open and answer nothing."""
        assert member.process is not None
        member.process.send_signal(signal.SIGSTOP)
        member.paused = True

    def resume(self, member: Member) -> None:
        assert member.process is not None
        member.process.send_signal(signal.SIGCONT)
        member.paused = False

    def _end(self, member: Member, sig: signal.Signals) -> None:
        process, member.process = member.process, None
        if process is None or process.poll() is not None:
            return
        if member.paused:
            process.send_signal(signal.SIGCONT)
            member.paused = False
        process.send_signal(sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # ------------------------------------------------------------------ looking at it

    def _http(self, timeout: float) -> httpx.Client:
        verify: ssl.SSLContext | bool = True
        if self.tls is not None:
            verify = ssl.create_default_context(cafile=str(self.tls.ca))
            verify.load_cert_chain(self.tls.client_cert, self.tls.client_key)
        return httpx.Client(verify=verify, timeout=timeout, trust_env=False)

    def wait_healthy(self, member: Member, timeout: float = 30.0) -> None:
        """/health says true: the member has a leader and a quorum read goes through."""
        deadline = time.monotonic() + timeout
        with self._http(1.0) as http:
            while time.monotonic() < deadline:
                if not member.running:
                    raise RuntimeError(f"etcd {member.name} exited:\n{member.log_tail()}")
                try:
                    if b'"true"' in http.get(f"{member.client_url}/health").content:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"etcd {member.name} not healthy within {timeout} s:\n{member.log_tail()}")

    def etcdctl(self, *args: str, stdin: str = "") -> str:
        """Run etcdctl (Debian's etcd-client) against the cluster, as the harness's client certificate."""
        command = [shutil.which("etcdctl") or "/usr/bin/etcdctl", f"--endpoints={','.join(self.endpoints)}"]
        if self.admin is not None:
            command.append(f"--user={self.admin}")
        if self.tls is not None:
            command += [f"--cacert={self.tls.ca}", f"--cert={self.tls.client_cert}", f"--key={self.tls.client_key}"]
        done = subprocess.run([*command, *args], input=stdin.encode(), capture_output=True, timeout=30,
                              env={**os.environ, "ETCDCTL_API": "3"})
        if done.returncode:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode()

    def status(self, member: Member, timeout: float = 2.0) -> wire.StatusResponse:
        with self._http(timeout) as http:
            reply = http.post(f"{member.client_url}{wire.STATUS}", content=b"{}")
        reply.raise_for_status()
        return wire.decode(reply.content, wire.StatusResponse)

    def _learn_ids(self) -> None:
        for member in self.members:
            member.member_id = self.status(member).header.member_id

    def leader(self, timeout: float = 10.0) -> Member:
        """The member the running, unfrozen members agree leads (waits for an election to finish)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen: set[int] = set()
            for member in self.members:
                if member.running and not member.paused:
                    try:
                        seen.add(self.status(member, 0.5).leader)
                    except httpx.HTTPError:
                        seen.add(-1)
            if len(seen) == 1 and (leader_id := seen.pop()) > 0:
                for member in self.members:
                    if member.member_id == leader_id and member.running and not member.paused:
                        return member
            time.sleep(0.05)
        raise RuntimeError("no agreed leader among the running members")

    def followers(self) -> list[Member]:
        leader = self.leader()
        return [member for member in self.members if member is not leader]

    def revision(self) -> int:
        member = next(m for m in self.members if m.running and not m.paused)
        return self.status(member).header.revision

    def compact(self, revision: int | None = None) -> int:
        """Compact the cluster's history up to `revision` (default: the current one); returns it."""
        revision = self.revision() if revision is None else revision
        member = next(m for m in self.members if m.running and not m.paused)
        with self._http(10.0) as http:
            reply = http.post(f"{member.client_url}{wire.COMPACTION}",
                              content=wire.encode(wire.CompactionRequest(revision, physical=True)))
        reply.raise_for_status()
        return revision


def _scratch() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
