"""The actor runtime: one task owns a piece of state; everybody else sends it messages.

A message is a plain synchronous callable executed *inside* the owning task, so a state change can
never interleave with another (trio only switches tasks at an await, and a message never awaits).
The reply is held until the write-ahead log has made durable everything appended up to the moment
the message ran — for a write, its own change; for a read, any pending change it could have seen
(ARCHITECTURE.md, "Durable before visible"); a read whose pending changes are lost instead is run
again on the undone state (`Mailbox.read`). The actor itself never waits for the disk: while one
batch is being fsync'd it goes on applying the next messages, which is what makes group commit work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import trio

from wal import failpoints
from wal.errors import LogUnavailable

T = TypeVar("T")


class DurableLog(Protocol):
    """The part of the write-ahead log an actor needs (see wal/log.py)."""

    @property
    def appended_lsn(self) -> int: ...

    @property
    def durable_lsn(self) -> int: ...

    @property
    def available(self) -> bool: ...

    @property
    def failures(self) -> int: ...

    def is_lost(self, lsn: int) -> bool: ...

    def append(self, payload: bytes) -> int: ...

    async def wait_durable(self, lsn: int) -> None: ...


class _Reply(Generic[T]):
    """A one-shot reply slot: cheaper than a memory channel per request."""

    __slots__ = ("done", "error", "lsn", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.lsn = 0


_Envelope = tuple[Callable[[], Any], _Reply[Any]]


class Mailbox:
    """A bounded queue of messages for one actor task (bounded = backpressure on callers)."""

    def __init__(
        self, log: DurableLog, capacity: int = 1024, before_each: Callable[[], object] | None = None
    ) -> None:
        self._log = log
        self._before_each = before_each  # runs in the actor before every message (undo of lost changes)
        self._send, self._receive = trio.open_memory_channel[_Envelope](capacity)
        self.processed = 0

    @property
    def depth(self) -> int:
        """Messages waiting (for metrics)."""
        return self._send.statistics().current_buffer_used

    async def ask(self, message: Callable[[], T]) -> T:
        """Run `message` in the actor task, then wait until its effects are durable; return its result.

        An exception raised by the message is re-raised here (after the same durability wait, so a
        rejection never reveals state a crash could still lose).
        """
        reply = await self._run(message)
        await self._log.wait_durable(reply.lsn)
        return self._deliver(reply)

    async def read(self, message: Callable[[], T]) -> T:
        """`ask` for a message that only reads the actor's state (no log record, no other effect).

        A read that saw changes still being written cannot be answered if that write fails: its
        result would reveal what the disk lost. Such a read is simply run again: the actor undoes
        the lost changes before its next message, so the second run sees durable state only (and,
        while the log refuses writes, nothing newer). Reads therefore keep being answered while the
        disk fails, never with a change a crash could lose.
        """
        while True:
            reply = await self._run(message)
            try:
                await self._log.wait_durable(reply.lsn)
            except LogUnavailable:
                if not self._log.is_lost(reply.lsn):
                    raise  # the log stopped (shutdown), not a lost write
                continue
            return self._deliver(reply)

    async def _run(self, message: Callable[[], T]) -> _Reply[T]:
        reply: _Reply[T] = _Reply()
        try:
            await self._send.send((message, reply))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorStopped("the service is shutting down") from None
        await reply.done.wait()
        return reply

    @staticmethod
    def _deliver(reply: _Reply[T]) -> T:
        failpoints.hit("reply.before")
        if reply.error is not None:
            raise reply.error
        return reply.value  # type: ignore[return-value]

    def close(self) -> None:
        """No new messages; the actor drains what is queued and stops."""
        self._send.close()

    async def receive(self) -> _Envelope:
        return await self._receive.receive()

    def run_one(self, envelope: _Envelope) -> None:
        """Execute one message in the calling (actor) task and release its reply."""
        message, reply = envelope
        if self._before_each is not None:
            self._before_each()
        try:
            reply.value = message()
        except Exception as error:  # returned to the caller, never kills the actor
            reply.error = error
        reply.lsn = self._log.appended_lsn
        self.processed += 1
        reply.done.set()


class ActorStopped(Exception):
    """The actor no longer takes messages (shutdown)."""


async def serve_mailbox(
    mailbox: Mailbox,
    *,
    next_wakeup: Callable[[], float | None] | None = None,
    on_wakeup: Callable[[], object] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The actor loop: take messages one at a time until the mailbox is closed and drained.

    `next_wakeup()` gives a trio deadline (trio.current_time() scale) at which `on_wakeup()` must run
    even if no message arrives — the lock actor's expiry purge uses it.
    """
    task_status.started()
    while True:
        deadline = next_wakeup() if next_wakeup is not None else None
        with trio.move_on_at(deadline if deadline is not None else float("inf")):
            try:
                envelope = await mailbox.receive()
            except trio.EndOfChannel:
                return
            mailbox.run_one(envelope)
            if on_wakeup is not None:
                on_wakeup()
            continue
        if on_wakeup is not None:
            on_wakeup()
