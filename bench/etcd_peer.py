"""etcd as a peer of lockstore: the same lock work done the way etcd users do it, through etcd's
HTTP/JSON gateway (etcd 3.4: paths under /v3/, keys and values base64, int64s as JSON strings).
"DECISIONS n" below is decision n of docs/DECISIONS.md.

The mapping (one `EtcdClient.call` per operation):

* CreateLocks(owner, instances, ttl_s): POST /v3/lease/grant {"TTL": ttl_s}, then ONE POST /v3/kv/txn
  whose compares say "create_revision == 0" (the key is absent) for every `locks/<instance>` and whose
  success puts `locks/<instance>` = owner and the owner index key `owners/<owner>/<instance>` (empty
  value), all attached to the lease, so etcd deletes both when the TTL runs out. This is lockstore's
  all-or-nothing create (DECISIONS 4): one lock already held and nothing is created. A txn that did not
  succeed answers CONFLICT_STATUS = 400, the status lockstore gives `Already locked: ...` (an Arrowhead
  400), and its lease is revoked at once (a third request) as a tidy etcd user would, instead of
  leaving an empty lease to expire. Success answers 201, as lockstore's create does. Empty or
  duplicate instance lists answer 400 without a request, as lockstore's validation does.
* QueryLocks(owner, page, size): POST /v3/kv/range over the prefix `owners/<owner>/` (range_end = the
  prefix with its last byte incremented, clientv3's `WithPrefix`) with limit = (page + 1) * size: etcd
  has no offset, so page N costs reading the N pages before it, and the client keeps the last `size`
  keys. Keys come in key order (lockstore: lock id order). 200. Page < 0 reads page 0 and size < 1
  reads MAX_PAGE_SIZE, as lockstore's pagination does.
* RemoveLocks(owner, instances): ONE txn with no compares whose success holds, per instance, a nested
  txn (RequestOp.request_txn, etcd >= 3.3): if the value of `locks/<instance>` == owner, delete it and
  `owners/<owner>/<instance>`. Only the owner's own locks go; the others are ignored and the answer is
  200 either way (lockstore's remove, DECISIONS 5). An empty list answers 400, as lockstore's does.
* Echo: POST /v3/maintenance/status {}: the cheapest request that goes through the gateway and the
  gRPC server (no Raft round, no key lookup), as lockstore's monitor echo goes through its framework
  with no state behind it. (`GET /version` is cheaper still but bypasses the gateway entirely.)
* Rule operations: NotImplementedError (etcd is only the lock part's peer; see LOCK_OPERATIONS).

Differences that stay: lease expiry is counted from the grant (lockstore: `ttl_s` after the request is
sent; a few hundred microseconds apart) and the leader revokes expired leases on a ~500 ms tick, so an
expired lock may stay visible that long (lockstore: never, DECISIONS 3); etcd raises a TTL below its
minimum (~2 s with the default heartbeat) to that minimum; names are used as given (lockstore
normalises and validates them).

The gateway's HTTP status is the Reply's status, except for create as above.

lockstore's own etcd mode (actors/etcd/) is a different design (one key per lock named by its instance,
expiry in the value, ids from revisions); this peer is what a plain etcd user would do. The two share
the gateway's reply codecs (actors/etcd/wire.py).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import trio

from actors.etcd import wire
from actors.etcd.wire import prefix_end
from bench.http_wire import HttpConnection, http_request
from bench.operations import (
    CreateLocks,
    Echo,
    Endpoint,
    Operation,
    QueryLocks,
    QueryRules,
    RemoveLocks,
    Reply,
    instance_name,
)

ETCD_INSTALL_HINT = (
    "etcd is not installed: as root run `apt-get update && apt-get install -y etcd-server` "
    "(Debian's package; the binary is /usr/bin/etcd)."
)

CREATED_STATUS = 201  # lockstore's create
CONFLICT_STATUS = 400  # lockstore's `Already locked: ...` is an Arrowhead 400 (invalid request)
MAX_PAGE_SIZE = 1000  # lockstore's default max_page_size: what a size below 1 asks for

LOCK_PREFIX = b"locks/"
OWNER_PREFIX = b"owners/"

LEASE_GRANT = "/v3/lease/grant"
LEASE_REVOKE = "/v3/lease/revoke"
KV_TXN = "/v3/kv/txn"
KV_RANGE = "/v3/kv/range"
STATUS = "/v3/maintenance/status"

# Started with these so that one bulk create or remove is still one txn, as it is one request in lockstore
# (etcd's defaults: 128 operations, 1.5 MiB per request), and so that a long churn run is compacted the
# way a production etcd is (the default keeps every revision until the 2 GiB quota stops writes).
MAX_TXN_OPS = 100_000
MAX_REQUEST_BYTES = 64 << 20
QUOTA_BACKEND_BYTES = 8 << 30

# ------------------------------------------------------------------------------------------ pure: keys
# Reply parsing and range ends come from lockstore's own etcd client (actors/etcd/wire.py); the request
# bodies stay hand-written here, with int64s as JSON strings (proto3's canonical form), as an etcd user
# on another client would send them.


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def lock_key(instance: str) -> bytes:
    return LOCK_PREFIX + instance.encode()


def owner_prefix(owner: str) -> bytes:
    """Every owner index key of `owner` starts with this (instances and owners hold no `/`)."""
    return OWNER_PREFIX + owner.encode() + b"/"


def owner_key(owner: str, instance: str) -> bytes:
    return owner_prefix(owner) + instance.encode()


# ------------------------------------------------------------------------------------------ pure: bodies

_encode = msgspec.json.Encoder().encode


def lease_grant_body(ttl_s: int) -> bytes:
    return _encode({"TTL": str(ttl_s)})


def lease_revoke_body(lease_id: str) -> bytes:
    return _encode({"ID": lease_id})


def create_txn_body(owner: str, instances: Sequence[str], lease_id: str) -> bytes:
    """Create-if-absent for every instance in one txn: all the locks and their owner index keys, or
    nothing."""
    value = b64(owner.encode())
    compare: list[dict[str, str]] = []
    success: list[dict[str, dict[str, str]]] = []
    for instance in instances:
        key = b64(lock_key(instance))
        compare.append({"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
        success.append({"request_put": {"key": key, "value": value, "lease": lease_id}})
        success.append({"request_put": {"key": b64(owner_key(owner, instance)), "lease": lease_id}})
    return _encode({"compare": compare, "success": success})


def page_limit(page: int, size: int) -> tuple[int, int]:
    """(page, size) as lockstore's pagination reads them: a negative page is 0, a size below 1 is the
    maximum page size."""
    return max(page, 0), size if size >= 1 else MAX_PAGE_SIZE


def range_body(owner: str, page: int, size: int) -> bytes:
    """The owner's index keys up to the end of the wanted page (etcd has no offset)."""
    page, size = page_limit(page, size)
    prefix = owner_prefix(owner)
    return _encode({"key": b64(prefix), "range_end": b64(prefix_end(prefix)), "limit": str((page + 1) * size)})


