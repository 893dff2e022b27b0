"""Validation and normalisation of simple-store requests (ARROWHEAD-REFERENCE.md §3.2–3.5).

Pure functions with the reference's messages and order; DECISIONS.md changes are marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from actors.records import RULE_SORT_FIELDS, NewRule, PageRequest, RuleFilter
from transports.api.errors import invalid
from transports.api.fields import is_blank, pick, trim
from transports.api.names import (
    normalize_service_definition,
    normalize_service_instance_id,
    normalize_system_name,
    service_definition_of,
    validate_service_definition,
    validate_service_instance_id,
    validate_system_name,
)
from transports.api.pagination import normalize_page
from transports.api.schemas import RuleListRequestWire, RuleQueryRequestWire
from transports.api.uuids import parse_uuid

# The reference binds every priority to a Java `int`; Jackson refuses a number outside it while parsing.
JAVA_INT_MIN, JAVA_INT_MAX = -(1 << 31), (1 << 31) - 1

_AT_LEAST_ONE = (
    "At least one of the following fields must be specified: "
    "ids, consumerNames, serviceDefinitions, serviceInstanceIds, createdBy"
)


def _given_list(value: list[str | None] | str | None) -> list[str | None]:
    """A list filter as given: a single string is a one-element list; "" and [] mean not given."""
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str) else value


def _java_int(value: int | None, where: str) -> None:
    """A priority outside a Java `int` is a parse error, with Jackson's wording (checked before anything else,
    as Jackson rejects it before the reference's validation runs)."""
    if value is not None and not JAVA_INT_MIN <= value <= JAVA_INT_MAX:
        digits = len(str(abs(value)))  # msgspec decodes at most a few thousand digits
        shown = str(value) if digits <= 1000 else f"[Integer with {digits} digits]"  # Jackson's cut-off too
        raise invalid(f"Could not parse payload. Reason: Numeric value ({shown}) out of range of int "
                      f"({JAVA_INT_MIN} - {JAVA_INT_MAX}) - at `{where}`")


def _no_blank(values: list[str | None], message: str) -> list[str]:
    if any(is_blank(value) for value in values):
        raise invalid(message)
    return [value for value in values if value is not None]


def validate_query(request: RuleQueryRequestWire | None, max_page_size: int) -> tuple[RuleFilter, PageRequest]:
    """S1 query → filter and page."""
    if request is None:
        raise invalid("Request payload is missing")
    _java_int(request.minPriority, "$.minPriority")
    _java_int(request.maxPriority, "$.maxPriority")
    page = normalize_page(request.pagination, allowed=RULE_SORT_FIELDS, max_size=max_page_size)
    ids = _given_list(request.ids)
    consumers = _given_list(request.consumerNames)
    definitions = _given_list(request.serviceDefinitions)
    instances = _given_list(request.serviceInstanceIds)
    if not (ids or consumers or definitions or instances) and is_blank(request.createdBy):
        raise invalid(_AT_LEAST_ONE)

    canonical_ids: list[str] = []
    for value in _no_blank(ids, "Id list contains null or empty element"):
        canonical = parse_uuid(trim(value))
        if canonical is None:
            raise invalid(f"Invalid UUID: {trim(value)}")
        canonical_ids.append(canonical)
    consumer_names = _no_blank(consumers, "Consumer name list contains null or empty element")
    definition_names = _no_blank(definitions, "Service definition name list contains null or empty element")
    instance_ids = _no_blank(instances, "Service instance id list contains null or empty element")
    min_priority, max_priority = request.minPriority, request.maxPriority
    if min_priority is not None and min_priority <= 0:
        raise invalid("Invalid minimum priority: should be a positive integer")
    if max_priority is not None and max_priority <= 0:
        raise invalid("Invalid maximum priority: should be a positive integer")
    if min_priority is not None and max_priority is not None and min_priority > max_priority:
        raise invalid("Minimum priority should not be greater than maximum priority")

    normalized_consumers = [normalize_system_name(value) for value in consumer_names]
    normalized_definitions = [normalize_service_definition(value) for value in definition_names]
    normalized_instances = [normalize_service_instance_id(value) for value in instance_ids]
    created_by = None if is_blank(request.createdBy) else normalize_system_name(request.createdBy)
    for consumer in normalized_consumers:
        validate_system_name(consumer)
    for definition in normalized_definitions:
        validate_service_definition(definition)
    for instance_id in normalized_instances:
        validate_service_instance_id(instance_id)
    if created_by is not None:
        validate_system_name(created_by)

    rule_filter = RuleFilter(
        ids=tuple(canonical_ids),
        consumers=tuple(value for value in normalized_consumers if value is not None),
        service_definitions=tuple(value for value in normalized_definitions if value is not None),
        service_instance_ids=tuple(value for value in normalized_instances if value is not None),
        created_by=created_by,
        min_priority=min_priority,
        max_priority=max_priority,
    )
    return rule_filter, page


