"""Errors raised by the write-ahead log.

Two failure modes matter to the service and they call for opposite reactions: corruption found at
start-up must stop the process with a message an operator can act on (file and byte offset), while a
log that fails at run time must refuse every write it cannot make durable (a 503, never a false ack).
"""

from __future__ import annotations

from pathlib import Path


class WalCorruption(Exception):
    """The log on disk is damaged somewhere other than a torn tail; replaying it would lose data."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"write-ahead log corrupted: {path} at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class LogUnavailable(Exception):
    """The log cannot make (more) changes durable: it failed, or it is closed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
