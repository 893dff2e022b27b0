"""A tiny model of etcd's key-value store: revisions, compares, txns (nested), watch events. Pure.

Enough of etcd's semantics (mvcc/kvstore_txn.go, etcdserver/apply.go) to check our txn shapes and
caches without a server: a txn's compares all hold or it takes the failure branch; every key changed
by one txn gets that txn's revision; a txn that changes nothing does not create a revision; a compare
on the value of a missing key is false; a key may be written at most once per txn. The real cluster
tests (tests/etcd/) check the same code against etcd itself.
"""

from __future__ import annotations

from actors.etcd import wire


class ModelEtcd:
    def __init__(self) -> None:
        self.revision = 1  # etcd starts at 1
        self.kvs: dict[bytes, wire.KeyValue] = {}
        self.events: list[wire.Event] = []  # every event ever, in revision order

    def txn(self, request: wire.TxnRequest) -> wire.TxnResponse:
        _check_keys(request)
        ok = all(self._holds(compare) for compare in request.compare)
        pending: list[wire.Event] = []
        responses = self._run(request.success if ok else request.failure, self.revision + 1, pending)
        if pending:
            self.revision += 1
            for event in pending:
                if event.type == wire.DELETE_EVENT:
                    del self.kvs[event.kv.key]
                else:
                    self.kvs[event.kv.key] = event.kv
            self.events.extend(pending)
        return wire.TxnResponse(header=wire.ResponseHeader(revision=self.revision), succeeded=ok, responses=responses)

    def events_after(self, revision: int) -> list[wire.Event]:
        return [event for event in self.events if event.kv.mod_revision > revision]

    def list(self, prefix: bytes) -> list[wire.KeyValue]:
        return [kv for key, kv in sorted(self.kvs.items()) if key.startswith(prefix)]

    def _current(self, key: bytes, pending: list[wire.Event]) -> wire.KeyValue | None:
        for event in reversed(pending):
            if event.kv.key == key:
                return None if event.type == wire.DELETE_EVENT else event.kv
        return self.kvs.get(key)

    def _holds(self, compare: wire.Compare) -> bool:
        assert compare.result == wire.EQUAL
        kv = self.kvs.get(compare.key)
        if compare.target == wire.CREATE:
            return (kv.create_revision if kv else 0) == compare.create_revision
        if compare.target == wire.MOD:
            return (kv.mod_revision if kv else 0) == compare.mod_revision
        if compare.target == wire.VALUE:
            return kv is not None and kv.value == compare.value
        raise AssertionError(compare.target)

    def _run(self, ops: list[wire.RequestOp], revision: int, pending: list[wire.Event]) -> list[wire.ResponseOp]:
        responses: list[wire.ResponseOp] = []
        for op in ops:
            if op.request_range is not None:
                kv = self._current(op.request_range.key, pending)
                responses.append(wire.ResponseOp(response_range=wire.RangeResponse(kvs=[kv] if kv else [])))
            elif op.request_put is not None:
                put = op.request_put
                old = self._current(put.key, pending)
                kv = wire.KeyValue(put.key, old.create_revision if old else revision, revision,
                                   (old.version if old else 0) + 1, put.value, put.lease)
                pending.append(wire.Event(kv=kv))
                responses.append(wire.ResponseOp(response_put=wire.PutResponse()))
            elif op.request_delete_range is not None:
                key = op.request_delete_range.key
                deleted = 0
                if self._current(key, pending) is not None:
                    pending.append(wire.Event(kv=wire.KeyValue(key, mod_revision=revision), type=wire.DELETE_EVENT))
                    deleted = 1
                responses.append(wire.ResponseOp(response_delete_range=wire.DeleteRangeResponse(deleted=deleted)))
            else:
                assert op.request_txn is not None
                inner = op.request_txn
                ok = all(self._holds(compare) for compare in inner.compare)
                nested = self._run(inner.success if ok else inner.failure, revision, pending)
                responses.append(wire.ResponseOp(response_txn=wire.TxnResponse(succeeded=ok, responses=nested)))
        return responses


def _written(ops: list[wire.RequestOp]) -> list[bytes]:
    keys: list[bytes] = []
    for op in ops:
        if op.request_put is not None:
            keys.append(op.request_put.key)
        elif op.request_delete_range is not None:
            keys.append(op.request_delete_range.key)
        elif op.request_txn is not None:
            keys += _written(op.request_txn.success) + _written(op.request_txn.failure)
    return keys


def _check_keys(request: wire.TxnRequest) -> None:
    """etcd refuses a txn that writes one key twice in a branch ("duplicate key given in txn request")."""
    for branch in (request.success, request.failure):
        keys = _written(branch)
        if len(keys) != len(set(keys)):
            raise ValueError("etcdserver: duplicate key given in txn request")
