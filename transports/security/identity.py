"""Who is calling, and may they use management services (ARROWHEAD-REFERENCE.md §1.2, §1.3).

Declared identity (`SYSTEM//<Name>`) here; DECISIONS.md 10 tightens the reference: exactly one `//`
and a declared name that is a valid SystemName after normalisation, else 401. The `certificate`
policy lives in transports/security/certificates.py and yields the same `Requester`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from transports.api.errors import ArrowheadError, ExceptionType
from transports.api.names import normalize_system_name, validate_system_name
from transports.api.requester import Requester

SYSOP = "Sysop"


class ManagementPolicy(enum.Enum):
    SYSOP_ONLY = "sysop-only"
    WHITELIST = "whitelist"
    DISABLED = "disabled"


def _auth_error(message: str) -> ArrowheadError:
    return ArrowheadError(message, ExceptionType.AUTH)


def _declared_requester(declared: str) -> Requester | None:
    """`SYSTEM//<Name>` → Requester, or None when it is not of that form."""
    parts = declared.split("//")
    if len(parts) != 2 or parts[0] != "SYSTEM":
        return None
    name = normalize_system_name(parts[1])
    try:
        validate_system_name(name)
    except ArrowheadError:
        return None
    assert name is not None  # validate_system_name refuses None
    return Requester(name=name, sysop=name == SYSOP)


def authenticate_http(authorization: str | None) -> Requester:
    """The `Authorization: Bearer SYSTEM//<Name>` header (§1.2.1)."""
    if authorization is None or not authorization.strip():
        raise _auth_error("No authorization header has been provided")
    tokens = authorization.strip().split(" ")
    requester = None
    if len(tokens) == 2 and tokens[0] == "Bearer":
        requester = _declared_requester(tokens[1])
    if requester is None:
        raise _auth_error("Invalid authorization header")
    return requester


def authenticate_mqtt(authentication: str | None) -> Requester:
    """The MQTT template's `authentication` field, `SYSTEM//<Name>`, not trimmed (§1.2.2)."""
    if authentication is None or not authentication.strip():
        raise _auth_error("No authentication info has been provided")
    requester = _declared_requester(authentication)
    if requester is None:
        raise _auth_error("Invalid authentication info")
    return requester


def normalize_whitelist(names: Iterable[str]) -> frozenset[str]:
    """Each entry SystemName-normalised, blanks skipped (C:`SystemInfo.getManagementWhitelist`)."""
    normalized = (normalize_system_name(name) for name in names)
    return frozenset(name for name in normalized if name)


def authorize_management(requester: Requester, policy: ManagementPolicy, whitelist: frozenset[str]) -> None:
    """Raise 403 unless the requester may call management operations under `policy`."""
    if policy is ManagementPolicy.DISABLED or requester.sysop:
        return
    if policy is ManagementPolicy.WHITELIST and requester.name in whitelist:
        return
    raise ArrowheadError("Requester has no management permission", ExceptionType.FORBIDDEN)
