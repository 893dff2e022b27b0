"""A ServiceRegistry double: a real HTTP(S) server on 127.0.0.1 (a free port) with the SR's six endpoints
lockstore meets, the SR's authentication filters, and the SR's rules and answers (tests/registry/sr_model.py
and sr_rules.py say where each comes from). The official SR is a Java/MySQL image that cannot run here.

- endpoints: `api/http/SystemDiscoveryAPI.java` (register 201/200, lookup, revoke 200/204) and
  `api/http/ServiceDiscoveryAPI.java` (register 201, lookup `?verbose=`, revoke/{instanceId} 200/204), under
  `/serviceregistry/system-discovery` and `/serviceregistry/service-discovery`.
- identity (common-utils `http/filter/authentication/`): `SelfDeclaredFilter.java` (declared policy:
  `Authorization: Bearer SYSTEM//<Name>`, 401 `No authorization header has been provided` / `Invalid
  authorization header`, Java `split` semantics) and `CertificateFilter.java` (certificate policy: the client
  certificate's CN over mTLS; 401 `Unauthenticated access attempt: <URL>`, 403 `Unauthorized access: <URL>,
  invalid certificate type: <TYPE>` / `..., from foreign cloud`). Filter errors carry no origin
  (`ArrowheadFilter.handleException`). Authentication runs before routing, as filters do.
- its own entries: `init/ServiceRegistryApplicationInitListener.customInit` + `ServiceRegistrySystemInfo`: at
  every start the SR revokes and registers itself (system `ServiceRegistry`, version 5.2.0, addresses [domain
  name]; `x509PublicKey` under the certificate policy) and its discovery services with `unrestrictedDiscovery`
  and a generic_http(s) interface whose operations are register POST `/register`, lookup POST `/lookup`,
  revoke DELETE `/revoke` (the client appends the instance id).
- what Spring itself answers (unknown path 404, wrong method 405, unreadable body 400) has Spring's error shape.

The state (`registry`) survives `stop()`/`start()`, like the SR's database across restarts; `start()` after
`stop()` comes back on the same port. `requests` records every request (method, path, identity, status);
`wait_for` blocks until the state satisfies a predicate (from trio: `trio.to_thread.run_sync`). `before(method,
path, body)` is called in the server thread before each request is handled (a test can look at the service
meanwhile);
`override` may answer a request in place of the SR (a misbehaving registry).
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from tests.registry.sr_model import Registry, SrConfig
from tests.registry.sr_rules import AUTH, FORBIDDEN, SrError, now_text
from transports.api.names import normalize_system_name

SYSTEM_DISCOVERY = "/serviceregistry/system-discovery"
SERVICE_DISCOVERY = "/serviceregistry/service-discovery"
_PROFILES = {"ma": "MASTER", "ga": "GATE", "or": "ORGANIZATION", "lo": "LOCAL_CLOUD", "on": "ON_BOARDING",
             "de": "DEVICE", "sy": "SYSTEM", "op": "OPERATOR"}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # as sent (still percent-encoded)
    requester: str | None
    status: int
    authorization: str | None
    body: Any


@dataclass(frozen=True)
class Identity:
    name: str
    sysop: bool


def _java_split(text: str, delimiter: str) -> list[str]:
    """Java `String.split`: trailing empty strings removed."""
    parts = text.split(delimiter)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def declared_identity(authorization: str | None) -> Identity:
    """C:`SelfDeclaredFilter.processAuthHeader`."""
    if authorization is None or not authorization.strip():
        raise SrError("No authorization header has been provided", AUTH)
    split = authorization.strip().split(" ")
    if len(split) != 2 or split[0] != "Bearer":
        raise SrError("Invalid authorization header", AUTH)
    split = _java_split(split[1], "//")
    if len(split) != 2 or split[0] != "SYSTEM":
        raise SrError("Invalid authorization header", AUTH)
    name = normalize_system_name(split[1]) or ""
    return Identity(name, name == "Sysop")


def _cn_and_profile(certificate: x509.Certificate) -> tuple[str, str] | None:
    """C:`SecurityUtilities.getIdentificationDataFromSubjectDN`: a 5-part CN and a known dnQualifier."""
    cns = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    qualifiers = [str(a.value).strip() for a in certificate.subject.get_attributes_for_oid(NameOID.DN_QUALIFIER)]
    if not cns or len(_java_split(str(cns[-1].value), ".")) != 5:
        return None
    for qualifier in qualifiers:
        if qualifier in _PROFILES:
            return str(cns[-1].value), _PROFILES[qualifier]
    return None


def certificate_identity(der: bytes | None, target: str, server_cn: str) -> Identity:
    """C:`CertificateFilter`: the TLS handshake verified the chain; this reads and checks the identity."""
    data = _cn_and_profile(x509.load_der_x509_certificate(der)) if der else None
    if data is None:
        raise SrError(f"Unauthenticated access attempt: {target}", AUTH)
    cn, profile = data
    if profile not in ("SYSTEM", "OPERATOR"):
        raise SrError(f"Unauthorized access: {target}, invalid certificate type: {profile}", FORBIDDEN)
    client, cloud = _java_split(cn, "."), _java_split(server_cn, ".")[1:]
    if [normalize_system_name(p) for p in client[1:3]] != [normalize_system_name(p) for p in cloud[0:2]]:
        raise SrError(f"Unauthorized access: {target}, from foreign cloud", FORBIDDEN)
    return Identity(normalize_system_name(client[0]) or "", profile == "OPERATOR")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], double: SrDouble) -> None:
        self.double = double
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.double.tls_context is not None:  # the handshake runs in the request's thread
            sock = self.double.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.connections_lock:
            self.connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """A stopped registry drops its keep-alive connections too (they would go on answering)."""
        with self.connections_lock:
            open_ones = list(self.connections)
        for sock in open_ones:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection is closed after this long
    server: _Server

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(5)
            try:
                self.request.do_handshake()
                self.request.settimeout(self.timeout)
            except (ssl.SSLError, OSError):
                self.close_connection = True
                self.rfile = self.wfile = _Closed()  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        double = self.server.double
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw
        if double.before is not None:
            double.before(method, url.path, decoded)
        override = double.override(method, url.path) if double.override is not None else None
        if override is not None:
            double.record(Seen(method, self.path, None, override[0], self.headers.get("Authorization"), decoded))
            self._send(override[0], override[1])
            return
        requester: Identity | None = None
        try:
            requester = double.authenticate(self)
            status, body = double.dispatch(method, url.path, parse_qs(url.query), raw, requester)
        except SrError as error:
            status, body = error.status, error.body()
        payload = b"" if body is None else json.dumps(body).encode()
        # Recorded before the answer leaves: whoever got an answer finds the request in `requests`.
        double.record(Seen(method, self.path, requester.name if requester else None, status,
                           self.headers.get("Authorization"), decoded))
        self._send(status, payload)

    def _send(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up waiting (a test of lockstore's patience)
            self.close_connection = True


class _Closed:
    """Stands in for the streams of a connection whose TLS handshake failed."""

    def readline(self, *_: Any) -> bytes:
        return b""

    def read(self, *_: Any) -> bytes:
        return b""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _spring_error(status: int, error: str, path: str) -> dict[str, Any]:
    return {"timestamp": now_text(), "status": status, "error": error, "path": path}


class SrDouble:
    """One ServiceRegistry. `policy`: "declared" or "certificate" (then `tls` is required)."""

    def __init__(self, *, policy: str = "declared", tls: TlsFiles | None = None, client_auth: str = "required",
                 config: SrConfig | None = None, domain_name: str = "127.0.0.1") -> None:
        if policy == "certificate" and tls is None:
            raise ValueError("the certificate policy needs TLS")
        self.policy = policy
        self.tls = tls
        self.domain_name = domain_name
        self.registry = Registry(config)
        self.requests: list[Seen] = []
        self.before: Callable[[str, str, Any], None] | None = None
        self.override: Callable[[str, str], tuple[int, bytes] | None] | None = None
        self.port = 0
        self.tls_context: ssl.SSLContext | None = None
        self.server_cn = ""
        if tls is not None:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(tls.cert, tls.key)
            self.tls_context.load_verify_locations(cafile=tls.ca)
            self.tls_context.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" else ssl.CERT_OPTIONAL
            certificate = x509.load_pem_x509_certificate(Path(tls.cert).read_bytes())
            self.server_cn = str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[-1].value)
            self._public_key = base64.b64encode(certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
        self._changed = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------- life

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> SrDouble:
        self._server = _Server(("127.0.0.1", self.port), self)
        self.port = self._server.server_address[1]
        self._register_itself()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="sr-double",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> SrDouble:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _register_itself(self) -> None:
        with self._changed:
            self.registry.revoke_system("ServiceRegistry")
            metadata = {"x509PublicKey": self._public_key} if self.policy == "certificate" else {}
            self.registry.register_system("ServiceRegistry", {"metadata": metadata, "version": "5.2.0",
                                                              "addresses": [self.domain_name]})
            template, protocol = ("generic_https", "https") if self.tls else ("generic_http", "http")
            policy = "CERT_AUTH" if self.policy == "certificate" else "NONE"
            for definition, base in (("systemDiscovery", SYSTEM_DISCOVERY), ("serviceDiscovery", SERVICE_DISCOVERY)):
                operations = {"register": {"path": "/register", "method": "POST"},
                              "lookup": {"path": "/lookup", "method": "POST"},
                              "revoke": {"path": "/revoke", "method": "DELETE"}}
                self.registry.register_service("ServiceRegistry", {
                    "serviceDefinitionName": definition, "version": "1.0.0", "metadata": {"unrestrictedDiscovery": True},
                    "interfaces": [{"templateName": template, "protocol": protocol, "policy": policy, "properties": {
                        "accessAddresses": [self.domain_name], "accessPort": self.port, "basePath": base,
                        "operations": operations}}]})
            self._changed.notify_all()

    # ----------------------------------------------------------------------------------- requests

    def authenticate(self, handler: _Handler) -> Identity:
        if self.policy == "declared":
            return declared_identity(handler.headers.get("Authorization"))
        assert isinstance(handler.request, ssl.SSLSocket)
        target = f"https://{handler.headers.get('Host', '')}{urlsplit(handler.path).path}".rstrip("/")
        return certificate_identity(handler.request.getpeercert(binary_form=True), target, self.server_cn)

    def dispatch(self, method: str, path: str, query: dict[str, list[str]], raw: bytes,
                 requester: Identity) -> tuple[int, Any]:
        routes = {
            ("POST", f"{SYSTEM_DISCOVERY}/register"), ("POST", f"{SYSTEM_DISCOVERY}/lookup"),
            ("DELETE", f"{SYSTEM_DISCOVERY}/revoke"), ("POST", f"{SERVICE_DISCOVERY}/register"),
            ("POST", f"{SERVICE_DISCOVERY}/lookup")}
        revoke_prefix = f"{SERVICE_DISCOVERY}/revoke/"
        known = {p for _, p in routes}
        if path.startswith(revoke_prefix) and path != revoke_prefix:
            if method != "DELETE":
                return 405, _spring_error(405, "Method Not Allowed", path)
        elif path not in known:
            return 404, _spring_error(404, "Not Found", path)
        elif (method, path) not in routes:
            return 405, _spring_error(405, "Method Not Allowed", path)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            return 400, _spring_error(400, "Bad Request", path)
        verbose = query.get("verbose", ["false"])[-1].lower()
        if verbose not in ("true", "false"):
            return 400, _spring_error(400, "Bad Request", path)
        try:
            with self._changed:
                result = self._operation(method, path, payload, verbose == "true", requester)
                self._changed.notify_all()
            return result
        except (KeyError, TypeError, AttributeError):  # Jackson could not map the body onto the DTO
            return 400, _spring_error(400, "Bad Request", path)

    def _operation(self, method: str, path: str, payload: Any, verbose: bool,
                   requester: Identity) -> tuple[int, Any]:
        registry, name = self.registry, requester.name
        if path == f"{SYSTEM_DISCOVERY}/register":
            system, created = registry.register_system(name, payload)
            return (201 if created else 200), system
        if path == f"{SYSTEM_DISCOVERY}/lookup":
            return 200, registry.lookup_systems(payload)
        if path == f"{SYSTEM_DISCOVERY}/revoke":
            return (200 if registry.revoke_system(name) else 204), None
        if path == f"{SERVICE_DISCOVERY}/register":
            return 201, registry.register_service(name, payload)
        if path == f"{SERVICE_DISCOVERY}/lookup":
            return 200, registry.lookup_services(payload, verbose=verbose, requester=name, sysop=requester.sysop)
        instance_id = unquote(path[len(f"{SERVICE_DISCOVERY}/revoke/"):])
        return (200 if registry.revoke_service(name, instance_id) else 204), None

    def record(self, seen: Seen) -> None:
        with self._changed:
            self.requests.append(seen)
            self._changed.notify_all()

    # ----------------------------------------------------------------------------------- inspection

    def wait_for(self, predicate: Callable[[SrDouble], bool], timeout: float = 20.0) -> None:
        """Block until `predicate(self)` holds (checked after every change); AssertionError on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"the ServiceRegistry double did not reach the expected state in {timeout} s; "
                                     f"requests: {[(s.method, s.path, s.status) for s in self.requests]}")

    def services_of(self, system: str) -> dict[str, dict[str, Any]]:
        """instance id → the instance as a verbose lookup shows it."""
        with self._changed:
            return {i.instance_id: self.registry.instance_dto(i, verbose=True)
                    for i in self.registry.instances.values() if i.system == system}

    def calls(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request so far, the SR's own address left out."""
        with self._changed:
            return [(s.method, s.path, s.status) for s in self.requests]


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path
