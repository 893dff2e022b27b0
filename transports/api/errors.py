"""The Arrowhead error model (ARROWHEAD-REFERENCE.md §1.4): exception types, statuses, error body.

Pure validators raise `ArrowheadError` without an origin; the operation layer that knows the
transport (HTTP method + path, or MQTT topic) fills the origin in before encoding
(DECISIONS.md 11: every error carries one).
"""

from __future__ import annotations

import enum

import msgspec


class ExceptionType(enum.Enum):
    INVALID_PARAMETER = 400
    AUTH = 401
    FORBIDDEN = 403
    DATA_NOT_FOUND = 404
    TIMEOUT = 408
    LOCKED = 423
    INTERNAL_SERVER_ERROR = 500
    ARROWHEAD = 501  # the reference maps it to 500; the value here only needs to be unique
    EXTERNAL_SERVER_ERROR = 503

    @property
    def status(self) -> int:
        return 500 if self is ExceptionType.ARROWHEAD else self.value


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Fields in the reference's order; `origin` omitted only when unknown."""

    errorMessage: str
    errorCode: int
    exceptionType: str
    origin: str | None = None


class ArrowheadError(Exception):
    def __init__(
        self,
        message: str,
        exception_type: ExceptionType = ExceptionType.INVALID_PARAMETER,
        origin: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exception_type = exception_type
        self.origin = origin

    @property
    def status(self) -> int:
        return self.exception_type.status

    def with_origin(self, origin: str) -> ArrowheadError:
        """The same error, with `origin` set unless it already has one."""
        if self.origin is None:
            self.origin = origin
        return self

    def body(self) -> ErrorBody:
        return ErrorBody(
            errorMessage=self.message,
            errorCode=self.status,
            exceptionType=self.exception_type.name,
            origin=self.origin,
        )


def invalid(message: str) -> ArrowheadError:
    """A 400 INVALID_PARAMETER error (the commonest kind, hence the short name)."""
    return ArrowheadError(message, ExceptionType.INVALID_PARAMETER)
