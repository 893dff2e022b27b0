"""One API request and its response as plain values, the same for both HTTP servers.

Each server builds an `ApiRequest` from what it parsed (the native server from its own parser, the Quart
app from its request object) and writes the `ApiResponse` the handler returns. Whatever the handlers read
— a header, a query parameter, the base URL of a certificate-policy message — is derived here from the
same raw values (ASGI-style header pairs, the raw query string), with werkzeug's own functions where Quart
used to be asked, so that both servers give the same answer to the same request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401  (registers the "werkzeug.url_quote" codec error handler used below)
from werkzeug.http import parse_options_header
from werkzeug.sansio.utils import get_current_url, get_host

from transports.http.query_params import query_list

Headers = Sequence[tuple[bytes, bytes]]  # ASGI style: lower-case names


class BodyTooLarge(Exception):
    """The request body is over the limit (1 MiB): the answer is a 413 and the connection closes."""


@dataclass(slots=True, eq=False)
class ApiRequest:
    method: str
    path: str  # percent-decoded
    query_string: bytes
    headers: Headers
    scheme: str  # "http" or "https"
    server: tuple[str, int] | None  # the local address the request came in on
    client_certificates: tuple[str, ...]  # PEM, the client's own first (HTTPS with a client certificate)
    read_body: Callable[[], Awaitable[bytes]]  # the whole body; raises BodyTooLarge
    path_params: dict[str, str] = field(default_factory=dict)
    requester: str | None = None  # set once authenticated (the access log's `requester`)

    def header(self, name: bytes) -> str | None:
        """The first value of a header (latin-1, as Quart decodes them), or None."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    def mimetype(self) -> str:
        """The Content-Type without parameters, lower case (werkzeug's `Request.mimetype`)."""
        content_type = self.header(b"content-type")
        if content_type is None or content_type == "application/json":
            return content_type or ""
        return parse_options_header(content_type)[0].lower()

    def query_values(self, name: str) -> list[str]:
        """Every value of a query parameter, decoded as werkzeug's `Request.args` does."""
        if not self.query_string:
            return []
        pairs = parse_qsl(self.query_string.decode(errors="replace"), keep_blank_values=True,
                          errors="werkzeug.url_quote")
        return [value for key, value in pairs if key == name]

    def query_list(self, name: str) -> list[str] | None:
        """A list parameter as Spring binds it (transports/http/query_params.py); None when absent."""
        values = self.query_values(name)
        return query_list(values) if values else None

    def base_url(self) -> str:
        """scheme://host/path, no query: werkzeug's `Request.base_url` (the certificate policy's messages)."""
        host = get_host(self.scheme, self.header(b"host"), self.server)
        return get_current_url(self.scheme, host, "", self.path)


@dataclass(slots=True)
class ApiResponse:
    status: int
    body: bytes = b""
    content_type: bytes | None = None  # None: no Content-Type (an empty body)
    close: bool = False  # the connection cannot carry another request (a 413: the body is left unread)

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", self.content_type)] if self.content_type is not None else []
        if self.close:
            headers.append((b"connection", b"close"))
        return headers
