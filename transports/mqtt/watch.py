"""How connections to the broker end, read for two harmful patterns (pure: the session feeds it).

- **Session takeover.** A broker keeps one connection per client id: a second client with our id knocks
  us off, we reconnect and knock it off, and so on. MQTT 5 says so (DISCONNECT reason 0x8E "Session
  taken over"); 3.1.1 just closes the link, so there it is inferred from links lost soon after
  connecting, several times in a row. `TakeoverWatch` counts them and says when to warn (at most once
  a minute, with the number of takeovers since the last warning).
- **A poisoned outgoing message.** A QoS 1/2 publish the broker refuses by closing the link (e.g. a
  packet over its `max_packet_size`) is sent again by paho after every reconnect, forever. The broker
  acknowledges in order, so the refused message is the oldest one still unacknowledged when the link
  drops. `StuckPublishWatch` names the message to give up once the same one was that oldest message
  at `limit` link losses in a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

SESSION_TAKEN_OVER = 0x8E  # MQTT 5 reason code
EARLY_LOSS_SECONDS = 5.0  # a 3.1.1 link lost this soon after connecting may have been taken over ...
EARLY_LOSSES_IN_A_ROW = 3  # ... and this many such losses in a row are taken as a takeover
WARNING_INTERVAL = 60.0  # seconds between two takeover warnings
GIVE_UP_AFTER_LOSSES = 2

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TakeoverWarning:
    """Time to warn: `events` takeovers since the last warning; `stated`: the broker said so (MQTT 5)."""

    stated: bool
    events: int
    early_losses: int  # links lost soon after connecting, in a row (the 3.1.1 evidence)


class TakeoverWatch:
    def __init__(self, *, early: float = EARLY_LOSS_SECONDS, in_a_row: int = EARLY_LOSSES_IN_A_ROW,
                 interval: float = WARNING_INTERVAL) -> None:
        self.early = early
        self.in_a_row = in_a_row
        self.interval = interval
        self.taken_over = 0  # takeovers seen (stated, or inferred), for the metrics
        self._early_losses = 0
        self._unreported = 0
        self._last_warning: float | None = None

    def link_lost(self, now: float, lifetime: float, taken_over: bool | None) -> TakeoverWarning | None:
        """An accepted connection (CONNACK) ended without us closing it, `lifetime` seconds after the
        CONNACK. `taken_over`: what the broker said (MQTT 5), or None when it cannot say (3.1.1)."""
        self._early_losses = self._early_losses + 1 if lifetime < self.early else 0
        stated = taken_over is not None
        if taken_over is None:
            taken_over = self._early_losses >= self.in_a_row
        if not taken_over:
            return None
        self.taken_over += 1
        self._unreported += 1
        if self._last_warning is not None and now - self._last_warning < self.interval:
            return None
        self._last_warning = now
        events, self._unreported = self._unreported, 0
        return TakeoverWarning(stated=stated, events=events, early_losses=self._early_losses)


class StuckPublishWatch(Generic[T]):
    """Which unacknowledged outgoing message to give up (see the module doc)."""

    def __init__(self, limit: int = GIVE_UP_AFTER_LOSSES) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._suspect: T | None = None
        self._strikes = 0

    def link_lost(self, oldest_unacknowledged: T | None) -> T | None:
        """The link dropped (after a CONNACK) with this message the oldest one awaiting its ack; returns
        the message to give up, if it is time."""
        if oldest_unacknowledged is None:
            self._suspect, self._strikes = None, 0
            return None
        if oldest_unacknowledged is self._suspect:
            self._strikes += 1
        else:
            self._suspect, self._strikes = oldest_unacknowledged, 1
        if self._strikes < self.limit:
            return None
        self._suspect, self._strikes = None, 0
        return oldest_unacknowledged
