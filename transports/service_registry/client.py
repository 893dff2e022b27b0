"""A small trio-native ServiceRegistry client on httpx, with lockstore's identity: the declared
`Authorization: Bearer SYSTEM//<Name>` header, or (certificate policy) the service's own certificate
over mTLS and no header (C:`http/HttpUtilities.calculateAuthorizationHeader`).

Every failure becomes one of two errors: `RegistryUnavailable` (not reachable, timed out, 5xx, an answer
that makes no sense: worth retrying) or `RegistryRefused` (a 4xx with the ServiceRegistry's reason:
retrying the same request will not help).
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from transports.service_registry.answers import (
    MAX_ANSWER_BYTES,
    BadAnswer,
    Endpoint,
    endpoint_from_lookup,
    error_message,
    instance_id_of,
)
from transports.service_registry.payloads import LOOKUP_PATH, lookup_body
from transports.service_registry.plan import RegistryPlan


class RegistryError(Exception):
    """A ServiceRegistry call did not succeed; the message says which call and why."""


class RegistryUnavailable(RegistryError):
    pass


class RegistryRefused(RegistryError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RegistryClient:
    def __init__(self, plan: RegistryPlan) -> None:
        self.plan = plan
        headers = {"Accept": "application/json"}
        if plan.authorization is not None:
            headers["Authorization"] = plan.authorization
        self._http = httpx.AsyncClient(
            verify=plan.tls if plan.tls is not None else True, headers=headers,
            timeout=httpx.Timeout(plan.timeout), follow_redirects=False, trust_env=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def lookup(self, service_definition: str) -> Endpoint:
        """Where the ServiceRegistry serves `service_definition` (C:`HttpCollectorDriver.acquireServiceFromSR`)."""
        url = f"{self.plan.url}{LOOKUP_PATH}?verbose=false"
        status, body = await self._send("POST", url, lookup_body(service_definition, self.plan.lookup_template))
        if status != 200:
            raise RegistryUnavailable(f"lookup of {service_definition} answered {status}")
        try:
            return endpoint_from_lookup(body, self.plan.lookup_template)
        except BadAnswer as error:
            raise RegistryUnavailable(f"lookup of {service_definition}: {error}") from None

    async def call(self, endpoint: Endpoint, operation: str, payload: Any = None, *, segment: str | None = None,
                   expected: tuple[int, ...] = (200, 201, 204)) -> tuple[int, bytes]:
        try:
            method, url = endpoint.request(operation, segment)
        except BadAnswer as error:
            raise RegistryUnavailable(str(error)) from None
        status, body = await self._send(method, url, payload)
        if status not in expected:
            raise RegistryUnavailable(f"{method} {_path(url)} answered {status}: {error_message(body)}")
        return status, body

    async def register_service(self, endpoint: Endpoint, payload: dict[str, Any]) -> str:
        _, body = await self.call(endpoint, "register", payload, expected=(201,))
        try:
            return instance_id_of(body)
        except BadAnswer as error:
            raise RegistryUnavailable(str(error)) from None

    async def _send(self, method: str, url: str, payload: Any) -> tuple[int, bytes]:
        content = msgspec.json.encode(payload) if payload is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            async with self._http.stream(method, url, content=content, headers=headers) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise RegistryUnavailable(f"{method} {_path(url)}: answer longer than {MAX_ANSWER_BYTES} bytes")
                status = response.status_code
        except httpx.InvalidURL as error:  # the lookup named an address or path no URL can hold
            raise RegistryUnavailable(f"{method} {url[:200]!r}: not a usable URL ({error})") from None
        except httpx.TimeoutException:
            raise RegistryUnavailable(f"{method} {_where(url)}: no answer within {self.plan.timeout:g} s") from None
        except httpx.HTTPError as error:
            raise RegistryUnavailable(f"{method} {_where(url)}: {_describe(error)}") from None
        if 400 <= status < 500:
            raise RegistryRefused(f"{method} {_path(url)} refused with {status}: {error_message(bytes(body))}", status)
        if status >= 500:
            raise RegistryUnavailable(f"{method} {_path(url)} failed with {status}: {error_message(bytes(body))}")
        return status, bytes(body)


def _path(url: str) -> str:
    return httpx.URL(url).raw_path.decode("ascii", "replace").split("?", 1)[0]


def _where(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii', 'replace')}{_path(url)}"


def _describe(error: httpx.HTTPError) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())[:300]
