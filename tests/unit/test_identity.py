"""Declared identity and management policy (ARROWHEAD-REFERENCE.md §1.2–1.3, DECISIONS.md 10, 14)."""

from __future__ import annotations

import pytest

from transports.api.errors import ArrowheadError
from transports.security.identity import (
    ManagementPolicy,
    Requester,
    authenticate_http,
    authenticate_mqtt,
    authorize_management,
    normalize_whitelist,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer SYSTEM//Sysop", Requester("Sysop", True)),
        ("  Bearer SYSTEM//sysop  ", Requester("Sysop", True)),
        ("Bearer SYSTEM//temperature-manager", Requester("TemperatureManager", False)),
        ("Bearer SYSTEM//SYSOP", Requester("SYSOP", False)),
    ],
)
def test_http_accepts(header: str, expected: Requester) -> None:
    assert authenticate_http(header) == expected


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "No authorization header has been provided"),
        ("", "No authorization header has been provided"),
        (" \t ", "No authorization header has been provided"),
        ("Bearer", "Invalid authorization header"),
        ("Basic SYSTEM//Sysop", "Invalid authorization header"),
        ("Bearer  SYSTEM//Sysop", "Invalid authorization header"),
        ("Bearer SYSTEM//Sysop extra", "Invalid authorization header"),
        ("Bearer system//Sysop", "Invalid authorization header"),
        ("Bearer SYSTEM/Sysop", "Invalid authorization header"),
        ("Bearer SYSTEM//", "Invalid authorization header"),
        ("Bearer SYSTEM//Sysop//", "Invalid authorization header"),
        ("Bearer SYSTEM//A//B", "Invalid authorization header"),
        ("Bearer SYSTEM//9lives", "Invalid authorization header"),
        ("Bearer SYSTEM//Tempé", "Invalid authorization header"),
    ],
)
def test_http_refuses(header: str | None, message: str) -> None:
    with pytest.raises(ArrowheadError) as raised:
        authenticate_http(header)
    assert raised.value.message == message
    assert raised.value.status == 401
    assert raised.value.exception_type.name == "AUTH"


def test_mqtt_field_is_not_trimmed() -> None:
    assert authenticate_mqtt("SYSTEM//my_system") == Requester("MySystem", False)
    for value, message in [
        (None, "No authentication info has been provided"),
        ("  ", "No authentication info has been provided"),
        (" SYSTEM//Sysop", "Invalid authentication info"),
        ("Bearer SYSTEM//Sysop", "Invalid authentication info"),
        ("SYSTEM// ", "Invalid authentication info"),
    ]:
        with pytest.raises(ArrowheadError) as raised:
            authenticate_mqtt(value)
        assert (raised.value.message, raised.value.status) == (message, 401)


def test_management_policies() -> None:
    sysop, alice = Requester("Sysop", True), Requester("Alice", False)
    whitelist = normalize_whitelist(["alice", " ", "bob-system"])
    assert whitelist == {"Alice", "BobSystem"}
    authorize_management(sysop, ManagementPolicy.SYSOP_ONLY, frozenset())
    authorize_management(alice, ManagementPolicy.WHITELIST, whitelist)
    authorize_management(alice, ManagementPolicy.DISABLED, frozenset())
    for policy, allowed in [(ManagementPolicy.SYSOP_ONLY, whitelist), (ManagementPolicy.WHITELIST, frozenset())]:
        with pytest.raises(ArrowheadError) as raised:
            authorize_management(alice, policy, allowed)
        assert (raised.value.message, raised.value.status) == ("Requester has no management permission", 403)
