"""The operational HTTP endpoints: `/openapi.json`, `/docs`, `/metrics`, `/health/live`, `/health/ready`.

None needs an identity (the reference leaves its api-docs open too); none touches lock or rule
state except through the actors' mailboxes (`/metrics` asks them for their sizes). `/docs` is the
Swagger UI of the `swagger-ui-bundle-v2` package (Swagger UI 5, which renders OpenAPI 3.1), served
from the package's files — no CDN.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from quart import Response
from quart_trio import QuartTrio

from transports.api.errors import ArrowheadError, ErrorBody, ExceptionType
from transports.config.broker_url import redact_url
from transports.observability.access import MqttObserver, RequestObserver
from transports.observability.health import Health, HealthReport
from transports.observability.metrics import CONTENT_TYPE, ServiceMetrics, Sources, package_version
from transports.observability.openapi import encode_document

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

    from actors.etcd.cluster import EtcdState
    from actors.services import LockService, StoreService
    from transports.config.settings import Settings
    from transports.mqtt.server import MqttServer
    from wal.log import WriteAheadLog

_encode = msgspec.json.Encoder().encode

# The Swagger UI files /docs needs, with their content types (nothing else of the package is served).
DOCS_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "index.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "application/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

# Relative URLs, so that the page also works behind a reverse proxy that adds a path prefix.
# `validatorUrl: null`: Swagger UI would otherwise send the document's URL to validator.swagger.io.
DOCS_PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>lockstore API</title>
  <link rel="stylesheet" type="text/css" href="docs/swagger-ui.css">
  <link rel="stylesheet" type="text/css" href="docs/index.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="docs/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script>
    window.onload = function () {
      window.ui = SwaggerUIBundle({
        url: "openapi.json",
        dom_id: "#swagger-ui",
        deepLinking: true,
        validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout"
      });
    };
  </script>
</body>
</html>
"""


def swagger_ui_directory() -> Path:
    """The static Swagger UI of the swagger-ui-bundle-v2 package (its module is `swagger_ui_bundle`)."""
    return Path(importlib.import_module("swagger_ui_bundle").swagger_ui_path)


@functools.cache
def docs_asset(name: str) -> bytes:
    """One Swagger UI file, read once (the bundle is ~1.5 MB; it is only read when /docs is used)."""
    return (swagger_ui_directory() / name).read_bytes()


@dataclass
class Monitor:
    """What the operational endpoints and the request observers share."""

    metrics: ServiceMetrics
    health: Health
    access_log: bool = True

    def observe(self, app: ASGIFramework) -> RequestObserver:
        """The HTTP app as served: every request counted, timed and (optionally) logged."""
        return RequestObserver(app, self.metrics, log_access=self.access_log)


def wire_monitor(settings: Settings, app: QuartTrio, wal: WriteAheadLog | None, locks: LockService,
                 store: StoreService, mqtt: MqttServer | None, etcd: EtcdState | None = None) -> Monitor:
    """Connect metrics and health to the service's parts, and add the operational routes to `app`.
    `wal` is None in etcd mode, and `etcd` None in local mode."""
    info: dict[str, str] = {"fsync": settings.fsync, "authentication_policy": settings.authentication_policy,
                            "state": settings.state}
    metrics = ServiceMetrics(info=info)
    metrics.sources = Sources(wal=wal, locks=locks, store=store, mqtt=mqtt, etcd=etcd,
                              snapshot_dir=Path(settings.data_dir) / "wal" if wal is not None else None)
    if wal is not None:
        wal.commit_hook = metrics.on_wal_commit
    if etcd is not None:
        etcd.stats.observers.append(metrics.on_etcd_request)
    health = Health(wal, mqtt, fsync=settings.fsync == "always",
                    mqtt_broker=redact_url(settings.mqtt_url) if settings.mqtt_url else None)
    health.etcd = etcd
    monitor = Monitor(metrics, health, settings.access_log)
    if mqtt is not None:
        mqtt.on_request = MqttObserver(metrics, settings.mqtt_topic_prefix, log_access=settings.access_log)
    add_monitor_routes(app, monitor)
    return monitor


def _json(status: int, body: bytes) -> Response:
    return Response(body, status=status, content_type="application/json")


def _health(report: HealthReport) -> Response:
    return _json(200 if report.status == "UP" else 503, _encode(report))


def add_monitor_routes(app: QuartTrio, monitor: Monitor) -> None:
    """Register the operational endpoints on the service's app."""
    document = encode_document(package_version())

    @app.get("/openapi.json")
    async def openapi() -> Response:
        return _json(200, document)

    @app.get("/docs")
    async def docs() -> Response:
        return Response(DOCS_PAGE, status=200, content_type="text/html; charset=utf-8")

    @app.get("/docs/<name>")
    async def docs_file(name: str) -> Response:
        content_type = DOCS_ASSETS.get(name)
        if content_type is None:
            error = ArrowheadError(f"No endpoint GET /docs/{name}", ExceptionType.DATA_NOT_FOUND, f"GET /docs/{name}")
            body: ErrorBody = error.body()
            return _json(404, _encode(body))
        response = Response(docs_asset(name), status=200, content_type=content_type)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    @app.get("/metrics")
    async def metrics() -> Response:
        await monitor.metrics.refresh()
        return Response(monitor.metrics.render(), status=200, content_type=CONTENT_TYPE)

    @app.get("/health/live")
    async def live() -> Response:
        return _health(monitor.health.live())

    @app.get("/health/ready")
    async def ready() -> Response:
        await monitor.health.refresh()  # etcd mode: a quorum read per table, shared with concurrent requests
        return _health(monitor.health.ready())
