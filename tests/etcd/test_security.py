"""TLS to etcd (a CA, a client certificate) and user/password authentication, against a real member
that requires both: an instance works; a wrong password, a missing client certificate or an unknown CA
fail clearly; a token the cluster stops accepting is replaced without the caller noticing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from actors.etcd.client import EtcdClient, tls_context
from actors.etcd.errors import AuthenticationFailed, EtcdRequestError, EtcdUnavailable
from actors.etcd.keys import KeyLayout
from actors.etcd.wire import RangeRequest
from actors.records import LockFilter, NewLock, PageRequest
from tests.etcd.cluster import EtcdCluster
from tests.etcd.conftest import SECURE_PASSWORD, SECURE_PREFIX, SECURE_USER, tls_paths
from tests.etcd.instances import config, instance

LAYOUT = KeyLayout.from_prefix(SECURE_PREFIX + "app/")


async def test_an_instance_works_over_tls_with_a_user(secured_etcd: EtcdCluster) -> None:
    assert all(endpoint.startswith("https://") for endpoint in secured_etcd.endpoints)
    async with instance(secured_etcd.endpoints, LAYOUT, username=SECURE_USER, password=SECURE_PASSWORD,
                        **tls_paths(secured_etcd)) as state:
        created = await state.locks.create([NewLock("P|svc|1.0.0", "Owner", int(time.time()) + 60)])
        assert (await state.locks.query(LockFilter(), PageRequest(0, 10, "id", False)))[0] == created
        assert state.stats.requests[("/v3/auth/authenticate", "ok")] == 1


async def test_a_token_the_cluster_forgot_is_replaced(secured_etcd: EtcdCluster) -> None:
    async with EtcdClient(config(secured_etcd.endpoints, username=SECURE_USER, password=SECURE_PASSWORD,
                                 **tls_paths(secured_etcd))) as etcd:
        await etcd.range(RangeRequest(LAYOUT.locks_marker))
        # Setting the password (to the same one) makes etcd drop the user's tokens.
        secured_etcd.etcdctl("user", "passwd", SECURE_USER, "--interactive=false", stdin=f"{SECURE_PASSWORD}\n")
        await etcd.range(RangeRequest(LAYOUT.locks_marker))
        assert etcd.stats.requests[("/v3/auth/authenticate", "ok")] == 2
        assert etcd.stats.requests[("/v3/kv/range", "reauthenticate")] == 1


async def test_a_wrong_password_is_a_clear_error(secured_etcd: EtcdCluster) -> None:
    async with EtcdClient(config(secured_etcd.endpoints, username=SECURE_USER, password="wrong",
                                 **tls_paths(secured_etcd))) as etcd:
        with pytest.raises(AuthenticationFailed, match="authentication failed"):
            await etcd.range(RangeRequest(LAYOUT.locks_marker))


async def test_an_instance_with_a_wrong_password_stops_at_start_up_saying_why(secured_etcd: EtcdCluster) -> None:
    with trio.fail_after(10), pytest.raises(AuthenticationFailed, match="authentication failed"):
        async with instance(secured_etcd.endpoints, LAYOUT, username=SECURE_USER, password="wrong",
                            **tls_paths(secured_etcd)):
            pass


async def test_no_user_on_a_cluster_that_requires_one_is_a_clear_error(secured_etcd: EtcdCluster) -> None:
    async with EtcdClient(config(secured_etcd.endpoints, **tls_paths(secured_etcd))) as etcd:
        with pytest.raises(EtcdRequestError) as info:
            await etcd.range(RangeRequest(LAYOUT.locks_marker))
    assert "user name" in str(info.value) or "permission denied" in str(info.value)


async def test_a_user_outside_its_permissions_is_refused(secured_etcd: EtcdCluster) -> None:
    async with EtcdClient(config(secured_etcd.endpoints, username=SECURE_USER, password=SECURE_PASSWORD,
                                 **tls_paths(secured_etcd))) as etcd:
        with pytest.raises(EtcdRequestError, match="permission denied"):
            await etcd.range(RangeRequest(b"elsewhere/"))


async def test_without_a_client_certificate_the_connection_is_refused(secured_etcd: EtcdCluster) -> None:
    paths = tls_paths(secured_etcd)
    async with EtcdClient(config(secured_etcd.endpoints, ca=paths["ca"], username=SECURE_USER,
                                 password=SECURE_PASSWORD, deadline=1.5)) as etcd:
        with pytest.raises(EtcdUnavailable, match="no etcd member answered"):
            await etcd.range(RangeRequest(LAYOUT.locks_marker))
        assert etcd.last_error  # what went wrong is kept for the health check


async def test_a_member_certificate_from_an_unknown_ca_is_refused(secured_etcd: EtcdCluster, tmp_path: Path) -> None:
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    paths = tls_paths(secured_etcd)
    async with EtcdClient(config(secured_etcd.endpoints, ca=other, cert=paths["cert"], key=paths["key"],
                                 username=SECURE_USER, password=SECURE_PASSWORD, deadline=1.5)) as etcd:
        with pytest.raises(EtcdUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await etcd.range(RangeRequest(LAYOUT.locks_marker))


@pytest.mark.parametrize(
    ("change", "complaint"),
    [({"ca": Path("/nonexistent/ca.pem")}, "etcd_ca"), ({"cert": None}, "etcd_cert and etcd_key go together"),
     ({"key": Path("/nonexistent/key.pem")}, "etcd_cert")],
)
def test_unusable_tls_files_are_named(secured_etcd: EtcdCluster, change: dict[str, object], complaint: str) -> None:
    settings = {**tls_paths(secured_etcd), **change}
    with pytest.raises(ValueError, match=complaint):
        tls_context(config(secured_etcd.endpoints, **settings))
