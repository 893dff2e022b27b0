"""hypercorn's protocol choice (h11, or h2 by ALPN, prior knowledge or h2c upgrade), with one h2 fault fixed.

hypercorn 0.18's `H2Protocol` looks up the stream of every DATA frame with `self.streams[stream_id]`.
A stream is missing there when hypercorn has already finished with it while the client still sends its
body: the app answered early (a body over 1 MiB gets its 413 before the rest arrives), or the server
refused the stream at shutdown. The `KeyError` then ended the connection task and, through hypercorn's
server nursery, the whole process: one HTTP/2 POST of 2 MiB stopped the service. Here such DATA is
acknowledged (the connection's flow-control window stays open) and dropped. Likewise an `Upgrade: h2c`
request with a malformed `HTTP2-Settings` header stopped the process; it now closes its connection.

And hypercorn ends a stream too early at shutdown: its last response send returns once the body is
handed to h2, before the send task has written END_STREAM; the stream then counts as closed, the
connection as idle, and hypercorn sends GOAWAY at once. h2 refuses to end a stream after GOAWAY, so
the client got the whole body but never its end: the request was applied and the client saw an error.
Here the last send returns only once END_STREAM is written, and GOAWAY is the connection's business
(`goodbye`, sent when it closes an idle connection).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import h2.events
import h2.exceptions
import h11
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.events import EndBody, StreamClosed
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H2CProtocolRequiredError, H2ProtocolAssumedError, H11Protocol
from hypercorn.typing import AppWrapper, ConnectionState, TaskGroup, WorkerContext


class H2(H2Protocol):
    """hypercorn's HTTP/2, with the two fixes of the module doc."""

    def __init__(self, *arguments: Any) -> None:
        super().__init__(*arguments)
        self._ended: dict[int, trio.Event] = {}  # streams whose last send waits for END_STREAM

    async def stream_send(self, event: StreamEvent) -> None:
        if isinstance(event, EndBody):
            ended = self._ended[event.stream_id] = trio.Event()
            await super().stream_send(event)  # returns once h2 has the whole body
            if event.stream_id in self.stream_buffers and not self.closed:
                await ended.wait()
        elif isinstance(event, StreamClosed):
            # hypercorn's own version also sends GOAWAY here when stopping, before END_STREAM is out.
            await self._close_stream(event.stream_id)
            await self.send(Updated(idle=self.idle))
        else:
            await super().stream_send(event)

    async def _send_data(self, stream_id: int) -> None:
        await super()._send_data(stream_id)
        if stream_id not in self.stream_buffers:  # ended (END_STREAM written) or given up
            self._end(stream_id)

    async def handle(self, event: Event) -> None:
        await super().handle(event)
        if isinstance(event, Closed):
            for stream_id in list(self._ended):
                self._end(stream_id)

    def _end(self, stream_id: int) -> None:
        ended = self._ended.pop(stream_id, None)
        if ended is not None:
            ended.set()

    async def goodbye(self) -> None:
        """GOAWAY before the connection is closed (idle: every stream has ended)."""
        if not self.closed:
            self.connection.close_connection()
            await self._flush()

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        for event in events:
            # One event at a time: a stream refused or finished by an earlier event of the same batch
            # is gone by the time its DATA comes up.
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            else:
                await super()._handle_events([event])
        await self._flush()


class Protocol:
    """hypercorn's `ProtocolWrapper`, with `H2` in place of `H2Protocol`."""

    def __init__(self, app: AppWrapper, config: Config, context: WorkerContext, task_group: TaskGroup,
                 state: ConnectionState, ssl: bool, client: tuple[str, int] | None,
                 server: tuple[str, int] | None, send: Callable[[Event], Awaitable[None]],
                 alpn_protocol: str) -> None:
        self._arguments = (app, config, context, task_group, state, ssl, client, server, send)
        self._send = send
        self.protocol: H11Protocol | H2 = (
            H2(*self._arguments) if alpn_protocol == "h2" else H11Protocol(*self._arguments)
        )

    async def initiate(self) -> None:
        await self.protocol.initiate()

    def responding(self) -> bool:
        """An HTTP/1.1 response has started and is not complete."""
        protocol = self.protocol
        return (isinstance(protocol, H11Protocol) and protocol.stream is not None
                and protocol.connection.our_state is h11.SEND_BODY)

    async def goodbye(self) -> None:
        """Tell the client the connection is about to close (HTTP/2 GOAWAY; nothing for HTTP/1.1)."""
        if isinstance(self.protocol, H2):
            await self.protocol.goodbye()

    async def handle(self, event: Event) -> None:
        try:
            await self.protocol.handle(event)
        except H2ProtocolAssumedError as error:  # HTTP/2 with prior knowledge (h2c)
            self.protocol = H2(*self._arguments)
            await self.protocol.initiate()
            if error.data:
                await self.protocol.handle(RawData(data=error.data))
        except H2CProtocolRequiredError as error:  # `Upgrade: h2c`
            upgraded = H2(*self._arguments)
            try:
                await upgraded.initiate(error.headers, error.settings)
            except (ValueError, h2.exceptions.H2Error):
                # A bad HTTP2-Settings header (not base64, an invalid value): it used to end the process.
                await self._send(Closed())
                return
            self.protocol = upgraded
            if error.data:
                await self.protocol.handle(RawData(data=error.data))
