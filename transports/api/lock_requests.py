"""Validation and normalisation of lock-management requests (ARROWHEAD-REFERENCE.md §2.2–2.4).

Pure functions: wire Struct in, domain command out, or an ArrowheadError (400) with the reference's
message, checked in the reference's order. Changes from DECISIONS.md are marked with their number.
"""

from __future__ import annotations

from collections.abc import Sequence

from actors.records import LOCK_SORT_FIELDS, LockFilter, NewLock, PageRequest
from transports.api.errors import invalid
from transports.api.fields import is_blank, pick, trim
from transports.api.instants import parse_instant, truncate_seconds
from transports.api.names import (
    normalize_service_instance_id,
    normalize_system_name,
    validate_service_instance_id,
    validate_system_name,
)
from transports.api.pagination import normalize_page
from transports.api.schemas import LockListRequestWire, LockQueryRequestWire
from transports.api.uuids import is_uuid


def validate_create(request: LockListRequestWire | None, now: float, max_batch: int) -> list[NewLock]:
    """L1 create → the locks to create, in request order."""
    if request is None:
        raise invalid("Request payload is null")
    if not request.locks:  # DECISIONS 1 (reference: 500)
        raise invalid("Lock list is missing or empty")
    if len(request.locks) > max_batch:
        raise invalid(f"Too many locks in one request: {len(request.locks)} (the maximum is {max_batch})")
    locks = request.locks
    if any(lock is None for lock in locks):
        raise invalid("Request payload contains null element")

    expiries: list[float] = []
    for lock in locks:
        assert lock is not None
        if is_blank(lock.serviceInstanceId):
            raise invalid("Service instance id is missing")
        if is_blank(lock.owner):
            raise invalid("Owner is missing")
        if lock.expiresAt is None or is_blank(lock.expiresAt):
            raise invalid("Expiration time is missing")
        try:
            expires_at = parse_instant(trim(lock.expiresAt))
        except ValueError:
            raise invalid(f"Invalid expires at format: {lock.expiresAt}") from None
        if expires_at < now:
            raise invalid(f"Expires at is in the past: {lock.expiresAt}")
        expiries.append(expires_at)

    normalized = [
        (normalize_service_instance_id(lock.serviceInstanceId), normalize_system_name(lock.owner))
        for lock in locks
        if lock is not None
    ]
    for service_instance_id, owner in normalized:
        validate_service_instance_id(service_instance_id)
        validate_system_name(owner)

    seen: set[str] = set()
    result: list[NewLock] = []
    for (service_instance_id, owner), expires_at in zip(normalized, expiries, strict=True):
        assert service_instance_id is not None and owner is not None
        if service_instance_id in seen:  # DECISIONS 4
            raise invalid(f"Duplicate service instance id: {service_instance_id}")
        seen.add(service_instance_id)
        result.append(NewLock(service_instance_id, owner, truncate_seconds(expires_at)))
    return result


def _given_list(value: list[str | None] | str | None) -> list[str | None] | None:
    """A list filter as given: a single string counts as one element; "" and [] mean not given."""
    if value is None or value == "":
        return None
    listed: list[str | None] = [value] if isinstance(value, str) else value
    return listed or None


def _no_blank(values: Sequence[str | None] | None, message: str) -> list[str]:
    if not values:
        return []
    if any(is_blank(value) for value in values):
        raise invalid(message)
    return [value for value in values if value is not None]


def _optional_instant(value: str | None) -> str | None:
    return None if is_blank(value) else trim(value) if value is not None else None


def validate_query(
    request: LockQueryRequestWire | None, max_page_size: int
) -> tuple[LockFilter, PageRequest]:
    """L2 query → filter and page. A missing body means no filters."""
    if request is None:
        return LockFilter(), normalize_page(None, allowed=LOCK_SORT_FIELDS, max_size=max_page_size)
    page = normalize_page(request.pagination, allowed=LOCK_SORT_FIELDS, max_size=max_page_size)

    if request.ids and any(lock_id is None for lock_id in request.ids):
        raise invalid("ID list contains empty element")
    job_ids = _no_blank(
        _given_list(request.orchestrationJobIds), "Orchestration job id list contains empty element"
    )
    instance_ids = _no_blank(
        _given_list(request.serviceInstanceIds), "Service instance id list contains empty element"
    )
    owners_given = pick("owners", _given_list(request.owners), "owner", _given_list(request.owner))
    owners = _no_blank(owners_given, "Owner list contains empty element")

    job_ids = [trim(job_id) for job_id in job_ids]
    normalized_instances = [normalize_service_instance_id(value) for value in instance_ids]
    normalized_owners = [normalize_system_name(value) for value in owners]
    expires_before = _optional_instant(request.expiresBefore)
    expires_after = _optional_instant(request.expiresAfter)

    for job_id in job_ids:
        if not is_uuid(job_id):
            raise invalid(f"Invalid orchestration job id: {job_id}")
    for instance_id in normalized_instances:
        validate_service_instance_id(instance_id)
    for owner in normalized_owners:
        validate_system_name(owner)
    before = after = None
    if expires_before is not None:
        try:
            before = parse_instant(expires_before)
        except ValueError:
            raise invalid(f"Invalid expires before: {expires_before}") from None
    if expires_after is not None:
        try:
            after = parse_instant(expires_after)
        except ValueError:
            raise invalid(f"Invalid expires after: {expires_after}") from None

    lock_filter = LockFilter(
        ids=tuple(lock_id for lock_id in request.ids or () if lock_id is not None),
        orchestration_job_ids=tuple(job_ids),
        service_instance_ids=tuple(value for value in normalized_instances if value is not None),
        owners=tuple(value for value in normalized_owners if value is not None),
        expires_before=before,
        expires_after=after,
    )
    return lock_filter, page


def validate_remove(owner: str | None, instance_ids: Sequence[str | None] | None) -> tuple[str, tuple[str, ...]]:
    """L3 remove → (normalised owner, normalised service instance ids)."""
    if not instance_ids:
        raise invalid("Service instance id list empty")
    if any(is_blank(value) for value in instance_ids):
        raise invalid("Service instance id list contains empty element")
    if is_blank(owner):
        raise invalid("Owner is missing")
    normalized_owner = normalize_system_name(owner)
    normalized_ids = [normalize_service_instance_id(value) for value in instance_ids]
    validate_system_name(normalized_owner)
    for value in normalized_ids:
        validate_service_instance_id(value)
    assert normalized_owner is not None
    return normalized_owner, tuple(value for value in normalized_ids if value is not None)
