"""The ceilings our numbers are measured against.

`python -m bench.framework_ceiling` serves a bare quart-trio app on hypercorn's trio worker, with the
service's paths, that only decodes the request JSON and encodes a response of the same shape — what
the framework costs before any lockstore code runs (docs/ARCHITECTURE.md, "HTTP under trio"). With
`--certfile/--keyfile` (and `--ca-certs`) it serves HTTPS (with client certificates), as lockstore can.

`--raw` serves a fixed reply from a bare trio socket loop instead: no framework at all. Driving it
shows how fast the harness's own client goes on this machine, so a benchmark can show that the client
is not its bottleneck.

Both log `serving HTTP on http://HOST:PORT` on stderr, as the service does.
"""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from functools import partial
from typing import Any

import msgspec
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

BASE = "/serviceorchestration/orchestration/mgmt"
_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode

# What a page of 10 looks like, so query replies are as big as the service's.
_LOCK = {
    "id": 1,
    "serviceInstanceId": "Prov1|svc|1.0.0",
    "owner": "Owner",
    "expiresAt": "2999-01-01T00:00:00Z",
    "temporary": False,
}
_RULE = {
    "id": "8a6f3e0c-6a1b-4c55-9d0e-1f2a3b4c5d6e",
    "consumer": "Cons1",
    "serviceDefinition": "svc",
    "serviceInstanceId": "Prov1|svc|1.0.0",
    "priority": 1,
    "createdBy": "Sysop",
    "updatedBy": "Sysop",
    "createdAt": "2026-01-01T00:00:00Z",
    "updatedAt": "2026-01-01T00:00:00Z",
}


def _json(status: int, payload: Any) -> Response:
    return Response(_encode(payload), status=status, content_type="application/json")


def create_app() -> QuartTrio:
    """Same routes and methods as the service; each decodes the body and encodes a like-sized reply."""
    app = QuartTrio("ceiling")
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    async def body() -> Any:
        request.headers.get("Authorization")
        return _decode(await request.get_data(cache=False, as_text=False))

    @app.post(f"{BASE}/lock/create")
    async def lock_create() -> Response:
        locks = (await body())["locks"]
        entries = [{"id": i, **lock, "temporary": False} for i, lock in enumerate(locks)]
        return _json(201, {"entries": entries, "count": len(entries)})

    @app.post(f"{BASE}/lock/query")
    async def lock_query() -> Response:
        await body()
        return _json(200, {"entries": [_LOCK] * 10, "count": 1000})

    @app.delete(f"{BASE}/lock/remove/<owner>")
    async def lock_remove(owner: str) -> Response:
        request.headers.get("Authorization")
        request.args.getlist("instanceIds")
        return Response(b"", status=200)

    @app.post(f"{BASE}/simple-store/create")
    async def store_create() -> Response:
        candidates = (await body())["candidates"]
        entries = [{**_RULE, **candidate} for candidate in candidates]
        return _json(201, {"entries": entries, "count": len(entries)})

    @app.post(f"{BASE}/simple-store/query")
    async def store_query() -> Response:
        await body()
        return _json(200, {"entries": [_RULE] * 10, "count": 100})

    @app.put(f"{BASE}/simple-store/modify-priorities")
    async def store_modify() -> Response:
        priorities = await body()
        return _json(
            200,
            {
                "entries": [{**_RULE, "id": k, "priority": v} for k, v in priorities.items()],
                "count": len(priorities),
            },
        )

    @app.delete(f"{BASE}/simple-store/remove")
    async def store_remove() -> Response:
        request.headers.get("Authorization")
        request.args.getlist("uuids")
        return Response(b"", status=200)

    @app.get("/serviceorchestration/monitor/echo")
    async def echo() -> Response:
        request.headers.get("Authorization")
        return Response(b"Got it!", status=200, content_type="text/plain")

    return app


async def serve_framework(host: str, port: int, certfile: str = "", keyfile: str = "", ca_certs: str = "") -> None:
    """The quart app on hypercorn; HTTPS with `certfile`/`keyfile`, client certificates required with
    `ca_certs` (as lockstore's `--tls-client-auth required`)."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    if certfile:
        config.certfile, config.keyfile = certfile, keyfile
    if ca_certs:
        config.ca_certs = ca_certs
        config.verify_mode = ssl.CERT_REQUIRED
    config.accesslog = None
    config.errorlog = logging.getLogger("ceiling")
    config.keep_alive_timeout = 30.0
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(serve, create_app(), config))
        print(f"serving HTTP on {urls[0]}", file=sys.stderr, flush=True)


_RAW_BODY = _encode({"entries": [_LOCK], "count": 1})
_RAW_REPLY = (
    b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(_RAW_BODY)).encode()
    + b"\r\n\r\n"
    + _RAW_BODY
)


class Stall:
    """`--stall-every N --stall-ms M`: every Nth request (over all connections) is answered M ms late,
    as a server that pauses now and then (a GC, a slow fsync). It shows what coordinated omission
    hides: a closed-loop client sees one slow request; an open-loop one sees every request that was
    due during the pause."""

    def __init__(self, every: int = 0, ms: float = 0.0) -> None:
        self.every, self.seconds, self.seen = every, ms / 1e3, 0

    async def maybe(self) -> None:
        self.seen += 1
        if self.every and self.seen % self.every == 0:
            await trio.sleep(self.seconds)


async def _raw_connection(stream: trio.SocketStream, stall: Stall | None = None) -> None:
    """Answer every request on the connection with the same reply (bodies skipped by Content-Length)."""
    stall = stall or Stall()
    buffer = bytearray()
    try:
        while True:
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                chunk = await stream.receive_some(1 << 16)
                if not chunk:
                    return
                buffer += chunk
            head = bytes(buffer[:end]).lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            while len(buffer) < end + 4 + length:
                chunk = await stream.receive_some(1 << 16)
                if not chunk:
                    return
                buffer += chunk
            del buffer[: end + 4 + length]
            await stall.maybe()
            await stream.send_all(_RAW_REPLY)
    except trio.BrokenResourceError:
        return


async def serve_raw(host: str, port: int, stall: Stall | None = None) -> None:
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    print(f"serving HTTP on http://{bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    await trio.serve_listeners(partial(_raw_connection, stall=stall or Stall()), listeners)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.framework_ceiling", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="bare trio socket responder (client ceiling)")
    parser.add_argument("--stall-every", type=int, default=0, help="--raw: answer every Nth request late")
    parser.add_argument("--stall-ms", type=float, default=0.0, help="--raw: by this many ms")
    parser.add_argument("--certfile", default="", help="serve HTTPS with this certificate (not with --raw)")
    parser.add_argument("--keyfile", default="", help="... and this key")
    parser.add_argument("--ca-certs", default="", help="require client certificates from this CA")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        if args.raw:
            trio.run(serve_raw, args.host, args.port, Stall(args.stall_every, args.stall_ms))
        else:
            trio.run(serve_framework, args.host, args.port, args.certfile, args.keyfile, args.ca_certs)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
