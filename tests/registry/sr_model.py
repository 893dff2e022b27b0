"""The ServiceRegistry double's state and its six operations, without I/O. Each rule is the SR's (ah5-core-
java-spring `serviceregistry`, 5.2.x), in the SR's order, with its message:

- system register: `service/SystemDiscoveryService.registerSystem` (existing system: 200 if every attribute
  matches, else 400 `System with name: <N> already exists, but provided <metadata|version|address list|device
  name> is not matching`; new: 201), `service/validation/SystemDiscoveryValidation`,
  `service/normalization/SystemDiscoveryNormalization`, `service/matching/AddressMatching` (order-free),
  `jpa/service/SystemDbService` (`Device names do not exist`); tests: `SystemDiscoveryServiceTest`.
- system revoke: `SystemDiscoveryService.revokeSystem` → 200 removed / 204 none; the database deletes the
  system's service instances with it (`database/create_tables.sql`: `fk_system_id3 ... ON DELETE CASCADE`).
- system lookup: `SystemDiscoveryService.lookupSystem`, `SystemDiscoveryValidation.validateLookupSystem`.
- service register: `service/ServiceDiscoveryService.registerService` → always 201; `jpa/service/
  ServiceInstanceDbService.createBulk` (upsert: an instance with the same `<System>|<definition>|<version>` is
  deleted first; restricted interface policy `Interface template does not exist: <T>`; `System does not exist:
  <N>`), `service/validation/ServiceDiscoveryValidation.validateRegisterService`,
  `service/normalization/ServiceDiscoveryNormalization`; tests: `ServiceDiscoveryServiceTest`,
  `ServiceDiscoveryValidationTest`.
- service lookup: `ServiceDiscoveryService.lookupServices` (restricted: only `unrestrictedDiscovery` services
  unless sysop or in `service.discovery.direct.access`, `api/http/filter/ServiceLookupFilter`; `Verbose is not
  allowed` 403), `ServiceDiscoveryValidation.validateLookupService` (`One of the following filters must be
  used: 'instanceIds', 'providerNames', 'serviceDefinitionNames'`), `ServiceInstanceDbService.findAllByFilters`
  (expired instances deleted on lookup; the interface flags are not reset per interface, as there).
- service revoke: `ServiceDiscoveryService.revokeService`: 403 `Revoking other systems' service is forbidden`
  when the id's system is not the caller; 200 removed / 204 none.

Response shapes: `dto/SystemResponseDTO`, `ServiceInstanceResponseDTO`, `ServiceInstanceListResponseDTO`,
`ServiceInstanceInterfaceResponseDTO`, `ServiceDefinitionResponseDTO` (all NON_NULL), and
`service/dto/DTOConverter` (a registration answers with the full provider; a non-verbose lookup with the
provider's name, metadata, version and times only).

Not modelled (lockstore never depends on them): devices, MQTT access to the SR, metadata requirement
operators (plain values are compared), address-alias discovery in properties, the `open`/`extendable`
interface policies, paging.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.registry.sr_rules import (
    FORBIDDEN,
    POLICIES,
    TEMPLATES,
    AddressRules,
    SrError,
    address_type,
    checked,
    is_empty,
    normalize_address,
    normalize_template_name,
    now_text,
    parse_instant,
    validate_address,
    validate_interface,
    validate_metadata_keys,
)
from transports.api.names import (
    normalize_service_definition,
    normalize_service_instance_id,
    normalize_system_name,
    normalize_version,
    validate_service_definition,
    validate_service_instance_id,
    validate_system_name,
    validate_version,
)

SYSTEM_REGISTER = "POST /serviceregistry/system-discovery/register"
SYSTEM_LOOKUP = "POST /serviceregistry/system-discovery/lookup"
SYSTEM_REVOKE = "DELETE /serviceregistry/system-discovery/revoke"
SERVICE_REGISTER = "POST /serviceregistry/service-discovery/register"
SERVICE_LOOKUP = "POST /serviceregistry/service-discovery/lookup"
SERVICE_REVOKE = "DELETE /serviceregistry/service-discovery/revoke/"


@dataclass(frozen=True)
class SrConfig:
    """The SR's shipped application.properties."""

    discovery_policy: str = "restricted"  # service.discovery.policy
    direct_access: tuple[str, ...] = ("DynamicServiceOrchestration", "TranslationManager", "DeviceQoSEvaluator")
    discovery_verbose: bool = True  # discovery.verbose
    addresses: AddressRules = field(default_factory=AddressRules)


