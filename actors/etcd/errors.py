"""What an etcd failure means for the caller, decided from the gateway's gRPC code and message. Pure.

The one distinction that matters for writes: was the request possibly applied? A txn that timed out
inside etcd ("request timed out"), or whose connection broke after it was sent, may still commit;
retrying it blindly could apply it twice or answer a client "already locked" about its own lock. Such
failures become `OutcomeUnknown` and the write path resolves them (actors/etcd/writes.py). Failures
that etcd reports before proposing anything ("no leader" — we send the `hasleader` metadata so a member
without a leader refuses at once —, "too many requests", an invalid token) are safe to retry on another
member. Reads are always safe to retry.

Messages are etcd 3.4's (etcdserver/api/v3rpc/rpctypes/error.go); unknown ones fall back on the code.

May import: actors.errors. Never transports or bench.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager

from actors.errors import Unavailable

# gRPC status codes (google.golang.org/grpc/codes)
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
OUT_OF_RANGE = 11
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16

COMPACTED_MESSAGE = "etcdserver: mvcc: required revision has been compacted"
NO_LEADER_MESSAGE = "etcdserver: no leader"
AUTH_NOT_ENABLED_MESSAGE = "etcdserver: authentication is not enabled"


class EtcdError(Unavailable):
    """Anything that kept an etcd request from giving its answer. Being an `Unavailable`, it reaches a
    client as a 503 (`Service unavailable: ...`) unless the backend handles it."""


class EtcdUnavailable(EtcdError):
    """No member answered within the operation's deadline (every endpoint tried, with backoff)."""


class OutcomeUnknown(EtcdError):
    """A write was sent but its answer was lost: it may or may not have been applied (or be applied later)."""


class EtcdRequestError(EtcdError):
    """etcd refused the request; it was not applied. `code` is the gRPC status code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Compacted(EtcdRequestError):
    """The revision asked for (a range's, or a watch's start) has been compacted away."""


class AuthenticationFailed(EtcdRequestError):
    """The configured user name or password was refused (or a certificate identity is unknown)."""


class Verdict(enum.Enum):
    """What to do about one failed attempt."""

    RETRY = "retry elsewhere"  # not applied: try the next member after a backoff
    REAUTHENTICATE = "re-authenticate"  # not applied: get a new token, then try again
    UNKNOWN_OUTCOME = "outcome unknown"  # a write may have been applied (a read: retry)
    FINAL = "final"  # not applied, and trying again will not help


_RETRY_MESSAGES = (
    NO_LEADER_MESSAGE,
    "etcdserver: too many requests",
    "etcdserver: not capable",
    "etcdserver: rpc not supported for learner",
)
_REAUTH_MESSAGES = (
    "etcdserver: invalid auth token",
    "etcdserver: revision of auth store is old",
)


def verdict(code: int, message: str, *, write: bool) -> Verdict:
    """Classify a gateway error (code + message) for a read (`write=False`) or a txn that writes."""
    if code == UNAUTHENTICATED or message.startswith(_REAUTH_MESSAGES):
        return Verdict.REAUTHENTICATE
    if message.startswith(_RETRY_MESSAGES):
        return Verdict.RETRY
    if code in (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION, OUT_OF_RANGE):
        return Verdict.FINAL
    if code == RESOURCE_EXHAUSTED:  # the space quota ("database space exceeded") or the gRPC message size
        return Verdict.FINAL
    # UNAVAILABLE (request timed out, leader changed, server stopped), DEADLINE_EXCEEDED, UNKNOWN, INTERNAL,
    # CANCELLED, anything else: a write may have been proposed already.
    return Verdict.UNKNOWN_OUTCOME if write else Verdict.RETRY


def request_error(code: int, message: str) -> EtcdRequestError:
    """The exception for a FINAL verdict."""
    if message.startswith(COMPACTED_MESSAGE):
        return Compacted(code, message)
    if "authentication failed" in message or "user name not found" in message:
        return AuthenticationFailed(code, message)
    if "user name is empty" in message:  # auth is on and we sent no token
        return AuthenticationFailed(code, f"{message} (the cluster requires a user name and password)")
    return EtcdRequestError(code, message)


@contextmanager
def lone_errors() -> Iterator[None]:
    """Around a nursery whose tasks handle their own failures but one: let that one failure out as
    itself, not as an ExceptionGroup of one (trio's nurseries always group), so `except EtcdError`
    around it works. Groups of several failures, and cancellation, pass unchanged."""
    try:
        yield
    except BaseExceptionGroup as group:
        only: BaseException = group
        while isinstance(only, BaseExceptionGroup) and len(only.exceptions) == 1:
            only = only.exceptions[0]  # nurseries inside nurseries: groups of one inside groups of one
        if isinstance(only, Exception) and not isinstance(only, BaseExceptionGroup):
            raise only from None
        raise
