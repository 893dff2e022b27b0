"""etcd 3.4's JSON gateway: the request and reply shapes lockstore uses, as msgspec Structs. Pure.

The gateway (grpc-gateway in front of etcd's gRPC API, paths under /v3/) speaks proto3's JSON mapping:
`bytes` are base64 (msgspec does that for `bytes` fields both ways), 64-bit integers are JSON strings
in replies (decoded here with `strict=False`, which turns numeric strings into ints; requests may send
plain numbers, the gateway accepts both), enums are their names, and a reply leaves out every field at
its zero value (false, 0, "", empty list), so every reply field has a default. Requests leave out
unset fields (`omit_defaults`); a compare's target value is `None` when unset so that an explicit 0
(`create_revision == 0`: the key is absent) is still sent.

Streamed replies (`/v3/watch`, `/v3/lease/keepalive`) come as one JSON object per line, each either
{"result": ...} or {"error": ...}; `JsonLines` splits a byte stream into those lines.

May import: msgspec. Never transports or bench.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec

T = TypeVar("T")

# ------------------------------------------------------------------------------------------ paths

RANGE: Final = "/v3/kv/range"
TXN: Final = "/v3/kv/txn"
COMPACTION: Final = "/v3/kv/compaction"
WATCH: Final = "/v3/watch"
LEASE_GRANT: Final = "/v3/lease/grant"
LEASE_KEEPALIVE: Final = "/v3/lease/keepalive"
LEASE_REVOKE: Final = "/v3/lease/revoke"
AUTHENTICATE: Final = "/v3/auth/authenticate"
STATUS: Final = "/v3/maintenance/status"

# Compare targets and results, event types (proto enum names).
CREATE: Final = "CREATE"
MOD: Final = "MOD"
VALUE: Final = "VALUE"
EQUAL: Final = "EQUAL"
PUT_EVENT: Final = "PUT"
DELETE_EVENT: Final = "DELETE"


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes a range "every key starting with `prefix`" (clientv3's GetPrefixRangeEnd):
    the prefix up to its last byte below 0xff, that byte incremented; b"\\x00" (to the end of the
    keyspace) when every byte is 0xff or the prefix is empty."""
    for index in range(len(prefix) - 1, -1, -1):
        if prefix[index] < 0xFF:
            return prefix[:index] + bytes([prefix[index] + 1])
    return b"\x00"


# ------------------------------------------------------------------------------------------ requests


class RangeRequest(msgspec.Struct, omit_defaults=True):
    key: bytes
    range_end: bytes | None = None
    limit: int = 0
    revision: int = 0  # 0: the newest
    serializable: bool = False  # False: linearizable (a quorum read through the leader)
    keys_only: bool = False
    count_only: bool = False


class PutRequest(msgspec.Struct, omit_defaults=True):
    key: bytes
    value: bytes = b""
    lease: int = 0


class DeleteRangeRequest(msgspec.Struct, omit_defaults=True):
    key: bytes
    range_end: bytes | None = None


class Compare(msgspec.Struct, omit_defaults=True):
    """`target` of `key` compared (`result`, EQUAL unless told) with the one target field that is set."""

    key: bytes
    target: str
    result: str = EQUAL
    create_revision: int | None = None
    mod_revision: int | None = None
    version: int | None = None
    value: bytes | None = None


class RequestOp(msgspec.Struct, omit_defaults=True):
    """One operation of a txn: exactly one field is set."""

    request_range: RangeRequest | None = None
    request_put: PutRequest | None = None
    request_delete_range: DeleteRangeRequest | None = None
    request_txn: TxnRequest | None = None


class TxnRequest(msgspec.Struct, omit_defaults=True):
    compare: list[Compare] = []
    success: list[RequestOp] = []
    failure: list[RequestOp] = []


class CompactionRequest(msgspec.Struct, omit_defaults=True):
    revision: int
    physical: bool = False


class WatchCreateRequest(msgspec.Struct, omit_defaults=True):
    key: bytes
    range_end: bytes | None = None
    start_revision: int = 0
    prev_kv: bool = False


class WatchRequest(msgspec.Struct):
    create_request: WatchCreateRequest


class LeaseGrantRequest(msgspec.Struct):
    TTL: int
    ID: int = 0


class LeaseIdRequest(msgspec.Struct):
    """Body of keepalive and revoke."""

    ID: int


class AuthenticateRequest(msgspec.Struct):
    name: str
    password: str


# Op and compare constructors: what a txn builder writes most.


def put(key: bytes, value: bytes = b"", lease: int = 0) -> RequestOp:
    return RequestOp(request_put=PutRequest(key, value, lease))


def delete(key: bytes) -> RequestOp:
    return RequestOp(request_delete_range=DeleteRangeRequest(key))


def get(key: bytes) -> RequestOp:
    return RequestOp(request_range=RangeRequest(key))


