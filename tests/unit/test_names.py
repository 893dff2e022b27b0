"""Names, versions, service instance ids (ARROWHEAD-REFERENCE.md §1.6.1–1.6.4, DECISIONS 9)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.api.errors import ArrowheadError, ExceptionType
from transports.api.names import (
    normalize_service_definition,
    normalize_service_instance_id,
    normalize_system_name,
    normalize_version,
    service_definition_of,
    validate_service_definition,
    validate_service_instance_id,
    validate_system_name,
    validate_version,
)

SYSTEM_MSG = "The specified system name does not match the naming convention: "
DEFINITION_MSG = "The specified service definition name does not match the naming convention: "
INSTANCE_MSG = "The specified service instance identifier does not match the naming convention: "
TOO_LONG = "Version verification failure: version is too long"
SEPARATORS = "Version verification failure: version must contain exactly 2 separator . characters"
THREE_NUMBERS = "Version verification failure: version must contain exactly 3 numbers"
ONLY_NUMBERS = "Version verification failure: the version should only contain numbers and separator . characters"


def error_of(call: object, *args: object) -> ArrowheadError:
    assert callable(call)
    with pytest.raises(ArrowheadError) as caught:
        call(*args)
    assert caught.value.exception_type is ExceptionType.INVALID_PARAMETER
    assert caught.value.status == 400
    assert caught.value.origin is None
    return caught.value


# --------------------------------------------------------------------------- SystemName


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("snake_case_system", "SnakeCaseSystem"),
        ("kebab-case-system", "KebabCaseSystem"),
        ("system with spaces", "SystemWithSpaces"),
        ("TOO____MUCH____UNDERSCORE", "TOOMUCHUNDERSCORE"),
        ("   \thorrible___---_- mixed\n---___system 9", "HorribleMixedSystem9"),
        ("temperatureManager", "TemperatureManager"),
        ("TemperatureManager", "TemperatureManager"),
        ("sysop", "Sysop"),
        ("abc_", "Abc"),
        ("-provider", "_provider"),
        ("__-provider", "_provider"),
        ("a", "A"),
        ("9", "9"),
        ("  padded  ", "Padded"),
        ("x\u3000y", "XY"),  # ideographic space is Unicode whitespace
        ("x\u00a0y", "XY"),  # so is NO-BREAK SPACE for the (?U)\s replacement
        ("\x00abc", "Abc"),  # Java trim() strips every control <= U+0020
        ("\u00dfig", "\u00dfig"),  # Character.toUpperCase('ß') is 'ß' (Python would give "SS")
        ("tempé", "Tempé"),
    ],
)
def test_normalize_system_name(raw: str, normalized: str) -> None:
    assert normalize_system_name(raw) == normalized


@pytest.mark.parametrize("blank", [None, "", " ", "\t\n", "\u2003", "\u3000 \u2028"])
def test_blank_system_name_normalizes_to_none(blank: str | None) -> None:
    assert normalize_system_name(blank) is None


@pytest.mark.parametrize("name", ["SystemName", "SystemName9", "SystemWithURL", "A", "Z9", "A" * 63])
def test_valid_system_names(name: str) -> None:
    validate_system_name(name)
    assert normalize_system_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "system_name",
        "system-name",
        "systemName",  # only reachable with simple normalisation
        "2ndSystem",
        "MySystemIs$uper",
        "A" * 64,
        "Tempé",
        "Ä",  # non-ASCII upper case letter alone
        "Éclair",
        "Ａbc",  # full-width A: isupper() and isalnum() are True, isascii() is not
        "_provider",
        "",
        "A B",
        "AB\n",
    ],
)
def test_invalid_system_names(name: str) -> None:
    assert error_of(validate_system_name, name).message == SYSTEM_MSG + name


def test_missing_system_name_message_says_null() -> None:
    assert error_of(validate_system_name, None).message == SYSTEM_MSG + "null"


def test_message_shows_the_normalized_system_name() -> None:
    assert error_of(validate_system_name, normalize_system_name("-provider")).message == SYSTEM_MSG + "_provider"
    assert error_of(validate_system_name, normalize_system_name("2nd system")).message == SYSTEM_MSG + "2ndSystem"
    assert error_of(validate_system_name, normalize_system_name("   ")).message == SYSTEM_MSG + "null"


# --------------------------------------------------------------------------- service definition


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("snake_case_service_def", "snakeCaseServiceDef"),
        ("KelvinInfo", "kelvinInfo"),
        ("kelvin-info", "kelvinInfo"),
        ("kelvin info", "kelvinInfo"),
        ("TOO____MUCH____UNDERSCORE", "tOOMUCHUNDERSCORE"),
        ("  kelvinInfo\t", "kelvinInfo"),
        ("-svc", "_svc"),
        ("X", "x"),
    ],
)
def test_normalize_service_definition(raw: str, normalized: str) -> None:
    assert normalize_service_definition(raw) == normalized


@pytest.mark.parametrize("name", ["kelvinInfo", "a", "a9", "serviceWithURL", "a" * 63])
def test_valid_service_definitions(name: str) -> None:
    validate_service_definition(name)


@pytest.mark.parametrize(
    "name", ["KelvinInfo", "kelvin_info", "kelvin-info", "9lives", "a" * 64, "kelvinÏnfo", "é", "", "_svc"]
)
def test_invalid_service_definitions(name: str) -> None:
    assert error_of(validate_service_definition, name).message == DEFINITION_MSG + name


def test_missing_service_definition_message_says_null() -> None:
    assert error_of(validate_service_definition, normalize_service_definition(" ")).message == DEFINITION_MSG + "null"


# --------------------------------------------------------------------------- version


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (None, "1.0.0"),
        ("", "1.0.0"),
        ("  ", "1.0.0"),
        ("2", "2.0.0"),
        ("2.3", "2.3.0"),
        ("1.", "1.0.0"),
        (".1", ".1.0"),
        ("1..", "1.0.0"),
        ("1.23.", "1.23.0"),
        ("1.2.3.", "1.2.3."),
        ("1.2.3", "1.2.3"),
        ("1.2.3.4", "1.2.3.4"),
        ("..", ".."),
        (".", "."),
        (" 1.2 ", "1.2.0"),
        ("v1", "v1.0.0"),
        ("\x1b", ".0.0"),  # not blank for Java, trimmed to "", which Java splits into one piece
    ],
)
def test_normalize_version(raw: str | None, normalized: str) -> None:
    assert normalize_version(raw) == normalized


@pytest.mark.parametrize("version", ["1.0.0", "0.02.3", "1234.5678.1234", "0.0.0", "99999.9999.999"])
def test_valid_versions(version: str) -> None:
    validate_version(version)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("12345.67890.12345", TOO_LONG),
        ("12345.6789.1234", TOO_LONG),  # 15 characters
        ("123456789012345", TOO_LONG),  # length is checked first
        ("1.2.3.4", SEPARATORS),
        ("1.2.3.", SEPARATORS),
        ("1.2", SEPARATORS),
        ("1", SEPARATORS),
        (".", SEPARATORS),
        ("1.23.", THREE_NUMBERS),
        ("..", THREE_NUMBERS),
        ("1.23.SOMETHING", ONLY_NUMBERS),
        ("1..2", ONLY_NUMBERS),
        (".1.0", ONLY_NUMBERS),
        ("v1.0.0", ONLY_NUMBERS),
        ("1.0.-1", ONLY_NUMBERS),
        ("1.0.+1", ONLY_NUMBERS),
        ("1.0.٣", ONLY_NUMBERS),  # Arabic-Indic digit: not ASCII
        ("1.0. 1", ONLY_NUMBERS),
    ],
)
def test_invalid_versions(version: str, message: str) -> None:
    assert error_of(validate_version, version).message == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1.23.", None),  # → 1.23.0
        ("1..", None),  # → 1.0.0
        ("1.", None),
        ("7", None),
        ("..", THREE_NUMBERS),
        ("1.2.3.", SEPARATORS),
        (".", SEPARATORS),
        (".1", ONLY_NUMBERS),  # → .1.0
        ("12345.67890", None),  # → 12345.67890.0 (13 characters)
        ("123456.7890123", TOO_LONG),  # → 123456.7890123.0 (16 characters)
    ],
)
def test_version_through_normalisation(raw: str, message: str | None) -> None:
    """What an API caller sees: normalise, then validate."""
    normalized = normalize_version(raw)
    if message is None:
        validate_version(normalized)
    else:
        assert error_of(validate_version, normalized).message == message


# --------------------------------------------------------------------------- service instance id


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("temperature-provider2|kelvin-info|1", "TemperatureProvider2|kelvinInfo|1.0.0"),
        ("TemperatureProvider2|kelvinInfo|1.0.0", "TemperatureProvider2|kelvinInfo|1.0.0"),
        (" test provider | Test Service | 2.1 ", "TestProvider|testService|2.1.0"),
        ("A|b|c|d", "A|b|c.0.0|d"),
        ("A|b|1|d e", "A|b|1.0.0|d e"),  # extra pieces untouched
        ("not-a-service-id", "NotAServiceId"),
        ("provider|svc", "Provider|svc"),
        # DECISIONS 9: empty pieces stay empty (reference: dropped, or the text "null")
        ("Provider|svc|1.0.0|", "Provider|svc|1.0.0|"),
        ("Provider|svc|", "Provider|svc|"),
        ("Provider||1.0.0", "Provider||1.0.0"),
        ("Provider| |1.0.0", "Provider||1.0.0"),
        ("Provider|svc|  ", "Provider|svc|"),  # no default version for a blank part
        ("|svc|1", "|svc|1.0.0"),
        ("||", "||"),
        (None, None),
        ("", None),
        ("  ", None),
    ],
)
def test_normalize_service_instance_id(raw: str | None, normalized: str | None) -> None:
    assert normalize_service_instance_id(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "TemperatureProvider2|kelvinInfo|1.0.0",
        "temperature-provider2|kelvin-info|1",
        "TestProvider|testService|1.0.0",
        "P|s|0.0.0",
        "provider|svc|1.23.",
        "provider|svc|1..",
        f"{'P' * 63}|{'s' * 63}|1234.5678.1234",  # the longest possible id, 142 characters
    ],
)
def test_valid_service_instance_ids(raw: str) -> None:
    validate_service_instance_id(normalize_service_instance_id(raw))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # DECISIONS 9: a missing or empty part → the naming-convention message, normalised value shown
        ("Provider||1.0.0", INSTANCE_MSG + "Provider||1.0.0"),
        ("Provider|svc|1.0.0|", INSTANCE_MSG + "Provider|svc|1.0.0|"),
        ("Provider|svc|", INSTANCE_MSG + "Provider|svc|"),
        ("provider|svc|   ", INSTANCE_MSG + "Provider|svc|"),
        ("|svc|1.0.0", INSTANCE_MSG + "|svc|1.0.0"),
        ("||", INSTANCE_MSG + "||"),
        ("provider|svc", INSTANCE_MSG + "Provider|svc"),
        ("A|b|c|d", INSTANCE_MSG + "A|b|c.0.0|d"),
        ("not-a-service-id", INSTANCE_MSG + "NotAServiceId"),
        (None, INSTANCE_MSG + "null"),
        ("   ", INSTANCE_MSG + "null"),
        # then each part's own rule and message
        ("2nd-provider|svc|1", SYSTEM_MSG + "2ndProvider"),
        ("-provider|svc|1", SYSTEM_MSG + "_provider"),
        ("Tempé|svc|1", SYSTEM_MSG + "Tempé"),
        (f"{'P' * 64}|svc|1", SYSTEM_MSG + "P" * 64),
        ("Provider|9svc|1", DEFINITION_MSG + "9svc"),
        ("Provider|svc$|1", DEFINITION_MSG + "svc$"),
        ("Provider|svc|v1", ONLY_NUMBERS),
        ("Provider|svc|1.0.0.0", SEPARATORS),
        ("Provider|svc|..", THREE_NUMBERS),
        ("Provider|svc|12345.67890.12345", TOO_LONG),
        ("2nd|9svc|v1", SYSTEM_MSG + "2nd"),  # system part first
        ("Provider|9svc|v1", DEFINITION_MSG + "9svc"),  # then the definition, then the version
    ],
)
def test_invalid_service_instance_ids(raw: str | None, message: str) -> None:
    normalized = normalize_service_instance_id(raw)
    assert error_of(validate_service_instance_id, normalized).message == message


def test_validate_service_instance_id_rejects_empty_parts_given_directly() -> None:
    """Validation alone (not only the normaliser) refuses empty parts."""
    for value in ("Provider||1.0.0", "Provider|svc|", "|svc|1.0.0", "", "Provider|svc|1.0.0|"):
        assert error_of(validate_service_instance_id, value).message == INSTANCE_MSG + value


@pytest.mark.parametrize(
    ("instance_id", "definition"),
    [("TemperatureProvider2|kelvinInfo|1.0.0", "kelvinInfo"), ("P|s|1.0.0", "s")],
)
def test_service_definition_of(instance_id: str, definition: str) -> None:
    assert service_definition_of(instance_id) == definition


# --------------------------------------------------------------------------- properties

_PASCAL = re.compile(r"[A-Z][A-Za-z0-9]{0,62}")
_CAMEL = re.compile(r"[a-z][A-Za-z0-9]{0,62}")
_NAMEISH = st.text(alphabet=st.sampled_from("aZq09_- \t\n\u3000\u00a0é$|."), max_size=30) | st.text(max_size=20)


def _accepts(validate: object, value: str | None) -> bool:
    assert callable(validate)
    try:
        validate(value)
    except ArrowheadError:
        return False
    return True


# Idempotence is promised for what the service keeps: a normalised name that passes validation is a
# fixed point. An *invalid* one need not be (the reference's own rule is not): `0\x1f\xa0` →
# `0\x1f` (U+00A0 is a delimiter and goes, U+001F is not and stays) → `0` (now Java's trim strips the
# control). Each request is normalised once and then validated, so this never shows.
_NAMEISH_WITH_CONTROLS = _NAMEISH | st.text(alphabet=st.sampled_from("aZ0\x1f\x00\xa0 _-|."), max_size=12)


@given(_NAMEISH_WITH_CONTROLS)
def test_normalisation_is_idempotent_for_valid_results(text: str) -> None:
    once = normalize_system_name(text)
    if _accepts(validate_system_name, once):
        assert normalize_system_name(once) == once
    once_def = normalize_service_definition(text)
    if _accepts(validate_service_definition, once_def):
        assert normalize_service_definition(once_def) == once_def
    once_version = normalize_version(text)
    if _accepts(validate_version, once_version):
        assert normalize_version(once_version) == once_version


@given(_NAMEISH_WITH_CONTROLS)
def test_service_instance_normalisation_is_idempotent_for_valid_results(text: str) -> None:
    raw = f"{text}|{text}|{text}"
    once = normalize_service_instance_id(raw)
    if _accepts(validate_service_instance_id, once):
        assert normalize_service_instance_id(once) == once


def test_an_invalid_normalised_name_need_not_be_a_fixed_point() -> None:
    once = normalize_system_name("0\x1f\xa0")
    assert once == "0\x1f" and not _accepts(validate_system_name, once)
    assert normalize_system_name(once) == "0"  # also invalid: the request was refused either way


@given(st.from_regex(_PASCAL, fullmatch=True))
def test_valid_system_names_are_fixed_points(name: str) -> None:
    validate_system_name(name)
    assert normalize_system_name(name) == name


@given(st.from_regex(_CAMEL, fullmatch=True))
def test_valid_service_definitions_are_fixed_points(name: str) -> None:
    validate_service_definition(name)
    assert normalize_service_definition(name) == name


@given(_NAMEISH | st.from_regex(_PASCAL, fullmatch=True) | st.from_regex(_CAMEL, fullmatch=True))
def test_name_validators_agree_with_the_reference_regexes(text: str) -> None:
    """The cheap str-method checks accept exactly what the reference's regexes accept."""
    assert _accepts(validate_system_name, text) == (_PASCAL.fullmatch(text) is not None)
    assert _accepts(validate_service_definition, text) == (_CAMEL.fullmatch(text) is not None)


@given(st.text(alphabet=st.sampled_from("0123456789.a٣ "), max_size=18))
def test_version_validator_agrees_with_a_regex(text: str) -> None:
    expected = len(text) <= 14 and re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", text) is not None
    assert _accepts(validate_version, text) == expected
