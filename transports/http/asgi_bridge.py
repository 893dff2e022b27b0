"""Hand one request to an ASGI app in-process and collect its whole response; run the app's lifespan.

The native server answers the API routes itself and brings everything else — /docs, /openapi.json,
/metrics, /health/*, unknown paths, wrong methods, HEAD — to the Quart app through here, so that those
pages and answers are defined in one place. These are not the hot paths: Quart's own tasks per request
are fine here.

The app reads the body through `receive` only when it wants it, so `Expect: 100-continue` keeps its
meaning; a body over the limit is cut at the limit (Quart then answers 413, and the connection closes).
The response is collected whole (the largest, the Swagger UI bundle, is 1.5 MB and in memory anyway) and
handed back as one value, so that the server writes it in one go.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import trio

log = logging.getLogger("lockstore.http")

Message = MutableMapping[str, Any]
AsgiApp = Callable[..., Awaitable[None]]  # (scope, receive, send), as ASGI says
BodyChunks = Callable[[], Awaitable[bytes | None]]  # the next piece of the request body; None at its end


@dataclass
class AsgiResponse:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False


class IncompleteResponse(Exception):
    """The app returned without a whole response."""


async def call(app: AsgiApp, scope: dict[str, Any], next_chunk: BodyChunks) -> AsgiResponse:
    """Run `app` for one HTTP request; its response, whole. Raises whatever the app raised, or
    IncompleteResponse."""
    response = AsgiResponse()
    pieces: list[bytes] = []
    body_done = False

    async def receive() -> Message:
        nonlocal body_done
        if body_done:
            await trio.sleep_forever()  # the app waits for a disconnect; it is cancelled when it has answered
        chunk = await next_chunk()
        if chunk is None:
            body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            response.status = int(message["status"])
            response.headers = [(bytes(name), bytes(value)) for name, value in message.get("headers", ())]
        elif kind == "http.response.body":
            pieces.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                response.complete = True

    await app(scope, receive, send)
    if not response.complete:
        raise IncompleteResponse(f"the app returned without a whole response (status {response.status})")
    response.body = b"".join(pieces)
    return response


class Lifespan:
    """The ASGI lifespan protocol (startup before serving, shutdown after): QuartTrio keeps its app
    nursery open for as long as it runs, and runs its before/after-serving functions."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self._to_app, self._app_inbox = trio.open_memory_channel[Message](1)
        self._from_app, self._replies = trio.open_memory_channel[Message](1)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the app (returns to the starter once started), and keep it until `shutdown`."""
        failure = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_app)
            await self._to_app.send({"type": "lifespan.startup"})
            reply = await self._replies.receive()
            if reply["type"] == "lifespan.startup.complete":
                task_status.started()
            else:
                failure = str(reply.get("message", reply["type"]))
                nursery.cancel_scope.cancel()
        if failure is not None:
            raise RuntimeError(f"the HTTP app failed to start: {failure}")

    async def shutdown(self) -> None:
        await self._to_app.send({"type": "lifespan.shutdown"})
        reply = await self._replies.receive()
        if reply["type"] != "lifespan.shutdown.complete":
            log.warning("the HTTP app's shutdown failed: %s", reply.get("message", reply["type"]))

    async def _run_app(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        await self.app(scope, self._app_inbox.receive, self._from_app.send)
