"""Client load over HTTP against several lockstore instances in etcd mode, recording what clients were told
(the service-level counterpart of tests/etcd/load.py, which drives the actors directly).

- `race`: a client creating locks on a few shared service instances with expiries of one or two seconds,
  through the instance `urls[k]` (looked up per request: a restarted instance gets a new URL), sometimes
  removing its lock; every 201 it is given is a `Grant` for tests/etcd/history.py's double-grant check.
- `keep`: a client creating long-lived locks and rules of its own; every acknowledged one must be there,
  exactly once, at the end.

A 503, a timeout or a broken connection is an unknown outcome (the request may have been applied): it
is counted and the client goes on, as a real client retrying would. Nothing here sleeps to wait for the
service: the pauses are the clients' own think time.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import trio

from tests.etcd.history import Grant

SYSOP = {"Authorization": "Bearer SYSTEM//Sysop"}
LOCK = "/serviceorchestration/orchestration/mgmt/lock"
STORE = "/serviceorchestration/orchestration/mgmt/simple-store"
FAR = "2099-01-01T00:00:00Z"
EVERYTHING = {"page": 0, "size": 1000, "sortField": "id", "direction": "ASC"}


@dataclass
class Record:
    grants: list[Grant] = field(default_factory=list)
    kept_locks: dict[str, dict[str, Any]] = field(default_factory=dict)  # instance id -> entry as answered
    kept_rules: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule id -> entry as answered
    attempted: Counter[str] = field(default_factory=Counter)  # keeper writes sent, by kind
    outcomes: Counter[str] = field(default_factory=Counter)


def instant(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


async def send(http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response | None:
    """The response, or None when the outcome is unknown (no answer: refused, reset, timed out)."""
    try:
        return await http.request(method, url, headers=SYSOP, **kw)
    except httpx.HTTPError:
        return None


async def race(http: httpx.AsyncClient, urls: list[str], k: int, client: str, instances: list[str],
               until: float, rng: random.Random, record: Record) -> None:
    while trio.current_time() < until:
        instance = rng.choice(instances)
        requested = time.time()
        expires = int(requested) + rng.choice((2, 3))  # whole seconds: 1 to 3 s from now
        response = await send(http, "POST", f"{urls[k]}{LOCK}/create", json={"locks": [
            {"serviceInstanceId": instance, "owner": client, "expiresAt": instant(expires)}]})
        if response is None or response.status_code == 503:
            record.outcomes["unknown"] += 1
            await trio.sleep(0.05)
            continue
        if response.status_code == 400:
            if "is in the past" in response.text:  # a request that took over a second to arrive
                record.outcomes["too late"] += 1
                continue
            assert "Already locked" in response.text, response.text
            record.outcomes["already locked"] += 1
            await trio.sleep(rng.uniform(0, 0.02))
            continue
        assert response.status_code == 201, response.text
        entry = response.json()["entries"][0]
        grant = Grant(instance, entry["id"], client, requested, time.time(), expires)
        record.outcomes["granted"] += 1
        if rng.random() < 0.3:
            await trio.sleep(rng.uniform(0, 0.05))
            grant = replace(grant, released=time.time())
            removed = await send(http, "DELETE", f"{urls[k]}{LOCK}/remove/{client}", params={"instanceIds": instance})
            record.outcomes["removed" if removed is not None and removed.status_code == 200 else "unknown"] += 1
        record.grants.append(grant)


async def keep(http: httpx.AsyncClient, urls: list[str], k: int, client: str, until: float, rng: random.Random,
               record: Record) -> None:
    number = 0
    while trio.current_time() < until:
        number += 1
        if number % 3:
            instance = f"{client}{number}|svc|1.0.0"
            record.attempted["locks"] += 1
            response = await send(http, "POST", f"{urls[k]}{LOCK}/create", json={"locks": [
                {"serviceInstanceId": instance, "owner": client, "expiresAt": FAR}]})
            if response is not None and response.status_code == 201:
                record.kept_locks[instance] = response.json()["entries"][0]
        else:
            record.attempted["rules"] += 1
            response = await send(http, "POST", f"{urls[k]}{STORE}/create", json={"candidates": [
                {"consumer": client, "serviceInstanceId": f"P{number}|svc|1.0.0", "priority": number}]})
            if response is not None and response.status_code == 201:
                entry = response.json()["entries"][0]
                record.kept_rules[entry["id"]] = entry
        if response is None or response.status_code == 503:
            record.outcomes["unknown"] += 1
            await trio.sleep(0.05)
        else:
            assert response.status_code == 201, response.text
            record.outcomes["kept"] += 1
        await trio.sleep(rng.uniform(0, 0.01))


async def kept_state(http: httpx.AsyncClient, url: str, keepers: list[str]) -> tuple[list[Any], list[Any]]:
    """Every long-lived lock and rule of the keepers, as one instance shows them (linearizable reads)."""
    locks = await http.post(f"{url}{LOCK}/query", headers=SYSOP, json={"owners": keepers, "pagination": EVERYTHING})
    rules = await http.post(f"{url}{STORE}/query", headers=SYSOP,
                            json={"consumerNames": keepers, "pagination": EVERYTHING})
    assert locks.status_code == 200 and rules.status_code == 200, (locks.text, rules.text)
    assert locks.json()["count"] < 1000 and rules.json()["count"] < 1000  # one page holds them all
    return locks.json()["entries"], rules.json()["entries"]


def check_kept(record: Record, locks: list[Any], rules: list[Any]) -> None:
    """No acknowledged write lost or changed, none applied twice."""
    by_instance = {entry["serviceInstanceId"]: entry for entry in locks}
    lost = [entry for instance, entry in record.kept_locks.items() if by_instance.get(instance) != entry]
    assert not lost, f"acknowledged locks lost or changed: {lost[:3]}"
    assert len(by_instance) == len(locks), "one service instance locked twice"
    by_id = {entry["id"]: entry for entry in rules}
    lost_rules = [entry for rule_id, entry in record.kept_rules.items() if by_id.get(rule_id) != entry]
    assert not lost_rules, f"acknowledged rules lost or changed: {lost_rules[:3]}"
    slots = [(entry["consumer"], entry["serviceDefinition"], entry["priority"]) for entry in rules]
    assert len(slots) == len(set(slots)), "a (consumer, definition, priority) held twice"
    # Never more records than writes sent (an unknown outcome may or may not be there; none is there twice).
    assert len(locks) <= record.attempted["locks"] and len(rules) <= record.attempted["rules"]
    assert len({entry["id"] for entry in locks}) == len(locks)