def remove_txn_body(owner: str, instances: Sequence[str]) -> bytes:
    """One txn of per-instance nested txns: each deletes a lock and its owner key only if `owner` holds
    it, so the owner's locks go and the others are left alone (a flat txn would be all-or-nothing)."""
    value = b64(owner.encode())
    success = []
    for instance in dict.fromkeys(instances):
        key = b64(lock_key(instance))
        success.append(
            {
                "request_txn": {
                    "compare": [{"key": key, "target": "VALUE", "result": "EQUAL", "value": value}],
                    "success": [
                        {"request_delete_range": {"key": key}},
                        {"request_delete_range": {"key": b64(owner_key(owner, instance))}},
                    ],
                }
            }
        )
    return _encode({"success": success})


STATUS_BODY = b"{}"

# ------------------------------------------------------------------------------------------ pure: replies


def lease_id(body: bytes) -> str:
    """The granted lease's id, kept as the decimal string the gateway sends (an int64)."""
    return str(wire.decode(body, wire.LeaseGrantResponse).ID)


def txn_succeeded(body: bytes) -> bool:
    return wire.decode(body, wire.TxnResponse).succeeded


@dataclass(frozen=True, slots=True)
class RangePage:
    """A range reply: the total number of matching keys and the keys (with value and lease) returned."""

    count: int
    kvs: tuple[tuple[bytes, bytes, str], ...]  # (key, value, lease id; "0" = no lease)
    more: bool


