"""The harness's pure parts: the open-loop schedule, the scenarios' operations, the HTTP requests."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from bench.http_client import created_ids, request_parts
from bench.operations import (
    CreateLocks,
    CreateRules,
    Echo,
    ModifyPriorities,
    QueryLocks,
    QueryRules,
    RemoveLocks,
    RemoveRules,
    Reply,
    RuleSpec,
    expires_at,
)
from bench.timeline import Schedule, Window, processes_for, split
from bench.workload import SCENARIOS, OrchestratorChurn, RuleChurn, Sizes, WorkerContext, preload_owner


@pytest.mark.parametrize("processes", [1, 2, 3, 7])
def test_processes_together_make_one_uniform_timeline(processes: int) -> None:
    rate, seconds = 250.0, 2.0
    dues = sorted(
        Schedule(rate, p, processes).due(10.0, i)
        for p in range(processes)
        for i in range(Schedule(rate, p, processes).count(seconds))
    )
    assert len(dues) == 500
    assert dues == pytest.approx([10.0 + g / rate for g in range(500)])


def test_counts_split_a_total_that_does_not_divide() -> None:
    assert [Schedule(100.0, p, 3).count(1.0) for p in range(3)] == [34, 33, 33]
    assert [split(10, 4, p) for p in range(4)] == [3, 3, 2, 2]


def test_window_excludes_warmup_and_names_seconds() -> None:
    window = Window(start=100.0, warmup=2.0, duration=3.0)
    assert not window.measured(101.999)
    assert window.measured(102.0) and window.measured(104.999)
    assert not window.measured(105.0)
    assert window.second(102.5) == 0 and window.second(104.2) == 2
    assert window.seconds() == 3


def test_enough_processes_for_the_rate_but_not_more_than_cores() -> None:
    assert processes_for(1000, None, cores=2, per_process_rate=4000) == 1
    assert processes_for(6000, None, cores=2, per_process_rate=4000) == 2
    assert processes_for(60000, None, cores=8, per_process_rate=4000) == 8
    assert processes_for(None, 200, cores=8, per_process_rate=4000) == 4


# ------------------------------------------------------------------------------------------ requests


def test_http_requests_of_every_operation() -> None:
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    method, path, body = request_parts(CreateLocks("Orch", ("A|svc|1.0.0", "B|svc|1.0.0"), 60), now)
    assert (method, path) == ("POST", "/serviceorchestration/orchestration/mgmt/lock/create")
    assert json.loads(body) == {
        "locks": [
            {"serviceInstanceId": "A|svc|1.0.0", "owner": "Orch", "expiresAt": "2027-01-15T08:01:00Z"},
            {"serviceInstanceId": "B|svc|1.0.0", "owner": "Orch", "expiresAt": "2027-01-15T08:01:00Z"},
        ]
    }
    method, path, body = request_parts(QueryLocks("Orch", 2, 5))
    assert json.loads(body) == {"owners": ["Orch"], "pagination": {"page": 2, "size": 5}}
    method, path, body = request_parts(RemoveLocks("Orch", ("A|svc|1.0.0", "B|svc|1.0.0")))
    url = urlsplit(path)
    assert (method, url.path, body) == ("DELETE", "/serviceorchestration/orchestration/mgmt/lock/remove/Orch", b"")
    assert parse_qs(url.query) == {"instanceIds": ["A|svc|1.0.0", "B|svc|1.0.0"]}
    assert "%7C" in url.query
    method, path, body = request_parts(CreateRules((RuleSpec("C", "P|svc|1.0.0", 3),)))
    assert (method, path) == ("POST", "/serviceorchestration/orchestration/mgmt/simple-store/create")
    assert json.loads(body) == {"candidates": [{"consumer": "C", "serviceInstanceId": "P|svc|1.0.0", "priority": 3}]}
    method, path, body = request_parts(QueryRules("C"))
    assert json.loads(body) == {"consumerNames": ["C"], "pagination": {"page": 0, "size": 10}}
    method, path, body = request_parts(ModifyPriorities((("id1", 2), ("id2", 1))))
    assert (method, json.loads(body)) == ("PUT", {"id1": 2, "id2": 1})
    method, path, body = request_parts(RemoveRules(("id1", "id2")))
    assert parse_qs(urlsplit(path).query) == {"uuids": ["id1", "id2"]}
    assert request_parts(Echo()) == ("GET", "/serviceorchestration/monitor/echo", b"")


def test_expiry_is_whole_seconds_utc() -> None:
    assert expires_at(60, now=1_800_000_000.7) == "2027-01-15T08:01:00Z"


def test_created_ids_read_from_a_create_reply() -> None:
    assert created_ids(b'{"entries":[{"id":"a"},{"id":"b"}],"count":2}') == ("a", "b")
    assert created_ids(b"not json") == ()


# ------------------------------------------------------------------------------------------ scenarios


def _context(worker: int = 0, workers: int = 1, prepared: tuple[tuple[str, ...], ...] = ()) -> WorkerContext:
    return WorkerContext(worker, workers, seed=7, tag="TAG", sizes=Sizes(preload=1000, records=1000), prepared=prepared)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_makes_operations_that_encode(name: str) -> None:
    scenario = SCENARIOS[name]
    prepared = (("r1", "r2", "r3"),) * 3
    workload = scenario.workload(_context(prepared=prepared))
    for _ in range(50):
        label, operation = workload.next()
        assert label
        request_parts(operation)  # raises for anything the HTTP client cannot send
        workload.answered(operation, Reply(201, ("n1", "n2", "n3")) if isinstance(operation, CreateRules) else Reply(200))
        if scenario.locks_only:
            assert not isinstance(operation, CreateRules | QueryRules | ModifyPriorities | RemoveRules)
    for operation in scenario.setup("TAG", Sizes(preload=1000, records=1000)):
        request_parts(operation)


def test_preloaded_locks_are_all_created_and_each_removed_once_over_the_workers() -> None:
    setup = SCENARIOS["lock-remove"].setup("TAG", Sizes(preload=1000))
    created = {(op.owner, i) for op in setup if isinstance(op, CreateLocks) for i in op.instances}
    assert len(created) == 1000
    assert all(len(op.instances) <= 100 for op in setup if isinstance(op, CreateLocks))
    removed = []
    for worker in range(3):
        workload = SCENARIOS["lock-remove"].workload(_context(worker, 3))
        for _ in range(len(range(worker, 1000, 3))):
            _, op = workload.next()
            assert isinstance(op, RemoveLocks)
            removed.extend((op.owner, i) for i in op.instances)
    assert sorted(removed) == sorted(created)


def test_churn_removes_only_locks_whose_create_succeeded() -> None:
    churn = OrchestratorChurn(_context())
    created: list[CreateLocks] = []
    granted: list[tuple[str, tuple[str, ...]]] = []
    removed: list[RemoveLocks] = []
    for step in range(400):
        _, op = churn.next()
        if isinstance(op, CreateLocks):
            created.append(op)
            ok = step % 3 != 0  # every third create fails
            churn.answered(op, Reply(201 if ok else 503))
            if ok:
                granted.append((op.owner, op.instances))
        elif isinstance(op, RemoveLocks):
            removed.append(op)
    kinds = {type(op) for op in created + removed}
    assert kinds == {CreateLocks, RemoveLocks}
    assert all((r.owner, r.instances) in granted for r in removed)
    assert len({r.instances for r in removed}) == len(removed)  # never removes the same locks twice
    all_instances = [i for c in created for i in c.instances]
    assert len(all_instances) == len(set(all_instances))  # every create locks fresh instances


def test_churn_never_removes_a_failed_create() -> None:
    churn = OrchestratorChurn(_context())
    for _ in range(300):
        _, op = churn.next()
        if isinstance(op, CreateLocks):
            churn.answered(op, Reply(409))
        elif isinstance(op, RemoveLocks):
            pytest.fail(f"removed {op} though no create succeeded")


def test_rule_churn_rotations_stay_a_permutation_of_priorities() -> None:
    churn = RuleChurn(_context())
    for _ in range(300):
        _, op = churn.next()
        if isinstance(op, CreateRules):
            churn.answered(op, Reply(201, tuple(f"{r.consumer}-{r.priority}" for r in op.rules)))
        elif isinstance(op, ModifyPriorities):
            assert sorted(p for _, p in op.priorities) == list(range(1, len(op.priorities) + 1))


def test_rule_churn_never_removes_a_rule_set_while_its_modify_is_in_flight() -> None:
    churn = RuleChurn(_context())
    in_flight: list[ModifyPriorities] = []
    for step in range(500):
        _, op = churn.next()
        if isinstance(op, CreateRules):
            churn.answered(op, Reply(201, tuple(f"{r.consumer}-{r.priority}" for r in op.rules)))
        elif isinstance(op, ModifyPriorities):
            in_flight.append(op)
        elif isinstance(op, RemoveRules):
            busy = {rule for modify in in_flight for rule, _ in modify.priorities}
            assert not busy & set(op.ids)
        if step % 7 == 0 and in_flight:  # answers come late and out of order
            churn.answered(in_flight.pop(0), Reply(200))


def test_rule_modify_alternates_swaps_of_one_consumers_two_rules() -> None:
    workload = SCENARIOS["rule-modify"].workload(_context(prepared=(("a1", "a2", "a3"), ("b1", "b2"))))
    seen = [workload.next()[1] for _ in range(4)]
    assert seen == [
        ModifyPriorities((("a1", 2), ("a2", 1))),
        ModifyPriorities((("b1", 2), ("b2", 1))),
        ModifyPriorities((("a1", 1), ("a2", 2))),
        ModifyPriorities((("b1", 1), ("b2", 2))),
    ]


def test_bulk_load_requests_cover_the_records() -> None:
    scenario = SCENARIOS["bulk-load-locks"]
    assert scenario.total is not None and scenario.total(Sizes(records=100_000)) == 1000
    _, op = scenario.workload(_context()).next()
    assert isinstance(op, CreateLocks) and len(set(op.instances)) == 100


def test_preload_owners_spread() -> None:
    assert len({preload_owner(n) for n in range(1000)}) == 100
