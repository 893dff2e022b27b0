"""Real-cluster fixtures for the multi-instance tests (see cluster.py and instances.py).

One 3-member cluster serves the whole run (starting one takes about a second); every test works under
a key prefix of its own, so tests never see each other's records. Tests that stop, kill or freeze a
member use `cluster`, which hands them every member running and healthy and restores that afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from actors.etcd.keys import KeyLayout
from tests.etcd.cluster import EtcdCluster, EtcdNotFoundError


def _restore(cluster: EtcdCluster) -> None:
    for member in cluster.members:
        if member.paused:
            cluster.resume(member)
        if not member.running:
            cluster.restart(member)
    for member in cluster.members:
        cluster.wait_healthy(member)


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
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
def cluster(etcd_cluster: EtcdCluster) -> Iterator[EtcdCluster]:
    """The session's cluster, every member running and healthy before and after the test."""
    _restore(etcd_cluster)
    try:
        yield etcd_cluster
    finally:
        _restore(etcd_cluster)


@pytest.fixture
def layout() -> KeyLayout:
    """A key prefix of the test's own."""
    return KeyLayout.from_prefix(f"test-{uuid.uuid4().hex[:12]}/")