def nested(txn: TxnRequest) -> RequestOp:
    return RequestOp(request_txn=txn)


def absent(key: bytes) -> Compare:
    """The key does not exist (created at revision 0)."""
    return Compare(key, CREATE, create_revision=0)


def unchanged(key: bytes, mod_revision: int) -> Compare:
    """The key was last written at `mod_revision` (and so still exists)."""
    return Compare(key, MOD, mod_revision=mod_revision)


def created_at(key: bytes, create_revision: int) -> Compare:
    return Compare(key, CREATE, create_revision=create_revision)


# ------------------------------------------------------------------------------------------ replies


class ResponseHeader(msgspec.Struct):
    cluster_id: int = 0
    member_id: int = 0
    revision: int = 0
    raft_term: int = 0


class KeyValue(msgspec.Struct):
    key: bytes = b""
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    value: bytes = b""
    lease: int = 0


class RangeResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)
    kvs: list[KeyValue] = []
    more: bool = False
    count: int = 0


class PutResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)


class DeleteRangeResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)
    deleted: int = 0


class ResponseOp(msgspec.Struct):
    response_range: RangeResponse | None = None
    response_put: PutResponse | None = None
    response_delete_range: DeleteRangeResponse | None = None
    response_txn: TxnResponse | None = None


class TxnResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)
    succeeded: bool = False
    responses: list[ResponseOp] = []


class CompactionResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)


class Event(msgspec.Struct):
    kv: KeyValue = msgspec.field(default_factory=KeyValue)
    type: str = PUT_EVENT
    prev_kv: KeyValue | None = None


class WatchResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)
    watch_id: int = 0
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""
    fragment: bool = False
    events: list[Event] = []


class StreamError(msgspec.Struct):
    """The gateway's error object inside a stream (grpc-gateway v1's shape)."""

    grpc_code: int = 0
    http_code: int = 0
    message: str = ""
    http_status: str = ""


class WatchMessage(msgspec.Struct):
    result: WatchResponse | None = None
    error: StreamError | None = None


class LeaseGrantResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)
    ID: int = 0
    TTL: int = 0
    error: str = ""


class LeaseKeepAliveResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)
    ID: int = 0
    TTL: int = 0  # 0: the lease is gone (expired or revoked)


class LeaseKeepAliveMessage(msgspec.Struct):
    result: LeaseKeepAliveResponse | None = None
    error: StreamError | None = None


class LeaseRevokeResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)


class AuthenticateResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)
    token: str = ""


class StatusResponse(msgspec.Struct):
    header: ResponseHeader = msgspec.field(default_factory=ResponseHeader)
    version: str = ""
    dbSize: int = 0
    leader: int = 0
    raftIndex: int = 0
    raftTerm: int = 0
    raftAppliedIndex: int = 0
    errors: list[str] = []
    dbSizeInUse: int = 0
    isLearner: bool = False


class ErrorReply(msgspec.Struct):
    """A unary call's error body: the gRPC status code and message."""

    error: str = ""
    message: str = ""
    code: int = 2  # UNKNOWN when the body says nothing


# ------------------------------------------------------------------------------------------ codecs

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(request: msgspec.Struct) -> bytes:
    return _encoder.encode(request)


def decode(body: bytes, reply_type: type[T]) -> T:
    """A reply body as `reply_type`; raises msgspec.DecodeError (a ValidationError included) when it is not."""
    decoder = _decoders.get(reply_type)
    if decoder is None:
        decoder = _decoders[reply_type] = msgspec.json.Decoder(reply_type, strict=False)
    result: T = decoder.decode(body)
    return result


def error_reply(body: bytes) -> ErrorReply:
    """The error in a non-200 body; a body that is not the gateway's JSON becomes its text, code UNKNOWN."""
    try:
        return decode(body, ErrorReply)
    except msgspec.DecodeError:
        text = body[:200].decode("utf-8", "replace").strip()
        return ErrorReply(error=text, message=text)


class JsonLines:
    """Splits a streamed body into its newline-terminated JSON objects, whatever the chunking.

    The gateway writes one object per message followed by a newline, and JSON never holds a raw
    newline inside a string, so a newline always ends an object. A line longer than `limit` bytes
    (a broken or hostile stream) raises ValueError instead of growing without bound.
    """

    def __init__(self, limit: int = 256 << 20) -> None:
        self._pending = bytearray()
        self._limit = limit

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pending += chunk
        if b"\n" not in chunk:
            self._check()
            return []
        *lines, rest = self._pending.split(b"\n")
        self._pending = bytearray(rest)
        self._check()
        return [bytes(line) for line in lines if line.strip()]

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line."""
        return len(self._pending)

    def _check(self) -> None:
        if len(self._pending) > self._limit:
            raise ValueError(f"a streamed message is longer than {self._limit} bytes")
