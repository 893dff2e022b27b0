"""HTTP/1.1 requests without I/O, on httptools (llhttp): bytes in, events out (the h11 idea).

The server's connection task (transports/http/server.py) feeds what it reads to `receive_data` and takes
`next_event()`s: a `RequestHead`, then the body as `BodyData`, then `EndOfMessage` — or a `Refusal`
(answer it and close), `BodyOverLimit` or `PeerClosed`. Several pipelined requests may be queued; they
are answered in order by the caller. After a `Refusal`, `BodyOverLimit` or `PeerClosed` nothing more is
read. How responses are written is transports/http/responses.py.

RFC 9112 rules kept here (llhttp, strict, does the byte-level framing: bare LF or CR, obs-fold, bad or
duplicate Content-Length, bad chunk framing, an unknown Transfer-Encoding, control characters → 400):

- Content-Length and Transfer-Encoding together → 400 with the same Arrowhead message the hypercorn path
  gives (§6.1: against request smuggling), and the connection is closed;
- Transfer-Encoding on an HTTP/1.0 request → 400 and close (§6.1: its framing cannot be trusted);
- HTTP/1.1 without exactly one Host, or with an invalid one → 400 (§3.2); a second Host on HTTP/1.0 too;
- two Authorization headers → 400 (the rule of transports/http/framing.py, shared by both servers);
- a request head over `max_head_bytes` (16 KiB, hypercorn's limit) → 431; a body over `max_body_bytes`
  is never buffered: `BodyOverLimit` instead, and the connection closes after the response;
- only HTTP/1.0 and 1.1: anything else (HTTP/0.9, "HTTP/2.0" in HTTP/1 syntax, the h2 preface) → 505;
- CONNECT (authority-form) → 405 and close: this is not a proxy, and whatever follows a CONNECT head is
  tunnel data, not HTTP. Absolute-form targets (`GET http://host/path`) are served by their path (§3.2.2:
  a server must accept them); `OPTIONS *` goes on as the path `*` (the Quart app answers it);
- `Upgrade` is ignored (RFC 9110 §7.8 allows it; there is no HTTP/2 over cleartext here): llhttp stops at
  an upgrade request's head, so parsing resumes with a fresh parser, the body (if any) first;
- `Expect: 100-continue` on HTTP/1.1 is reported (`expect_continue`); the caller sends 100 only when the
  handler reads the body. HTTP/1.0 keeps the connection only with `Connection: keep-alive`.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from urllib.parse import unquote

import httptools

from transports.http.framing import BOTH_LENGTHS, TWO_AUTHORIZATIONS

MAX_HEAD_BYTES = 16 * 1024  # request line + headers (hypercorn/h11's limit: the README's proxy advice)
MAX_BODY_BYTES = 1 << 20  # DECISIONS.md: bodies over 1 MiB → 413

Headers = list[tuple[bytes, bytes]]  # names lower case, values without surrounding whitespace

# RFC 3986 host (reg-name, IPv4, or an IP literal in brackets) with an optional port; empty is allowed
# (RFC 9112 §3.2: the Host of a target without authority).
_HOST = re.compile(rb"(\[[0-9A-Za-z:.%_~-]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?")
_LENGTH_MESSAGES = ("Content-Length can't be present with Transfer-Encoding",
                    "Transfer-Encoding can't be present with Content-Length")


@dataclass(slots=True)
class RequestHead:
    method: str
    target: bytes  # as sent
    path: str  # percent-decoded, as ASGI's `path`
    raw_path: bytes
    query_string: bytes
    headers: Headers
    http_version: str  # "1.0" or "1.1"
    keep_alive: bool  # what the request asks for (the server may still close)
    expect_continue: bool
    content_length: int | None  # None: chunked, or no body
    chunked: bool

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


@dataclass(slots=True)
class BodyData:
    data: bytes


@dataclass(slots=True)
class Refusal:
    """A request refused before it was served: answer `status` with `message` (an Arrowhead body) and close.
    `method` and `path` are known when the request line was read (the error body's origin)."""

    status: int
    message: str
    method: str | None = None
    path: str | None = None
    headers: Headers | None = None


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = _Marker("NEED_DATA")  # nothing queued: read more
END_OF_MESSAGE = _Marker("END_OF_MESSAGE")  # the current request's body is complete
BODY_OVER_LIMIT = _Marker("BODY_OVER_LIMIT")  # the body passed max_body_bytes; nothing more is read
PEER_CLOSED = _Marker("PEER_CLOSED")  # the client closed its side (mid-request or between requests)

Event = RequestHead | BodyData | Refusal | _Marker


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing (the reason is already queued)."""


class Http1Requests:
    """The request side of one HTTP/1.1 connection (see the module doc)."""

    def __init__(self, *, max_head_bytes: int = MAX_HEAD_BYTES, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self._events: deque[Event] = deque()
        self._parser = httptools.HttpRequestParser(self)
        self._stopped = False  # nothing more is parsed
        self._in_head = False
        self._in_message = False
        self._method: str | None = None
        self._url = b""
        self._headers: Headers = []
        self._head_bytes = 0
        self._body_bytes = 0
        self._synthetic = False  # parsing a made-up head that frames the body of an upgrade request
        self._head: RequestHead | None = None

    # ------------------------------------------------------------------------------------------ input

    @property
    def stopped(self) -> bool:
        """Nothing more will be read from this connection (refused, over a limit, or closed by the peer)."""
        return self._stopped

    @property
    def in_message(self) -> bool:
        """Bytes of a request have been read whose message is not complete yet."""
        return self._in_message

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes read from the connection; `b""` means the peer closed its side."""
        if self._stopped:
            return
        if not data:
            self._stopped = True
            self._events.append(PEER_CLOSED)
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._resume_after_upgrade(data[upgrade.args[0]:] if upgrade.args else b"")
        except httptools.HttpParserCallbackError as error:
            self._stopped = True  # one of our callbacks stopped it; its reason is queued
            if not isinstance(error.__context__, _Stop):  # a fault of ours: still an answer, and the end
                self._events.append(Refusal(400, "Malformed HTTP request", self._method))
        except httptools.HttpParserError as error:
            self._refuse_malformed(str(error))

    def next_event(self) -> Event:
        return self._events.popleft() if self._events else NEED_DATA

    # ------------------------------------------------------------------------------------------ llhttp's callbacks

    def on_message_begin(self) -> None:
        if self._synthetic:
            return
        self._in_head = self._in_message = True
        self._method = None
        self._url = b""
        self._headers = []
        self._head_bytes = 12  # "GET  HTTP/1.1\r\n" less the method and target
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        if self._synthetic:
            return
        if self._method is None:
            self._method = self._parser.get_method().decode("ascii")
            self._head_bytes += len(self._method)
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self.max_head_bytes:
            self._refuse_head_too_large()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._synthetic:
            return
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.max_head_bytes:
            self._refuse_head_too_large()
        if self._in_head:  # trailer fields of a chunked body are counted, not kept
            self._headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        if self._synthetic:
            return
        self._in_head = False
        method = self._method or self._parser.get_method().decode("ascii")
        version = self._parser.get_http_version()
        target = self._url
        path, raw_path, query = _split_target(target)
        if version not in ("1.1", "1.0"):
            self._refuse(505, f"HTTP version {version} is not supported", method, path)
        if method == "CONNECT":
            self._refuse(405, "Request method 'CONNECT' is not supported", method, target.decode("latin-1"))
        headers = self._headers
        hosts = content_length = 0
        length: int | None = None
        chunked = close = keep_alive = expect_continue = False
        authorizations = 0
        for name, value in headers:
            if name == b"host":
                hosts += 1
                if _HOST.fullmatch(value) is None:
                    self._refuse(400, "Request has an invalid Host header", method, path)
            elif name == b"content-length":
                content_length += 1
                length = int(value)  # llhttp accepted it: digits only, one of them
            elif name == b"transfer-encoding":
                chunked = True
                if value.lower() != b"chunked":  # llhttp refuses it too, but only once this head is out
                    self._refuse(400, "Malformed HTTP request: Request has invalid `Transfer-Encoding`", method, path)
            elif name == b"connection":
                tokens = {token.strip().lower() for token in value.split(b",")}
                close = close or b"close" in tokens
                keep_alive = keep_alive or b"keep-alive" in tokens
            elif name == b"expect":
                expect_continue = value.lower() == b"100-continue"
            elif name == b"authorization":
                authorizations += 1
        if content_length and chunked:
            self._refuse(400, BOTH_LENGTHS, method, path)  # llhttp refuses it first; kept as a second wall
        if hosts > 1:
            self._refuse(400, "Request has more than one Host header", method, path)
        if version == "1.1" and not hosts:
            self._refuse(400, "Request has no Host header", method, path)
        if version == "1.0" and chunked:
            self._refuse(400, "Transfer-Encoding is not allowed on an HTTP/1.0 request", method, path)
        if authorizations > 1:
            self._refuse(400, TWO_AUTHORIZATIONS, method, path)
        self._head = RequestHead(
            method, target, path, raw_path, query, headers, version,
            keep_alive=not close if version == "1.1" else keep_alive and not close,
            expect_continue=expect_continue and version == "1.1",
            content_length=None if chunked else length, chunked=chunked,
        )
        self._events.append(self._head)

    def on_body(self, body: bytes) -> None:
        self._events.append(BodyData(body))
        self._body_bytes += len(body)
        if self._body_bytes > self.max_body_bytes:
            # The piece that crossed the limit is handed on (at most one read), so that whoever counts
            # the body sees it over the limit too (the Quart app answers 413 by its own count).
            self._events.append(BODY_OVER_LIMIT)
            raise _Stop

    def on_message_complete(self) -> None:
        self._synthetic = self._in_message = False
        self._events.append(END_OF_MESSAGE)

    # ------------------------------------------------------------------------------------------ refusals

    def _refuse(self, status: int, message: str, method: str | None, path: str | None) -> None:
        self._events.append(Refusal(status, message, method, path, self._headers))
        raise _Stop

    def _refuse_head_too_large(self) -> None:
        method = self._method
        path = _split_target(self._url)[0] if method is not None else None
        self._refuse(431, f"Request header fields are too large (the maximum is {self.max_head_bytes} bytes)",
                     method, path)

    def _refuse_malformed(self, reason: str) -> None:
        self._stopped = True
        method = self._method
        path = _split_target(self._url)[0] if method is not None and self._url else None
        if reason in _LENGTH_MESSAGES:
            self._events.append(Refusal(400, BOTH_LENGTHS, method, path, self._headers))
        elif reason.startswith("Pause on PRI/Upgrade") or reason == "Invalid HTTP version":
            self._events.append(Refusal(505, "Only HTTP/1.0 and HTTP/1.1 are served on this port", method, path))
        else:
            self._events.append(Refusal(400, f"Malformed HTTP request: {reason}", method, path))

    # ------------------------------------------------------------------------------------------ Upgrade

    def _resume_after_upgrade(self, rest: bytes | bytearray) -> None:
        """llhttp stops after the head of a request with `Connection: upgrade` (httptools then skips its
        body); the upgrade is ignored, so a fresh parser goes on with that body and what follows."""
        self._parser = httptools.HttpRequestParser(self)
        head = self._head
        if head is not None and head.has_body:
            if self._events and self._events[-1] is END_OF_MESSAGE:
                self._events.pop()  # httptools ended the message without its body
            self._in_message = self._synthetic = True
            length = head.content_length or 0
            framing = b"transfer-encoding: chunked" if head.chunked else b"content-length: %d" % length
            self.receive_data(b"PUT / HTTP/1.1\r\n" + framing + b"\r\n\r\n")
        if rest:
            self.receive_data(rest)


def _split_target(target: bytes) -> tuple[str, bytes, bytes]:
    """(decoded path, raw path, query string) of a request target: origin-form, absolute-form (by its
    path), `*`, or an authority (CONNECT). llhttp lets only printable ASCII through."""
    if target[:1] != b"/" and b"://" in target[:16]:
        target = target.split(b"://", 1)[1]
        slash = target.find(b"/")
        target = target[slash:] if slash >= 0 else b"/"
    raw_path, _, query = target.partition(b"?")
    raw_path = raw_path.partition(b"#")[0]
    query = query.partition(b"#")[0]
    path = raw_path.decode("ascii", "replace")
    if "%" in path:
        path = unquote(path)
    return path, raw_path, query
