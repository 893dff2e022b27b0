"""The etcd client's request logic against a scripted gateway (httpx.MockTransport, no sockets):
failover, what is retried and what is not, deadlines, authentication and token refresh, the leader
header, watch streams; and the revision gate and the shared revision fetch."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import trio
import trio.testing

from actors.etcd import wire
from actors.etcd.client import EtcdClient, EtcdConfig
from actors.etcd.errors import AuthenticationFailed, EtcdRequestError, EtcdUnavailable, OutcomeUnknown
from actors.etcd.fresh_revision import RevisionFetcher
from actors.etcd.revision_gate import CacheBehind, RevisionGate

A, B, C = "http://a:2379", "http://b:2379", "http://c:2379"
RANGE_OK = b'{"header":{"revision":"7"},"kvs":[{"key":"aw==","mod_revision":"5","value":"dg=="}],"count":"1"}'
TXN_OK = b'{"header":{"revision":"8"},"succeeded":true}'

Handler = Callable[[httpx.Request], httpx.Response]


def error(code: int, message: str, status: int = 503) -> httpx.Response:
    return httpx.Response(status, json={"error": message, "message": message, "code": code})


def client(handler: Handler, **config: object) -> tuple[EtcdClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    settings = {"endpoints": (A, B, C), "deadline": 2.0, **config}
    return EtcdClient(EtcdConfig(**settings), transport=httpx.MockTransport(record)), seen  # type: ignore[arg-type]


def hosts(seen: list[httpx.Request]) -> list[str]:
    return [request.url.host for request in seen]


TXN = wire.TxnRequest(compare=[wire.absent(b"k")], success=[wire.put(b"k", b"v")])


async def test_requests_go_to_the_current_endpoint_and_carry_the_leader_requirement() -> None:
    etcd, seen = client(lambda request: httpx.Response(200, content=RANGE_OK))
    reply = await etcd.range(wire.RangeRequest(b"k"))
    assert reply.kvs[0].mod_revision == 5 and reply.header.revision == 7
    assert hosts(seen) == ["a"] and seen[0].url.path == "/v3/kv/range"
    assert seen[0].headers["grpc-metadata-hasleader"] == "true"
    assert "authorization" not in seen[0].headers
    assert json.loads(seen[0].content) == {"key": "aw=="}
    assert etcd.stats.requests[("/v3/kv/range", "ok")] == 1


async def test_an_unreachable_member_is_skipped_for_reads_and_writes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, content=TXN_OK)

    etcd, seen = client(handler)
    assert (await etcd.txn(TXN)).succeeded
    assert hosts(seen) == ["a", "b"]
    assert (await etcd.txn(TXN)).succeeded
    assert hosts(seen) == ["a", "b", "b"]  # b is current now
    assert etcd.stats.endpoint_failovers == 1


async def test_a_write_whose_answer_is_lost_is_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    etcd, seen = client(handler, deadline=0.3)
    with pytest.raises(OutcomeUnknown):
        await etcd.txn(TXN)
    assert hosts(seen) == ["a"]
    assert etcd.stats.unknown_outcomes == 1
    # A read-only txn or a range is retried elsewhere instead.
    seen.clear()
    with pytest.raises(EtcdUnavailable):
        await etcd.txn(wire.TxnRequest(success=[wire.get(b"k")]))
    assert set(hosts(seen)) == {"a", "b", "c"} and len(seen) >= 3


@pytest.mark.parametrize(
    ("message", "retried"),
    [("etcdserver: no leader", True), ("etcdserver: too many requests", True),
     ("etcdserver: request timed out", False), ("etcdserver: leader changed", False)],
)
async def test_which_write_failures_are_retried(message: str, retried: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return error(14, message) if request.url.host == "a" else httpx.Response(200, content=TXN_OK)

    etcd, seen = client(handler)
    if retried:
        assert (await etcd.txn(TXN)).succeeded
        assert hosts(seen) == ["a", "b"]
    else:
        with pytest.raises(OutcomeUnknown, match=message):
            await etcd.txn(TXN)
        assert hosts(seen) == ["a"]


async def test_a_final_error_is_raised_at_once() -> None:
    etcd, seen = client(lambda request: error(3, "etcdserver: too many operations in txn request", 400))
    with pytest.raises(EtcdRequestError, match="too many operations") as info:
        await etcd.txn(TXN)
    assert info.value.code == 3 and len(seen) == 1


async def test_every_member_down_ends_at_the_deadline_with_backoff() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    etcd, seen = client(handler, deadline=0.5)
    started = trio.current_time()
    with pytest.raises(EtcdUnavailable, match=r"no etcd member answered within 0\.5 s"):
        await etcd.range(wire.RangeRequest(b"k"))
    elapsed = trio.current_time() - started
    assert 0.2 < elapsed <= 0.6
    assert 3 <= len(seen) < 40  # rounds of three, with backoff between them, not a busy loop


async def test_a_garbled_answer_is_an_error_not_a_crash() -> None:
    etcd, _ = client(lambda request: httpx.Response(200, content=b"<html>hello</html>"))
    with pytest.raises(EtcdRequestError, match="unexpected answer"):
        await etcd.range(wire.RangeRequest(b"k"))


# ------------------------------------------------------------------------------------------ auth


def auth_gateway(tokens: list[str], *, valid: set[str]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == wire.AUTHENTICATE:
            body = json.loads(request.content)
            if body != {"name": "lockstore", "password": "secret"}:
                return error(3, "etcdserver: authentication failed, invalid user ID or password", 400)
            token = f"token{len(tokens)}"
            tokens.append(token)
            valid.add(token)
            return httpx.Response(200, json={"header": {}, "token": token})
        if request.headers.get("authorization") not in valid:
            return error(16, "etcdserver: invalid auth token", 401)
        return httpx.Response(200, content=RANGE_OK)

    return handler


async def test_token_is_fetched_once_for_concurrent_requests_and_refreshed_when_invalid() -> None:
    tokens: list[str] = []
    valid: set[str] = set()
    etcd, seen = client(auth_gateway(tokens, valid=valid), username="lockstore", password="secret")
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(etcd.range, wire.RangeRequest(b"k"))
    assert tokens == ["token0"]
    assert all(r.headers["authorization"] == "token0" for r in seen if r.url.path == wire.RANGE)
    valid.clear()  # the cluster forgot the token (TTL, restart, password change)
    await etcd.range(wire.RangeRequest(b"k"))
    assert tokens == ["token0", "token1"]
    assert seen[-1].headers["authorization"] == "token1"


async def test_a_wrong_password_is_a_clear_error() -> None:
    etcd, _ = client(auth_gateway([], valid=set()), username="lockstore", password="wrong")
    with pytest.raises(AuthenticationFailed, match="authentication failed"):
        await etcd.range(wire.RangeRequest(b"k"))


def test_a_user_without_a_password_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="etcd_password"):
        EtcdClient(EtcdConfig((A,), username="lockstore"))


# ------------------------------------------------------------------------------------------ watch


class Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


async def test_watch_yields_responses_across_chunk_boundaries() -> None:
    stream = (b'{"result":{"header":{"revision":"3"},"created":true}}\n'
              b'{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"aw==","mod_revision":"4"}}]}}\n')
    etcd, seen = client(lambda request: httpx.Response(200, stream=Chunks([stream[:10], stream[10:70], stream[70:]])))
    async with etcd.watch(wire.WatchCreateRequest(b"k", start_revision=4)) as watch:
        got = [response async for response in watch]
    assert [(r.created, [e.kv.mod_revision for e in r.events]) for r in got] == [(True, []), (False, [4])]
    assert json.loads(seen[0].content) == {"create_request": {"key": "aw==", "start_revision": 4}}
    assert seen[0].headers["grpc-metadata-hasleader"] == "true"


async def test_an_error_inside_a_watch_stream_raises() -> None:
    stream = b'{"error":{"grpc_code":14,"message":"etcdserver: no leader"}}\n'
    etcd, _ = client(lambda request: httpx.Response(200, stream=Chunks([stream])))
    with pytest.raises(EtcdUnavailable, match="no leader"):
        async with etcd.watch(wire.WatchCreateRequest(b"k")) as watch:
            async for _ in watch:
                pass


# ------------------------------------------------------------------------------------------ gate


async def test_gate_releases_waiters_in_revision_order_and_times_out() -> None:
    gate = RevisionGate()
    released: list[int] = []

    async def wait(revision: int) -> None:
        await gate.wait(revision, 10)
        released.append(revision)

    async with trio.open_nursery() as nursery:
        for revision in (5, 3, 9):
            nursery.start_soon(wait, revision)
        await trio.testing.wait_all_tasks_blocked()
        assert gate.waiting == 3 and gate.lag == 9
        gate.advance(4)
        await trio.testing.wait_all_tasks_blocked()
        assert released == [3]
        gate.advance(9)
    assert sorted(released) == [3, 5, 9] and gate.waiting == 0 and gate.lag == 0
    with pytest.raises(CacheBehind, match="behind revision 12"):
        await gate.wait(12, 0.05)
    assert gate.waiting == 0


async def test_gate_stall_counts_from_the_last_advance(autojump_clock: trio.testing.MockClock) -> None:
    gate = RevisionGate()
    assert gate.stalled_for() == 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gate.wait, 10, 100.0)
        await trio.sleep(3)
        assert gate.stalled_for() == pytest.approx(3)
        gate.advance(5)  # progress, but not yet far enough for the waiter
        await trio.sleep(1)
        assert gate.stalled_for() == pytest.approx(1)
        gate.advance(10)
    assert gate.stalled_for() == 0


# ------------------------------------------------------------------------------------------ fetcher


async def test_concurrent_reads_share_a_fetch_that_began_after_them() -> None:
    started: list[int] = []
    release = trio.Event()
    counter = iter(range(100, 200))

    async def fetch() -> int:
        started.append(len(started))
        await release.wait()
        return next(counter)

    fetcher = RevisionFetcher(fetch)
    results: dict[str, int] = {}

    async def read(name: str) -> None:
        results[name] = await fetcher.current()

    async with trio.open_nursery() as nursery:
        await nursery.start(fetcher.run)
        for name in ("a", "b", "c"):
            nursery.start_soon(read, name)
        await trio.testing.wait_all_tasks_blocked()
        assert started == [0]  # one fetch for the three
        nursery.start_soon(read, "late1")  # arrive while that fetch is in flight
        nursery.start_soon(read, "late2")
        await trio.testing.wait_all_tasks_blocked()
        assert started == [0]
        release.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert results == {"a": 100, "b": 100, "c": 100, "late1": 101, "late2": 101}
    assert fetcher.fetches == 2


async def test_a_failed_fetch_fails_its_reads_only() -> None:
    outcomes = iter([EtcdUnavailable("down"), 7])

    async def fetch() -> int:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    fetcher = RevisionFetcher(fetch)
    async with trio.open_nursery() as nursery:
        await nursery.start(fetcher.run)
        with pytest.raises(EtcdUnavailable):
            await fetcher.current()
        assert await fetcher.current() == 7
        nursery.cancel_scope.cancel()
