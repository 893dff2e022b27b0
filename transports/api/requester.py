"""Who is asking: the identity every operation receives, whatever transport and policy found it
(transports/security/ decides who it is; the operations only read it)."""

from __future__ import annotations

import msgspec


class Requester(msgspec.Struct, frozen=True):
    """An authenticated caller: its system name, and whether it is the local cloud's operator (Sysop)."""

    name: str
    sysop: bool
