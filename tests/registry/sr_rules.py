"""The ServiceRegistry's field rules, as the double applies them: errors, addresses, metadata keys,
interface templates and their property validators. Sources (ah5-common-java-spring `common-utils`, and
ah5-core-java-spring `serviceregistry`, release 5.2.x):

- errors: `dto/ErrorMessageDTO.java` (NON_NULL: no `origin` when unknown), `dto/enums/ExceptionType.java`
- addresses: `service/validation/address/AddressNormalizer.java`, `AddressValidator.java` (the SR's shipped
  `allow.self.addressing=true`, `allow.non.routable.addressing=false`)
- metadata keys: `service/validation/MetadataValidation.java`
- templates: serviceregistry `resources/database/default_inserts.sql` (generic_http/https/mqtt/mqtts and their
  properties); `service/validation/interf/InterfaceValidator.java`, `InterfaceNormalizer.java`;
  `intf/properties/validators/{NotEmptyAddressList,Port,MinMax,HttpOperations,NotEmptyStringSet}Validator.java`
- names: `service/validation/name/{ServiceOperationName,InterfaceTemplateName}{Normalizer,Validator}.java`.
  System names, service definitions, versions and instance ids use transports/api/names.py, lockstore's port of
  the same common-utils normalizers and validators (with its DECISIONS 9 reading of instance ids).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from transports.api.errors import ArrowheadError

INVALID, AUTH, FORBIDDEN = "INVALID_PARAMETER", "AUTH", "FORBIDDEN"
_STATUS = {INVALID: 400, AUTH: 401, FORBIDDEN: 403, "DATA_NOT_FOUND": 404, "INTERNAL_SERVER_ERROR": 500}


class SrError(Exception):
    """An `ArrowheadException` of the SR: its status, type, message and origin."""

    def __init__(self, message: str, exception_type: str = INVALID, origin: str | None = None) -> None:
        super().__init__(message)
        self.message, self.exception_type, self.origin = message, exception_type, origin

    @property
    def status(self) -> int:
        return _STATUS[self.exception_type]

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"errorMessage": self.message, "errorCode": self.status,
                                "exceptionType": self.exception_type}
        if self.origin is not None:
            body["origin"] = self.origin
        return body


def checked(origin: str, rule: Callable[[], Any]) -> Any:
    """Run one of transports/api/names.py's rules; its 400 becomes the SR's, with `origin`."""
    try:
        return rule()
    except ArrowheadError as error:
        raise SrError(error.message, INVALID, origin) from None


def is_empty(value: Any) -> bool:
    """C:`Utilities.isEmpty` for strings, lists and maps (blank strings are empty)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict):
        return not value
    return False


