"""etcd peer, the parts that need no etcd: keys and range ends, the gateway JSON of each operation, reply
parsing, the raw HTTP/1.1 client (Content-Length and chunked bodies), and the client's request sequence
against a scripted gateway on an in-memory stream. The real-etcd check is `bench.etcd_peer.self_check`."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from bench.etcd_peer import (
    CONFLICT_STATUS,
    ETCD_INSTALL_HINT,
    KV_RANGE,
    KV_TXN,
    LEASE_GRANT,
    LEASE_REVOKE,
    MAX_PAGE_SIZE,
    STATUS,
    EtcdClient,
    RangePage,
    create_txn_body,
    etcd_command,
    lease_grant_body,
    lease_id,
    lease_revoke_body,
    lock_key,
    owner_key,
    owner_prefix,
    page_instances,
    parse_range,
    prefix_end,
    range_body,
    remove_txn_body,
    txn_succeeded,
)
from bench.http_wire import HttpConnection, http_request
from bench.operations import CreateLocks, CreateRules, Echo, QueryLocks, QueryRules, RemoveLocks, Reply, RuleSpec

A, B = "ProviderA|svc|1.0.0", "ProviderB|svc|1.0.0"


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


# ------------------------------------------------------------------------------------------ keys


def test_keys() -> None:
    assert lock_key(A) == b"locks/ProviderA|svc|1.0.0"
    assert owner_prefix("Orch") == b"owners/Orch/"
    assert owner_key("Orch", A) == b"owners/Orch/ProviderA|svc|1.0.0"


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"owners/Orch/", b"owners/Orch0"),  # '/' + 1 == '0'
        (b"a", b"b"),
        (b"a\xff", b"b"),  # carry: the 0xff is dropped and the byte before it incremented
        (b"a\xfe\xff\xff", b"a\xff"),
        (b"\xff", b"\x00"),  # nothing above it: to the end of the keyspace
        (b"\xff\xff", b"\x00"),
        (b"", b"\x00"),
    ],
)
def test_prefix_end(prefix: bytes, end: bytes) -> None:
    assert prefix_end(prefix) == end


@given(st.binary(max_size=4), st.binary(max_size=6))
def test_prefix_range_holds_exactly_the_keys_with_the_prefix(prefix: bytes, key: bytes) -> None:
    end = prefix_end(prefix)
    inside = prefix <= key and (end == b"\x00" or key < end)
    assert inside == key.startswith(prefix)


# ------------------------------------------------------------------------------------------ request bodies


def test_lease_bodies_carry_int64s_as_strings() -> None:
    assert json.loads(lease_grant_body(60)) == {"TTL": "60"}
    assert json.loads(lease_revoke_body("7587869131513291012")) == {"ID": "7587869131513291012"}


def test_create_txn_is_create_if_absent_for_every_lock_with_owner_index_on_the_lease() -> None:
    body = json.loads(create_txn_body("Orch", (A, B), "42"))
    assert set(body) == {"compare", "success"}
    assert [(unb64(c["key"]), c["target"], c["result"], c["create_revision"]) for c in body["compare"]] == [
        (b"locks/" + A.encode(), "CREATE", "EQUAL", "0"),
        (b"locks/" + B.encode(), "CREATE", "EQUAL", "0"),
    ]
    puts = [op["request_put"] for op in body["success"]]
    assert [(unb64(p["key"]), unb64(p.get("value", "")), p["lease"]) for p in puts] == [
        (b"locks/" + A.encode(), b"Orch", "42"),
        (b"owners/Orch/" + A.encode(), b"", "42"),
        (b"locks/" + B.encode(), b"Orch", "42"),
        (b"owners/Orch/" + B.encode(), b"", "42"),
    ]


@pytest.mark.parametrize(
    ("page", "size", "limit"),
    [(0, 10, "10"), (2, 10, "30"), (-3, 5, "5"), (1, 0, str(2 * MAX_PAGE_SIZE))],
)
def test_range_body_reads_the_owner_prefix_up_to_the_end_of_the_page(page: int, size: int, limit: str) -> None:
    body = json.loads(range_body("Orch", page, size))
    assert unb64(body["key"]) == b"owners/Orch/"
    assert unb64(body["range_end"]) == b"owners/Orch0"
    assert body["limit"] == limit


def test_remove_txn_deletes_each_lock_only_if_the_owner_holds_it() -> None:
    body = json.loads(remove_txn_body("Orch", (A, B, A)))
    assert set(body) == {"success"}  # no outer compare: the outer txn always succeeds
    nested = [op["request_txn"] for op in body["success"]]
    assert len(nested) == 2  # duplicates once, as lockstore's remove
    for txn, instance in zip(nested, (A, B), strict=True):
        (compare,) = txn["compare"]
        assert (unb64(compare["key"]), compare["target"], compare["result"], unb64(compare["value"])) == (
            b"locks/" + instance.encode(),
            "VALUE",
            "EQUAL",
            b"Orch",
        )
        deleted = [unb64(op["request_delete_range"]["key"]) for op in txn["success"]]
        assert deleted == [b"locks/" + instance.encode(), b"owners/Orch/" + instance.encode()]
        assert "failure" not in txn


# ------------------------------------------------------------------------------------------ replies

HEADER = '"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"2"}'


def test_lease_id_stays_a_string() -> None:
    assert lease_id(("{" + HEADER + ',"ID":"4111120192797270022","TTL":"60"}').encode()) == "4111120192797270022"


def test_txn_succeeded_reads_the_absent_field_as_false() -> None:
    assert txn_succeeded(("{" + HEADER + ',"succeeded":true,"responses":[]}').encode())
    assert not txn_succeeded(("{" + HEADER + "}").encode())  # proto3 JSON leaves out a false bool


def test_parse_range_and_page_instances() -> None:
    keys = [owner_key("Orch", f"P{n}|svc|1.0.0") for n in range(5)]
    kvs = ",".join(
        f'{{"key":"{base64.b64encode(k).decode()}","create_revision":"2","mod_revision":"2","version":"1","lease":"9"}}'
        for k in keys
    )
    page = parse_range(("{" + HEADER + ',"kvs":[' + kvs + '],"more":true,"count":"12"}').encode())
    assert page == RangePage(count=12, kvs=tuple((k, b"", "9") for k in keys), more=True)
    assert page_instances("Orch", page, 1, 2) == ["P2|svc|1.0.0", "P3|svc|1.0.0"]
    assert page_instances("Orch", page, 2, 2) == ["P4|svc|1.0.0"]
    assert page_instances("Orch", page, 3, 2) == []
    empty = parse_range(("{" + HEADER + "}").encode())
    assert empty == RangePage(count=0, kvs=(), more=False)


def test_etcd_command_is_loopback_quiet_and_roomy() -> None:
    command = etcd_command("/usr/bin/etcd", Path("/tmp/d"), 1111, 2222)
    assert "--listen-client-urls=http://127.0.0.1:1111" in command
    assert "--initial-cluster=bench=http://127.0.0.1:2222" in command
    assert "--data-dir=/tmp/d" in command
    assert "--log-level=error" in command
    assert any(arg.startswith("--max-txn-ops=") for arg in command)
    assert "apt-get install -y etcd-server" in ETCD_INSTALL_HINT


# ------------------------------------------------------------------------------------------ HTTP wire


async def serve(stream: trio.abc.Stream, chunks: list[bytes]) -> None:
    """Write the response bytes in the given pieces, yielding between them."""
    for chunk in chunks:
        await stream.send_all(chunk)
        await trio.sleep(0)


async def test_content_length_and_chunked_bodies_split_anywhere() -> None:
    client, server = trio.testing.memory_stream_pair()
    connection = HttpConnection(client)
    fixed = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello"
    chunked = (
        b"HTTP/1.1 404 Not Found\r\nTrailer: Grpc-Trailer-Content-Type\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'6;ext=1\r\n{"a":1\r\nb\r\n, "b":2000}\r\n0\r\nGrpc-Trailer-Content-Type: application/grpc\r\n\r\n'
    )
    stream = fixed + chunked + fixed
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, server, [stream[i : i + 7] for i in range(0, len(stream), 7)])
        assert await connection.exchange(b"GET / HTTP/1.1\r\n\r\n") == (200, b"hello")
        assert await connection.exchange(b"GET / HTTP/1.1\r\n\r\n") == (404, b'{"a":1, "b":2000}')
        assert await connection.exchange(b"GET / HTTP/1.1\r\n\r\n") == (200, b"hello")
    assert connection.buffer == b""


async def test_a_closed_connection_is_a_connection_error() -> None:
    client, server = trio.testing.memory_stream_pair()
    connection = HttpConnection(client)
    await server.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal")
    await server.aclose()
    with pytest.raises(ConnectionError):
        await connection.exchange(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ConnectionError):
        await connection.exchange(b"GET / HTTP/1.1\r\n\r\n")  # sending on it now fails the same way


def test_http_request_without_authorization() -> None:
    request = http_request("POST", "/v3/kv/range", b"{}", "127.0.0.1:2379", authorization=None)
    assert request == (
        b"POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    assert b"Authorization: Bearer SYSTEM//Sysop\r\n" in http_request("GET", "/")


# ------------------------------------------------------------------------------------------ client flow


class ScriptedGateway:
    """Answers each request with the next (status, JSON) of a script and records (path, body)."""

    def __init__(
        self, stream: trio.abc.Stream, script: list[tuple[int, str]], routes: dict[str, tuple[int, str]] | None = None
    ) -> None:
        """With `routes`, each answer is chosen by the request's path instead (the script then only
        says how many requests to expect): for calls whose order trio does not fix."""
        self.stream = stream
        self.script = script
        self.routes = routes
        self.seen: list[tuple[str, Any]] = []

    async def run(self) -> None:
        buffer = b""
        for status, body in self.script:
            while b"\r\n\r\n" not in buffer:
                buffer += await self.stream.receive_some()
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(buffer) < length:
                buffer += await self.stream.receive_some()
            path = head.split(b" ")[1].decode()
            self.seen.append((path, json.loads(buffer[:length])))
            buffer = buffer[length:]
            if self.routes is not None:
                status, body = self.routes[path]
            data = body.encode()
            await self.stream.send_all(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(data)) + data)


async def with_gateway(script: list[tuple[int, str]], body: Callable[[EtcdClient], Awaitable[None]]) -> ScriptedGateway:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    gateway = ScriptedGateway(server_stream, script)
    client = EtcdClient(HttpConnection(client_stream), "127.0.0.1:2379")
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gateway.run)
            await body(client)
            nursery.cancel_scope.cancel()  # a request the script did not expect is caught below
    assert len(gateway.seen) == len(gateway.script), "the client sent fewer requests than scripted"
    return gateway


GRANT = (200, '{"ID":"77","TTL":"60"}')


async def test_create_is_a_grant_then_one_txn() -> None:
    async def body(client: EtcdClient) -> None:
        assert await client.call(CreateLocks("Orch", (A, B), 60)) == Reply(201)

    gateway = await with_gateway([GRANT, (200, '{"succeeded":true}')], body)
    assert [path for path, _ in gateway.seen] == [LEASE_GRANT, KV_TXN]
    assert gateway.seen[1][1] == json.loads(create_txn_body("Orch", (A, B), "77"))


async def test_a_failed_create_revokes_its_lease_and_answers_like_lockstore() -> None:
    async def body(client: EtcdClient) -> None:
        assert await client.call(CreateLocks("Orch", (A,), 60)) == Reply(CONFLICT_STATUS)

    gateway = await with_gateway([GRANT, (200, "{}"), (200, "{}")], body)
    assert gateway.seen[2] == (LEASE_REVOKE, {"ID": "77"})


async def test_a_gateway_error_is_the_reply_status() -> None:
    async def body(client: EtcdClient) -> None:
        assert await client.call(CreateLocks("Orch", (A,), 60)) == Reply(503)
        assert await client.call(QueryLocks("Orch")) == Reply(400)

    gateway = await with_gateway([(503, '{"error":"no leader"}'), (400, '{"error":"x"}')], body)
    assert [path for path, _ in gateway.seen] == [LEASE_GRANT, KV_RANGE]


async def test_query_remove_and_echo_paths() -> None:
    async def body(client: EtcdClient) -> None:
        assert await client.call(QueryLocks("Orch", 1, 5)) == Reply(200)
        assert await client.call(RemoveLocks("Orch", (A,))) == Reply(200)
        assert await client.call(Echo()) == Reply(200)

    gateway = await with_gateway([(200, "{}")] * 3, body)
    assert gateway.seen == [
        (KV_RANGE, json.loads(range_body("Orch", 1, 5))),
        (KV_TXN, json.loads(remove_txn_body("Orch", (A,)))),
        (STATUS, {}),
    ]


async def test_invalid_lock_lists_answer_400_without_a_request_and_rules_are_not_implemented() -> None:
    async def body(client: EtcdClient) -> None:
        assert await client.call(CreateLocks("Orch", (), 60)) == Reply(400)
        assert await client.call(CreateLocks("Orch", (A, A), 60)) == Reply(400)
        assert await client.call(RemoveLocks("Orch", ())) == Reply(400)
        with pytest.raises(NotImplementedError, match="QueryRules"):
            await client.call(QueryRules("Consumer"))
        with pytest.raises(NotImplementedError, match="CreateRules"):
            await client.call(CreateRules((RuleSpec("Consumer", A, 1),)))

    gateway = await with_gateway([], body)
    assert gateway.seen == []


async def test_concurrent_calls_are_serialised_and_a_cancelled_one_breaks_the_connection() -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    routes = {LEASE_GRANT: GRANT, KV_TXN: (200, '{"succeeded":true}'), STATUS: (200, "{}")}
    gateway = ScriptedGateway(server_stream, [GRANT] * 3, routes)  # trio may start either call first
    client = EtcdClient(HttpConnection(client_stream), "127.0.0.1:2379")
    replies: list[Reply] = []

    async def call(operation: CreateLocks | Echo) -> None:
        replies.append(await client.call(operation))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gateway.run)
            nursery.start_soon(call, CreateLocks("Orch", (A,), 60))
            nursery.start_soon(call, Echo())
    assert sorted(r.status for r in replies) == [200, 201]
    paths = [path for path, _ in gateway.seen]
    assert paths.index(KV_TXN) == paths.index(LEASE_GRANT) + 1  # the echo never lands between grant and txn

    with trio.move_on_after(0.01):
        await client.call(Echo())  # nobody answers: cancelled half-way
    with pytest.raises(ConnectionError):
        await client.call(Echo())
