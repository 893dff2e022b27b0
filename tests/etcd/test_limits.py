"""The start-up check of the cluster's limits against max_batch, on real members: etcd's defaults (128
operations per txn) refuse a create of 100 rules as one txn, and the check says which flag to raise and
to what; the test cluster's roomy limits take max_batch = 1000, and its 2 MiB request limit refuses
5000; nothing the probe sends is ever applied."""

from __future__ import annotations

import pytest

from actors.etcd.client import EtcdClient
from actors.etcd.keys import KeyLayout
from actors.etcd.limits import (
    ClusterLimitsTooSmall,
    WorstCase,
    _largest_first,
    check_cluster_limits,
    needed,
    probe_txns,
)
from actors.etcd.wire import RangeRequest, prefix_end
from tests.etcd.cluster import EtcdCluster
from tests.etcd.conftest import SECURE_PASSWORD, SECURE_PREFIX, SECURE_USER, tls_paths
from tests.etcd.instances import config


def test_the_probes_are_the_largest_creates() -> None:
    layout = KeyLayout.from_prefix("x/")
    txns = probe_txns(layout, 10, WorstCase())
    assert needed(txns["locks"])[0] == 11 and needed(txns["rules"])[0] == 21  # n + marker, 2n + marker
    assert needed(txns["rules"])[1] > needed(txns["locks"])[1] > 10 * (142 + 63)
    for txn in txns.values():  # nothing outside the probe prefix, and a first compare that never holds
        keys = [c.key for c in txn.compare] + [op.request_put.key for op in txn.success if op.request_put]
        assert all(key.startswith(layout.probe) for key in keys)
        assert txn.compare[0].target == "VALUE"
    assert [what for what, _ in _largest_first(txns)] == ["rules"]  # the lock create fits if the rule create does


async def test_default_limits_refuse_a_batch_of_100_and_say_which_flag(secured_etcd: EtcdCluster) -> None:
    layout = KeyLayout.from_prefix(SECURE_PREFIX + "limits/")
    async with EtcdClient(config(secured_etcd.endpoints, username=SECURE_USER, password=SECURE_PASSWORD,
                                 **tls_paths(secured_etcd))) as etcd:
        await check_cluster_limits(etcd, layout, 60)  # 121 operations: within the default 128
        with pytest.raises(ClusterLimitsTooSmall, match="--max-txn-ops=201 or more"):
            await check_cluster_limits(etcd, layout, 100)


async def test_roomy_limits_take_1000_and_the_request_size_is_checked_too(cluster: EtcdCluster,
                                                                          layout: KeyLayout) -> None:
    async with EtcdClient(config(cluster.endpoints)) as etcd:
        before = cluster.revision()
        await check_cluster_limits(etcd, layout, 1000)
        with pytest.raises(ClusterLimitsTooSmall, match=r"--max-request-bytes=\d+ or more"):
            await check_cluster_limits(etcd, layout, 5000)
        with pytest.raises(ClusterLimitsTooSmall, match="max_batch 100000 is out of range"):
            await check_cluster_limits(etcd, layout, 100_000)
        assert cluster.revision() == before  # no probe was applied
        probe = await etcd.range(RangeRequest(layout.probe, prefix_end(layout.probe), count_only=True))
        assert probe.count == 0
