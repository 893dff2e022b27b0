"""HTTPS on hypercorn, with the client certificate handed to the app.

hypercorn 0.18 does not implement the ASGI TLS extension (its issue #62): nothing in the scope tells the
app which certificate the client presented. Two small, public-API pieces fill the gap:

- The server SSLContext makes its SSL objects from `_RecordingSSLObject` (`SSLContext.sslobject_class`,
  the documented hook). Its `do_handshake` runs in the connection's own task (hypercorn's TCPServer
  does the handshake there), and when the handshake completes it stores the client's certificate in a
  ContextVar of that task.
- hypercorn starts each request's app task from the connection task, and trio gives a new task a
  copy of its spawner's context, so `ClientCertificateScope`, an ASGI middleware, reads the ContextVar
  and puts the certificate where the ASGI TLS extension says: `scope["extensions"]["tls"]
  ["client_cert_chain"]` (PEM strings, the client's certificate first). The app reads only the scope;
  if the server fills the extension itself one day, the middleware steps aside.

Only the client's own certificate is known (Python < 3.13 has no API for the verified chain), which is
all the certificate policy needs: the reference takes the first certificate with an identity.
"""

from __future__ import annotations

import contextvars
import ssl
from collections.abc import Mapping
from typing import Any

from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

_client_certificate: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lockstore_tls_client_certificate", default=None
)


class _RecordingSSLObject(ssl.SSLObject):
    """An SSLObject that remembers, in the current task's context, the peer certificate it verified."""

    def do_handshake(self) -> None:
        super().do_handshake()
        der = self.getpeercert(binary_form=True)
        _client_certificate.set(ssl.DER_cert_to_PEM_cert(der) if der else None)


def record_client_certificates(context: ssl.SSLContext) -> ssl.SSLContext:
    context.sslobject_class = _RecordingSSLObject
    return context


def client_certificate_chain(scope: Mapping[str, Any]) -> list[str]:
    """The client's certificates (PEM) from the ASGI TLS extension; empty without TLS or certificate."""
    tls = scope.get("extensions", {}).get("tls")
    if not tls:
        return []
    return list(tls.get("client_cert_chain") or [])


class ClientCertificateScope:
    """ASGI middleware: add `scope["extensions"]["tls"]` for HTTPS requests (see the module doc)."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "lifespan" and scope["scheme"] in ("https", "wss"):
            extensions = scope["extensions"]
            if "tls" not in extensions:
                pem = _client_certificate.get()
                extensions["tls"] = {
                    "server_cert": None,
                    "client_cert_chain": [pem] if pem else [],
                    "client_cert_name": None,
                    "client_cert_error": None,
                    "tls_version": None,
                    "cipher_suite": None,
                }
        await self.app(scope, receive, send)


class TlsHypercornConfig(HypercornConfig):
    """A hypercorn Config that serves TLS with our prepared context (hypercorn's own would load the files
    again, trust the system CAs for client certificates, and not record them)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self._lockstore_context = record_client_certificates(context)

    @property
    def ssl_enabled(self) -> bool:
        return True

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._lockstore_context