def validate_create(request: RuleListRequestWire | None, max_batch: int) -> list[NewRule]:
    """S2 create → the rules to create, in request order."""
    if request is None:
        raise invalid("Request payload is null")
    for name, given in (("candidates", request.candidates), ("entries", request.entries)):
        for index, candidate in enumerate(given or ()):
            if candidate is not None:
                _java_int(candidate.priority, f"$.{name}[{index}].priority")
    candidates = pick("candidates", request.candidates or None, "entries", request.entries or None)
    if not candidates:
        raise invalid("Request payload is empty")
    if len(candidates) > max_batch:
        raise invalid(f"Too many rules in one request: {len(candidates)} (the maximum is {max_batch})")
    if any(candidate is None for candidate in candidates):
        raise invalid("Request payload contains null element")

    rules: list[NewRule] = []
    seen: set[tuple[str, str, int]] = set()
    for candidate in candidates:
        assert candidate is not None
        if candidate.priority is None:
            raise invalid("Priority is missing")
        if candidate.priority <= 0:
            raise invalid("Priority should be positive")
        consumer = normalize_system_name(candidate.consumer)
        instance_id = normalize_service_instance_id(candidate.serviceInstanceId)
        validate_system_name(consumer)
        validate_service_instance_id(instance_id)
        assert consumer is not None and instance_id is not None
        definition = service_definition_of(instance_id)
        key = (consumer, definition, candidate.priority)
        if key in seen:
            raise invalid(
                "Conflicting rules, the combination of the following fields should be unique: "
                f"{consumer}, service definition: {definition}, priority: {candidate.priority}"
            )
        seen.add(key)
        rules.append(NewRule(consumer, instance_id, definition, candidate.priority))
    return rules


def validate_priorities(request: Mapping[str, int | None] | None) -> dict[str, int]:
    """S3 modify-priorities → canonical rule id → new priority."""
    if request is None:
        raise invalid("Priority map is null")
    for key, value in request.items():
        _java_int(value, f"$[{msgspec.json.encode(key).decode()}]")
    canonical: dict[str, str] = {}
    for key in request:
        parsed = parse_uuid(trim(key))
        if parsed is None:
            raise invalid(f"Invalid UUID: {trim(key)}")
        canonical[key] = parsed
    if any(value is None for value in request.values()):
        raise invalid("Priority map contains null value")
    priorities: dict[str, int] = {}
    for key, value in request.items():
        assert value is not None
        priorities[canonical[key]] = value
    for value in priorities.values():
        if value <= 0:
            raise invalid(f"Invalid priority: {value}, should be positive")
    if not priorities:  # DECISIONS 2 (reference: 500)
        raise invalid("Priority map is missing or empty")
    return priorities


def validate_remove(ids: Sequence[str | None] | None) -> tuple[str, ...]:
    """S4 remove → canonical rule ids."""
    if not ids:
        raise invalid("UUIDs are missing")
    result: list[str] = []
    for value in ids:
        trimmed = "null" if value is None else trim(value)
        canonical = None if value is None else parse_uuid(trimmed)
        if canonical is None:
            raise invalid(f"Invalid UUID: {trimmed}")
        result.append(canonical)
    return tuple(result)