def parse_range(body: bytes) -> RangePage:
    reply = wire.decode(body, wire.RangeResponse)
    kvs = tuple((kv.key, kv.value, str(kv.lease)) for kv in reply.kvs)
    return RangePage(count=reply.count, kvs=kvs, more=reply.more)


def page_instances(owner: str, page: RangePage, page_number: int, size: int) -> list[str]:
    """The instances on page `page_number` of an owner range read with `range_body` (the last `size`
    keys of the first (page + 1) * size)."""
    page_number, size = page_limit(page_number, size)
    prefix = owner_prefix(owner)
    keys = [key for key, _, _ in page.kvs[page_number * size : (page_number + 1) * size]]
    return [key.removeprefix(prefix).decode() for key in keys]


# ------------------------------------------------------------------------------------------ client


class EtcdClient:
    """One keep-alive HTTP/1.1 connection to etcd's gateway (the bench.operations.Client protocol).

    Concurrent `call`s are serialised by a lock, so a create's grant and txn stay back to back on the
    connection. A request interrupted half-way (cancelled, or the connection broke) leaves the
    connection unusable: later calls raise ConnectionError and the load generator opens a new client.
    """

    def __init__(self, connection: HttpConnection, host: str) -> None:
        self._connection = connection
        self._host = host
        self._lock = trio.Lock()
        self._broken = False

    @classmethod
    async def open(cls, endpoint: Endpoint) -> EtcdClient:
        url = urlsplit(endpoint.url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"etcd endpoint must be http://host:port, got {endpoint.url!r}")
        port = url.port or 2379
        return cls(await HttpConnection.open(url.hostname, port), f"{url.hostname}:{port}")

    async def aclose(self) -> None:
        self._broken = True
        await self._connection.aclose()

    async def call(self, operation: Operation) -> Reply:
        async with self._lock:
            if isinstance(operation, CreateLocks):
                return await self._create(operation)
            if isinstance(operation, QueryLocks):
                status, _ = await self._post(KV_RANGE, range_body(operation.owner, operation.page, operation.size))
                return Reply(status)
            if isinstance(operation, RemoveLocks):
                if not operation.instances:
                    return Reply(400)
                status, _ = await self._post(KV_TXN, remove_txn_body(operation.owner, operation.instances))
                return Reply(status)
            if isinstance(operation, Echo):
                status, _ = await self._post(STATUS, STATUS_BODY)
                return Reply(status)
        raise NotImplementedError(
            f"etcd is the peer of the lock operations only; it has no rule store for {type(operation).__name__}"
        )

    async def _create(self, operation: CreateLocks) -> Reply:
        instances = operation.instances
        if not instances or len(set(instances)) != len(instances):
            return Reply(400)  # lockstore: `Lock list is missing or empty` / `Duplicate service instance id`
        status, body = await self._post(LEASE_GRANT, lease_grant_body(operation.ttl_s))
        if status != 200:
            return Reply(status)
        lease = lease_id(body)
        status, body = await self._post(KV_TXN, create_txn_body(operation.owner, instances, lease))
        if status == 200 and txn_succeeded(body):
            return Reply(CREATED_STATUS)
        await self._post(LEASE_REVOKE, lease_revoke_body(lease))
        return Reply(CONFLICT_STATUS if status == 200 else status)

    async def owner_page(self, owner: str, page: int = 0, size: int = 10) -> tuple[int, list[str]]:
        """(how many locks `owner` holds, the instances on that page): QueryLocks with its reply read."""
        async with self._lock:
            status, body = await self._post(KV_RANGE, range_body(owner, page, size))
        if status != 200:
            raise RuntimeError(f"range answered {status}: {body[:200]!r}")
        found = parse_range(body)
        return found.count, page_instances(owner, found, page, size)

    async def holder(self, instance: str) -> tuple[str, str] | None:
        """(owner, lease id) of the lock on `instance`, or None."""
        key = b64(lock_key(instance))
        async with self._lock:
            status, body = await self._post(KV_RANGE, _encode({"key": key}))
        if status != 200:
            raise RuntimeError(f"range answered {status}: {body[:200]!r}")
        kvs = parse_range(body).kvs
        return (kvs[0][1].decode(), kvs[0][2]) if kvs else None

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._broken:
            raise ConnectionError("etcd connection closed, or left unusable by an interrupted request")
        self._broken = True
        answer = await self._connection.exchange(http_request("POST", path, body, self._host, authorization=None))
        self._broken = False
        return answer


