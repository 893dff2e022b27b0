"""Multi-instance mode: lockstore's state held by an etcd cluster, each instance keeping a cache of it.

The design (key layout, txn shapes, revisions and lock ids, the read path, expiry, failures, what a
client must retry) is written down in docs/multi-instance.md. The modules, bottom up:

    wire.py          etcd 3.4 JSON gateway shapes (msgspec Structs); pure
    errors.py        what a gateway error means: retry elsewhere, re-authenticate, outcome unknown, final
    failover.py      endpoint rotation and backoff; pure
    client.py        EtcdClient: trio-native client on httpx (failover, timeouts, TLS, auth)
    keys.py          the key layout under the prefix; pure
    values.py        record values (locks, rules) as stored in etcd, lock ids from revisions; pure
    lock_txns.py     planned lock changes -> guarded txns; pure
    rule_txns.py     planned rule changes -> guarded txns; pure
    revision_gate.py waiting for the cache to reach a revision
    fresh_revision.py the quorum revision fetch shared by concurrent reads
    reflector.py     list at a revision, watch from the next one, relist on compaction
    replica.py       one cached table: actor mailbox + reflector + read barrier
    lock_cache.py / rule_cache.py   watch events -> table changes; pure
    writes.py        plan, txn, retry on conflict, resolve unknown outcomes
    lock_backend.py / store_backend.py   the actors' public faces in etcd mode
    expiry.py        the expiry election and the deletion of expired locks
    limits.py        does a max_batch txn fit the cluster's limits?
    stats.py         counters and observers the service's metrics read
    cluster.py       composition: one client, both backends, readiness

Nothing here imports `transports` or `bench`.
"""
