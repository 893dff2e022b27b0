"""Real-cluster fixtures for the multi-instance tests (see cluster.py and instances.py).

One 3-member cluster serves the whole run (`etcd_cluster`, in tests/conftest.py: the service tests' etcd
backend shares it; starting one takes about a second); every test works under
a key prefix of its own, so tests never see each other's records. Tests that stop, kill or freeze a
member use `cluster`, which hands them every member running and healthy and restores that afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from actors.etcd.keys import KeyLayout
from tests.etcd.cluster import TEST_FLAGS, EtcdCluster, EtcdNotFoundError, Tls

SECURE_PREFIX = "secure/"
SECURE_USER, SECURE_PASSWORD = "lockstore", "s3cret-Pa55"  # etcdctl reads one word from stdin


def _restore(cluster: EtcdCluster) -> None:
    for member in cluster.members:
        if member.paused:
            cluster.resume(member)
        if not member.running:
            cluster.restart(member)
    for member in cluster.members:
        cluster.wait_healthy(member)


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


@pytest.fixture(scope="session")
def secured_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One member with etcd's default limits, TLS with client certificates, and authentication on:
    user `lockstore` may read and write under SECURE_PREFIX (and `root` administers)."""
    directory = tmp_path_factory.mktemp("etcd-tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("nobody.example")  # a CN that is no etcd user: certificates alone grant nothing
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key", "client_cert", "client_key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client_cert"]))
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    default_limits = tuple(flag for flag in TEST_FLAGS if not flag.startswith("--max-"))
    try:
        cluster = EtcdCluster(size=1, flags=default_limits, tls=Tls(**paths))
    except EtcdNotFoundError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        cluster.start()
        cluster.etcdctl("user", "add", "root", "--interactive=false", stdin="rootpw\n")
        cluster.etcdctl("role", "add", "lockstore")
        cluster.etcdctl("role", "grant-permission", "lockstore", "readwrite", SECURE_PREFIX, "--prefix=true")
        cluster.etcdctl("user", "add", SECURE_USER, "--interactive=false", stdin=f"{SECURE_PASSWORD}\n")
        cluster.etcdctl("user", "grant-role", SECURE_USER, "lockstore")
        cluster.etcdctl("auth", "enable")
        cluster.admin = "root:rootpw"
        yield cluster
    finally:
        cluster.close()


def tls_paths(cluster: EtcdCluster) -> dict[str, Path]:
    assert cluster.tls is not None
    return {"ca": cluster.tls.ca, "cert": cluster.tls.client_cert, "key": cluster.tls.client_key}
