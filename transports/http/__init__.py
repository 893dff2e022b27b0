"""The HTTP edge: bytes in, one call into transports/api/, bytes out.

Two servers in front of one set of route handlers (`handlers.py`, over the route table `routes.py`, the
request/response values of `exchange.py`):

- native (default): `server.py` (listener, connection limit, shutdown) and `connection.py` (one task per
  connection) over `byte_streams.py` (sockets, TLS), `http1.py` (httptools, without I/O) and
  `responses.py`; `native_app.py` calls the handlers inline and hands the rest to the Quart app through
  `asgi_bridge.py`;
- hypercorn: `hypercorn_server.py` and `hypercorn_protocol.py` serve `app.py` (the Quart app, whose views
  are the same handlers) with the ASGI middlewares `framing.py`, `keepalive.py` and `tls_scope.py`.

May import: transports/api/, transports/config/, transports/security/. Not transports/mqtt/ nor
transports/observability/ (which wraps this edge from above: `native_app.ExchangeHook` is what it
implements for the native server).
"""
