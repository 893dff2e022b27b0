"""Suite-wide settings: hypothesis profiles (CI runs the bounded one); the session's etcd cluster and the
`backend` axis of the service tests (tests/backends.py)."""

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.backends import backends_of
from tests.etcd.cluster import EtcdCluster, EtcdNotFoundError

# CI draws the same examples every run (reproducible landings); local runs keep exploring new ones.
settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    """One real 3-member etcd cluster for the whole run (tests/etcd/cluster.py); tests use prefixes of their own."""
    try:
        cluster = EtcdCluster()
    except EtcdNotFoundError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def backend() -> str:
    """The state backend a service fixture starts: "local" unless the test is marked `backends(...)`."""
    return "local"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = backends_of(metafunc.definition)
    if names is not None and "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The state backend and the HTTP server are independent layers: each HTTP test runs on both servers
    with the local backend, and on etcd with the default (native) server. etcd × hypercorn would only run
    the same backend code again through the other server, at the cost of a second etcd start-up probe per
    test, so those combinations are deselected (reported as deselected, never as passed)."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("backend") == "etcd" and params.get("http_server") == "hypercorn":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