@dataclass
class System:
    name: str
    metadata: Any
    version: str
    addresses: list[tuple[str, str]]  # (type, address)
    created_at: str
    updated_at: str

    def dto(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name}
        if self.metadata is not None:
            body["metadata"] = self.metadata
        body |= {"version": self.version, "addresses": [{"type": t, "address": a} for t, a in self.addresses],
                 "createdAt": self.created_at, "updatedAt": self.updated_at}
        return body

    def terse(self) -> dict[str, Any]:
        full = self.dto()
        del full["addresses"]
        return full


@dataclass
class Instance:
    instance_id: str
    system: str
    definition: str
    definition_created: str
    version: str
    expires_at: datetime | None
    metadata: Any
    interfaces: list[dict[str, Any]]
    created_at: str
    sequence: int


def _body(payload: Any, origin: str) -> dict[str, Any]:
    if payload is None:
        raise SrError("Request payload is missing", origin=origin)
    if not isinstance(payload, dict):
        raise SrError("Could not parse request payload", origin=origin)  # Spring's message converter refuses it
    return payload


def _strings(payload: dict[str, Any], name: str) -> list[Any]:
    value = payload.get(name)
    return value if isinstance(value, list) else []


class Registry:
    """What the SR's database holds; every method is one operation, raising `SrError` as the SR does."""

    def __init__(self, config: SrConfig | None = None) -> None:
        self.config = config or SrConfig()
        self.systems: dict[str, System] = {}
        self.instances: dict[str, Instance] = {}
        self._definitions: dict[str, str] = {}
        self._sequence = itertools.count()

    # ----------------------------------------------------------------------------------- systems

    def register_system(self, name: str, payload: Any) -> tuple[dict[str, Any], bool]:
        origin = SYSTEM_REGISTER
        body = _body(payload, origin)
        addresses, device = body.get("addresses"), body.get("deviceName")
        if is_empty(name):
            raise SrError("System name is empty", origin=origin)
        if not is_empty(addresses):
            for address in addresses:
                if is_empty(address):
                    raise SrError("Address is missing", origin=origin)
        if is_empty(addresses) and is_empty(device):
            raise SrError("At least one system address is needed for every system", origin=origin)
        if not is_empty(body.get("metadata")):
            try:
                validate_metadata_keys(body["metadata"])
            except SrError as error:
                raise SrError(error.message, origin=origin) from None
        name = normalize_system_name(name) or ""
        version = normalize_version(body.get("version"))
        normalized = [normalize_address(a) for a in addresses or []]
        typed = [(address_type(a), a) for a in normalized]
        checked(origin, lambda: validate_system_name(name))
        checked(origin, lambda: validate_version(version))
        for kind, address in typed:
            try:
                validate_address(kind, address, self.config.addresses)
            except SrError as error:
                raise SrError(error.message, origin=origin) from None
        existing = self.systems.get(name)
        if existing is not None:
            self._same_system(existing, body.get("metadata"), version, typed, device, origin)
            return existing.dto(), False
        if not is_empty(device):
            raise SrError(f"Device names do not exist: {device.strip()}", origin=origin)
        stamp = now_text()
        self.systems[name] = System(name, copy.deepcopy(body.get("metadata")), version, typed, stamp, stamp)
        return self.systems[name].dto(), True

    @staticmethod
    def _same_system(existing: System, metadata: Any, version: str, addresses: list[tuple[str, str]],
                     device: Any, origin: str) -> None:
        prefix = f"System with name: {existing.name} already exists, but provided"
        if existing.metadata != metadata:
            raise SrError(f"{prefix} metadata is not matching", origin=origin)
        if existing.version != version:
            raise SrError(f"{prefix} version is not matching", origin=origin)
        if sorted(existing.addresses) != sorted(addresses):
            raise SrError(f"{prefix} address list is not matching", origin=origin)
        if not is_empty(device):
            raise SrError(f"{prefix} device name is not matching", origin=origin)

    def revoke_system(self, name: str) -> bool:
        if is_empty(name):
            raise SrError("System name is empty", origin=SYSTEM_REVOKE)
        name = normalize_system_name(name) or ""
        checked(SYSTEM_REVOKE, lambda: validate_system_name(name))
        if self.systems.pop(name, None) is None:
            return False
        for key in [k for k, instance in self.instances.items() if instance.system == name]:
            del self.instances[key]  # ON DELETE CASCADE
        return True

    def lookup_systems(self, payload: Any) -> dict[str, Any]:
        origin = SYSTEM_LOOKUP
        body = payload if isinstance(payload, dict) else {}
        for key, label in (("systemNames", "System name"), ("addresses", "Address"), ("deviceNames", "Device name")):
            if any(is_empty(v) for v in _strings(body, key)):
                raise SrError(f"{label} list contains null or empty element", origin=origin)
        names = [normalize_system_name(n) for n in _strings(body, "systemNames")]
        versions = [normalize_version(v) for v in _strings(body, "versions")]
        addresses = [normalize_address(a) for a in _strings(body, "addresses")]
        found = [s for s in self.systems.values()
                 if (not names or s.name in names) and (not versions or s.version in versions)
                 and (not addresses or any(a in addresses for _, a in s.addresses))
                 and _metadata_match(s.metadata, _strings(body, "metadataRequirementList"))]
        return {"entries": [s.dto() for s in found], "count": len(found)}

    # ----------------------------------------------------------------------------------- services

    def register_service(self, name: str, payload: Any) -> dict[str, Any]:
        origin = SERVICE_REGISTER
        body = _body(payload, origin)
        self._check_register_service(name, body, origin)
        system = normalize_system_name(name) or ""
        definition = normalize_service_definition(body["serviceDefinitionName"]) or ""
        version = normalize_version(body.get("version"))
        expires_text = (body.get("expiresAt") or "").strip()
        interfaces = [{"templateName": normalize_template_name(i["templateName"]),
                       "protocol": (i.get("protocol") or "").strip().lower(), "policy": i["policy"].strip().upper(),
                       "properties": copy.deepcopy(i["properties"])} for i in body["interfaces"]]
        checked(origin, lambda: validate_system_name(system))
        checked(origin, lambda: validate_service_definition(definition))
        checked(origin, lambda: validate_version(version))
        try:
            interfaces = [validate_interface(i, self.config.addresses) for i in interfaces]
            for interface in interfaces:
                if interface["policy"] == "TRANSLATION_BRIDGE_TOKEN_AUTH":
                    raise SrError(f"Invalid interface policy: {interface['policy']}")
        except SrError as error:
            raise SrError(error.message, origin=origin) from None
        for interface in interfaces:  # createBulk, restricted interface policy
            if interface["templateName"] not in TEMPLATES:
                raise SrError(f"Interface template does not exist: {interface['templateName']}", origin=origin)
        if system not in self.systems:
            raise SrError(f"System does not exist: {system}", origin=origin)
        instance_id = f"{system}|{definition}|{version}"
        self.instances.pop(instance_id, None)  # upsert: the old instance goes first
        self._definitions.setdefault(definition, now_text())
        self.instances[instance_id] = Instance(
            instance_id, system, definition, self._definitions[definition], version,
            parse_instant(expires_text) if expires_text else None, copy.deepcopy(body.get("metadata")),
            interfaces, now_text(), next(self._sequence))
        return self.instance_dto(self.instances[instance_id], verbose=True)

    @staticmethod
    def _check_register_service(name: str, body: dict[str, Any], origin: str) -> None:
        if is_empty(name):
            raise SrError("System name is empty", origin=origin)
        if is_empty(body.get("serviceDefinitionName")):
            raise SrError("Service definition name is empty", origin=origin)
        expires = body.get("expiresAt")
        if not is_empty(expires):
            try:
                moment = parse_instant(expires)
            except (ValueError, AttributeError):
                raise SrError("Expiration time has an invalid time format", origin=origin) from None
            if datetime.now(UTC) > moment:
                raise SrError("Expiration time is in the past", origin=origin)
        try:
            if not is_empty(body.get("metadata")):
                validate_metadata_keys(body["metadata"])
            if is_empty(body.get("interfaces")):
                raise SrError("Service interface list is empty")
            for interface in body["interfaces"]:
                if is_empty(interface.get("templateName")):
                    raise SrError("Interface template name is missing")
                if is_empty(interface.get("policy")):
                    raise SrError("Interface policy is missing")
                if interface["policy"].strip().upper() not in POLICIES:
                    raise SrError("Invalid interface policy")
                if is_empty(interface.get("properties")):
                    raise SrError("Interface properties are missing")
                validate_metadata_keys(interface["properties"])
        except SrError as error:
            raise SrError(error.message, origin=origin) from None

    def lookup_services(self, payload: Any, *, verbose: bool, requester: str, sysop: bool) -> dict[str, Any]:
        origin = SERVICE_LOOKUP
        body = _body(payload, origin)
        ids, providers, definitions = (_strings(body, k) for k in ("instanceIds", "providerNames",
                                                                   "serviceDefinitionNames"))
        if not ids and not providers and not definitions:
            raise SrError("One of the following filters must be used: 'instanceIds', 'providerNames', "
                          "'serviceDefinitionNames'", origin=origin)
        for values, label in ((ids, "Instance id"), (providers, "Provider name"),
                              (definitions, "Service definition name"), (_strings(body, "versions"), "Version"),
                              (_strings(body, "interfaceTemplateNames"), "Interface template")):
            if any(is_empty(v) for v in values):
                raise SrError(f"{label} list contains null or empty element", origin=origin)
        ids = [normalize_service_instance_id(i) for i in ids]
        providers = [normalize_system_name(p) for p in providers]
        definitions = [normalize_service_definition(d) for d in definitions]
        versions = [normalize_version(v) for v in _strings(body, "versions")]
        templates = [normalize_template_name(t) for t in _strings(body, "interfaceTemplateNames")]
        policies = [p.strip().upper() for p in _strings(body, "policies") if isinstance(p, str)]
        for instance_id in ids:
            checked(origin, lambda i=instance_id: validate_service_instance_id(i))
        for provider in providers:
            checked(origin, lambda p=provider: validate_system_name(p))
        for definition in definitions:
            checked(origin, lambda d=definition: validate_service_definition(d))
        requirements = list(_strings(body, "metadataRequirementsList"))
        restricted = self.config.discovery_policy == "restricted" and not (
            sysop or requester in self.config.direct_access)
        if restricted:
            requirements = [{**r, "unrestrictedDiscovery": True} for r in requirements] or [
                {"unrestrictedDiscovery": True}]
        if verbose and not self.config.discovery_verbose:
            raise SrError("Verbose is not allowed", FORBIDDEN, origin)
        now = datetime.now(UTC)
        for expired in [k for k, i in self.instances.items() if i.expires_at is not None and now > i.expires_at]:
            del self.instances[expired]
        entries = []
        for instance in sorted(self.instances.values(), key=lambda i: -i.sequence):
            if ((ids and instance.instance_id not in ids) or (providers and instance.system not in providers)
                    or (definitions and instance.definition not in definitions)
                    or (versions and instance.version not in versions)
                    or not _metadata_match(instance.metadata, requirements)):
                continue
            matching = _matching_interfaces(instance.interfaces, templates, policies)
            if matching:
                entries.append(self.instance_dto(instance, verbose=verbose, interfaces=matching))
        return {"entries": entries, "count": len(entries)}

    def revoke_service(self, name: str, instance_id: str) -> bool:
        origin = SERVICE_REVOKE + instance_id
        if is_empty(name):
            raise SrError("System name is empty", origin=origin)
        if is_empty(instance_id):
            raise SrError("Service instance ID is missing", origin=origin)
        system = normalize_system_name(name) or ""
        normalized = normalize_service_instance_id(instance_id)
        checked(origin, lambda: validate_system_name(system))
        checked(origin, lambda: validate_service_instance_id(normalized))
        assert normalized is not None
        if normalized.split("|")[0] != system:
            raise SrError("Revoking other systems' service is forbidden", FORBIDDEN, origin)
        return self.instances.pop(normalized, None) is not None

    def instance_dto(self, instance: Instance, *, verbose: bool,
                     interfaces: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        system = self.systems[instance.system]
        body: dict[str, Any] = {
            "instanceId": instance.instance_id, "provider": system.dto() if verbose else system.terse(),
            "serviceDefinition": {"name": instance.definition, "createdAt": instance.definition_created,
                                  "updatedAt": instance.definition_created},
            "version": instance.version}
        if instance.expires_at is not None:
            body["expiresAt"] = now_text(instance.expires_at)
        if instance.metadata is not None:
            body["metadata"] = instance.metadata
        body |= {"interfaces": copy.deepcopy(instance.interfaces if interfaces is None else interfaces),
                 "createdAt": instance.created_at, "updatedAt": instance.created_at}
        return body


def _metadata_match(metadata: Any, requirements: list[Any]) -> bool:
    """Some requirement is met: every key (`a.b` reaches into maps) has that value."""
    if not requirements:
        return True
    for requirement in requirements:
        if not isinstance(requirement, dict):
            continue
        if all(_value_at(metadata, key) == value for key, value in requirement.items()):
            return True
    return False


def _value_at(metadata: Any, key: str) -> Any:
    current = metadata
    for part in key.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def _matching_interfaces(interfaces: list[dict[str, Any]], templates: list[str],
                         policies: list[str]) -> list[dict[str, Any]]:
    """As `findAllByFilters`: once some interface matched a filter, the flag stays set for the later ones."""
    template_match = policy_match = False
    matching = []
    for interface in interfaces:
        policy_match = policy_match or not policies or interface["policy"] in policies
        template_match = template_match or not templates or interface["templateName"] in templates
        if policy_match and template_match:
            matching.append(interface)
    return matching
