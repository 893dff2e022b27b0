"""The harness's MQTT client against a real mosquitto and the real `lockstore serve` (bench.mqtt_targets):
every operation, 50 calls at once on ONE client, and each reply must reach its own caller — the calls
are made to differ in what they get back (counts per owner/consumer, ids per create, success vs
conflict), so a reply handed to the wrong caller fails the test."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest
import trio

from bench.mqtt_client import MqttClient
from bench.mqtt_targets import Broker, Service, lockstore_over_mqtt, mosquitto_broker, mqtt_echo
from bench.operations import (
    Client,
    CreateLocks,
    CreateRules,
    Echo,
    Endpoint,
    ModifyPriorities,
    Operation,
    QueryLocks,
    QueryRules,
    RemoveLocks,
    RemoveRules,
    Reply,
    RuleSpec,
    instance_name,
)
from tests.mqtt.broker import MosquittoBroker

N = 50
T = TypeVar("T")


@pytest.fixture(scope="module")
def service(shared_broker: MosquittoBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    broker = Broker(0, shared_broker.port, f"mqtt://{shared_broker.host}:{shared_broker.port}")  # 0: not ours
    prefix = f"benchclient{os.getpid()}"  # the shared broker's other users do not see our requests
    with lockstore_over_mqtt(broker, tmp_path_factory.mktemp("lockstore"), "--fsync", "never",
                             prefix=prefix) as running:
        yield running


async def gather(call: Callable[[Operation], Awaitable[T]], operations: Sequence[Operation]) -> list[T]:
    """`call` on every operation at once; results in the order of `operations`."""
    results: list[Any] = [None] * len(operations)

    async def one(index: int) -> None:
        results[index] = await call(operations[index])

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for index in range(len(operations)):
                nursery.start_soon(one, index)
    return results


async def test_locks_every_reply_reaches_its_caller(service: Service) -> None:
    client = await MqttClient.open(service.endpoint)
    checked: Client = client  # the harness's protocol
    assert checked is client
    # Owner i gets i % 5 + 1 locks, all created at once.
    locks = {f"Own{i}": tuple(instance_name(f"L{i}", k) for k in range(i % 5 + 1)) for i in range(N)}
    created = await gather(client.call, [CreateLocks(o, ls, 600) for o, ls in locks.items()])
    assert created == [Reply(201)] * N

    queried = await gather(client.call_raw, [QueryLocks(o, size=100) for o in locks])
    counts = [json.loads(body)["payload"]["count"] for body in queried]
    assert counts == [len(ls) for ls in locks.values()]
    owners = [{e["owner"] for e in json.loads(body)["payload"]["entries"]} for body in queried]
    assert owners == [{o} for o in locks]
    assert [r.status for r in await gather(client.call, [QueryLocks(o) for o in locks])] == [200] * N

    # Half the calls conflict with a lock just taken (400), half lock something new (201), interleaved.
    mixed = await gather(client.call, [
        CreateLocks(f"Other{i}", (instance_name(f"L{i}", 0),), 600) if i % 2 else
        CreateLocks(f"Own{i}", (instance_name(f"M{i}", 0),), 600)
        for i in range(N)
    ])
    assert [r.status for r in mixed] == [400 if i % 2 else 201 for i in range(N)]

    removed = await gather(client.call, [RemoveLocks(o, ls) for o, ls in locks.items()])
    assert removed == [Reply(200)] * N
    left = await gather(client.call_raw, [QueryLocks(o) for o in locks])
    assert [json.loads(body)["payload"]["count"] for body in left] == [0 if i % 2 else 1 for i in range(N)]
    assert client.in_flight == 0
    await client.aclose()


async def test_rules_every_reply_reaches_its_caller(service: Service) -> None:
    client = await MqttClient.open(service.endpoint)
    # Consumer i gets i % 4 + 1 rules, created at once: each caller must get back the ids of its own.
    wanted = {f"Cons{i}": tuple(RuleSpec(f"Cons{i}", instance_name(f"R{i}", k), k + 1) for k in range(i % 4 + 1))
              for i in range(N)}
    created = await gather(client.call, [CreateRules(rs) for rs in wanted.values()])
    assert [r.status for r in created] == [201] * N
    assert [len(r.ids) for r in created] == [len(rs) for rs in wanted.values()]
    assert len({rule_id for r in created for rule_id in r.ids}) == sum(len(r.ids) for r in created)

    queried = await gather(client.call_raw, [QueryRules(c, size=100) for c in wanted])
    assert [sorted(e["id"] for e in json.loads(body)["payload"]["entries"]) for body in queried] == [
        sorted(r.ids) for r in created]

    # Reverse each consumer's priorities; a consumer with one rule gets an unknown id instead: 400.
    def change(reply: Reply) -> ModifyPriorities:
        if len(reply.ids) == 1:
            return ModifyPriorities((("7d6c6a8e-0000-4000-8000-000000000000", 1),))
        return ModifyPriorities(tuple((rule_id, len(reply.ids) - k) for k, rule_id in enumerate(reply.ids)))

    modified = await gather(client.call, [change(r) for r in created])
    assert [m.status for m in modified] == [400 if len(r.ids) == 1 else 200 for r in created]
    removed = await gather(client.call, [RemoveRules(r.ids) for r in created])
    assert removed == [Reply(200)] * N
    left = await gather(client.call_raw, [QueryRules(c) for c in wanted])
    assert [json.loads(body)["payload"]["count"] for body in left] == [0] * N
    echoed = await gather(client.call, [Echo()] * N)
    assert echoed == [Reply(200)] * N
    await client.aclose()


async def test_cancelled_calls_leave_the_client_usable(service: Service) -> None:
    """Replies to calls cancelled after sending arrive with nobody waiting: they must not be taken for
    the replies of later calls."""
    client = await MqttClient.open(service.endpoint)
    owners = [f"Late{i}" for i in range(N)]
    await gather(client.call, [CreateLocks(o, (instance_name(o, 0),), 600) for o in owners[:10]])
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            for owner in owners[:10]:
                nursery.start_soon(client.call, QueryLocks(owner))
            while client.in_flight < 10:
                await trio.sleep(0)
            await trio.sleep(0)  # the queued requests are written (the write itself is never cut)
            scope.cancel()
    assert client.in_flight == 0
    bodies = await gather(client.call_raw, [QueryLocks(o) for o in owners])
    assert [json.loads(body)["payload"]["count"] for body in bodies] == [1] * 10 + [0] * (N - 10)
    await client.aclose()
    with pytest.raises(ConnectionError):
        await client.call(Echo())


async def test_a_broken_connection_fails_every_waiting_call(broker: MosquittoBroker) -> None:
    """Nobody answers on this broker: the calls wait until it is killed, then each raises ConnectionError,
    and so does every later call."""
    client = await MqttClient.open(Endpoint("mqtt", f"mqtt://{broker.host}:{broker.port}", prefix="nobody"))
    failures: list[BaseException] = []

    async def waiting() -> None:
        try:
            await client.call(QueryLocks("O"))
        except ConnectionError as error:
            failures.append(error)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(waiting)
            while client.in_flight < 20:
                await trio.sleep(0)
            await trio.sleep(0.2)
            assert failures == []
            broker.kill()
    assert len(failures) == 20
    with pytest.raises(ConnectionError):
        await client.call(Echo())
    await client.aclose()


def test_the_echo_target_answers_every_operation_as_a_success() -> None:
    """mosquitto_broker and mqtt_echo as the harness starts them; both are gone afterwards."""
    operations: list[Operation] = [Echo(), CreateLocks("O", (instance_name("E", 1),), 60), QueryLocks("O"),
                  RemoveLocks("O", (instance_name("E", 1),)), CreateRules((RuleSpec("C", instance_name("E", 1), 1),)),
                  QueryRules("C"), ModifyPriorities((("x", 1),)), RemoveRules(("x",))]

    async def run(endpoint: Endpoint) -> list[Reply]:
        client = await MqttClient.open(endpoint)
        try:
            return await gather(client.call, operations * 5)
        finally:
            await client.aclose()

    with mosquitto_broker() as broker, mqtt_echo(broker) as echo:
        assert echo.endpoint.url == broker.url
        replies = trio.run(run, echo.endpoint)
        pids = (broker.pid, echo.pid)
    assert replies == [Reply(200)] * len(operations) * 5
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # signal 0: does the process exist?
