"""Base64 as the Java reference decodes it (`java.util.Base64.getDecoder()`): the MQTT `authentication`
field and request signatures arrive in it, so both readers share this one decoder."""

from __future__ import annotations

import base64
import binascii


def java_base64(text: str | bytes) -> bytes:
    """Java's basic Base64 decoder: the standard alphabet, no whitespace, padding optional."""
    data = text.encode("ascii") if isinstance(text, str) else text
    missing = -len(data) % 4
    if missing == 3:
        raise binascii.Error("truncated Base64")
    return base64.b64decode(data + b"=" * missing, validate=True)
