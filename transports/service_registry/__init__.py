"""Joining an Arrowhead local cloud: register in the ServiceRegistry at start-up, revoke at shutdown
(issue 17). `registry_setup` checks the settings; `ServiceRegistration` does the talking.

- payloads.py  what is registered (pure)
- answers.py   reading the ServiceRegistry's answers (pure)
- plan.py      the settings, checked at start-up
- client.py    the HTTP client (httpx, trio), with lockstore's identity
- lifecycle.py join / retry / leave
"""

from transports.service_registry.lifecycle import RegistrationFailed, ServiceRegistration
from transports.service_registry.plan import RegistryConfigError, RegistryPlan, registry_setup

__all__ = ["RegistrationFailed", "RegistryConfigError", "RegistryPlan", "ServiceRegistration", "registry_setup"]
