"""HTTPS and the certificate policy against the real service (ARROWHEAD-REFERENCE.md §1.2 "Other
policies"): hypercorn serving TLS in-process, httpx and curl as clients, certificates made at run time."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.clock import ManualClock
from tests.certs import CertSet, Pair, make_cert_set
from tests.integration.conftest import LOCK, STORE, future, start_service
from transports.service import RunningService

LOCK_CREATE, LOCK_QUERY = f"{LOCK}/create", f"{LOCK}/query"
STORE_CREATE, STORE_QUERY, STORE_MODIFY, STORE_REMOVE = (
    f"{STORE}/{op}" for op in ("create", "query", "modify-priorities", "remove"))
ECHO = "/serviceorchestration/monitor/echo"
CERTIFICATE_POLICY = {"authentication_policy": "certificate", "tls_client_auth": "optional"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_cert_set(tmp_path_factory.mktemp("certs"))


class Https:
    """A running HTTPS service and a way to make clients with a given certificate."""

    def __init__(self, running: RunningService, certs: CertSet, http_server: str) -> None:
        self.running = running
        self.certs = certs
        self.http_server = http_server
        self.url = running.http_urls[0]
        self._clients: list[httpx.AsyncClient] = []

    def client(self, pair: Pair | None, *, context: ssl.SSLContext | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.url, verify=context or self.certs.client_context(pair), timeout=10.0)
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def serve(nursery: trio.Nursery, tmp_path: Path, certs: CertSet, http_server: str, **settings: Any) -> Https:
    values: dict[str, Any] = {"tls_cert": str(certs.server.cert), "tls_key": str(certs.server.key),
                              "tls_ca": str(certs.ca), "http_server": http_server}
    values.update(settings)
    clock = ManualClock(start=float(int(time.time())))
    running = await start_service(nursery, tmp_path / f"data-{len(list(tmp_path.iterdir()))}", clock, **values)
    return Https(running, certs, http_server)


@pytest.fixture
async def https(tmp_path: Path, nursery: trio.Nursery, certs: CertSet, request: pytest.FixtureRequest,
                http_server: str) -> AsyncIterator[Https]:
    marker = request.node.get_closest_marker("settings")
    service = await serve(nursery, tmp_path, certs, http_server, **(marker.kwargs if marker else CERTIFICATE_POLICY))
    yield service
    await service.aclose()
    service.running.shutdown.set()


def error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["errorMessage"], body["errorCode"]) == (message, status)
    assert "origin" in body


@pytest.mark.settings(**CERTIFICATE_POLICY, management_policy="whitelist", management_whitelist=["TemperatureManager"])
async def test_every_operation_with_a_system_certificate(https: Https) -> None:
    client = https.client(https.certs.system)
    assert https.url.startswith("https://127.0.0.1:")
    created = await client.post(LOCK_CREATE, json={"locks": [
        {"serviceInstanceId": "provider-a|kelvin-info|1", "owner": "TemperatureManager", "expiresAt": future()}]})
    assert created.status_code == 201, created.text
    queried = await client.post(LOCK_QUERY, json={"owners": ["TemperatureManager"]})
    assert (queried.status_code, queried.json()["count"]) == (200, 1)
    removed = await client.delete(f"{LOCK}/remove/TemperatureManager", params={"instanceIds": "ProviderA|kelvinInfo|1.0.0"})
    assert (removed.status_code, removed.content) == (200, b"")
    assert (await client.post(LOCK_QUERY, json={})).json()["count"] == 0

    rules = await client.post(STORE_CREATE, json={"candidates": [
        {"consumer": "ConsumerA", "serviceInstanceId": "P|svc|1", "priority": 1},
        {"consumer": "ConsumerA", "serviceInstanceId": "Q|svc|1", "priority": 2}]})
    assert rules.status_code == 201, rules.text
    first, second = rules.json()["entries"]
    assert first["createdBy"] == "TemperatureManager"  # the requester is the certificate's first CN part
    swapped = await client.put(STORE_MODIFY, json={first["id"]: 2, second["id"]: 1})
    assert swapped.status_code == 200, swapped.text
    assert {e["id"]: e["priority"] for e in swapped.json()["entries"]} == {first["id"]: 2, second["id"]: 1}
    assert (await client.post(STORE_QUERY, json={"consumerNames": ["ConsumerA"]})).json()["count"] == 2
    gone = await client.delete(STORE_REMOVE, params={"uuids": f"{first['id']},{second['id']}"})
    assert gone.status_code == 200
    assert (await client.post(STORE_QUERY, json={"consumerNames": ["ConsumerA"]})).json()["count"] == 0
    echo = await client.get(ECHO)
    assert (echo.status_code, echo.text) == (200, "Got it!")


async def test_operator_certificate_is_sysop(https: Https) -> None:
    """sysop-only (the default): the operator certificate may, a system certificate may not."""
    body = {"locks": [{"serviceInstanceId": "P|svc|1", "owner": "Someone", "expiresAt": future()}]}
    operator = await https.client(https.certs.operator).post(LOCK_CREATE, json=body)
    assert operator.status_code == 201, operator.text
    system = await https.client(https.certs.system).post(LOCK_QUERY, json={})
    error(system, 403, "Requester has no management permission")
    assert system.json()["origin"] == f"{https.url}{LOCK_QUERY}"
    rules = await https.client(https.certs.operator).post(STORE_CREATE, json={"candidates": [
        {"consumer": "C", "serviceInstanceId": "P|svc|1", "priority": 1}]})
    assert rules.json()["entries"][0]["createdBy"] == "Operator"


async def test_refusals_as_the_reference_words_them(https: Https) -> None:
    url = f"{https.url}{LOCK_QUERY}"
    error(await https.client(None).post(LOCK_QUERY, json={}), 401, f"Unauthenticated access attempt: {url}")
    error(await https.client(https.certs.unqualified).post(LOCK_QUERY, json={}), 401, f"Unauthenticated access attempt: {url}")
    error(await https.client(https.certs.foreign).post(LOCK_QUERY, json={}), 403, f"Unauthorized access: {url}, from foreign cloud")
    error(await https.client(https.certs.device).post(LOCK_QUERY, json={}), 403,
          f"Unauthorized access: {url}, invalid certificate type: DEVICE")
    # authentication comes before routing: an unknown path without a certificate is a 401, not a 404
    error(await https.client(None).get("/no/such/path/"), 401, f"Unauthenticated access attempt: {https.url}/no/such/path")
    error(await https.client(https.certs.operator).get("/no/such/path"), 404, "No endpoint GET /no/such/path")
    # a declared identity means nothing under the certificate policy
    declared = await https.client(None).post(LOCK_QUERY, json={}, headers={"Authorization": "Bearer SYSTEM//Sysop"})
    error(declared, 401, f"Unauthenticated access attempt: {url}")


@pytest.mark.parametrize("who", ["stranger", "expired"])
async def test_untrusted_certificates_fail_the_handshake(https: Https, who: str) -> None:
    """A certificate from another CA, or an expired one, never reaches the app: the TLS handshake fails
    (as with the reference's Tomcat); the connection is refused, not answered."""
    client = https.client(getattr(https.certs, who))
    with pytest.raises(httpx.TransportError):
        await client.post(LOCK_QUERY, json={})
    assert (await https.client(https.certs.operator).post(LOCK_QUERY, json={})).status_code == 200  # still serving


async def test_client_must_trust_the_server(https: Https) -> None:
    context = ssl.create_default_context(cafile=str(https.certs.other_ca))
    with pytest.raises(httpx.ConnectError) as caught:
        await https.client(None, context=context).get(ECHO)
    causes: list[BaseException] = []
    cause: BaseException | None = caught.value
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert any(isinstance(c, ssl.SSLCertVerificationError) for c in causes), causes


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_1_1_is_refused(https: Https) -> None:
    context = ssl.create_default_context(cafile=str(https.certs.ca))
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(httpx.ConnectError):
        await https.client(None, context=context).get(ECHO)
    modern = ssl.create_default_context(cafile=str(https.certs.ca))
    modern.maximum_version = ssl.TLSVersion.TLSv1_2  # 1.2 is enough
    modern.load_cert_chain(https.certs.operator.cert, https.certs.operator.key)
    assert (await https.client(None, context=modern).get(ECHO)).status_code == 200


async def test_identities_do_not_leak_between_connections(https: Https) -> None:
    """Each connection's certificate reaches only its own requests, with keep-alive and interleaving."""
    operator, system, anonymous = (https.client(p) for p in (https.certs.operator, https.certs.system, None))
    expected = {id(operator): 200, id(system): 403, id(anonymous): 401}
    seen: list[tuple[int, int]] = []

    async def ask(client: httpx.AsyncClient) -> None:
        for _ in range(15):
            seen.append((id(client), (await client.post(LOCK_QUERY, json={})).status_code))

    async with trio.open_nursery() as nursery:
        for client in (operator, system, anonymous):
            nursery.start_soon(ask, client)
    assert len(seen) == 45
    assert all(status == expected[who] for who, status in seen)


async def curl(*args: str) -> tuple[int, str]:
    result = await trio.run_process(["curl", "--silent", "--show-error", *args], capture_stdout=True,
                                    capture_stderr=True, check=False)
    return result.returncode, (result.stdout + result.stderr).decode()


async def test_curl_as_an_independent_client(https: Https) -> None:
    """curl --cacert with the operator's certificate, asking for HTTP/2 and HTTP/1.1; without a certificate
    it gets the 401; with a CA that did not sign the server it cannot connect."""
    certs = https.certs
    base = ["--cacert", str(certs.ca), "--cert", str(certs.operator.cert), "--key", str(certs.operator.key),
            "-H", "Content-Type: application/json"]
    for version in ("--http2", "--http1.1"):
        code, out = await curl(*base, version, "-w", "\n%{http_version} %{http_code}", "-d", "{}", f"{https.url}{LOCK_QUERY}")
        body, status = out.rsplit("\n", 1)
        assert code == 0 and json.loads(body) == {"entries": [], "count": 0}
        # the native server speaks HTTP/1.1 only (ALPN offers nothing else); hypercorn agrees on h2
        assert status == ("2 200" if version == "--http2" and https.http_server == "hypercorn" else "1.1 200")
    code, out = await curl("--cacert", str(certs.ca), "-d", "{}", "-H", "Content-Type: application/json", f"{https.url}{LOCK_QUERY}")
    assert code == 0 and json.loads(out)["errorMessage"] == f"Unauthenticated access attempt: {https.url}{LOCK_QUERY}"
    code, out = await curl("--cacert", str(certs.other_ca), f"{https.url}{ECHO}")
    assert code == 60, out  # peer certificate cannot be authenticated with the given CA


@pytest.mark.settings(tls_client_auth="required", authentication_policy="certificate")
async def test_required_client_certificates(https: Https) -> None:
    with pytest.raises(httpx.TransportError):
        await https.client(None).get(ECHO)
    assert (await https.client(https.certs.system).get(ECHO)).status_code == 200


@pytest.mark.settings(tls_ca=None)
async def test_https_with_the_declared_policy(https: Https) -> None:
    client = https.client(None)
    response = await client.post(LOCK_QUERY, json={}, headers={"Authorization": "Bearer SYSTEM//Sysop"})
    assert response.status_code == 200, response.text
    error(await client.post(LOCK_QUERY, json={}), 401, "No authorization header has been provided")
    # with tls_client_auth none no certificate is asked for, and one offered changes nothing
    offered = await https.client(https.certs.operator).post(LOCK_QUERY, json={})
    error(offered, 401, "No authorization header has been provided")


async def test_plain_http_is_not_served_on_the_https_port(https: Https) -> None:
    plain: Callable[[], httpx.AsyncClient] = lambda: httpx.AsyncClient(base_url=https.url.replace("https", "http"), timeout=5.0)  # noqa: E731
    async with plain() as client:
        with pytest.raises(httpx.TransportError):
            await client.get(ECHO)
