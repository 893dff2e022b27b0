"""What a benchmark asks a target to do, independent of the wire: the lock and rule operations of the
service, as plain values. Each target's client (`bench.http_client`, `bench.mqtt_client`,
`bench.etcd_peer`) turns them into its own requests, so one scenario drives lockstore over HTTP or
MQTT, the echo ceilings and etcd alike, and their numbers are comparable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

# Everything the scenarios lock is an instance of this form: letters, digits and the `|` separators.
INSTANCE_SUFFIX = "|svc|1.0.0"


def expires_at(ttl_s: int, now: float | None = None) -> str:
    """The `expiresAt` instant `ttl_s` after `now` (default: now) in the service's format (UTC, whole
    seconds), the same on both transports."""
    moment = int(now if now is not None else time.time()) + ttl_s
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def instance_name(prefix: str, number: int) -> str:
    """A unique, valid service instance id (`prefix` must be letters and digits)."""
    return f"{prefix}x{number}{INSTANCE_SUFFIX}"


@dataclass(frozen=True, slots=True)
class Echo:
    """The service's monitor echo: the transport and framework with no state behind them."""


@dataclass(frozen=True, slots=True)
class CreateLocks:
    owner: str
    instances: tuple[str, ...]
    ttl_s: int  # the lock expires ttl_s after the request is sent


@dataclass(frozen=True, slots=True)
class QueryLocks:
    owner: str
    page: int = 0
    size: int = 10


@dataclass(frozen=True, slots=True)
class RemoveLocks:
    owner: str
    instances: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    consumer: str
    instance: str
    priority: int


@dataclass(frozen=True, slots=True)
class CreateRules:
    rules: tuple[RuleSpec, ...]


@dataclass(frozen=True, slots=True)
class QueryRules:
    consumer: str
    page: int = 0
    size: int = 10


@dataclass(frozen=True, slots=True)
class ModifyPriorities:
    priorities: tuple[tuple[str, int], ...]  # (rule id, new priority)


@dataclass(frozen=True, slots=True)
class RemoveRules:
    ids: tuple[str, ...]


Operation = Echo | CreateLocks | QueryLocks | RemoveLocks | CreateRules | QueryRules | ModifyPriorities | RemoveRules
LOCK_OPERATIONS = (Echo, CreateLocks, QueryLocks, RemoveLocks)  # what etcd, which has no rule store, can run


@dataclass(frozen=True, slots=True)
class Reply:
    """What the load generator needs back: the status (HTTP status, or the MQTT reply template's
    `status`) and, for CreateRules, the ids the service gave the new rules (later operations of a
    scenario modify and remove them)."""

    status: int
    ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Client(Protocol):
    """One connection to a target. `call` may be awaited by several tasks at once (an MQTT client
    multiplexes them over one connection; an HTTP/1.1 client serialises them). A broken connection
    raises OSError (or a subclass such as ConnectionError); the load generator counts it, opens a
    new client and goes on."""

    async def call(self, operation: Operation) -> Reply: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect, picklable so that load-generator processes can open their own clients.

    kind: "http" (lockstore's HTTP API, or anything serving its paths: the quart echo, the no-op
    responder), "mqtt" (lockstore's MQTT API through a broker; the MQTT echo responder), "etcd".
    url: http://host:port, mqtt://host:port, or etcd's http://host:port.
    prefix: MQTT topic prefix (lockstore's default `arrowhead/serviceorchestration`).
    authorization: the identity the requests carry (HTTP `Authorization`, MQTT `authentication`).
    tls_ca: for an https:// URL, the CA file the server's certificate must come from ("" = the system's).
    tls_cert, tls_key: a client certificate to present (mutual TLS), or "".
    new_connection: HTTP without keep-alive: every request opens (and handshakes) a connection of its own.
    urls: several servers of one target (lockstore instances in etcd mode, the members of an etcd
    cluster): the load generator spreads its connections over them, connection n to urls[n % len(urls)];
    `url` (the first) is where a scenario's setup goes.
    """

    kind: str
    url: str
    prefix: str = "arrowhead/serviceorchestration"
    authorization: str = "SYSTEM//Sysop"
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    new_connection: bool = False
    urls: tuple[str, ...] = ()

    def for_connection(self, number: int) -> Endpoint:
        """The endpoint connection `number` opens (the same one unless there are several `urls`)."""
        if not self.urls:
            return self
        return Endpoint(self.kind, self.urls[number % len(self.urls)], self.prefix, self.authorization, self.tls_ca,
                        self.tls_cert, self.tls_key, self.new_connection)
