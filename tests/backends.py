"""Running the same service tests on both state backends: `local` (the write-ahead log) and `etcd` (the
session's real 3-member cluster, a key prefix of the test's own).

A test module opts in with `pytestmark = pytest.mark.backends("local", "etcd")`; its tests then run once
per backend (ids `[local]`, `[etcd]`), the fixtures that start the service reading the `backend` fixture.
A test that only makes sense on one backend (the write-ahead log's records, say) narrows it with its own
`@pytest.mark.backends("local")`. Tests without the marker see `backend == "local"` and keep their ids.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.etcd.cluster import EtcdCluster

BACKENDS = ("local", "etcd")
MARKER = "backends"


def backends_of(definition: pytest.Function | Any) -> tuple[str, ...] | None:
    marker = definition.get_closest_marker(MARKER)
    if marker is None:
        return None
    unknown = set(marker.args) - set(BACKENDS)
    if unknown or not marker.args:
        raise pytest.UsageError(f"backends({', '.join(map(repr, marker.args))}): choose from {BACKENDS}")
    return tuple(marker.args)


def etcd_settings(cluster: EtcdCluster, prefix: str | None = None) -> dict[str, Any]:
    """Service settings for etcd mode on `cluster`, under a fresh prefix (or `prefix`)."""
    return {"state": "etcd", "etcd_endpoints": list(cluster.endpoints),
            "etcd_prefix": prefix or f"test-{uuid.uuid4().hex[:12]}/"}


def backend_settings(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings that select `backend` ({} for local: the data directory is the caller's)."""
    if backend == "local":
        return {}
    return etcd_settings(request.getfixturevalue("etcd_cluster"))
