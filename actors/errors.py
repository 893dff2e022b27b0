"""Errors an actor reports back to the caller; transports map them onto Arrowhead error bodies."""


class Rejected(Exception):
    """The request conflicts with the current state (HTTP/MQTT 400, INVALID_PARAMETER)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unavailable(Exception):
    """The change could not be made durable (HTTP/MQTT 503); nothing was acknowledged."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
