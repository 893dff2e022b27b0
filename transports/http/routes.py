"""The one table of the HTTP API: path, method, operation name and handler of each of the eight routes.

The native server dispatches on it (`match`), the Quart app registers its views from it, and the
ServiceRegistry registration publishes it (transports/service_registry/payloads.py), so what is served and
what is published are one list. Paths use werkzeug's rule syntax (`<owner>`: one non-empty path segment).
"""

from __future__ import annotations

from dataclasses import dataclass

from transports.http import handlers
from transports.http.handlers import Handler

BASE = "/serviceorchestration"
LOCK_PATH = f"{BASE}/orchestration/mgmt/lock"
STORE_PATH = f"{BASE}/orchestration/mgmt/simple-store"
ECHO_PATH = f"{BASE}/monitor/echo"


@dataclass(frozen=True)
class Route:
    operation: str  # the metrics / access-log label, and the Quart endpoint name
    method: str
    rule: str  # werkzeug syntax
    handler: Handler

    @property
    def parameter(self) -> str | None:
        """The name of the rule's one `<parameter>` (it must be the last segment), or None."""
        if not self.rule.endswith(">"):
            return None
        return self.rule[self.rule.rindex("<") + 1 : -1]

    @property
    def prefix(self) -> str:
        """The rule up to its parameter (the whole rule when it has none)."""
        return self.rule[: self.rule.rindex("<")] if self.parameter else self.rule


API_ROUTES: tuple[Route, ...] = (
    Route("lock_create", "POST", f"{LOCK_PATH}/create", handlers.lock_create),
    Route("lock_query", "POST", f"{LOCK_PATH}/query", handlers.lock_query),
    Route("lock_remove", "DELETE", f"{LOCK_PATH}/remove/<owner>", handlers.lock_remove),
    Route("store_query", "POST", f"{STORE_PATH}/query", handlers.store_query),
    Route("store_create", "POST", f"{STORE_PATH}/create", handlers.store_create),
    Route("store_modify_priorities", "PUT", f"{STORE_PATH}/modify-priorities", handlers.store_modify_priorities),
    Route("store_remove", "DELETE", f"{STORE_PATH}/remove", handlers.store_remove),
    Route("echo", "GET", ECHO_PATH, handlers.echo),
)

_EXACT: dict[tuple[str, str], Route] = {(route.method, route.rule): route for route in API_ROUTES
                                       if route.parameter is None}
_WITH_PARAMETER: tuple[Route, ...] = tuple(route for route in API_ROUTES if route.parameter is not None)


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route serving exactly `method path` (a decoded path) and its parameter, or None.

    None for anything else — another method, a trailing slash, `//` — which the native server hands to the
    Quart app, so that 404, 405, redirects and HEAD are answered by the one framework that defines them.
    """
    route = _EXACT.get((method, path))
    if route is not None:
        return route, {}
    for route in _WITH_PARAMETER:
        if route.method == method and path.startswith(route.prefix):
            value = path[len(route.prefix) :]
            if value and "/" not in value:
                return route, {route.parameter or "": value}
    return None


def published_routes() -> list[tuple[str, frozenset[str]]]:
    """(rule, methods) of every API route, the shape the ServiceRegistry payload builder reads."""
    return [(route.rule, frozenset({route.method})) for route in API_ROUTES]
