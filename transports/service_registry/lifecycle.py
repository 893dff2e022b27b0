"""Joining the local cloud at start-up and leaving it at shutdown (C:`init/ApplicationInitListener.java`).

Join, once HTTP is bound and before MQTT subscribes: look up the ServiceRegistry's systemDiscovery
service, revoke our system (clears what a crash left behind: the ServiceRegistry deletes a system's
services with it), register the system, look up serviceDiscovery, register each service. Leave, while
HTTP still answers: revoke each registered service (the system entry stays, as in the reference).

When the ServiceRegistry cannot be reached: with `service_registry_required` the reference's behaviour
(`attempts` tries, `retry_interval` apart, then start-up fails; a refusal fails at once); without it,
start-up goes on and the registration is retried every `retry_interval` in the background while
`/health/ready` reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import trio

from transports.service_registry.answers import Endpoint
from transports.service_registry.client import RegistryClient, RegistryError, RegistryRefused
from transports.service_registry.payloads import (
    SERVICE_DISCOVERY,
    SYSTEM_DISCOVERY,
    Published,
    instance_id,
    service_bodies,
    system_body,
)
from transports.service_registry.plan import RegistryPlan

log = logging.getLogger("lockstore.registry")
LEAVE_SECONDS = 5.0  # shutdown waits at most this long for the revocations


class RegistrationFailed(Exception):
    """Start-up gives up (service_registry_required): the message says why."""


def bound_port(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"no port in {url}")
    return port


class ServiceRegistration:
    """The registration of one running service; `registered` and `detail` feed `/health/ready`."""

    def __init__(self, plan: RegistryPlan, routes: Iterable[tuple[str, Iterable[str]]]) -> None:
        self.plan = plan
        self.routes = [(rule, frozenset(methods)) for rule, methods in routes]
        self.registered = False
        self.detail = "not registered yet"
        self.joined = trio.Event()  # set once registered
        self.failure: RegistrationFailed | None = None
        self._client: RegistryClient | None = None
        self._service_discovery: Endpoint | None = None
        self._instances: list[str] = []  # registered, or being registered: revoked at shutdown
        self._retrying = trio.CancelScope()
        self._system: dict[str, object] = {}
        self._services: list[dict[str, object]] = []
        self._last_reason = ""

    async def join(self, nursery: trio.Nursery, http_urls: Sequence[str], stop: trio.Event) -> bool:
        """Register (or, when not required, start retrying in `nursery`). False: do not go on starting
        (registration required and failed, see `failure`; or `stop` was set meanwhile). Either way the
        caller calls `leave` at shutdown, which revokes whatever got registered."""
        published = Published(self.plan.addresses, bound_port(http_urls[0]), self.plan.https,
                              self.plan.certificate_policy, self.plan.mqtt)
        self._system = system_body(self.plan.addresses, self.plan.metadata)
        self._services = service_bodies(published, self.routes)
        self._client = RegistryClient(self.plan)
        if self.plan.required:
            return await self._join_or_fail(stop)
        try:
            if not await self._attempt(stop):
                return False
        except RegistryError as error:
            self._not_registered(error)
            nursery.start_soon(self._keep_trying)
        return True

    async def leave(self) -> None:
        """Stop retrying and revoke every service we registered; never raises, never takes long."""
        self._retrying.cancel()
        client, endpoint = self._client, self._service_discovery
        if client is None:
            return
        try:
            if endpoint is not None and self._instances:
                await self._revoke(client, endpoint)
            self.registered = False
            self.detail = "revoked: shutting down"
        finally:
            await self._close()

    async def _revoke(self, client: RegistryClient, endpoint: Endpoint) -> None:
        revoked = 0
        with trio.move_on_after(LEAVE_SECONDS) as scope:
            for instance in list(self._instances):
                try:
                    await client.call(endpoint, "revoke", segment=instance)
                    revoked += 1
                except RegistryError as error:
                    log.warning("could not revoke %s from the ServiceRegistry: %s", instance, error)
        if scope.cancelled_caught:
            log.warning("gave up revoking from the ServiceRegistry after %g s", LEAVE_SECONDS)
        log.info("revoked %d of %d service(s) from the ServiceRegistry %s", revoked, len(self._instances),
                 self.plan.url)
        self._instances.clear()

    async def _join_or_fail(self, stop: trio.Event) -> bool:
        for attempt in range(1, self.plan.attempts + 1):
            try:
                return await self._attempt(stop)
            except RegistryRefused as error:
                return await self._fail(f"refused: {error}")
            except RegistryError as error:
                if attempt == self.plan.attempts:
                    return await self._fail(f"not reachable after {attempt} attempt(s): {error}")
                self._not_registered(error)
                log.info("ServiceRegistry %s unavailable at the moment (%s); retrying in %g s (attempt %d of %d)",
                         self.plan.url, error, self.plan.retry_interval, attempt, self.plan.attempts)
            with trio.move_on_after(self.plan.retry_interval):
                await stop.wait()
            if stop.is_set():
                return False
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, stop: trio.Event) -> bool:
        """One registration; False when `stop` is set first (a shutdown does not wait for the registry)."""
        failure: RegistryError | None = None
        with trio.CancelScope() as attempt:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_when_set, stop, attempt)
                try:
                    await self._register()
                except RegistryError as error:
                    failure = error
                nursery.cancel_scope.cancel()
        if attempt.cancelled_caught:
            return False
        if failure is not None:
            raise failure
        return True

    async def _fail(self, reason: str) -> bool:
        self.failure = RegistrationFailed(f"service_registry {self.plan.url}: {reason}")
        self.detail = f"not registered: {reason}"
        log.error("%s", self.failure)
        return False

    async def _keep_trying(self) -> None:
        with self._retrying:
            while True:
                await trio.sleep(self.plan.retry_interval)
                try:
                    await self._register()
                    return
                except RegistryError as error:
                    self._not_registered(error)

    def _not_registered(self, error: RegistryError) -> None:
        self.detail = f"not registered in {self.plan.url}: {error}"
        if not self.plan.required:
            self.detail += f"; retrying every {self.plan.retry_interval:g} s"
            # Once per reason, not once per retry: a long outage is one log line (then DEBUG).
            level = logging.ERROR if isinstance(error, RegistryRefused) else logging.WARNING
            if str(error) == self._last_reason:
                level = logging.DEBUG
            self._last_reason = str(error)
            log.log(level, "not registered in the ServiceRegistry %s (retrying every %g s): %s", self.plan.url,
                    self.plan.retry_interval, error)

    async def _register(self) -> None:
        """Lookup → revoke system → register system → lookup → register services."""
        client = self._client
        assert client is not None
        system_discovery = await client.lookup(SYSTEM_DISCOVERY)
        await client.call(system_discovery, "revoke")
        await client.call(system_discovery, "register", self._system, expected=(200, 201))
        self._service_discovery = service_discovery = await client.lookup(SERVICE_DISCOVERY)
        registered = []
        for body in self._services:
            expected = instance_id(self.plan.system_name, body)
            if expected not in self._instances:
                self._instances.append(expected)  # revoked at shutdown even if the answer never comes
            registered.append(await client.register_service(service_discovery, body))
            if registered[-1] not in self._instances:
                self._instances.append(registered[-1])
        self.registered = True
        self.detail = f"registered in {self.plan.url} as {self.plan.system_name}: {', '.join(registered)}"
        self.joined.set()
        log.info("registered in the ServiceRegistry %s as %s: %s", self.plan.url, self.plan.system_name,
                 ", ".join(registered))

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await client.aclose()


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
