"""Which etcd endpoint to try next, and how long to wait first. Pure (the caller sleeps and sends).

Endpoints are tried in turn from the one that last worked: every request goes to the "current"
endpoint until it fails, then the next one becomes current. After a whole round of failures the
caller backs off: exponentially from `base` to `cap` seconds, with "full jitter" (a random delay
between half and all of the step), so instances that lost the same member do not retry in lockstep.

May import: the standard library. Never transports or bench.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def parse_endpoints(text: str | Sequence[str]) -> tuple[str, ...]:
    """`http(s)://host:port` URLs (comma-separated text or a list), without a trailing slash.

    Raises ValueError naming the bad entry: empty list, another scheme, a path, no port, mixed schemes.
    """
    items = [item.strip() for item in (text.split(",") if isinstance(text, str) else text)]
    items = [item for item in items if item]
    if not items:
        raise ValueError("no etcd endpoint given (expected http://host:port[,http://host:port...])")
    endpoints: list[str] = []
    for item in items:
        url = urlsplit(item)
        try:
            port = url.port
        except ValueError:
            port = None
        if url.scheme not in ("http", "https") or not url.hostname or port is None:
            raise ValueError(f"etcd endpoint {item!r} is not http://host:port or https://host:port")
        if url.path not in ("", "/") or url.query or url.fragment or url.username or url.password:
            raise ValueError(f"etcd endpoint {item!r} must be scheme://host:port only (no path, query or user)")
        endpoints.append(f"{url.scheme}://{url.netloc}")
    if len({urlsplit(endpoint).scheme for endpoint in endpoints}) > 1:
        raise ValueError("etcd endpoints mix http:// and https://")
    return tuple(dict.fromkeys(endpoints))


@dataclass
class EndpointRing:
    """The endpoints, the current one, and how many failed in a row since one last worked."""

    endpoints: tuple[str, ...]
    index: int = 0
    failures_in_a_row: int = 0

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError("no etcd endpoint")

    @property
    def current(self) -> str:
        return self.endpoints[self.index]

    def succeeded(self, endpoint: str) -> None:
        if endpoint == self.current:
            self.failures_in_a_row = 0

    def failed(self, endpoint: str) -> None:
        """Move on from `endpoint` (if another request has not already moved on from it)."""
        if endpoint == self.current:
            self.index = (self.index + 1) % len(self.endpoints)
            self.failures_in_a_row += 1

    @property
    def round_failed(self) -> bool:
        """Every endpoint failed since one last worked: time to back off before the next try."""
        return self.failures_in_a_row > 0 and self.failures_in_a_row % len(self.endpoints) == 0


@dataclass
class Backoff:
    """Exponential backoff with jitter: `delay(n)` for the n-th consecutive wait (n >= 1)."""

    base: float = 0.05
    cap: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        step: float = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        return step / 2 + self.rng.random() * step / 2
