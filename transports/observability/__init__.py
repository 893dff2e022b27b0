"""What operators see: the access log and per-request metrics for both edges (`access.py`), the
Prometheus metrics (`metrics.py`), readiness and liveness (`health.py`), the pages that need no identity
(`monitor.py`: /metrics, /health/*, /openapi.json, /docs), the OpenAPI document (`openapi.py`) and the
log formats (`logging_setup.py`: every field escaped and capped).

May import: every room below it (api, config, security, http, mqtt): it observes the edges, they never
call it. Nothing here touches lock or rule state except through the actors' mailboxes.
"""