def now_text(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime:
    """C:`Utilities.parseUTCStringToZonedDateTime` (ISO instant); ValueError when it is not one."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no zone")
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------- metadata keys


def validate_metadata_keys(metadata: Any) -> None:
    """No key anywhere in the structure may contain `.` (it separates composite keys in requirements)."""
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if "." in key:
                raise SrError(f"Invalid metadata key: {key}, it should not contain . character")
            validate_metadata_keys(value)
    elif isinstance(metadata, list):
        for element in metadata:
            validate_metadata_keys(element)


# --------------------------------------------------------------------------- addresses

_MAC = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")
_IPV4 = re.compile(r"^(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)(\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)){3}$")
_IPV6 = re.compile(r"^([0-9a-fA-F]{4}:){7}[0-9a-fA-F]{4}$")
_HOSTNAME = re.compile(r"^((?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)*((?!-)[A-Za-z0-9-]{1,63}(?<!-))$")
_PREFIX = "Address verification failure: "


@dataclass(frozen=True)
class AddressRules:
    allow_self_addressing: bool = True
    allow_non_routable_addressing: bool = False


def normalize_address(address: str) -> str:
    """Lower-case and trimmed; IPv6 (and IPv6 with an IPv4 tail) written out in full; MACs with `:`."""
    candidate = address.lower().strip()
    if (":" in candidate and "::" not in candidate and len(candidate.split(":")) == 6) or (
            "-" in candidate and len(candidate.split("-")) == 6):
        return ":".join(candidate.replace("-", ":").split(":"))
    if ":" in candidate:
        try:
            return ipaddress.IPv6Address(candidate).exploded
        except ValueError:
            return candidate
    return candidate


def address_type(address: str) -> str:
    if _MAC.match(address):
        return "MAC"
    if _IPV4.match(address):
        return "IPV4"
    if _IPV6.match(address):
        return "IPV6"
    return "HOSTNAME"


def validate_address(kind: str, address: str, rules: AddressRules) -> None:
    if kind == "IPV4":
        if not rules.allow_self_addressing and address.startswith("127"):
            raise SrError(_PREFIX + address + " IPv4 address is invalid: self-addressing is disabled")
        if not rules.allow_non_routable_addressing and address.startswith("169.254"):
            raise SrError(_PREFIX + address + " IPv4 address is invalid: non-routable-addressing is disabled")
        if address == "0.0.0.0":
            raise SrError(_PREFIX + address + " IPv4 address is invalid: placeholder address is denied")
        if address == "255.255.255.255":
            raise SrError(_PREFIX + address + " IPv4 address is invalid: local broadcast address is denied")
        if 224 <= int(address.split(".")[0]) <= 239:
            raise SrError(_PREFIX + address + " IPv4 address is invalid: multicast addresses are denied")
    elif kind == "IPV6":
        if not rules.allow_self_addressing and address == "0000:0000:0000:0000:0000:0000:0000:0001":
            raise SrError(_PREFIX + address + " IPv6 address is invalid: self-addressing is disabled")
        if not rules.allow_non_routable_addressing and address.startswith("fe80"):
            raise SrError(_PREFIX + address + " IPv6 address is invalid: non-routable-addressing is disabled")
        if address == "0000:0000:0000:0000:0000:0000:0000:0000":
            raise SrError(_PREFIX + address + " IPv6 address is invalid: unspecified address is denied")
        if address.startswith("ff"):
            raise SrError(_PREFIX + address + " IPv6 address is invalid: multicast addresses are denied")
    elif kind == "HOSTNAME":
        if len(address) > 253:
            raise SrError(_PREFIX + address + " hostname is invalid: max length is 253")
        if not _HOSTNAME.match(address) or not any(c.isalpha() for c in address.split(".")[0]):
            raise SrError(_PREFIX + address + " is not a hostname")
        if not rules.allow_self_addressing and address in ("localhost", "loopback"):
            raise SrError(_PREFIX + address + " hostname is invalid: self-addressing is disabled")


# --------------------------------------------------------------------------- interface templates

_OPERATION = re.compile(r"^([a-z]|[a-z][0-9a-z\-]*[0-9a-z])$")
_TEMPLATE = re.compile(r"^([a-z]|[a-z][0-9a-z_]*[0-9a-z])$")
_HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}
_HTTP_PROPS = (("accessAddresses", True, "NOT_EMPTY_ADDRESS_LIST"), ("accessPort", True, "PORT"),
               ("basePath", True, None), ("operations", False, "HTTP_OPERATIONS"))
_MQTT_PROPS = (("accessAddresses", True, "NOT_EMPTY_ADDRESS_LIST"), ("accessPort", True, "PORT"),
               ("baseTopic", True, None), ("operations", True, "NOT_EMPTY_STRING_SET|OPERATION"))
TEMPLATES: dict[str, tuple[str, tuple[tuple[str, bool, str | None], ...]]] = {
    "generic_http": ("http", _HTTP_PROPS), "generic_https": ("https", _HTTP_PROPS),
    "generic_mqtt": ("tcp", _MQTT_PROPS), "generic_mqtts": ("ssl", _MQTT_PROPS),
}
POLICIES = ("NONE", "CERT_AUTH", "TIME_LIMITED_TOKEN_AUTH", "USAGE_LIMITED_TOKEN_AUTH",
            "BASE64_SELF_CONTAINED_TOKEN_AUTH", "RSA_SHA256_JSON_WEB_TOKEN_AUTH", "RSA_SHA512_JSON_WEB_TOKEN_AUTH",
            "TRANSLATION_BRIDGE_TOKEN_AUTH")


def _snake(name: str) -> str:
    return re.sub(r"[\s_\-]+", "_", name.strip())


def normalize_template_name(name: str) -> str:
    return _snake(name).lower()


def normalize_operation_name(name: str) -> str:
    return _snake(name).lower().replace("_", "-")


def validate_operation_name(name: str) -> None:
    if not name or len(name) > 63 or not _OPERATION.match(name):
        raise SrError(f"The specified service operation name does not match the naming convention: {name}")


def validate_template_name(name: str) -> None:
    if not name or len(name) > 63 or not _TEMPLATE.match(name):
        raise SrError(f"The specified interface template name does not match the naming convention: {name}")


def _address_list(value: Any, rules: AddressRules) -> list[str]:
    if not isinstance(value, list):
        raise SrError("Property value should be a list of strings")
    if not value:
        raise SrError("Property value should be a non-empty list of strings")
    normalized = []
    for element in value:
        if not isinstance(element, str):
            raise SrError("Property value should be a list of strings")
        if not element.strip():
            raise SrError("Property value should be a list of non-blank strings")
        address = normalize_address(element.strip())
        kind = address_type(address)
        if kind == "MAC":
            raise SrError("Unacceptable address type in property value: MAC")
        validate_address(kind, address, rules)
        normalized.append(address)
    return normalized


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SrError("Property value should be an integer")
    if not 1 <= value <= 65535:
        raise SrError("Invalid property value")
    return value


def _http_operations(value: Any) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise SrError("Property value should be a map of operations")
    if not value:
        raise SrError("Property value should be a non-empty map")
    normalized = {}
    for key, model in value.items():
        name = normalize_operation_name(key)
        validate_operation_name(name)
        if not isinstance(model, dict) or set(model) - {"path", "method"}:
            raise SrError("Value should be a HttpOperationModel record")
        path, method = model.get("path"), model.get("method")
        if not isinstance(path, str) or not path.strip():
            raise SrError("Path should be non-empty")
        if not isinstance(method, str) or method.strip().upper() not in _HTTP_METHODS:
            raise SrError("Method should be a standard HTTP method")
        normalized[name] = {"path": path.strip(), "method": method.upper().strip()}
    return normalized


def _operation_set(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise SrError("Property value should be a set/list of string values")
    if not value:
        raise SrError("Property value should be a non-empty set/list")
    normalized: list[str] = []
    for element in value:
        if not isinstance(element, str):
            raise SrError("Value should be a string")
        name = normalize_operation_name(element)
        validate_operation_name(name)
        if name not in normalized:
            normalized.append(name)
    return normalized


def validate_interface(interface: dict[str, Any], rules: AddressRules) -> dict[str, Any]:
    """One normalized interface (template known: restricted interface policy, the SR's shipped setting)."""
    template = interface["templateName"]
    validate_template_name(template)
    if template not in TEMPLATES:
        if not interface["protocol"]:
            raise SrError("Interface protocol is missing")
        return interface  # refused later: "Interface template does not exist"
    protocol, properties = TEMPLATES[template]
    if interface["protocol"] and interface["protocol"] != protocol:
        raise SrError(f"{interface['protocol']} protocol is invalid for {template}")
    given = interface["properties"]
    normalized = dict(given)
    for name, mandatory, validator in properties:
        value = given.get(name)
        if value is None:
            if mandatory:
                raise SrError(f"{name} interface property is missing for {template}")
            continue
        if validator == "NOT_EMPTY_ADDRESS_LIST":
            normalized[name] = _address_list(value, rules)
        elif validator == "PORT":
            normalized[name] = _port(value)
        elif validator == "HTTP_OPERATIONS":
            normalized[name] = _http_operations(value)
        elif validator == "NOT_EMPTY_STRING_SET|OPERATION":
            normalized[name] = _operation_set(value)
    return {**interface, "protocol": protocol, "properties": normalized}