# ------------------------------------------------------------------------------------------ self-check


async def self_check(endpoint: Endpoint) -> list[str]:
    """Run the lock mapping once against a real etcd and say what is wrong (nothing: []). The harness
    runs it before measuring etcd, so a broken mapping never produces numbers. Uses fresh names."""
    problems: list[str] = []

    def expect(what: str, got: object, want: object) -> None:
        if got != want:
            problems.append(f"{what}: got {got!r}, expected {want!r}")

    tag = uuid.uuid4().hex[:10]
    owner, other = f"checkA{tag}", f"checkB{tag}"
    a, b, c, d = (instance_name(f"chk{tag}", n) for n in range(4))
    client = await EtcdClient.open(endpoint)
    try:
        expect("echo", await client.call(Echo()), Reply(200))
        expect("create 3", await client.call(CreateLocks(owner, (a, b, c), 60)), Reply(201))
        expect("owner's locks after create", await client.owner_page(owner), (3, sorted([a, b, c])))
        expect("page 1 of size 2", await client.owner_page(owner, 1, 2), (3, sorted([a, b, c])[2:]))
        expect("QueryLocks", await client.call(QueryLocks(owner, 0, 10)), Reply(200))
        held = await client.holder(a)
        expect("holder of a", held is not None and held[0], owner)
        expect("lock carries a lease", held is not None and held[1] != "0", True)
        expect("second create of a", await client.call(CreateLocks(other, (a,), 60)), Reply(CONFLICT_STATUS))
        expect("create of free d with taken b", await client.call(CreateLocks(other, (d, b), 60)), Reply(400))
        expect("d stays free (all-or-nothing)", await client.holder(d), None)
        expect("other owner's locks", await client.owner_page(other), (0, []))
        expect("duplicate instances", await client.call(CreateLocks(other, (d, d), 60)), Reply(400))
        expect("remove by another owner", await client.call(RemoveLocks(other, (a, b))), Reply(200))
        expect("locks after foreign remove", (await client.owner_page(owner))[0], 3)
        expect("remove a, b and free d", await client.call(RemoveLocks(owner, (a, b, d))), Reply(200))
        expect("owner's locks after remove", await client.owner_page(owner), (1, [c]))
        expect("a after remove", await client.holder(a), None)
        expect("create a again", await client.call(CreateLocks(other, (a,), 60)), Reply(201))
        expect("remove the rest", await client.call(RemoveLocks(owner, (c,))), Reply(200))
        expect("remove a", await client.call(RemoveLocks(other, (a,))), Reply(200))
        expect("owner's locks at the end", await client.owner_page(owner), (0, []))
        expect("other's locks at the end", await client.owner_page(other), (0, []))
        try:
            await client.call(QueryRules("x"))
            problems.append("a rule operation did not raise NotImplementedError")
        except NotImplementedError:
            pass
    finally:
        await client.aclose()
    return problems


# ------------------------------------------------------------------------------------------ server


@dataclass(frozen=True, slots=True)
class EtcdServer:
    pid: int
    url: str
    endpoint: Endpoint
    data_dir: Path


def find_etcd() -> str | None:
    """The etcd binary (Debian's etcd-server installs /usr/bin/etcd), or None."""
    found = shutil.which("etcd")
    if found is None and os.access("/usr/bin/etcd", os.X_OK):
        found = "/usr/bin/etcd"
    return found


