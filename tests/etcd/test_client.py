"""The etcd client against the real cluster: the gateway calls it makes (range, txn, compaction, watch,
leases, status), and how it behaves when members are unreachable, frozen or without a leader."""

from __future__ import annotations

import pytest
import trio

from actors.etcd import wire
from actors.etcd.client import EtcdClient
from actors.etcd.errors import Compacted, EtcdRequestError, EtcdUnavailable, OutcomeUnknown
from actors.etcd.keys import KeyLayout
from tests.etcd.cluster import EtcdCluster, free_ports
from tests.etcd.instances import config


async def test_txn_range_compaction_and_status(cluster: EtcdCluster, layout: KeyLayout) -> None:
    key = layout.prefix + b"k"
    async with EtcdClient(config(cluster.endpoints)) as etcd:
        first = await etcd.txn(wire.TxnRequest(compare=[wire.absent(key)], success=[wire.put(key, b"1")]))
        assert first.succeeded
        again = await etcd.txn(wire.TxnRequest(compare=[wire.absent(key)], success=[wire.put(key, b"2")],
                                               failure=[wire.get(key)]))
        assert not again.succeeded
        held = again.responses[0].response_range
        assert held is not None and held.kvs[0].value == b"1" and held.kvs[0].mod_revision == first.header.revision
        second = await etcd.txn(wire.TxnRequest(compare=[wire.unchanged(key, first.header.revision)],
                                                success=[wire.put(key, b"2")]))
        assert second.succeeded
        await etcd.compact(second.header.revision)
        with pytest.raises(Compacted):
            await etcd.range(wire.RangeRequest(key, revision=first.header.revision))
        with pytest.raises(EtcdRequestError, match="future revision"):
            await etcd.range(wire.RangeRequest(key, revision=second.header.revision + 1000))
        status = await etcd.status(cluster.members[1].client_url)
        assert status.version.startswith("3.") and status.leader in {m.member_id for m in cluster.members}


async def test_watch_delivers_events_and_reports_compaction(cluster: EtcdCluster, layout: KeyLayout) -> None:
    prefix = layout.prefix
    async with EtcdClient(config(cluster.endpoints)) as etcd:
        start = (await etcd.txn(wire.TxnRequest(success=[wire.put(prefix + b"a", b"1")]))).header.revision
        await etcd.txn(wire.TxnRequest(success=[wire.put(prefix + b"b", b"2"), wire.delete(prefix + b"a")]))
        async with etcd.watch(wire.WatchCreateRequest(prefix, wire.prefix_end(prefix), start_revision=start)) as w:
            events: list[wire.Event] = []
            with trio.fail_after(5):
                async for response in w:
                    events += response.events
                    if len(events) == 3:
                        break
        assert [(e.type, e.kv.key, e.kv.mod_revision) for e in events] == [
            ("PUT", prefix + b"a", start), ("PUT", prefix + b"b", start + 1), ("DELETE", prefix + b"a", start + 1)]
        await etcd.compact(start + 1)
        async with etcd.watch(wire.WatchCreateRequest(prefix, wire.prefix_end(prefix), start_revision=start)) as w:
            with trio.fail_after(5):
                async for response in w:
                    if response.created and not response.canceled:
                        continue  # the confirmation comes first, then the cancel
                    assert response.canceled and response.compact_revision == start + 1
                    break


async def test_lease_grant_keepalive_revoke(cluster: EtcdCluster) -> None:
    async with EtcdClient(config(cluster.endpoints)) as etcd:
        lease = await etcd.lease_grant(30)
        assert lease.ID and lease.TTL == 30
        assert 0 < await etcd.lease_keepalive(lease.ID) <= 30
        await etcd.lease_revoke(lease.ID)
        assert await etcd.lease_keepalive(lease.ID) == 0


async def test_an_endpoint_that_refuses_connections_is_skipped(cluster: EtcdCluster, layout: KeyLayout) -> None:
    (dead,) = free_ports(1)
    async with EtcdClient(config((f"http://127.0.0.1:{dead}", *cluster.endpoints))) as etcd:
        reply = await etcd.txn(wire.TxnRequest(success=[wire.put(layout.prefix + b"k", b"v")]))
        assert reply.succeeded and etcd.current_endpoint == cluster.endpoints[0]
        assert etcd.stats.endpoint_failovers == 1


async def test_a_frozen_member_loses_a_write_answer_but_not_a_read(cluster: EtcdCluster, layout: KeyLayout) -> None:
    """A txn sent to a member that stopped answering may still commit when it wakes: OutcomeUnknown, never
    a silent retry. A read there is retried on the next member."""
    frozen = cluster.followers()[0]
    cluster.pause(frozen)
    others = [m.client_url for m in cluster.members if m is not frozen]
    async with EtcdClient(config((frozen.client_url, *others), request_timeout=0.5)) as etcd:
        with pytest.raises(OutcomeUnknown):
            await etcd.txn(wire.TxnRequest(success=[wire.put(layout.prefix + b"k", b"v")]))
        assert etcd.current_endpoint != frozen.client_url
        etcd.endpoint_failed(etcd.current_endpoint)
        etcd.endpoint_failed(etcd.current_endpoint)  # back to the frozen one first
        assert etcd.current_endpoint == frozen.client_url
        reply = await etcd.range(wire.RangeRequest(layout.prefix + b"k"))
        assert reply.header.revision > 0 and etcd.current_endpoint != frozen.client_url


async def test_a_member_without_a_leader_refuses_at_once(cluster: EtcdCluster, layout: KeyLayout) -> None:
    """With two of three members stopped, the last one has no leader: the `hasleader` metadata makes it
    say so at once (etcdserver: no leader) instead of holding the request, and ends a watch there (which
    would otherwise stay open and silent, etcd-io/etcd#8980)."""
    lone, *rest = cluster.members
    async with EtcdClient(config((lone.client_url,), deadline=1.0, request_timeout=0.5)) as etcd:
        async with etcd.watch(wire.WatchCreateRequest(layout.prefix, wire.prefix_end(layout.prefix))) as w:
            for member in rest:
                cluster.stop(member)
            with trio.fail_after(10):  # etcd cancels it after 3 election timeouts without a leader
                try:
                    async for _ in w:
                        pass
                except EtcdUnavailable as error:  # the gateway may or may not pass the reason on
                    assert "no leader" in str(error)
        with pytest.raises(EtcdUnavailable, match="no leader"):
            await etcd.range(wire.RangeRequest(layout.prefix))
        assert etcd.stats.requests[(wire.RANGE, "retry")] >= 1
