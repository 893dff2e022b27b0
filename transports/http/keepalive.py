"""Lets hypercorn close idle keep-alive connections at shutdown instead of waiting them out.

The race (hypercorn 0.18 with quart-trio): the app's last `http.response.body` send is what makes
hypercorn recycle the connection and start its idle-timeout task (`nursery.start`), the task that
closes an idle connection when the server shuts down. The same recycle tells the app the request
stream closed (`http.disconnect`), and quart-trio then cancels its own request nursery, which holds
the task still inside that send. The cancellation lands in `nursery.start` and kills the idle task at
birth, so the connection has no one to close it: a server with one idle keep-alive client waited the
whole graceful timeout (5 s) on every shutdown. Shielding that one send lets the idle task start.
Hypercorn shields its own socket writes already, so the shield adds no new way to block.
"""

from __future__ import annotations

import trio
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope


def is_last_body(message: ASGISendEvent) -> bool:
    return message["type"] == "http.response.body" and not message.get("more_body", False)


class ShieldLastBody:
    """ASGI middleware: the final response-body send of each HTTP request runs shielded."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def shielded_send(message: ASGISendEvent) -> None:
            if is_last_body(message):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        await self.app(scope, receive, shielded_send)