def etcd_command(binary: str, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    return [
        binary,
        "--name=bench",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=bench={peer}",
        "--initial-cluster-state=new",
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
def etcd_server(data_dir: Path | None = None, *, ready_timeout: float = 30) -> Iterator[EtcdServer]:
    """A single-member etcd on loopback (free client and peer ports), its data in a fresh directory
    (inside `data_dir` if given, else the system's temporary directory) that is removed afterwards.

    Durability: etcd fsyncs its write-ahead log before a write is committed, batching the entries of
    concurrent requests into one fsync, so an acknowledged write survives a crash: the same promise as
    lockstore's `--fsync always` group commit. Put `data_dir` on the same disk as lockstore's data.
    Raises RuntimeError (with ETCD_INSTALL_HINT if etcd is missing, else the log's tail) when it cannot
    start.
    """
    binary = find_etcd()
    if binary is None:
        raise RuntimeError(ETCD_INSTALL_HINT)
    scratch = Path(tempfile.mkdtemp(prefix="etcd-bench-", dir=data_dir))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ETCD_")}
    process: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(3):  # a free port can be taken between picking and binding
            client_port, peer_port = _free_ports(2)
            log_path = scratch / f"etcd-{attempt}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    etcd_command(binary, scratch / "data", client_port, peer_port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                )
            url = f"http://127.0.0.1:{client_port}"
            if _wait_healthy(process, url, ready_timeout):
                break
            _stop(process)
            tail = log_path.read_text(errors="replace")[-3000:]
            if "address already in use" not in tail or attempt == 2:
                raise RuntimeError(f"etcd did not become healthy on {url}:\n{tail}")
            shutil.rmtree(scratch / "data", ignore_errors=True)
        assert process is not None
        yield EtcdServer(pid=process.pid, url=url, endpoint=Endpoint(kind="etcd", url=url), data_dir=scratch)
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(scratch, ignore_errors=True)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_healthy(process: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
    """/health says true once a leader is elected and a quorum read goes through Raft."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if b'"true"' in response.read():
                    return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------------------ by hand


async def _create_rate(endpoint: Endpoint, seconds: float) -> tuple[float, float]:
    """Lock creates per second on one connection, closed loop (each create waits for the previous),
    then as many removes; returns (creates/s, client CPU seconds per create)."""
    client = await EtcdClient.open(endpoint)
    prefix = f"rate{uuid.uuid4().hex[:8]}"
    created: list[str] = []
    cpu0, began = time.process_time(), time.perf_counter()
    try:
        while time.perf_counter() - began < seconds:
            instance = instance_name(prefix, len(created))
            reply = await client.call(CreateLocks("rateowner", (instance,), 60))
            if reply.status != CREATED_STATUS:
                raise RuntimeError(f"create answered {reply.status}")
            created.append(instance)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu0
        for start in range(0, len(created), 1000):
            await client.call(RemoveLocks("rateowner", tuple(created[start : start + 1000])))
    finally:
        await client.aclose()
    return len(created) / elapsed, cpu / max(len(created), 1)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.etcd_peer`: start etcd, run the self-check, measure one connection's creates/s."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--url", help="an already-running etcd (default: start one)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the create-rate run")
    parser.add_argument("--data-dir", type=Path, help="where the temporary data directory goes")
    args = parser.parse_args(argv)

    def run(endpoint: Endpoint) -> None:
        problems = trio.run(self_check, endpoint)
        print("self-check:", "ok" if not problems else "\n  ".join(["FAILED", *problems]))
        rate, cpu = trio.run(_create_rate, endpoint, args.seconds)
        print(f"one connection, closed loop: {rate:,.0f} lock creates/s, client CPU {cpu * 1e6:.0f} µs per create")

    if args.url:
        run(Endpoint(kind="etcd", url=args.url))
        return
    if find_etcd() is None:
        raise SystemExit(ETCD_INSTALL_HINT)
    with etcd_server(args.data_dir) as server:
        print(f"etcd pid {server.pid} on {server.url}, data in {server.data_dir}")
        run(server.endpoint)


if __name__ == "__main__":
    main()
